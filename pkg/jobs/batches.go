package jobs

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
	"github.com/kokorotts/kokoro-tts/queue"
	"github.com/kokorotts/kokoro-tts/storage"
)

// Bounds of the batch item listing.
const (
	DefaultBatchItemsLimit = 1000
	MaxBatchItemsLimit     = 1000
)

// ManifestName is the name of the manifest in a batch archive.
const ManifestName = "manifest.json"

// batchStore returns the store's batch side: the JobStore of a Service that
// serves batches must implement tts.BatchStore too (sqlstore.DB does).
func (s *Service) batchStore() (tts.BatchStore, error) {
	b, ok := s.store.(tts.BatchStore)
	if !ok {
		return nil, tts.Errorf(tts.EUNSUPPORTED, "batches are not supported by this job store")
	}
	return b, nil
}

// SubmitBatch validates req, records the batch and all its items' jobs in
// one transaction, then enqueues the jobs on the batch queue. With an
// idempotency key already used for the same request it returns the earlier
// batch and created=false; for a different request, ECONFLICT. Validation
// errors are EINVALID; item errors come as a *tts.BatchError listing the
// first tts.MaxBatchItemErrors.
//
// Unlike Submit, a batch is accepted once it is committed even if
// enqueueing fails partway (Redis went down): taking back thousands of jobs
// some of which may already be running is worse than a delay. Enqueueing
// stops at the first failure, which is logged; the workers' reconciler
// re-enqueues the live jobs whose task is missing once they are stale. The
// same holds for a replay: its jobs are not enqueued again here. Enqueueing
// goes on when the client disconnects.
func (s *Service) SubmitBatch(ctx context.Context, req tts.BatchRequest, idempotencyKey string) (*tts.Batch, bool, error) {
	store, err := s.batchStore()
	if err != nil {
		return nil, false, err
	}
	v, err := req.Validate(tts.Limits{MaxTextChars: s.maxTextChars, Voices: tts.NewVoiceSet(s.voices(ctx))})
	if err != nil {
		return nil, false, err
	}
	if len(idempotencyKey) > 255 {
		return nil, false, tts.Errorf(tts.EINVALID, "Idempotency-Key: at most 255 characters")
	}
	idempotencyKey = scopedKey(ctx, idempotencyKey)
	owner := tts.Owner(ctx)
	bid, err := uuid.NewV7()
	if err != nil {
		return nil, false, tts.Wrap(tts.EINTERNAL, err, "could not create a batch id")
	}
	now := s.now().UTC()
	batch := &tts.Batch{ID: bid.String(), Status: tts.BatchRunning, Items: len(v.Items), Voice: v.Voice, Speed: v.Speed,
		Format: v.Format, CallbackURL: v.CallbackURL, IdempotencyKey: idempotencyKey, RequestHash: batchHash(v),
		CreatedAt: now, UpdatedAt: now, UserID: owner}
	items := make([]tts.BatchItem, len(v.Items))
	for i, it := range v.Items {
		// UUIDv7s from one process are monotonic: the ids keep the items'
		// order, which is how the store lists them.
		id, err := uuid.NewV7()
		if err != nil {
			return nil, false, tts.Wrap(tts.EINTERNAL, err, "could not create a job id")
		}
		items[i] = tts.BatchItem{Key: it.Key, Job: &tts.Job{
			ID: id.String(), Status: tts.StatusQueued, Text: it.Text, Voice: it.Voice, Speed: it.Speed, Format: it.Format,
			Queue: tts.QueueBatch, MaxAttempts: queue.MaxRetry + 1, RequestHash: requestHash(it.Validated),
			BatchID: batch.ID, CreatedAt: now, UpdatedAt: now, UserID: owner,
		}}
	}
	stored, created, err := store.CreateBatch(ctx, batch, items)
	if err != nil || !created {
		return stored, false, err
	}
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	for i, it := range items {
		if err := s.queue.Enqueue(ectx, it.Job); err != nil {
			s.log.Error("enqueueing a batch stopped; the reconciler will queue the rest", "batch_id", batch.ID,
				"enqueued", i, "items", len(items), "job_id", it.Job.ID, "err", err)
			break
		}
	}
	return stored, true, nil
}

