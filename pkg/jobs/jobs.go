// Package jobs is the application service behind the HTTP API: it validates
// requests, records jobs, enqueues them, cancels them and finds their audio.
// HTTP handlers call one method each.
package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kokorotts/kokoro-tts/pkg/events"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
	"github.com/kokorotts/kokoro-tts/pkg/webhook"
	"github.com/kokorotts/kokoro-tts/queue"
	"github.com/kokorotts/kokoro-tts/storage"
)

// Queue is what the service needs from the job queue.
type Queue interface {
	tts.Enqueuer
	// CancelProcessing asks the worker running job to stop (best effort).
	CancelProcessing(ctx context.Context, job *tts.Job) error
	// DeleteTask removes a job's pending task (best effort).
	DeleteTask(ctx context.Context, job *tts.Job) error
	// EnqueueWebhook queues the delivery of a finished job's event.
	EnqueueWebhook(ctx context.Context, jobID string) error
	// EnqueueBatchWebhook queues the delivery of a finished batch's event.
	EnqueueBatchWebhook(ctx context.Context, batchID string) error
}

// EventBus carries job events between the API replicas and the workers.
type EventBus interface {
	Publish(ctx context.Context, e events.Event) error
	// Read returns the job's events after the id `after`, waiting up to
	// block for the first one (negative: do not wait).
	Read(ctx context.Context, jobID, after string, block time.Duration) ([]events.Event, error)
}

// VoiceSource returns the voices the running engines offer.
type VoiceSource func(ctx context.Context) []tts.Voice

// Service implements the job operations.
type Service struct {
	store        tts.JobStore
	queue        Queue
	objects      storage.Store
	voices       VoiceSource
	maxTextChars int
	presign      time.Duration // >0: hand out presigned audio URLs valid this long
	events       EventBus
	webhooks     bool
	allowPrivate bool
	log          *slog.Logger
	now          func() time.Time
}

// Config configures a Service.
type Config struct {
	Store        tts.JobStore
	Queue        Queue
	Objects      storage.Store
	Voices       VoiceSource // nil: the Kokoro catalogue
	MaxTextChars int
	// PresignAudio, when positive and the store can presign, makes audio
	// downloads redirect to a presigned URL valid this long.
	PresignAudio time.Duration
	// Events, when set, receives the jobs' queued and canceled events and
	// serves subscriptions.
	Events EventBus
	// Webhooks enables callback_url (the workers sign deliveries);
	// AllowPrivateCallbacks lets callbacks name private addresses.
	Webhooks              bool
	AllowPrivateCallbacks bool
	Logger                *slog.Logger
}

