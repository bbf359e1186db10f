package worker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
	"github.com/kokorotts/kokoro-tts/pkg/audio"
	"github.com/kokorotts/kokoro-tts/pkg/events"
	"github.com/kokorotts/kokoro-tts/pkg/sqlstore"
	"github.com/kokorotts/kokoro-tts/pkg/tone"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
	"github.com/kokorotts/kokoro-tts/pkg/worker"
	"github.com/kokorotts/kokoro-tts/queue"
	"github.com/kokorotts/kokoro-tts/storage"
	"github.com/kokorotts/kokoro-tts/storage/disk"
)

// engine is a Synthesizer fake at the domain seam: each call runs fn.
type engine struct {
	fn    func(ctx context.Context, req tts.SynthesisRequest) (tts.PCM, error)
	calls atomic.Int32
}

func (e *engine) Synthesize(ctx context.Context, req tts.SynthesisRequest) (tts.PCM, error) {
	e.calls.Add(1)
	return e.fn(ctx, req)
}
func (e *engine) Voices() []tts.Voice  { return tts.Catalogue() }
func (e *engine) Info() tts.EngineInfo { return tts.EngineInfo{Name: "fake", Device: "cpu"} }
func (e *engine) Close() error         { return nil }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type rig struct {
	db      *sqlstore.DB
	objects storage.Store
	h       *worker.Handler
}