// batchHash identifies a validated batch request for idempotency.
func batchHash(v tts.ValidatedBatch) string {
	h := sha256.New()
	_ = json.NewEncoder(h).Encode(v)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// GetBatch returns a batch with its counts (ENOTFOUND).
func (s *Service) GetBatch(ctx context.Context, id string) (*tts.Batch, error) {
	store, err := s.batchStore()
	if err != nil {
		return nil, err
	}
	if err := checkBatchID(id); err != nil {
		return nil, err
	}
	b, err := store.FindBatch(ctx, id)
	if err != nil {
		return nil, err
	}
	if !tts.CanSee(ctx, b.UserID) {
		return nil, tts.Errorf(tts.ENOTFOUND, "no batch with id %q", id)
	}
	return b, nil
}

// BatchItems returns a page of a batch's items in submission order and the
// cursor of the next page ("" at the end). limit 0 means
// DefaultBatchItemsLimit; EINVALID outside 0..MaxBatchItemsLimit or for a
// cursor this API did not hand out; ENOTFOUND.
func (s *Service) BatchItems(ctx context.Context, id, cursor string, limit int) ([]tts.BatchItem, string, error) {
	store, err := s.batchStore()
	if err != nil {
		return nil, "", err
	}
	if _, err := s.GetBatch(ctx, id); err != nil {
		return nil, "", err
	}
	if limit < 0 || limit > MaxBatchItemsLimit {
		return nil, "", tts.Errorf(tts.EINVALID, "limit: must be from 1 to %d", MaxBatchItemsLimit)
	}
	if limit == 0 {
		limit = DefaultBatchItemsLimit
	}
	if cursor != "" && checkID(cursor) != nil {
		return nil, "", tts.Errorf(tts.EINVALID, "cursor: not a cursor returned by this API")
	}
	items, err := store.BatchItems(ctx, id, cursor, limit+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(items) > limit {
		items = items[:limit]
		next = items[limit-1].Job.ID
	}
	return items, next, nil
}

// CancelBatch marks the batch canceled and cancels every live item as
// Cancel does (queued ones at once, running ones at their worker's next
// check); items already finished keep their outcome. Canceling a canceled
// batch cancels whatever is still live again (harmless). ECONFLICT when the
// batch had already completed, ENOTFOUND.
func (s *Service) CancelBatch(ctx context.Context, id string) (*tts.Batch, error) {
	store, err := s.batchStore()
	if err != nil {
		return nil, err
	}
	b, err := s.GetBatch(ctx, id)
	if err != nil {
		return nil, err
	}
	if b.Status != tts.BatchCanceled && b.Done() {
		return nil, tts.Errorf(tts.ECONFLICT, "batch %s has already completed", b.ID)
	}
	if _, err := store.CancelBatch(ctx, id); err != nil {
		return nil, err
	}
	after := ""
	for {
		page, err := store.LiveBatchItems(ctx, id, after, MaxBatchItemsLimit)
		if err != nil {
			return nil, err
		}
		for _, it := range page {
			// ECONFLICT: it finished meanwhile, which is fine.
			if _, err := s.Cancel(ctx, it.Job.ID); err != nil && tts.ErrorCode(err) != tts.ECONFLICT {
				return nil, err
			}
		}
		if len(page) < MaxBatchItemsLimit {
			break
		}
		after = page[len(page)-1].Job.ID
	}
	b, err = store.FindBatch(ctx, id)
	if err == nil && b.CallbackURL != "" && b.Done() && s.webhooks {
		if err := s.queue.EnqueueBatchWebhook(ctx, b.ID); err != nil {
			s.log.Error("could not queue the webhook of a canceled batch", "batch_id", b.ID, "err", err)
		}
	}
	return b, err
}

// ManifestEntry describes one item in a batch archive's manifest.json.
type ManifestEntry struct {
	Key             string   `json:"key"`
	Text            string   `json:"text"`
	Voice           string   `json:"voice"`
	Speed           float64  `json:"speed"`
	Format          string   `json:"format"`
	JobID           string   `json:"job_id"`
	Status          string   `json:"status"`
	DurationSeconds *float64 `json:"duration_seconds"` // null without audio
	File            string   `json:"file,omitempty"`   // name in the archive; empty without audio
	Error           string   `json:"error,omitempty"`
}

// ArchiveFileName returns the name of an item's audio in the archive.
func ArchiveFileName(it tts.BatchItem) string {
	return it.Key + "." + it.Job.Format.Extension()
}

// WriteBatchArchive writes a zip of the batch to w as it goes, without
// temporary files: each succeeded item's audio as <key>.<ext> (stored, not
// compressed: the audio is compressed already, or is PCM a client wants
// as is), in submission order, then manifest.json listing every item
// ([]ManifestEntry). Items that have not succeeded (still live, failed,
// canceled) are in the manifest without a file, so an archive of a running
// batch holds what is done so far; the manifest shows each item's state
// when its page was read. A succeeded item whose audio has gone from
// storage is listed with an error and no file.
//
// Check the batch first (GetBatch): once writing has begun an error can
// only be reported by cutting the archive short, which the caller logs.
func (s *Service) WriteBatchArchive(ctx context.Context, id string, w io.Writer) error {
	store, err := s.batchStore()
	if err != nil {
		return err
	}
	if _, err := s.GetBatch(ctx, id); err != nil {
		return err
	}
	zw := zip.NewWriter(w)
	var manifest []ManifestEntry
	after := ""
	for {
		page, err := store.BatchItems(ctx, id, after, MaxBatchItemsLimit)
		if err != nil {
			return err
		}
		for _, it := range page {
			e, err := s.archiveItem(ctx, zw, it)
			if err != nil {
				return err
			}
			manifest = append(manifest, e)
		}
		if len(page) < MaxBatchItemsLimit {
			break
		}
		after = page[len(page)-1].Job.ID
	}
	if manifest == nil {
		manifest = []ManifestEntry{}
	}
	mw, err := zw.CreateHeader(&zip.FileHeader{Name: ManifestName, Method: zip.Deflate, Modified: s.now().UTC()})
	if err != nil {
		return fmt.Errorf("writing the manifest: %w", err)
	}
	enc := json.NewEncoder(mw)
	enc.SetIndent("", "  ")
	if err := enc.Encode(manifest); err != nil {
		return fmt.Errorf("writing the manifest: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("finishing the archive: %w", err)
	}
	return nil
}

// archiveItem writes one item's audio, if it has any, and returns its
// manifest entry. Only a failure to write to the archive is an error.
func (s *Service) archiveItem(ctx context.Context, zw *zip.Writer, it tts.BatchItem) (ManifestEntry, error) {
	j := it.Job
	e := ManifestEntry{Key: it.Key, Text: j.Text, Voice: j.Voice, Speed: j.Speed, Format: string(j.Format),
		JobID: j.ID, Status: string(j.Status), Error: j.Error}
	if j.Status != tts.StatusSucceeded || j.Audio == nil || j.Audio.Key == "" {
		return e, nil
	}
	obj, err := s.objects.Open(ctx, j.Audio.Key)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			s.log.Error("a succeeded job's audio is missing from storage", "job_id", j.ID, "batch_id", j.BatchID, "key", j.Audio.Key)
			e.Error = "the audio is missing from storage"
			return e, nil
		}
		return e, fmt.Errorf("opening the audio of job %s: %w", j.ID, err)
	}
	defer obj.Close()
	mod := j.UpdatedAt
	if j.FinishedAt != nil {
		mod = *j.FinishedAt
	}
	name := ArchiveFileName(it)
	fw, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store, Modified: mod})
	if err != nil {
		return e, fmt.Errorf("writing %s: %w", name, err)
	}
	if _, err := io.Copy(fw, obj); err != nil {
		return e, fmt.Errorf("writing %s: %w", name, err)
	}
	d := j.Audio.DurationSeconds
	e.DurationSeconds, e.File = &d, name
	return e, nil
}

// checkBatchID rejects anything that is not a batch id, answering not found.
func checkBatchID(id string) error {
	if checkID(id) != nil {
		return tts.Errorf(tts.ENOTFOUND, "no batch with id %q", clipID(id))
	}
	return nil
}
