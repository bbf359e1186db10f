// Package worker runs synthesis jobs: an asynq handler that turns a queued
// job into stored audio, the server that runs it, and the reconciler that
// re-enqueues jobs the queue lost.
package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hibiken/asynq"

	"github.com/kokorotts/kokoro-tts/pkg/audio"
	"github.com/kokorotts/kokoro-tts/pkg/events"
	"github.com/kokorotts/kokoro-tts/pkg/metrics"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
	"github.com/kokorotts/kokoro-tts/queue"
	"github.com/kokorotts/kokoro-tts/storage"
)

// Encoder encodes PCM into a file format.
type Encoder interface {
	EncodeWith(ctx context.Context, pcm tts.PCM, f tts.Format, opts tts.EncodeOptions, w io.Writer) (audio.Result, error)
}

// Handler processes TypeSynthesize tasks. It is idempotent: a job that is
// finished or canceled is skipped, audio goes to a key derived from the job
// (a re-execution overwrites, never adds), audio is stored before the job is
// marked succeeded, and every state change is conditional on the attempt.
type Handler struct {
	Store      tts.JobStore
	Engine     tts.Synthesizer
	Encoder    Encoder
	Objects    storage.Store
	Logger     *slog.Logger
	CancelPoll time.Duration // how often a running job's cancel flag is read; default 1 s
	// CompleteWindow bounds the retries of recording a success whose audio
	// is stored while the database is unavailable; default 30 s.
	CompleteWindow time.Duration
	Metrics        *metrics.Worker // optional
	Events         EventPublisher  // optional
	// Cache makes identical requests reuse stored audio: the audio goes to
	// a key derived from everything that determined it (CacheKey), and a
	// job whose key already has audio succeeds without synthesis.
	Cache bool
	// CacheSalt is mixed into cache keys: settings outside the job that
	// change the audio (encoder bitrates).
	CacheSalt string
	// Locks, when set with Cache, makes concurrent identical jobs (on any
	// worker) synthesise once: the others wait and reuse the audio.
	Locks Locker
	// Webhooks, when set, queues the delivery of a job's terminal event to
	// its callback URL.
	Webhooks WebhookEnqueuer
}

// Locker takes named locks shared by all workers.
type Locker interface {
	TryLock(ctx context.Context, key string, ttl time.Duration) (release func(), ok bool, err error)
}

// EventPublisher carries job events to subscribers.
type EventPublisher interface {
	Publish(ctx context.Context, e events.Event) error
}

// publish sends e, best effort: a lost event never fails a job (subscribers
// fall back to the job's row).
func (h *Handler) publish(ctx context.Context, e events.Event) {
	if h.Events == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := h.Events.Publish(ctx, e); err != nil {
		h.Logger.Warn("publishing a job event failed", "job_id", e.JobID, "type", e.Type, "err", err)
	}
}