func newRig(t *testing.T, e tts.Synthesizer) *rig {
	t.Helper()
	testsvc.Require(t, "ffmpeg", "ffmpeg")
	db := testsvc.Store(t)
	objects, err := disk.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	enc, err := audio.NewEncoder(audio.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return &rig{db: db, objects: objects, h: &worker.Handler{Store: db, Engine: e, Encoder: enc, Objects: objects,
		Logger: quiet, CancelPoll: 20 * time.Millisecond}}
}

func (r *rig) newJob(t *testing.T, text string) *tts.Job {
	t.Helper()
	job := &tts.Job{ID: uuid.Must(uuid.NewV7()).String(), Status: tts.StatusQueued, Text: text, Voice: "af_heart",
		Speed: 1, Format: tts.FormatWAV, Queue: tts.QueueInteractive, MaxAttempts: queue.MaxRetry + 1, CreatedAt: time.Now()}
	stored, _, err := r.db.CreateJob(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	return stored
}

// process runs the handler the way asynq does for attempt retried (0-based).
func (r *rig) process(t *testing.T, ctx context.Context, job *tts.Job, retried int) error {
	t.Helper()
	return r.h.Process(ctx, job.ID, worker.Delivery{Retried: retried, MaxRetry: queue.MaxRetry})
}

func (r *rig) job(t *testing.T, id string) *tts.Job {
	t.Helper()
	j, err := r.db.FindJob(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestSucceedsAndStoresAudioFirst(t *testing.T) {
	r := newRig(t, tone.New(tone.Config{}))
	job := r.newJob(t, "Hello world")
	if err := r.process(t, context.Background(), job, 0); err != nil {
		t.Fatal(err)
	}
	j := r.job(t, job.ID)
	if j.Status != tts.StatusSucceeded || j.Audio == nil || j.Audio.Key != worker.AudioKey(job) || j.Attempts != 1 {
		t.Fatalf("job = %+v", j)
	}
	info, err := r.objects.Stat(context.Background(), j.Audio.Key)
	if err != nil || info.Size != j.Audio.Bytes || info.ContentType != "audio/wav" {
		t.Fatalf("stored object %+v %v vs job %+v", info, err, j.Audio)
	}
	// A second delivery of the same task changes nothing.
	if err := r.process(t, context.Background(), job, 0); err != nil {
		t.Fatal(err)
	}
	if again := r.job(t, job.ID); again.Attempts != 1 || again.Status != tts.StatusSucceeded {
		t.Fatalf("re-delivery changed the job: %+v", again)
	}
}

func TestPermanentFailureSkipsRetry(t *testing.T) {
	e := &engine{fn: func(context.Context, tts.SynthesisRequest) (tts.PCM, error) {
		return tts.PCM{}, tts.Errorf(tts.EINVALID, "voice jf_alpha is not supported by this engine")
	}}
	r := newRig(t, e)
	job := r.newJob(t, "こんにちは")
	err := r.process(t, context.Background(), job, 0)
	if !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("err = %v, want SkipRetry", err)
	}
	j := r.job(t, job.ID)
	if j.Status != tts.StatusFailed || j.Error != "synthesis failed: voice jf_alpha is not supported by this engine" {
		t.Fatalf("job = %s %q", j.Status, j.Error)
	}
}

func TestTransientFailureRetriesThenFailsReadably(t *testing.T) {
	e := &engine{fn: func(context.Context, tts.SynthesisRequest) (tts.PCM, error) {
		return tts.PCM{}, errors.New("onnxruntime: CUDA error 700 at /src/kernel.cu:42")
	}}
	r := newRig(t, e)
	rec := &recorder{}
	r.h.Events = rec
	job := r.newJob(t, "Hello")
	for retried := 0; retried < queue.MaxRetry; retried++ {
		err := r.process(t, context.Background(), job, retried)
		if err == nil || errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("attempt %d: err = %v, want a retryable error", retried, err)
		}
		if j := r.job(t, job.ID); j.Status != tts.StatusRunning || j.Attempts != retried+1 {
			t.Fatalf("after attempt %d: %s attempts=%d", retried, j.Status, j.Attempts)
		}
	}
	err := r.process(t, context.Background(), job, queue.MaxRetry)
	if !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("last attempt: %v", err)
	}
	j := r.job(t, job.ID)
	if j.Status != tts.StatusFailed || strings.Contains(j.Error, "kernel.cu") || !strings.HasPrefix(j.Error, "synthesis failed") {
		t.Fatalf("job = %s %q (internal detail must not leak)", j.Status, j.Error)
	}
	// The timeline: each attempt's start, each retried failure with its
	// attempt and readable reason, then the one terminal event.
	var got []string
	for _, e := range rec.events {
		got = append(got, fmt.Sprintf("%s/%d/%s", e.Type, e.Attempt, e.Error))
	}
	var want []string
	for a := 1; a <= queue.MaxRetry+1; a++ {
		want = append(want, fmt.Sprintf("running/%d/", a))
		if a <= queue.MaxRetry {
			want = append(want, fmt.Sprintf("retrying/%d/%s", a, j.Error))
		}
	}
	want = append(want, "failed/0/"+j.Error)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestLastAttemptOfTheJobBudgetFailsReadably: a task queued again by the
// reconciler starts a fresh asynq retry count, but the job's own attempt
// budget decides its last attempt: that one fails the job with its reason
// instead of leaving a retry that would only quarantine it.
func TestLastAttemptOfTheJobBudgetFailsReadably(t *testing.T) {
	e := &engine{fn: func(context.Context, tts.SynthesisRequest) (tts.PCM, error) {
		return tts.PCM{}, errors.New("onnxruntime: CUDA error 700")
	}}
	r := newRig(t, e)
	job := r.newJob(t, "Hello")
	for range job.MaxAttempts - 1 {
		if _, err := r.db.StartAttempt(context.Background(), job.ID, "fake", "cpu"); err != nil {
			t.Fatal(err)
		}
	}
	err := r.process(t, context.Background(), job, 0) // asynq's first delivery of a re-enqueued task
	if !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("the job's last attempt: %v, want SkipRetry", err)
	}
	if j := r.job(t, job.ID); j.Status != tts.StatusFailed || j.Attempts != job.MaxAttempts || !strings.HasPrefix(j.Error, "synthesis failed") {
		t.Fatalf("job = %s after %d attempts: %q", j.Status, j.Attempts, j.Error)
	}
}

// recorder keeps the events a handler publishes.
type recorder struct {
	mu     sync.Mutex
	events []events.Event
}

func (r *recorder) Publish(_ context.Context, e events.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

func TestQuarantineAfterAttemptsDie(t *testing.T) {
	r := newRig(t, tone.New(tone.Config{}))
	job := r.newJob(t, "I crash my worker")
	// Each crashed attempt started and never finished.
	for i := 0; i < job.MaxAttempts; i++ {
		if _, err := r.db.StartAttempt(context.Background(), job.ID, "fake", "cpu"); err != nil {
			t.Fatal(err)
		}
	}
	err := r.process(t, context.Background(), job, 1)
	if !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("err = %v", err)
	}
	if j := r.job(t, job.ID); j.Status != tts.StatusFailed || !strings.Contains(j.Error, "quarantined") {
		t.Fatalf("job = %s %q", j.Status, j.Error)
	}
}

func TestCancelWhileRunning(t *testing.T) {
	started := make(chan struct{})
	e := &engine{fn: func(ctx context.Context, _ tts.SynthesisRequest) (tts.PCM, error) {
		close(started)
		<-ctx.Done()
		return tts.PCM{}, tts.Wrap(tts.ECANCELED, ctx.Err(), "canceled")
	}}
	r := newRig(t, e)
	job := r.newJob(t, "A long lesson")
	done := make(chan error, 1)
	go func() { done <- r.process(t, context.Background(), job, 0) }()
	<-started
	if _, err := r.db.RequestCancel(context.Background(), job.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("a user cancel must not be retried: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not notice the cancel flag")
	}
	j := r.job(t, job.ID)
	if j.Status != tts.StatusCanceled {
		t.Fatalf("status %s", j.Status)
	}
	if _, err := r.objects.Stat(context.Background(), worker.AudioKey(job)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("audio was stored for a canceled job: %v", err)
	}
}

func TestShutdownDuringSynthesisDoesNotUpload(t *testing.T) {
	started := make(chan struct{})
	e := &engine{fn: func(ctx context.Context, _ tts.SynthesisRequest) (tts.PCM, error) {
		close(started)
		<-ctx.Done()
		// An engine that ignores cancelation and returns audio anyway.
		return tone.New(tone.Config{}).Synthesize(context.Background(), tts.SynthesisRequest{Text: "x", Speed: 1})
	}}
	r := newRig(t, e)
	job := r.newJob(t, "Interrupted")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.process(t, ctx, job, 0) }()
	<-started
	cancel() // what asynq does at shutdown
	if err := <-done; err == nil {
		t.Fatal("an interrupted attempt must return an error so asynq keeps the task")
	}
	if _, err := r.objects.Stat(context.Background(), worker.AudioKey(job)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("uploaded after ctx was done: %v", err)
	}
	if j := r.job(t, job.ID); j.Status != tts.StatusQueued || j.Attempts != 0 {
		t.Fatalf("an interrupted attempt must be given back: %s attempts=%d", j.Status, j.Attempts)
	}
	// The next delivery finishes it.
	r.h.Engine = tone.New(tone.Config{})
	if err := r.process(t, context.Background(), job, 1); err != nil {
		t.Fatal(err)
	}
	if j := r.job(t, job.ID); j.Status != tts.StatusSucceeded || j.Attempts != 1 {
		t.Fatalf("after redelivery: %s attempts=%d", j.Status, j.Attempts)
	}
}

