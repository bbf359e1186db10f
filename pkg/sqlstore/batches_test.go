package sqlstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/kokorotts/kokoro-tts/pkg/sqlstore"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

func newBatch(key string, n int) (*tts.Batch, []tts.BatchItem) {
	b := &tts.Batch{ID: uuid.Must(uuid.NewV7()).String(), Voice: "af_heart", Speed: 1, Format: tts.FormatWAV,
		CallbackURL: "https://example.com/hook", IdempotencyKey: key, RequestHash: "h"}
	items := make([]tts.BatchItem, n)
	for i := range items {
		j := newJob(fmt.Sprintf("line %d", i))
		j.ID = uuid.Must(uuid.NewV7()).String()
		j.Queue = tts.QueueBatch
		items[i] = tts.BatchItem{Key: fmt.Sprintf("k-%04d", i), Job: j}
	}
	return b, items
}

func TestCreateBatchStoresItemsInOrder(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	b, items := newBatch("", 2500)
	got, created, err := s.CreateBatch(ctx, b, items)
	if err != nil || !created {
		t.Fatalf("CreateBatch: %v %v", created, err)
	}
	if got.ID != b.ID || got.Items != 2500 || got.Status != tts.BatchRunning || got.Counts[tts.StatusQueued] != 2500 ||
		got.CallbackURL != b.CallbackURL || got.Format != tts.FormatWAV {
		t.Fatalf("stored %+v", got)
	}
	found, err := s.FindBatch(ctx, b.ID)
	if err != nil || found.Counts[tts.StatusQueued] != 2500 || found.Counts[tts.StatusSucceeded] != 0 || found.State() != tts.BatchRunning {
		t.Fatalf("FindBatch %+v %v", found, err)
	}
	// Pages of 1000 in submission order, with keys and batch ids.
	var all []tts.BatchItem
	after := ""
	for {
		page, err := s.BatchItems(ctx, b.ID, after, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > sqlstore.MaxBatchItemsPage {
			t.Fatalf("page of %d", len(page))
		}
		all = append(all, page...)
		if len(page) < sqlstore.MaxBatchItemsPage {
			break
		}
		after = page[len(page)-1].Job.ID
	}
	if probe, err := s.BatchItems(ctx, b.ID, "", sqlstore.MaxBatchItemsPage+5); err != nil || len(probe) != sqlstore.MaxBatchItemsPage+1 {
		t.Fatalf("a page one over the default: %d items, %v", len(probe), err)
	}
	if len(all) != 2500 {
		t.Fatalf("%d items", len(all))
	}
	for i, it := range all {
		if it.Key != items[i].Key || it.Job.ID != items[i].Job.ID || it.Job.BatchID != b.ID || it.Job.Status != tts.StatusQueued ||
			it.Job.Queue != tts.QueueBatch || it.Job.Text != items[i].Job.Text {
			t.Fatalf("item %d = %+v %+v", i, it.Key, it.Job)
		}
	}
	// Items are jobs: the job methods run them, and the counts follow.
	if _, err := s.StartAttempt(ctx, all[0].Job.ID, "tone", "cpu"); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteJob(ctx, all[0].Job.ID, 1, tts.Audio{Key: "k", ContentType: "audio/wav", Bytes: 1, DurationSeconds: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RequestCancel(ctx, all[1].Job.ID); err != nil {
		t.Fatal(err)
	}
	found, _ = s.FindBatch(ctx, b.ID)
	if found.Counts[tts.StatusSucceeded] != 1 || found.Counts[tts.StatusCanceled] != 1 || found.Counts[tts.StatusQueued] != 2498 || found.Finished() != 2 {
		t.Fatalf("counts %v", found.Counts)
	}
	live, err := s.LiveBatchItems(ctx, b.ID, "", 10)
	if err != nil || len(live) != 10 || live[0].Job.ID != all[2].Job.ID {
		t.Fatalf("live items: %d %v", len(live), err)
	}
}

func TestCreateBatchIdempotency(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	b, items := newBatch("key-1", 3)
	first, created, err := s.CreateBatch(ctx, b, items)
	if err != nil || !created {
		t.Fatal(err)
	}
	// A retry with new ids: the stored batch, nothing new written.
	b2, items2 := newBatch("key-1", 3)
	again, created, err := s.CreateBatch(ctx, b2, items2)
	if err != nil || created || again.ID != first.ID || again.Counts[tts.StatusQueued] != 3 {
		t.Fatalf("replay: %+v %v %v", again, created, err)
	}
	if _, err := s.FindBatch(ctx, b2.ID); tts.ErrorCode(err) != tts.ENOTFOUND {
		t.Fatalf("the replay wrote a batch: %v", err)
	}
	if _, err := s.FindJob(ctx, items2[0].Job.ID); tts.ErrorCode(err) != tts.ENOTFOUND {
		t.Fatalf("the replay wrote a job: %v", err)
	}
	b3, items3 := newBatch("key-1", 3)
	b3.RequestHash = "other"
	_, _, err = s.CreateBatch(ctx, b3, items3)
	wantCode(t, err, tts.ECONFLICT)

	// Concurrent creators with one key make one batch.
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, items := newBatch("key-2", 20)
			got, _, err := s.CreateBatch(ctx, b, items)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = got.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("ids %v", ids)
		}
	}
	counts, _ := s.CountByStatus(ctx)
	if counts[tts.StatusQueued] != 3+20 {
		t.Fatalf("%d queued jobs, want 23", counts[tts.StatusQueued])
	}
}

// TestCreateBatchIsAllOrNothing: an item the database refuses (an id that
// exists) leaves neither the batch nor any item behind.
func TestCreateBatchIsAllOrNothing(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	taken := create(t, s, newJob("already here"))
	b, items := newBatch("", 5)
	items[3].Job.ID = taken.ID
	_, _, err := s.CreateBatch(ctx, b, items)
	wantCode(t, err, tts.ECONFLICT)
	if _, err := s.FindBatch(ctx, b.ID); tts.ErrorCode(err) != tts.ENOTFOUND {
		t.Fatalf("batch kept: %v", err)
	}
	if _, err := s.FindJob(ctx, items[0].Job.ID); tts.ErrorCode(err) != tts.ENOTFOUND {
		t.Fatalf("item kept: %v", err)
	}
}

func TestCreateBatchRefuses(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	b, items := newBatch("", 3)
	items[2].Key = items[0].Key
	_, _, err := s.CreateBatch(ctx, b, items)
	wantCode(t, err, tts.EINVALID)
	b, items = newBatch("", 3)
	items[1].Key = "../x"
	_, _, err = s.CreateBatch(ctx, b, items)
	wantCode(t, err, tts.EINVALID)
	_, _, err = s.CreateBatch(ctx, b, nil)
	wantCode(t, err, tts.EINVALID)
}

func TestBatchNotFoundAndCancel(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	missing := uuid.Must(uuid.NewV7()).String()
	_, err := s.FindBatch(ctx, missing)
	wantCode(t, err, tts.ENOTFOUND)
	_, err = s.BatchItems(ctx, missing, "", 10)
	wantCode(t, err, tts.ENOTFOUND)
	_, err = s.CancelBatch(ctx, missing)
	wantCode(t, err, tts.ENOTFOUND)

	b, items := newBatch("", 2)
	if _, _, err := s.CreateBatch(ctx, b, items); err != nil {
		t.Fatal(err)
	}
	got, err := s.CancelBatch(ctx, b.ID)
	if err != nil || got.Status != tts.BatchCanceled || got.State() != tts.BatchCanceled {
		t.Fatalf("cancel: %+v %v", got, err)
	}
	if again, err := s.CancelBatch(ctx, b.ID); err != nil || !again.UpdatedAt.Equal(got.UpdatedAt) {
		t.Fatalf("second cancel: %+v %v", again, err)
	}
}
