package worker_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
	"github.com/kokorotts/kokoro-tts/pkg/sqlstore"
	"github.com/kokorotts/kokoro-tts/pkg/tone"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
	"github.com/kokorotts/kokoro-tts/pkg/worker"
	"github.com/kokorotts/kokoro-tts/queue"
	"github.com/kokorotts/kokoro-tts/storage"
)

func TestReconciler(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, tone.New(tone.Config{}))
	redis := testsvc.Redis(t)
	opt, _ := asynq.ParseRedisURI(redis.URL)
	q := queue.NewClient(opt)
	defer q.Close()
	rec := &worker.Reconciler{Store: r.db, Queue: q, Logger: quiet, StaleAfter: time.Second}

	lost := r.newJob(t, "My task was lost")               // queued, no task in Redis
	queued := r.newJob(t, "My task is waiting")           // queued, task pending
	archived := r.newJob(t, "My task was archived")       // running, task archived
	canceled := r.newJob(t, "Cancel me, my task is lost") // running with cancel flag, no task
	for _, j := range []*tts.Job{queued, archived} {
		if err := q.Enqueue(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	for _, j := range []*tts.Job{archived, canceled} {
		if _, err := r.db.StartAttempt(ctx, j.ID, "fake", "cpu"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.db.RequestCancel(ctx, canceled.ID); err != nil {
		t.Fatal(err)
	}
	if err := q.Inspector().ArchiveTask(archived.Queue, archived.ID); err != nil {
		t.Fatal(err)
	}

	// Nothing is stale yet: nothing is touched.
	if n, err := rec.Pass(ctx); err != nil || n != 0 {
		t.Fatalf("fresh jobs repaired: %d %v", n, err)
	}
	time.Sleep(1100 * time.Millisecond)
	n, err := rec.Pass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("repaired %d, want 3", n)
	}
	if state, _, _ := q.TaskState(ctx, lost); state != "pending" {
		t.Fatalf("lost job's task state %q, want pending", state)
	}
	if j := r.job(t, archived.ID); j.Status != tts.StatusFailed || !strings.Contains(j.Error, "gave up") {
		t.Fatalf("archived job: %s %q", j.Status, j.Error)
	}
	if j := r.job(t, canceled.ID); j.Status != tts.StatusCanceled {
		t.Fatalf("canceled job: %s", j.Status)
	}
	if j := r.job(t, queued.ID); j.Status != tts.StatusQueued {
		t.Fatalf("waiting job: %s", j.Status)
	}
	// A second pass is idempotent: the re-enqueued task is found, not duplicated.
	if n, err := rec.Pass(ctx); err != nil || n != 0 {
		t.Fatalf("second pass repaired %d (%v)", n, err)
	}
	info, err := q.Inspector().GetQueueInfo(tts.QueueInteractive)
	if err != nil || info.Pending != 2 {
		t.Fatalf("pending tasks %+v %v, want 2", info, err)
	}

	// Redis down: the pass reports it and changes nothing.
	redis.Stop()
	if _, err := rec.Pass(ctx); tts.ErrorCode(err) != tts.EUNAVAILABLE {
		t.Fatalf("pass with Redis down: %v", err)
	}
}

// TestReconcilerRemovesAudioOfJobsItEnds: a running job whose audio was
// stored but never recorded (the database was locked until the task's
// retries ran out and asynq archived it) is failed, and its audio removed;
// likewise for a job it cancels. Another job's audio stays.
func TestReconcilerRemovesAudioOfJobsItEnds(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, tone.New(tone.Config{}))
	redis := testsvc.Redis(t)
	opt, _ := asynq.ParseRedisURI(redis.URL)
	q := queue.NewClient(opt)
	defer q.Close()
	rec := &worker.Reconciler{Store: r.db, Queue: q, Objects: r.objects, Logger: quiet, StaleAfter: time.Second}

	archived := r.newJob(t, "My audio was stored, then my task was archived")
	canceled := r.newJob(t, "My audio was stored, then I was canceled")
	other := r.newJob(t, "I succeeded")
	if err := r.process(t, ctx, other, 0); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(ctx, archived); err != nil {
		t.Fatal(err)
	}
	for _, j := range []*tts.Job{archived, canceled} {
		if _, err := r.db.StartAttempt(ctx, j.ID, "fake", "cpu"); err != nil {
			t.Fatal(err)
		}
		if _, err := r.objects.Put(ctx, worker.AudioKey(j), strings.NewReader("RIFF"), 4, "audio/wav"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.db.RequestCancel(ctx, canceled.ID); err != nil {
		t.Fatal(err)
	}
	if err := q.Inspector().ArchiveTask(archived.Queue, archived.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if n, err := rec.Pass(ctx); err != nil || n != 2 {
		t.Fatalf("repaired %d (%v), want 2", n, err)
	}
	for _, j := range []*tts.Job{archived, canceled} {
		if got := r.job(t, j.ID); !got.Status.Terminal() || got.Status == tts.StatusSucceeded {
			t.Fatalf("job %s: %s", j.ID, got.Status)
		}
		if _, err := r.objects.Stat(ctx, worker.AudioKey(j)); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("audio of the %s job is still stored: %v", r.job(t, j.ID).Status, err)
		}
	}
	if _, err := r.objects.Stat(ctx, worker.AudioKey(other)); err != nil {
		t.Errorf("the succeeded job's audio: %v", err)
	}
}

// switchable is the job store whose reads fail as "database unavailable"
// while down is set.
type switchable struct {
	*sqlstore.DB
	down *atomic.Bool
}

func (s switchable) FindJob(ctx context.Context, id string) (*tts.Job, error) {
	if s.down.Load() {
		return nil, tts.Errorf(tts.EUNAVAILABLE, "database unavailable: find job: database is locked")
	}
	return s.DB.FindJob(ctx, id)
}

// TestReconcilerRequeuesJobWhoseLastDeliveryCouldNotStart: asynq archives a
// task whose retries are spent even when its last error does not count as
// a failure (IsFailure). When that last delivery could not start its attempt
// because the database was unavailable, the job still has attempts left: the
// reconciler queues it again instead of failing it, and it succeeds. A job
// whose attempts are all spent is failed as before.
func TestReconcilerRequeuesJobWhoseLastDeliveryCouldNotStart(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, tone.New(tone.Config{}))
	redis := testsvc.Redis(t)
	opt, _ := asynq.ParseRedisURI(redis.URL)
	q := queue.NewClient(opt)
	defer q.Close()
	rec := &worker.Reconciler{Store: r.db, Queue: q, Objects: r.objects, Logger: quiet, StaleAfter: time.Second}

	down := &atomic.Bool{}
	down.Store(true)
	r.h.Store = switchable{r.db, down}
	srv := worker.NewServer(worker.Config{Redis: opt, TaskCheckInterval: 20 * time.Millisecond, ShutdownTimeout: 5 * time.Second,
		ReconcileInterval: time.Hour, Logger: quiet}, r.h, q, nil)

	waiting := r.newJob(t, "Three attempts failed, the fourth found the database locked.")
	spent := r.newJob(t, "Every attempt was spent before the database was locked.")
	for range 3 {
		if _, err := r.db.StartAttempt(ctx, waiting.ID, "fake", "cpu"); err != nil {
			t.Fatal(err)
		}
	}
	for range spent.MaxAttempts {
		if _, err := r.db.StartAttempt(ctx, spent.ID, "fake", "cpu"); err != nil {
			t.Fatal(err)
		}
	}
	// Both tasks arrive with their asynq retries already spent (MaxRetry 0
	// stands for three failed deliveries).
	for _, j := range []*tts.Job{waiting, spent} {
		task, err := queue.NewSynthesizeTask(j)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := asynq.NewClient(opt).EnqueueContext(ctx, task, asynq.MaxRetry(0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	for _, j := range []*tts.Job{waiting, spent} {
		waitFor(t, 10*time.Second, "the task archived", func() bool {
			state, lastErr, err := q.TaskState(ctx, j)
			if err != nil {
				t.Fatal(err)
			}
			if state == "archived" && !strings.HasPrefix(lastErr, "attempt not started: ") {
				t.Fatalf("archived with last error %q, want the not-started one", lastErr)
			}
			return state == "archived"
		})
	}

	down.Store(false) // the database is back
	time.Sleep(1100 * time.Millisecond)
	if n, err := rec.Pass(ctx); err != nil || n != 2 {
		t.Fatalf("repaired %d (%v), want 2", n, err)
	}
	waitFor(t, 20*time.Second, "the re-enqueued job to succeed", func() bool {
		return r.job(t, waiting.ID).Status == tts.StatusSucceeded
	})
	if got := r.job(t, waiting.ID); got.Attempts != 4 || got.Audio == nil {
		t.Fatalf("waiting job: %d attempts, audio %v; want its 4th attempt to have made the audio", got.Attempts, got.Audio)
	}
	got := r.job(t, spent.ID)
	if got.Status != tts.StatusFailed || !strings.Contains(got.Error, "gave up after 4 attempts") {
		t.Fatalf("spent job: %s %q, want failed after 4 attempts", got.Status, got.Error)
	}
	if state, _, _ := q.TaskState(ctx, spent); state != "archived" {
		t.Fatalf("spent job's task is %q, want it left archived", state)
	}
}

// recordFails is the job store whose CompleteJob fails as "database
// unavailable" while down is set.
type recordFails struct {
	*sqlstore.DB
	down *atomic.Bool
}

func (s recordFails) CompleteJob(ctx context.Context, id string, attempt int, a tts.Audio) error {
	if s.down.Load() {
		return tts.Errorf(tts.EUNAVAILABLE, "database unavailable: complete job: database is locked")
	}
	return s.DB.CompleteJob(ctx, id, attempt, a)
}

// TestReconcilerRequeuesJobWhoseSuccessWasNotRecorded: the job's last
// delivery stores its audio, but the database refuses its success for the
// whole completion window; asynq archives the task (retries spent). Once the
// database is back the reconciler gives that attempt back and queues the job
// again, instead of failing a job whose only fault was the database's; the
// new attempt succeeds.
func TestReconcilerRequeuesJobWhoseSuccessWasNotRecorded(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, tone.New(tone.Config{}))
	redis := testsvc.Redis(t)
	opt, _ := asynq.ParseRedisURI(redis.URL)
	q := queue.NewClient(opt)
	defer q.Close()
	rec := &worker.Reconciler{Store: r.db, Queue: q, Objects: r.objects, Logger: quiet, StaleAfter: time.Second}

	down := &atomic.Bool{}
	down.Store(true)
	r.h.Store = recordFails{r.db, down}
	r.h.CompleteWindow = 100 * time.Millisecond
	srv := worker.NewServer(worker.Config{Redis: opt, TaskCheckInterval: 20 * time.Millisecond, ShutdownTimeout: 5 * time.Second,
		ReconcileInterval: time.Hour, Logger: quiet}, r.h, q, nil)
	job := r.newJob(t, "My success could not be written down the last time.")
	task, err := queue.NewSynthesizeTask(job)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := asynq.NewClient(opt).EnqueueContext(ctx, task, asynq.MaxRetry(0)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	waitFor(t, 10*time.Second, "the task archived", func() bool {
		state, lastErr, err := q.TaskState(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		if state == "archived" && !strings.HasPrefix(lastErr, "audio stored, success not recorded: ") {
			t.Fatalf("archived with last error %q, want the unrecorded one", lastErr)
		}
		return state == "archived"
	})
	if j := r.job(t, job.ID); j.Status != tts.StatusRunning || j.Attempts != 1 {
		t.Fatalf("before the reconciler: %s, %d attempts; want running attempt 1", j.Status, j.Attempts)
	}

	down.Store(false) // the database is back
	time.Sleep(1100 * time.Millisecond)
	if n, err := rec.Pass(ctx); err != nil || n != 1 {
		t.Fatalf("repaired %d (%v), want 1", n, err)
	}
	waitFor(t, 20*time.Second, "the re-enqueued job to succeed", func() bool {
		return r.job(t, job.ID).Status == tts.StatusSucceeded
	})
	if got := r.job(t, job.ID); got.Attempts != 1 || got.Audio == nil {
		t.Fatalf("job: %d attempts, audio %v; want the given-back attempt to count once", got.Attempts, got.Audio)
	}
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