// New returns a Service.
func New(c Config) *Service {
	if c.Voices == nil {
		all := tts.Catalogue()
		c.Voices = func(context.Context) []tts.Voice { return all }
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxTextChars <= 0 {
		c.MaxTextChars = tts.DefaultMaxTextChars
	}
	return &Service{store: c.Store, queue: c.Queue, objects: c.Objects, voices: c.Voices,
		maxTextChars: c.MaxTextChars, presign: c.PresignAudio, events: c.Events,
		webhooks: c.Webhooks, allowPrivate: c.AllowPrivateCallbacks, log: c.Logger, now: time.Now}
}

// MaxTextChars returns the longest text accepted.
func (s *Service) MaxTextChars() int { return s.maxTextChars }

// Voices lists the voices offered by the running engines.
func (s *Service) Voices(ctx context.Context) []tts.Voice {
	return tts.NewVoiceSet(s.voices(ctx)).Sorted()
}

// Submit validates req, records a job and enqueues it. With an idempotency
// key already used for the same request it returns the earlier job and
// created=false; for a different request, ECONFLICT. When the queue is down
// the job is not kept and the error is EUNAVAILABLE: the service never
// accepts what it cannot queue.
func (s *Service) Submit(ctx context.Context, req tts.Request, idempotencyKey string) (*tts.Job, bool, error) {
	v, err := req.Validate(tts.Limits{MaxTextChars: s.maxTextChars, Voices: tts.NewVoiceSet(s.voices(ctx))})
	if err != nil {
		return nil, false, err
	}
	if v.CallbackURL != "" {
		if !s.webhooks {
			return nil, false, tts.Errorf(tts.EUNSUPPORTED, "callback_url: webhooks are not enabled on this server (WEBHOOK_SECRET is not set)")
		}
		if err := webhook.CheckURL(v.CallbackURL, s.allowPrivate); err != nil {
			return nil, false, tts.Errorf(tts.EINVALID, "callback_url: %v", err)
		}
	}
	if len(idempotencyKey) > 255 {
		return nil, false, tts.Errorf(tts.EINVALID, "Idempotency-Key: at most 255 characters")
	}
	idempotencyKey = scopedKey(ctx, idempotencyKey)
	id, err := uuid.NewV7()
	if err != nil {
		return nil, false, tts.Wrap(tts.EINTERNAL, err, "could not create a job id")
	}
	now := s.now().UTC()
	job := &tts.Job{
		ID: id.String(), Status: tts.StatusQueued, Text: v.Text, Voice: v.Voice, Speed: v.Speed,
		Format: v.Format, Queue: v.Queue, MaxAttempts: queue.MaxRetry + 1,
		IdempotencyKey: idempotencyKey, RequestHash: requestHash(v), CreatedAt: now, UpdatedAt: now,
		CallbackURL: v.CallbackURL, Options: v.Options, UserID: tts.Owner(ctx),
	}
	return s.create(ctx, job)
}

// scopedKey keeps each account's idempotency keys apart: two users may
// choose the same key without meeting each other's jobs.
func scopedKey(ctx context.Context, key string) string {
	if owner := tts.Owner(ctx); key != "" && owner != "" {
		return owner + "/" + key
	}
	return key
}

// enqueueTimeout bounds a submission's enqueue. It rides out a Redis
// restart of a second or two (go-redis retries the dial); a Redis that is
// down or hangs longer makes the submission a 503 after about this long
// (with a Redis client that honours deadlines: config.RedisClient).
const enqueueTimeout = 3 * time.Second

// create stores a new job, publishes its first event and enqueues it.
func (s *Service) create(ctx context.Context, job *tts.Job) (*tts.Job, bool, error) {
	existing, created, err := s.store.CreateJob(ctx, job)
	if err != nil {
		return nil, false, err
	}
	if !created {
		// A replay: make sure a job still waiting is really queued (the
		// first request may have failed to enqueue it). Enqueue is
		// idempotent through the task id.
		if existing.Status == tts.StatusQueued {
			ectx, cancel := context.WithTimeout(ctx, enqueueTimeout)
			defer cancel()
			if err := s.queue.Enqueue(ectx, existing); err != nil {
				return nil, false, err
			}
		}
		return existing, false, nil
	}
	job = existing // the stored row, as later reads will show it
	// Published before the enqueue, so that it always precedes the worker's
	// first event.
	s.publish(ctx, events.FromJob(job))
	ectx, cancel := context.WithTimeout(ctx, enqueueTimeout)
	defer cancel()
	if err := s.queue.Enqueue(ectx, job); err != nil {
		// Not accepted: take the row back so a retry with the same
		// Idempotency-Key starts afresh and nothing runs behind the
		// client's back.
		if derr := s.store.DeleteJob(context.WithoutCancel(ctx), job.ID); derr != nil {
			s.log.Error("could not remove a job that was not queued; the reconciler will queue it", "job_id", job.ID, "err", derr)
		}
		return nil, false, err
	}
	return job, true, nil
}

// publish sends an event, best effort: subscribers fall back to the row.
func (s *Service) publish(ctx context.Context, e events.Event) {
	if s.events == nil {
		return
	}
	// A short deadline: a lost event costs little (subscribers read the
	// row), a slow Redis must not hold up the request.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if err := s.events.Publish(pctx, e); err != nil {
		s.log.Warn("publishing a job event failed", "job_id", e.JobID, "type", e.Type, "err", err)
	}
}

// Events returns the job's events after the event id `after`, waiting up to
// block for one. Without an event bus it waits and returns none: callers
// then read the job itself.
func (s *Service) Events(ctx context.Context, id, after string, block time.Duration) ([]events.Event, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if s.events == nil {
		t := time.NewTimer(min(max(block, 0), time.Second))
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
		return nil, nil
	}
	if _, err := s.Get(ctx, id); err != nil {
		return nil, err
	}
	return s.events.Read(ctx, id, after, block)
}

func requestHash(v tts.Validated) string {
	b, _ := json.Marshal(v)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:16])
}

// Get returns a job (ENOTFOUND). A user asking for another user's job is
// told it does not exist.
func (s *Service) Get(ctx context.Context, id string) (*tts.Job, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	j, err := s.store.FindJob(ctx, id)
	if err != nil {
		return nil, err
	}
	if !tts.CanSee(ctx, j.UserID) {
		return nil, tts.Errorf(tts.ENOTFOUND, "no job with id %q", id)
	}
	return j, nil
}

// List returns a page of the caller's jobs (every job when unscoped),
// newest first, and the cursor of the next page ("" at the end).
func (s *Service) List(ctx context.Context, status string, cursor string, limit int) ([]*tts.Job, string, error) {
	f := tts.JobFilter{Status: tts.JobStatus(status), Limit: limit}
	if p, ok := tts.PrincipalFrom(ctx); ok {
		// Everyone's own jobs, admins included: the admin API lists all.
		f.UserID = p.UserID
		if f.UserID == "" {
			return nil, "", nil
		}
	}
	return s.list(ctx, f, cursor)
}