func TestDuplicateDeliveryCompletesOnce(t *testing.T) {
	gate := make(chan struct{})
	var entered sync.WaitGroup
	entered.Add(2)
	e := &engine{fn: func(ctx context.Context, req tts.SynthesisRequest) (tts.PCM, error) {
		entered.Done()
		<-gate
		return tone.New(tone.Config{}).Synthesize(ctx, req)
	}}
	r := newRig(t, e)
	job := r.newJob(t, "Delivered twice")
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() { errs <- r.process(t, context.Background(), job, 0) }()
	}
	entered.Wait()
	close(gate)
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
	}
	j := r.job(t, job.ID)
	if j.Status != tts.StatusSucceeded || j.Attempts != 2 {
		t.Fatalf("job = %s attempts %d", j.Status, j.Attempts)
	}
	info, err := r.objects.Stat(context.Background(), j.Audio.Key)
	if err != nil || info.Size != j.Audio.Bytes {
		t.Fatalf("stored %+v %v, job says %d bytes", info, err, j.Audio.Bytes)
	}
}

func TestMalformedTaskIsDropped(t *testing.T) {
	r := newRig(t, tone.New(tone.Config{}))
	for _, payload := range []string{`{`, `{"v":2,"job_id":"x"}`, `{"v":1}`} {
		err := r.h.ProcessTask(context.Background(), asynq.NewTask(queue.TypeSynthesize, []byte(payload)))
		if !errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("payload %s: %v", payload, err)
		}
	}
	err := r.h.ProcessTask(context.Background(), asynq.NewTask(queue.TypeSynthesize, []byte(`{"v":1,"job_id":"`+uuid.NewString()+`"}`)))
	if !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("task of a missing job: %v", err)
	}
}

