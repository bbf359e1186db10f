package jobs

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/kokorotts/kokoro-tts/pkg/events"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
	"github.com/kokorotts/kokoro-tts/queue"
)

// AdminStore is the store's operator side (sqlstore.DB implements it).
type AdminStore interface {
	// PurgeJob deletes a terminal job and returns it (ECONFLICT while live).
	PurgeJob(ctx context.Context, id string) (*tts.Job, error)
	// AudioKeyInUse reports whether a job still points at an audio object.
	AudioKeyInUse(ctx context.Context, key string) (bool, error)
	// JobStats summarises the jobs since a time.
	JobStats(ctx context.Context, since time.Time) (tts.JobStats, error)
}

func (s *Service) adminStore() (AdminStore, error) {
	a, ok := s.store.(AdminStore)
	if !ok {
		return nil, tts.Errorf(tts.EUNSUPPORTED, "the operator's functions are not supported by this job store")
	}
	return a, nil
}

// requireAdmin refuses a scoped caller that is not an admin. The API checks
// roles before it calls; this keeps the service safe on its own.
func requireAdmin(ctx context.Context) error {
	if p, ok := tts.PrincipalFrom(ctx); ok && !p.Admin() {
		return tts.Errorf(tts.ENOTFOUND, "not found")
	}
	return nil
}

// ListAll returns a page of every job matching f, newest first (operator).
func (s *Service) ListAll(ctx context.Context, f tts.JobFilter, cursor string) ([]*tts.Job, string, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, "", err
	}
	if len(f.Text) > 200 {
		return nil, "", tts.Errorf(tts.EINVALID, "q: at most 200 characters")
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return nil, "", tts.Errorf(tts.EINVALID, "until: must be after since")
	}
	return s.list(ctx, f, cursor)
}

// Retry submits a failed or canceled job again as a new job with the same
// request and owner (a terminal state never changes, so the original stays
// as it ended). ECONFLICT for a job that is live or succeeded.
func (s *Service) Retry(ctx context.Context, id string) (*tts.Job, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	old, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if old.Status != tts.StatusFailed && old.Status != tts.StatusCanceled {
		return nil, tts.Errorf(tts.ECONFLICT, "job %s is %s: only failed or canceled jobs can be retried", old.ID, old.Status)
	}
	nid, err := uuid.NewV7()
	if err != nil {
		return nil, tts.Wrap(tts.EINTERNAL, err, "could not create a job id")
	}
	now := s.now().UTC()
	q := old.Queue
	if q == tts.QueueBatch {
		q = tts.QueueInteractive // the retry is a single job now, outside its batch
	}
	job := &tts.Job{
		ID: nid.String(), Status: tts.StatusQueued, Text: old.Text, Voice: old.Voice, Speed: old.Speed,
		Format: old.Format, Queue: q, MaxAttempts: queue.MaxRetry + 1, RequestHash: old.RequestHash,
		CallbackURL: old.CallbackURL, Options: old.Options, UserID: old.UserID, CreatedAt: now, UpdatedAt: now,
	}
	j, _, err := s.create(ctx, job)
	if err == nil {
		s.log.Info("job retried by an operator", "job_id", old.ID, "new_job_id", j.ID, "by", tts.Owner(ctx))
	}
	return j, err
}

// Delete removes a terminal job and its audio for good (operator).
// ECONFLICT while the job is live: cancel it first.
func (s *Service) Delete(ctx context.Context, id string) error {
	if err := requireAdmin(ctx); err != nil {
		return err
	}
	if err := checkID(id); err != nil {
		return err
	}
	a, err := s.adminStore()
	if err != nil {
		return err
	}
	j, err := a.PurgeJob(ctx, id)
	if err != nil {
		return err
	}
	if j.Audio != nil && j.Audio.Key != "" {
		// Cached audio may be shared with other jobs: keep it while one
		// still points at it.
		inUse, err := a.AudioKeyInUse(ctx, j.Audio.Key)
		if err == nil && !inUse {
			err = s.objects.Delete(ctx, j.Audio.Key)
		}
		if err != nil {
			s.log.Warn("a deleted job's audio was not removed", "job_id", id, "key", j.Audio.Key, "err", err)
		}
	}
	s.log.Info("job deleted by an operator", "job_id", id, "by", tts.Owner(ctx))
	return nil
}

// Stats summarises the jobs of the last `window` (operator).
func (s *Service) Stats(ctx context.Context, window time.Duration) (tts.JobStats, error) {
	if err := requireAdmin(ctx); err != nil {
		return tts.JobStats{}, err
	}
	a, err := s.adminStore()
	if err != nil {
		return tts.JobStats{}, err
	}
	return a.JobStats(ctx, s.now().Add(-window))
}

// Timeline returns the job's recorded events (kept for a day), oldest first.
func (s *Service) Timeline(ctx context.Context, id string) ([]events.Event, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return nil, err
	}
	if s.events == nil {
		return nil, nil
	}
	var out []events.Event
	after := ""
	for range 100 {
		page, err := s.events.Read(ctx, id, after, -1) // -1: do not block
		if err != nil || len(page) == 0 {
			return out, err
		}
		out = append(out, page...)
		after = page[len(page)-1].ID
	}
	return out, nil
}

// Counts returns how many jobs are in each state (operator).
func (s *Service) Counts(ctx context.Context) (map[tts.JobStatus]int, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	return s.store.CountByStatus(ctx)
}