// publishState publishes the job's state as stored now and, for a job with
// a callback URL that has ended, queues its webhook.
func (h *Handler) publishState(ctx context.Context, id string) {
	if h.Events == nil && h.Webhooks == nil {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	j, err := h.Store.FindJob(dctx, id)
	if err != nil {
		return
	}
	h.publish(ctx, events.FromJob(j))
	if h.Webhooks != nil && j.CallbackURL != "" && j.Status.Terminal() {
		if err := h.Webhooks.EnqueueWebhook(dctx, j.ID); err != nil {
			h.Logger.Error("could not queue the webhook of a finished job", "job_id", j.ID, "err", err)
		}
	}
	notifyBatch(dctx, h.Store, h.Webhooks, h.Logger, j)
}

// count records a job outcome when metrics are on.
func (h *Handler) count(outcome string) {
	if h.Metrics != nil {
		h.Metrics.Jobs.WithLabelValues(outcome).Inc()
	}
}

var (
	errUserCanceled = errors.New("job canceled by the user")
	errSuperseded   = errors.New("a newer attempt owns the job")
)

// AudioKey returns the storage key of a job's audio.
func AudioKey(job *tts.Job) string {
	return "jobs/" + job.ID + "/audio." + job.Format.Extension()
}

// ProcessTask implements asynq.Handler: it reads the payload and asynq's
// retry counters and calls Process.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := queue.ParseSynthesize(t.Payload())
	if err != nil {
		h.Logger.Error("dropping a malformed task", "task_id", taskID(ctx), "err", err)
		return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	if !ok {
		maxRetry = queue.MaxRetry
	}
	return h.Process(ctx, p.JobID, Delivery{Retried: retried, MaxRetry: maxRetry})
}

// Delivery is what the queue says about this execution of a task.
type Delivery struct {
	Retried  int // earlier failed executions
	MaxRetry int // executions allowed after the first
}

// Process runs one delivery of a job's task. It returns nil when the task is
// done with (succeeded, failed for good, canceled, superseded), an error
// wrapping asynq.SkipRetry when the job failed for good, and any other error
// to have the task retried.
func (h *Handler) Process(ctx context.Context, jobID string, d Delivery) error {
	p := queue.SynthesizePayload{JobID: jobID}
	log := h.Logger.With("job_id", p.JobID)
	job, err := h.Store.FindJob(ctx, p.JobID)
	switch {
	case tts.ErrorCode(err) == tts.ENOTFOUND:
		log.Warn("task for a job that does not exist; dropping it")
		return fmt.Errorf("job %s not found: %w", p.JobID, asynq.SkipRetry)
	case err != nil:
		return notStartedIfUnavailable(fmt.Errorf("reading job: %w", err))
	case job.Status.Terminal():
		log.Info("job already finished; skipping", "status", job.Status)
		h.count("skipped")
		return nil
	case job.CancelRequested:
		return h.cancel(ctx, log, job)
	case job.Attempts >= job.MaxAttempts:
		reason := fmt.Sprintf("quarantined: %d attempts started without finishing (a worker may have crashed on this job, or the database failed each time its result was to be recorded)", job.Attempts)
		log.Error("quarantining job", "attempts", job.Attempts)
		h.count("quarantined")
		if err := h.Store.FailJob(ctx, job.ID, 0, reason); err == nil {
			discardAudio(ctx, h.Objects, log, job)
			h.publishState(ctx, job.ID)
		} else if tts.ErrorCode(err) != tts.ECONFLICT {
			return err
		}
		return fmt.Errorf("%s: %w", reason, asynq.SkipRetry)
	}

	info := h.Engine.Info()
	attempt, err := h.Store.StartAttempt(ctx, job.ID, info.Name, info.Device)
	if tts.ErrorCode(err) == tts.ECONFLICT {
		// Finished or canceled between the read and now.
		if j, ferr := h.Store.FindJob(ctx, job.ID); ferr == nil && !j.Status.Terminal() && j.CancelRequested {
			return h.cancel(ctx, log, job)
		}
		return nil
	} else if err != nil {
		return notStartedIfUnavailable(fmt.Errorf("starting attempt: %w", err))
	}
	log = log.With("attempt", attempt)
	if h.Metrics != nil {
		h.Metrics.InFlight.Inc()
		defer h.Metrics.InFlight.Dec()
		if attempt == 1 {
			h.Metrics.QueueWait.Observe(time.Since(job.CreatedAt).Seconds())
		}
	}
	log.Info("synthesis started", "chars", job.Characters(), "voice", job.Voice, "format", job.Format, "engine", info.Name, "device", info.Device)

	first := events.Progress(job.ID, 0, 1)
	first.Attempt = attempt
	h.publish(ctx, first)
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go h.watch(runCtx, job.ID, attempt, stop)

	started := time.Now()
	result, err := h.run(runCtx, job, attempt)
	if err != nil {
		return h.fail(ctx, runCtx, log, job, attempt, d, err)
	}
	log.Info("job succeeded", "bytes", result.Bytes, "audio_seconds", result.DurationSeconds, "elapsed", time.Since(started).Round(time.Millisecond))
	h.count("succeeded")
	h.publishState(ctx, job.ID)
	if h.Metrics != nil {
		if result.CacheHit {
			h.Metrics.CacheHits.Inc()
		}
		h.Metrics.Characters.Add(float64(job.Characters()))
		h.Metrics.TotalDuration.Observe(time.Since(job.CreatedAt).Seconds())
	}
	return nil
}

// run synthesises, encodes, stores and completes the job, or completes it
// with cached audio.
func (h *Handler) run(ctx context.Context, job *tts.Job, attempt int) (tts.Audio, error) {
	key := AudioKey(job)
	cacheKey := ""
	if h.Cache {
		cacheKey = CacheKey(h.Engine, job, h.CacheSalt)
		key = "cache/" + cacheKey + "." + job.Format.Extension()
		if a, ok := h.cached(ctx, cacheKey); ok {
			return h.complete(ctx, job, attempt, a)
		}
		if h.Locks != nil {
			release, err := h.lock(ctx, job, cacheKey)
			if err != nil {
				return tts.Audio{}, err
			}
			defer release()
			// Another worker may have made it while this one waited.
			if a, ok := h.cached(ctx, cacheKey); ok {
				return h.complete(ctx, job, attempt, a)
			}
		}
	}
	start := time.Now()
	pcm, err := h.synthesize(ctx, job)
	if err != nil {
		return tts.Audio{}, stageError("synthesis", err)
	}
	if h.Metrics != nil {
		info, took, secs := h.Engine.Info(), time.Since(start).Seconds(), pcm.Duration().Seconds()
		h.Metrics.Synthesis.WithLabelValues(info.Name, info.Device).Observe(took)
		h.Metrics.AudioSeconds.WithLabelValues(info.Name, info.Device).Add(secs)
		if secs > 0 {
			h.Metrics.RealTime.WithLabelValues(info.Name, info.Device).Observe(took / secs)
		}
	}
	var buf bytes.Buffer
	res, err := h.Encoder.EncodeWith(ctx, pcm, job.Format, job.Options, &buf)
	if err != nil {
		return tts.Audio{}, stageError("encoding", err)
	}
	// Never upload once the attempt has been abandoned.
	if err := context.Cause(ctx); err != nil {
		return tts.Audio{}, err
	}
	// A newer attempt (duplicate delivery) owns the job: leave its audio alone.
	if cur, err := h.Store.FindJob(ctx, job.ID); err == nil && (cur.Status != tts.StatusRunning || cur.Attempts != attempt) {
		return tts.Audio{}, tts.Errorf(tts.ECONFLICT, "attempt %d was superseded", attempt)
	}
	if _, err := h.Objects.Put(ctx, key, bytes.NewReader(buf.Bytes()), int64(buf.Len()), res.ContentType); err != nil {
		return tts.Audio{}, stageError("storing the audio", err)
	}
	a := tts.Audio{Key: key, ContentType: res.ContentType, Bytes: int64(buf.Len()), DurationSeconds: res.DurationSeconds, CacheKey: cacheKey}
	return h.complete(ctx, job, attempt, a)
}

// synthesize runs the engine. A panic in it (a bug an input triggers) is
// an error of this attempt, not of the worker: the job goes through the
// usual retries and fails with a reason, and the stack is logged.
func (h *Handler) synthesize(ctx context.Context, job *tts.Job) (pcm tts.PCM, err error) {
	defer func() {
		if x := recover(); x != nil {
			h.Logger.Error("the engine panicked", "job_id", job.ID, "panic", fmt.Sprint(x), "stack", string(debug.Stack()))
			err = fmt.Errorf("engine panic: %v", x)
		}
	}()
	return h.Engine.Synthesize(ctx, tts.SynthesisRequest{Text: job.Text, Voice: job.Voice, Speed: job.Speed,
		Progress: func(done, total int) {
			if done < total { // the last chunk is followed by encoding: succeeded says 1
				h.publish(ctx, events.Progress(job.ID, done, total))
			}
		}})
}

// defaultCompleteWindow bounds how long a worker keeps trying to record a
// success whose audio is stored while the database is unavailable (locked,
// busy): the audio is made, so waiting is cheaper than a new attempt.
const defaultCompleteWindow = 30 * time.Second

// complete records the stored audio, even if ctx ended meanwhile, retrying
// while the database is unavailable for up to completeWindow.
func (h *Handler) complete(ctx context.Context, job *tts.Job, attempt int, a tts.Audio) (tts.Audio, error) {
	window := h.CompleteWindow
	if window <= 0 {
		window = defaultCompleteWindow
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), window)
	defer cancel()
	backoff := 250 * time.Millisecond
	for {
		err := h.Store.CompleteJob(dctx, job.ID, attempt, a)
		if err == nil {
			return a, nil
		}
		if tts.ErrorCode(err) != tts.EUNAVAILABLE {
			return tts.Audio{}, fmt.Errorf("recording success: %w", err)
		}
		h.Logger.Warn("recording success failed; retrying while the audio waits", "job_id", job.ID, "attempt", attempt, "err", err)
		select {
		case <-dctx.Done():
			return tts.Audio{}, unrecorded{fmt.Errorf("recording success: %w", err)}
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// cached returns the audio a succeeded job with the same cache key stored,
// if it is still in storage.
func (h *Handler) cached(ctx context.Context, cacheKey string) (tts.Audio, bool) {
	j, err := h.Store.FindCached(ctx, cacheKey)
	if err != nil || j.Audio == nil {
		return tts.Audio{}, false
	}
	if _, err := h.Objects.Stat(ctx, j.Audio.Key); err != nil {
		return tts.Audio{}, false
	}
	a := *j.Audio
	a.CacheKey, a.CacheHit = cacheKey, true
	return a, true
}

// lock waits until this worker holds the synthesis lock of cacheKey or the
// audio appears in the cache (then the lock is not needed: release is a
// no-op and the caller finds the audio).
func (h *Handler) lock(ctx context.Context, job *tts.Job, cacheKey string) (func(), error) {
	for {
		release, ok, err := h.Locks.TryLock(ctx, "kokoro-tts:synth:"+cacheKey, queue.Timeout(job.Characters()))
		if err != nil {
			// Without Redis the worst case is synthesising twice.
			h.Logger.Warn("cache lock unavailable; synthesising without it", "job_id", job.ID, "err", err)
			return func() {}, nil
		}
		if ok {
			return release, nil
		}
		if _, found := h.cached(ctx, cacheKey); found {
			return func() {}, nil
		}
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// CacheKey returns the hash of everything that determines a job's audio:
// the engine, its model and version, the voice (blends in a canonical
// order), the speed, the format, the text with its whitespace normalised,
// and salt (settings such as bitrates).
func CacheKey(engine tts.Synthesizer, job *tts.Job, salt string) string {
	info := engine.Info()
	voice := job.Voice
	if ws, err := tts.NewVoiceSet(engine.Voices()).ParseVoice(job.Voice); err == nil {
		voice = tts.CanonicalVoice(ws)
	}
	h := sha256.New()
	for _, part := range []string{"v1", info.Name, info.Model, info.Version, voice,
		strconv.FormatFloat(job.Speed, 'f', 3, 64), string(job.Format), strings.Join(strings.Fields(job.Text), " "), salt,
		strconv.Itoa(job.Options.BitrateKbps), strconv.Itoa(job.Options.SampleRate)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// fail decides what an error means: a user cancel, a shutdown, a permanent
// failure or one to retry.
func (h *Handler) fail(ctx, runCtx context.Context, log *slog.Logger, job *tts.Job, attempt int, d Delivery, err error) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if errors.Is(context.Cause(runCtx), errUserCanceled) || h.cancelRequested(dctx, job.ID) {
		return h.cancel(dctx, log, job)
	}
	if tts.ErrorCode(err) == tts.ECONFLICT || errors.Is(context.Cause(runCtx), errSuperseded) {
		// Another attempt owns the job now (duplicate delivery).
		log.Warn("attempt superseded; leaving the job to the newer attempt", "err", err)
		h.count("superseded")
		return nil
	}
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// Shutdown: asynq has put the task back and the next attempt picks
		// up the row where it is (running is a valid start state). The row
		// is not touched here: a new attempt may already own it.
		log.Warn("attempt interrupted; the task goes back to the queue", "err", err)
		h.count("interrupted")
		// The interruption is not the job's fault: give the attempt back
		// (conditional on it, so a newer attempt is never touched).
		if rerr := h.Store.ReleaseAttempt(dctx, job.ID, attempt); rerr != nil && tts.ErrorCode(rerr) != tts.ECONFLICT {
			log.Warn("could not give the interrupted attempt back", "err", rerr)
		}
		return err
	}
	var ur unrecorded
	if errors.As(err, &ur) {
		// The audio is stored and only the database failed, for the whole
		// completion window: not the job's fault. The delivery does not
		// spend a retry (IsFailure), and the job is not failed: it is
		// still running this attempt in the database, which the next
		// delivery, or the reconciler once asynq has archived the task,
		// takes over (Reconciler.repair gives the attempt back).
		log.Warn("audio stored but its success could not be recorded: the database is unavailable; the job waits", "err", err)
		h.failure(err)
		h.count("unrecorded")
		return err
	}
	retried, maxRetry := d.Retried, d.MaxRetry
	permanent := tts.ErrorCode(err) == tts.EINVALID || tts.ErrorCode(err) == tts.EUNSUPPORTED
	// The job's own budget counts too: a task the reconciler queued again
	// starts a fresh asynq retry count, but not a fresh job.
	last := retried >= maxRetry || (job.MaxAttempts > 0 && attempt >= job.MaxAttempts)
	if permanent || last {
		reason := readable(err)
		log.Error("job failed", "err", err, "permanent", permanent, "retried", retried)
		ferr := h.Store.FailJob(dctx, job.ID, attempt, reason)
		if ferr != nil && tts.ErrorCode(ferr) != tts.ECONFLICT {
			return ferr
		} else if ferr == nil {
			discardAudio(dctx, h.Objects, log, job)
			h.publishState(dctx, job.ID)
		}
		h.failure(err)
		h.count("failed")
		return fmt.Errorf("%s: %w", reason, asynq.SkipRetry)
	}
	log.Warn("attempt failed; will retry", "err", err, "retried", retried, "max_retry", maxRetry)
	h.publish(dctx, events.Event{Type: events.Retrying, JobID: job.ID, Attempt: attempt, Error: readable(err), Time: time.Now().UTC()})
	h.failure(err)
	h.count("retried")
	return err
}

func (h *Handler) cancel(ctx context.Context, log *slog.Logger, job *tts.Job) error {
	err := h.Store.CancelJob(ctx, job.ID)
	if err != nil && tts.ErrorCode(err) != tts.ECONFLICT {
		return fmt.Errorf("recording cancel: %w", err)
	}
	log.Info("job canceled")
	h.count("canceled")
	if err == nil { // this call ended the job: its one terminal event
		discardAudio(ctx, h.Objects, log, job)
		h.publishState(ctx, job.ID)
	}
	return nil
}

// discardAudio removes the audio an attempt stored for a job that then ended
// without success: the audio was stored but its success could not be
// recorded (the database was unavailable) and the job failed or was
// canceled later, or a worker died between the two. Only the job's own key
// (AudioKey) is removed: once the job has ended unsuccessfully nothing can
// complete it, so nothing will ever point at that object; cache keys are
// shared with other jobs and left alone. Best effort: an attempt still
// running elsewhere may store it again (its completion is refused), and a
// failure is only logged.
func discardAudio(ctx context.Context, objects storage.Store, log *slog.Logger, job *tts.Job) {
	if objects == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := objects.Delete(ctx, AudioKey(job)); err != nil {
		log.Warn("could not remove the audio of a job that did not succeed", "key", AudioKey(job), "err", err)
	}
}

func (h *Handler) cancelRequested(ctx context.Context, id string) bool {
	j, err := h.Store.FindJob(ctx, id)
	return err == nil && j.CancelRequested
}

// failure counts a failed attempt by the stage that failed.
func (h *Handler) failure(err error) {
	if h.Metrics == nil {
		return
	}
	stage := "other"
	var se *stageErr
	if errors.As(err, &se) {
		stage = se.stage
	}
	h.Metrics.Failures.WithLabelValues(stage).Inc()
}

// watch sends the attempt's heartbeat every CancelPoll (so the reconciler
// knows a worker still runs it) and stops the attempt when the user asked
// to cancel, or when a newer attempt owns the job.
func (h *Handler) watch(ctx context.Context, id string, attempt int, stop context.CancelCauseFunc) {
	every := h.CancelPoll
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			canceled, err := h.Store.Heartbeat(ctx, id, attempt)
			switch {
			case canceled:
				stop(errUserCanceled)
				return
			case tts.ErrorCode(err) == tts.ECONFLICT:
				stop(errSuperseded)
				return
			}
		}
	}
}

// stageErr names the stage that failed, for the job's readable reason.
type stageErr struct {
	stage string
	err   error
}

func (e *stageErr) Error() string { return e.stage + ": " + e.err.Error() }
func (e *stageErr) Unwrap() error { return e.err }

func stageError(stage string, err error) error { return &stageErr{stage: stage, err: err} }

// readable returns the reason shown to the job's owner: the client-safe
// message of a domain error, otherwise only the stage.
func readable(err error) string {
	stage := "processing"
	var se *stageErr
	if errors.As(err, &se) {
		stage = se.stage
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return stage + " failed: the attempt took longer than its time limit"
	}
	// A full disk or quota is the operator's to fix; saying so spares a
	// trip to the worker log (it names no path).
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return stage + " failed: the audio storage is full"
	}
	var te *tts.Error
	if errors.As(err, &te) && te.Code != tts.EINTERNAL {
		return stage + " failed: " + te.Message
	}
	return stage + " failed after all retries (internal error; see the worker log)"
}

func taskID(ctx context.Context) string {
	id, _ := asynq.GetTaskID(ctx)
	return id
}

// notStarted marks a delivery that ended before its attempt started because
// the database was unavailable. It does not spend one of the job's retries
// (IsFailure): an outage of the database should delay jobs, not fail them.
// asynq archives the task anyway when its retries were already spent by
// earlier failures; its last error then starts with notStartedPrefix, and
// the reconciler queues the job again (Reconciler.repair).
type notStarted struct{ err error }

// notStartedPrefix starts the text of a notStarted error, which asynq keeps
// as the task's last error.
const notStartedPrefix = "attempt not started: "

func (e notStarted) Error() string { return notStartedPrefix + e.err.Error() }
func (e notStarted) Unwrap() error { return e.err }

func notStartedIfUnavailable(err error) error {
	if tts.ErrorCode(err) == tts.EUNAVAILABLE {
		return notStarted{err}
	}
	return err
}

// unrecorded marks an attempt that stored its audio but could not record
// its success because the database stayed unavailable for the whole
// completion window. Like notStarted it does not spend a retry; when asynq
// archives the task anyway, its last error starts with unrecordedPrefix and
// the reconciler gives the attempt back and queues the job again.
type unrecorded struct{ err error }

// unrecordedPrefix starts the text of an unrecorded error.
const unrecordedPrefix = "audio stored, success not recorded: "

func (e unrecorded) Error() string { return unrecordedPrefix + e.err.Error() }
func (e unrecorded) Unwrap() error { return e.err }

// IsFailure tells asynq whether a handler error spends a retry: every error
// does but a delivery that could not start its attempt, or could not
// record its success, because the database was unavailable (it is retried
// with the same backoff).
func IsFailure(err error) bool {
	var ns notStarted
	var ur unrecorded
	return !errors.As(err, &ns) && !errors.As(err, &ur)
}
