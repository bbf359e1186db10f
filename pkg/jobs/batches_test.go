package jobs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
	"github.com/kokorotts/kokoro-tts/pkg/jobs"
	"github.com/kokorotts/kokoro-tts/pkg/sqlstore"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
	"github.com/kokorotts/kokoro-tts/storage/disk"
)

// recordingQueue is a queue fake at the domain seam (tts.Enqueuer): it
// records enqueued jobs and fails from the failFrom-th call on (0: never).
type recordingQueue struct {
	mu       sync.Mutex
	jobs     []*tts.Job
	failFrom int
	canceled []string
}

func (q *recordingQueue) Enqueue(_ context.Context, j *tts.Job) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failFrom > 0 && len(q.jobs)+1 >= q.failFrom {
		return tts.Errorf(tts.EUNAVAILABLE, "the job queue is unavailable")
	}
	q.jobs = append(q.jobs, j)
	return nil
}

// EnqueueWebhook satisfies the webhook side of jobs.Queue (being added by
// the lead); batches never call it.
func (q *recordingQueue) EnqueueWebhook(context.Context, string) error { return nil }

// EnqueueBatchWebhook satisfies the batch side of jobs.Queue.
func (q *recordingQueue) EnqueueBatchWebhook(context.Context, string) error { return nil }

func (q *recordingQueue) CancelProcessing(context.Context, *tts.Job) error { return nil }

func (q *recordingQueue) DeleteTask(_ context.Context, j *tts.Job) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.canceled = append(q.canceled, j.ID)
	return nil
}

func newBatchService(t *testing.T, q *recordingQueue) (*jobs.Service, *sqlstore.DB) {
	t.Helper()
	db := testsvc.Store(t)
	objects, err := disk.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return jobs.New(jobs.Config{Store: db, Queue: q, Objects: objects, Logger: log}), db
}

func batchOf(n int) tts.BatchRequest {
	r := tts.BatchRequest{Format: "wav"}
	for i := range n {
		r.Items = append(r.Items, tts.BatchItemRequest{Key: fmt.Sprintf("k%05d", i), Text: fmt.Sprintf("Line %d.", i)})
	}
	return r
}

// TestSubmitBatchOfTenThousand: the largest batch is validated, stored in
// one transaction and enqueued in order on the batch queue; one more item
// is refused and nothing is stored.
func TestSubmitBatchOfTenThousand(t *testing.T) {
	q := &recordingQueue{}
	svc, db := newBatchService(t, q)
	ctx := context.Background()
	if _, _, err := svc.SubmitBatch(ctx, batchOf(tts.MaxBatchItems+1), ""); tts.ErrorCode(err) != tts.EINVALID {
		t.Fatalf("10,001 items: %v", err)
	}
	b, created, err := svc.SubmitBatch(ctx, batchOf(tts.MaxBatchItems), "big")
	if err != nil || !created || b.Items != tts.MaxBatchItems || b.Counts[tts.StatusQueued] != tts.MaxBatchItems {
		t.Fatalf("submit: %+v %v %v", b, created, err)
	}
	if len(q.jobs) != tts.MaxBatchItems {
		t.Fatalf("%d enqueued", len(q.jobs))
	}
	items, next, err := svc.BatchItems(ctx, b.ID, "", 0)
	if err != nil || len(items) != jobs.DefaultBatchItemsLimit || next != items[len(items)-1].Job.ID {
		t.Fatalf("first page: %d items, next %q, %v", len(items), next, err)
	}
	for i, it := range items {
		j := q.jobs[i]
		if it.Job.ID != j.ID || j.Queue != tts.QueueBatch || j.BatchID != b.ID || it.Key != fmt.Sprintf("k%05d", i) {
			t.Fatalf("item %d: %+v enqueued as %+v", i, it, j)
		}
	}
	// A replay returns the batch and enqueues nothing more.
	again, created, err := svc.SubmitBatch(ctx, batchOf(tts.MaxBatchItems), "big")
	if err != nil || created || again.ID != b.ID || len(q.jobs) != tts.MaxBatchItems {
		t.Fatalf("replay: %v %v, %d enqueued", created, err, len(q.jobs))
	}
	counts, _ := db.CountByStatus(ctx)
	if counts[tts.StatusQueued] != tts.MaxBatchItems {
		t.Fatalf("%d jobs", counts[tts.StatusQueued])
	}
}

// TestSubmitBatchQueueFailsMidway: the batch is accepted and stays whole;
// the jobs not enqueued are queued rows for the reconciler.
func TestSubmitBatchQueueFailsMidway(t *testing.T) {
	q := &recordingQueue{failFrom: 4}
	svc, _ := newBatchService(t, q)
	b, created, err := svc.SubmitBatch(context.Background(), batchOf(10), "")
	if err != nil || !created || b.Counts[tts.StatusQueued] != 10 {
		t.Fatalf("submit: %+v %v", b, err)
	}
	if len(q.jobs) != 3 {
		t.Fatalf("%d enqueued, want 3 before the failure", len(q.jobs))
	}
}

func TestCancelBatchAndArchiveWithoutAudio(t *testing.T) {
	q := &recordingQueue{}
	svc, db := newBatchService(t, q)
	ctx := context.Background()
	b, _, err := svc.SubmitBatch(ctx, batchOf(5), "")
	if err != nil {
		t.Fatal(err)
	}
	items, _, _ := svc.BatchItems(ctx, b.ID, "", 0)
	if _, err := db.StartAttempt(ctx, items[0].Job.ID, "tone", "cpu"); err != nil {
		t.Fatal(err)
	}
	if err := db.FailJob(ctx, items[0].Job.ID, 1, "synthesis failed: no"); err != nil {
		t.Fatal(err)
	}
	c, err := svc.CancelBatch(ctx, b.ID)
	if err != nil || c.State() != tts.BatchCanceled || c.Counts[tts.StatusCanceled] != 4 || c.Counts[tts.StatusFailed] != 1 || len(q.canceled) != 4 {
		t.Fatalf("cancel: %+v %v (%d tasks deleted)", c, err, len(q.canceled))
	}
	var buf bytes.Buffer
	if err := svc.WriteBatchArchive(ctx, b.ID, &buf); err != nil {
		t.Fatal(err)
	}
	if buf.Len() == 0 {
		t.Fatal("empty archive")
	}
	if _, err := svc.GetBatch(ctx, "0192d6a4-0000-7000-8000-000000000000"); tts.ErrorCode(err) != tts.ENOTFOUND {
		t.Fatalf("unknown batch: %v", err)
	}
	var be *tts.BatchError
	bad := batchOf(2)
	bad.Items[1].Key = bad.Items[0].Key
	if _, _, err := svc.SubmitBatch(ctx, bad, ""); !errors.As(err, &be) || be.Items[0].Index != 1 {
		t.Fatalf("duplicate key: %v", err)
	}
}