func (s *Service) list(ctx context.Context, f tts.JobFilter, cursor string) ([]*tts.Job, string, error) {
	status, limit := string(f.Status), f.Limit
	if status != "" && !f.Status.Valid() {
		return nil, "", tts.Errorf(tts.EINVALID, "status: must be one of queued, running, succeeded, failed, canceled")
	}
	if limit < 0 || limit > 100 {
		return nil, "", tts.Errorf(tts.EINVALID, "limit: must be from 1 to 100")
	}
	if f.Limit == 0 {
		f.Limit = 20
	}
	if cursor != "" {
		if err := checkID(cursor); err != nil {
			return nil, "", tts.Errorf(tts.EINVALID, "cursor: not a cursor returned by this API")
		}
		f.Before = cursor
	}
	// Ask for one more than the page to know whether a next page exists.
	want := f.Limit
	f.Limit++
	jobs, err := s.store.ListJobs(ctx, f)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(jobs) > want {
		jobs = jobs[:want]
		next = jobs[want-1].ID
	}
	return jobs, next, nil
}

// Cancel cancels a queued or running job. A queued job is canceled at once; a
// running job stops at its worker's next check. ECONFLICT when the job has
// already finished.
func (s *Service) Cancel(ctx context.Context, id string) (*tts.Job, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return nil, err
	}
	job, err := s.store.RequestCancel(ctx, id)
	if err != nil {
		return nil, err
	}
	// Best effort: the database flag is what counts; these only make the
	// cancel take effect sooner.
	if job.Status == tts.StatusCanceled {
		s.publish(ctx, events.FromJob(job))
		if job.CallbackURL != "" {
			if err := s.queue.EnqueueWebhook(ctx, job.ID); err != nil {
				s.log.Error("could not queue the webhook of a canceled job", "job_id", id, "err", err)
			}
		}
		if err := s.queue.DeleteTask(ctx, job); err != nil {
			s.log.Warn("could not delete the task of a canceled job", "job_id", id, "err", err)
		}
	} else if err := s.queue.CancelProcessing(ctx, job); err != nil {
		s.log.Warn("could not signal cancel to the worker", "job_id", id, "err", err)
	}
	return job, nil
}

// AudioResult is where a job's audio can be read.
type AudioResult struct {
	Job    *tts.Job
	Object storage.Object // set when the audio is to be streamed
	URL    string         // set when the client is to be redirected
}

// Audio opens a finished job's audio, or returns a presigned URL for it.
// ENOTREADY while the job is live, ECONFLICT when it failed or was canceled.
func (s *Service) Audio(ctx context.Context, id string, wantRedirect bool) (AudioResult, error) {
	job, err := s.Get(ctx, id)
	if err != nil {
		return AudioResult{}, err
	}
	switch job.Status {
	case tts.StatusSucceeded:
	case tts.StatusQueued, tts.StatusRunning:
		return AudioResult{Job: job}, tts.Errorf(tts.ENOTREADY, "job %s is %s: its audio is available once it has succeeded", job.ID, job.Status)
	default:
		return AudioResult{Job: job}, tts.Errorf(tts.ECONFLICT, "job %s is %s: it has no audio", job.ID, job.Status)
	}
	if job.Audio == nil || job.Audio.Key == "" {
		return AudioResult{Job: job}, tts.Errorf(tts.EINTERNAL, "job %s succeeded without audio", job.ID)
	}
	if p, ok := s.objects.(storage.Presigner); ok && s.presign > 0 && wantRedirect {
		u, err := p.PresignGet(ctx, job.Audio.Key, s.presign)
		if err == nil {
			return AudioResult{Job: job, URL: u}, nil
		}
		s.log.Warn("presigning failed; streaming instead", "job_id", id, "err", err)
	}
	obj, err := s.objects.Open(ctx, job.Audio.Key)
	if errors.Is(err, storage.ErrNotFound) {
		s.log.Error("a succeeded job's audio is missing from storage", "job_id", id, "key", job.Audio.Key)
		return AudioResult{Job: job}, tts.Errorf(tts.EINTERNAL, "the audio of job %s is missing", job.ID)
	} else if err != nil {
		return AudioResult{Job: job}, tts.Wrap(tts.EUNAVAILABLE, err, "audio storage is unavailable")
	}
	return AudioResult{Job: job, Object: obj}, nil
}

// checkID rejects anything that is not a job id before it reaches a store,
// answering not found as for any unknown id.
func checkID(id string) error {
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 || strings.ToLower(id) != id {
		return tts.Errorf(tts.ENOTFOUND, "no job with id %q", clipID(id))
	}
	return nil
}

func clipID(id string) string {
	if len(id) > 64 {
		id = id[:64]
	}
	return fmt.Sprintf("%s", strings.ToValidUTF8(id, "?"))
}
