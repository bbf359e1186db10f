package worker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
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
