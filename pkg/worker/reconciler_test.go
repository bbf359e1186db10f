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
	ar := newArchiving(t, r)
	q, rec := ar.q, ar.rec

	down := &atomic.Bool{}
	down.Store(true)
	r.h.Store = switchable{r.db, down}

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
	// Both tasks arrive with their asynq retries already spent.
	ar.enqueueSpent(t, waiting)
	ar.enqueueSpent(t, spent)
	ar.start(t, r)
	ar.waitArchived(t, waiting, "attempt not started: ")
	ar.waitArchived(t, spent, "attempt not started: ")

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
	ar := newArchiving(t, r)
	rec := ar.rec

	down := &atomic.Bool{}
	down.Store(true)
	r.h.Store = recordFails{r.db, down}
	r.h.CompleteWindow = 100 * time.Millisecond
	job := r.newJob(t, "My success could not be written down the last time.")
	ar.enqueueSpent(t, job)
	ar.start(t, r)
	ar.waitArchived(t, job, "audio stored, success not recorded: ")
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

// archiving is a real Redis, a queue client, a reconciler that takes every
// job untouched for a second, and (after start) a worker server on r's
// handler: the set-up of the tests whose tasks asynq archives.
type archiving struct {
	opt asynq.RedisConnOpt
	q   *queue.Client
	rec *worker.Reconciler
}

func newArchiving(t *testing.T, r *rig) *archiving {
	t.Helper()
	opt, _ := asynq.ParseRedisURI(testsvc.Redis(t).URL)
	q := queue.NewClient(opt)
	t.Cleanup(func() { q.Close() })
	return &archiving{opt: opt, q: q, rec: &worker.Reconciler{Store: r.db, Queue: q, Objects: r.objects, Logger: quiet, StaleAfter: time.Second}}
}

// enqueueSpent queues the job's task with its asynq retries already spent
// (MaxRetry 0 stands for failed deliveries before it).
func (a *archiving) enqueueSpent(t *testing.T, j *tts.Job) {
	t.Helper()
	task, err := queue.NewSynthesizeTask(j)
	if err != nil {
		t.Fatal(err)
	}
	c := asynq.NewClient(a.opt)
	defer c.Close()
	if _, err := c.EnqueueContext(context.Background(), task, asynq.MaxRetry(0)); err != nil {
		t.Fatal(err)
	}
}

// start runs a worker server on r's handler until the test ends.
func (a *archiving) start(t *testing.T, r *rig) {
	t.Helper()
	srv := worker.NewServer(worker.Config{Redis: a.opt, TaskCheckInterval: 20 * time.Millisecond, ShutdownTimeout: 5 * time.Second,
		ReconcileInterval: time.Hour, Logger: quiet}, r.h, a.q, nil)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
}

// waitArchived waits until asynq archives the job's task, whose last error
// must start with prefix.
func (a *archiving) waitArchived(t *testing.T, j *tts.Job, prefix string) {
	t.Helper()
	waitFor(t, 10*time.Second, "the task archived", func() bool {
		state, lastErr, err := a.q.TaskState(context.Background(), j)
		if err != nil {
			t.Fatal(err)
		}
		if state == "archived" && !strings.HasPrefix(lastErr, prefix) {
			t.Fatalf("archived with last error %q, want one starting %q", lastErr, prefix)
		}
		return state == "archived"
	})
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