// unrecorded is a job store whose CompleteJob fails as when the database is
// locked beyond its busy timeout: the audio is stored, its success is not.
type unrecorded struct{ *sqlstore.DB }

func (unrecorded) CompleteJob(context.Context, string, int, tts.Audio) error {
	return tts.Errorf(tts.EUNAVAILABLE, "database unavailable: complete job: database is locked")
}

// TestUnrecordedSuccessLeavesNoAudio: every attempt stores the audio and
// fails to record its success. Such a delivery does not spend one of
// asynq's retries (the database's fault, not the job's), and does not fail
// the job even on the last retry; the job's own budget ends it: the
// delivery after its last attempt quarantines it, and the audio no
// succeeded job points at is removed (a failed job has no object).
func TestUnrecordedSuccessLeavesNoAudio(t *testing.T) {
	r := newRig(t, tone.New(tone.Config{}))
	r.h.Store = unrecorded{r.db}
	r.h.CompleteWindow = 50 * time.Millisecond
	job := r.newJob(t, "My success is never written down")
	for retried := 0; retried <= queue.MaxRetry; retried++ {
		err := r.process(t, context.Background(), job, retried)
		if err == nil || errors.Is(err, asynq.SkipRetry) || worker.IsFailure(err) || !strings.HasPrefix(err.Error(), "audio stored, success not recorded: ") {
			t.Fatalf("attempt %d: err = %v (IsFailure %v), want a retry that does not count", retried, err, err != nil && worker.IsFailure(err))
		}
		if j := r.job(t, job.ID); j.Status != tts.StatusRunning || j.Attempts != retried+1 {
			t.Fatalf("after attempt %d: %s, %d attempts", retried, j.Status, j.Attempts)
		}
		if _, err := r.objects.Stat(context.Background(), worker.AudioKey(job)); err != nil {
			t.Fatalf("attempt %d stored no audio (%v): the test no longer covers its case", retried, err)
		}
	}
	if err := r.process(t, context.Background(), job, queue.MaxRetry); !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("the delivery after the last attempt: %v", err)
	}
	if j := r.job(t, job.ID); j.Status != tts.StatusFailed || j.Audio != nil || !strings.Contains(j.Error, "quarantined") {
		t.Fatalf("job = %s %q audio %+v", j.Status, j.Error, j.Audio)
	}
	if _, err := r.objects.Stat(context.Background(), worker.AudioKey(job)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the failed job's audio is still stored: %v", err)
	}
}

// flaky fails CompleteJob with EUNAVAILABLE (a locked database) a number of
// times, then records it.
type flaky struct {
	*sqlstore.DB
	mu    sync.Mutex
	fails int
}

func (f *flaky) CompleteJob(ctx context.Context, id string, attempt int, a tts.Audio) error {
	f.mu.Lock()
	fail := f.fails > 0
	f.fails--
	f.mu.Unlock()
	if fail {
		return tts.Errorf(tts.EUNAVAILABLE, "database unavailable: complete job: database is locked")
	}
	return f.DB.CompleteJob(ctx, id, attempt, a)
}

