package jobs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
	"github.com/kokorotts/kokoro-tts/pkg/jobs"
	"github.com/kokorotts/kokoro-tts/pkg/sqlstore"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// newWaitService returns a Service on a real SQLite store; Wait needs
// nothing else.
func newWaitService(t *testing.T) (*jobs.Service, *sqlstore.DB) {
	t.Helper()
	db := testsvc.Store(t)
	return jobs.New(jobs.Config{Store: db}), db
}

func createJob(t *testing.T, db *sqlstore.DB) string {
	t.Helper()
	now := time.Now().UTC()
	job := &tts.Job{ID: uuid.Must(uuid.NewV7()).String(), Status: tts.StatusQueued, Text: "Hello", Voice: "af_heart",
		Speed: 1, Format: tts.FormatWAV, Queue: tts.QueueInteractive, MaxAttempts: 1, CreatedAt: now, UpdatedAt: now}
	if _, _, err := db.CreateJob(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	return job.ID
}

type waitResult struct {
	job *tts.Job
	err error
}

func waitAsync(ctx context.Context, svc *jobs.Service, id string) <-chan waitResult {
	ch := make(chan waitResult, 1)
	go func() {
		j, err := svc.Wait(ctx, id, 5*time.Millisecond)
		ch <- waitResult{j, err}
	}()
	return ch
}

// TestWaitReturnsTerminalJob: Wait follows a job through running to each
// terminal state and returns it as stored.
func TestWaitReturnsTerminalJob(t *testing.T) {
	svc, db := newWaitService(t)
	ctx := context.Background()
	finish := map[tts.JobStatus]func(id string, attempt int) error{
		tts.StatusSucceeded: func(id string, attempt int) error {
			return db.CompleteJob(ctx, id, attempt, tts.Audio{Key: "jobs/" + id + "/audio.wav", ContentType: "audio/wav", Bytes: 44, DurationSeconds: 0})
		},
		tts.StatusFailed: func(id string, attempt int) error { return db.FailJob(ctx, id, attempt, "synthesis failed: no words") },
		tts.StatusCanceled: func(id string, _ int) error {
			if _, err := db.RequestCancel(ctx, id); err != nil {
				return err
			}
			return db.CancelJob(ctx, id)
		},
	}
	for want, end := range finish {
		t.Run(string(want), func(t *testing.T) {
			id := createJob(t, db)
			ch := waitAsync(ctx, svc, id)
			attempt, err := db.StartAttempt(ctx, id, "tone", "cpu")
			if err != nil {
				t.Fatal(err)
			}
			if err := end(id, attempt); err != nil {
				t.Fatal(err)
			}
			r := <-ch
			if r.err != nil || r.job == nil || r.job.ID != id || r.job.Status != want {
				t.Fatalf("Wait = %+v, %v; want status %s", r.job, r.err, want)
			}
			if want == tts.StatusFailed && r.job.Error != "synthesis failed: no words" {
				t.Fatalf("error %q", r.job.Error)
			}
		})
	}
}

// TestWaitContext: when ctx ends first, Wait returns ctx's own error (so a
// caller can tell a client that left from a time limit) and the job as last
// read, and leaves the job alone.
func TestWaitContext(t *testing.T) {
	svc, db := newWaitService(t)
	id := createJob(t, db)

	ctx, cancel := context.WithCancel(context.Background())
	ch := waitAsync(ctx, svc, id)
	cancel()
	r := <-ch
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", r.err)
	}
	if r.job != nil && r.job.Status != tts.StatusQueued {
		t.Fatalf("last read job %+v", r.job)
	}

	dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer dcancel()
	j, err := svc.Wait(dctx, id, 5*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) || j == nil || j.Status != tts.StatusQueued {
		t.Fatalf("Wait = %+v, %v; want the queued job and DeadlineExceeded", j, err)
	}
	if got, _ := db.FindJob(context.Background(), id); got.Status != tts.StatusQueued || got.CancelRequested {
		t.Fatalf("Wait changed the job: %+v", got)
	}
}

// TestWaitUnknownJob: ids that are not jobs are not found, at once.
func TestWaitUnknownJob(t *testing.T) {
	svc, _ := newWaitService(t)
	for _, id := range []string{"0192d6a4-0000-7000-8000-000000000000", "not-a-job", ""} {
		if _, err := svc.Wait(context.Background(), id, 0); tts.ErrorCode(err) != tts.ENOTFOUND {
			t.Fatalf("Wait(%q) = %v, want not found", id, err)
		}
	}
}