// TestSuccessRecordedAfterTheDatabaseComesBack: a success that cannot be
// recorded at once is retried within the attempt, so the audio already made
// is not thrown away with a new attempt.
func TestSuccessRecordedAfterTheDatabaseComesBack(t *testing.T) {
	r := newRig(t, tone.New(tone.Config{}))
	r.h.Store = &flaky{DB: r.db, fails: 3}
	job := r.newJob(t, "Written down on the fourth try")
	if err := r.process(t, context.Background(), job, 0); err != nil {
		t.Fatalf("attempt: %v", err)
	}
	j := r.job(t, job.ID)
	if j.Status != tts.StatusSucceeded || j.Attempts != 1 || j.Audio == nil {
		t.Fatalf("job = %s after %d attempts, audio %+v; want succeeded on the first", j.Status, j.Attempts, j.Audio)
	}
}

// TestEnginePanicFailsTheJobNotTheWorker: an engine that panics on a text
// costs attempts, not the process: the job fails with a readable reason
// after its retries, and the next job runs.
func TestEnginePanicFailsTheJobNotTheWorker(t *testing.T) {
	e := &engine{fn: func(_ context.Context, req tts.SynthesisRequest) (tts.PCM, error) {
		if strings.Contains(req.Text, "poison") {
			var m map[string]int
			m["boom"]++ // a nil-map write: a runtime panic, as a real bug would cause
		}
		return tone.New(tone.Config{}).Synthesize(context.Background(), req)
	}}
	r := newRig(t, e)
	job := r.newJob(t, "A poison sentence.")
	for retried := 0; retried < queue.MaxRetry; retried++ {
		if err := r.process(t, context.Background(), job, retried); err == nil || errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("attempt %d: err = %v, want a retryable error", retried, err)
		}
	}
	if err := r.process(t, context.Background(), job, queue.MaxRetry); !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("last attempt: %v", err)
	}
	if j := r.job(t, job.ID); j.Status != tts.StatusFailed || j.Error != "synthesis failed after all retries (internal error; see the worker log)" {
		t.Fatalf("poison job = %s %q", j.Status, j.Error)
	}
	next := r.newJob(t, "A healthy sentence.")
	if err := r.process(t, context.Background(), next, 0); err != nil {
		t.Fatalf("the next job: %v", err)
	}
	if j := r.job(t, next.ID); j.Status != tts.StatusSucceeded {
		t.Fatalf("next job = %s %q", j.Status, j.Error)
	}
}

// unreadable makes the database unavailable for reads and attempt starts.
type unreadable struct{ *sqlstore.DB }

func (unreadable) StartAttempt(context.Context, string, string, string) (int, error) {
	return 0, tts.Errorf(tts.EUNAVAILABLE, "database unavailable: start attempt: database is locked")
}

// TestDatabaseOutageDoesNotSpendRetries: a delivery that cannot start its
// attempt because the database is unavailable is retried without counting
// against the job (asynq's IsFailure), while other errors count.
func TestDatabaseOutageDoesNotSpendRetries(t *testing.T) {
	r := newRig(t, tone.New(tone.Config{}))
	job := r.newJob(t, "Waiting for the database.")
	r.h.Store = unreadable{r.db}
	err := r.process(t, context.Background(), job, 0)
	if err == nil || worker.IsFailure(err) || errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("delivery with the database unavailable: %v (IsFailure %v), want a retry that does not count", err, worker.IsFailure(err))
	}
	if j := r.job(t, job.ID); j.Attempts != 0 || j.Status != tts.StatusQueued {
		t.Fatalf("job = %s, %d attempts", j.Status, j.Attempts)
	}
	if !worker.IsFailure(errors.New("synthesis failed")) || !worker.IsFailure(tts.Errorf(tts.EUNAVAILABLE, "storage unavailable")) {
		t.Fatal("other errors must count as failures")
	}
	r.h.Store = r.db
	if err := r.process(t, context.Background(), job, 0); err != nil {
		t.Fatalf("once the database is back: %v", err)
	}
	if j := r.job(t, job.ID); j.Status != tts.StatusSucceeded || j.Attempts != 1 {
		t.Fatalf("job = %s, %d attempts", j.Status, j.Attempts)
	}
}
