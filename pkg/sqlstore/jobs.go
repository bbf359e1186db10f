package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// Bounds of ListJobs and StaleJobs. ListJobs returns at most
// MaxListLimit+1 jobs: a caller showing pages of MaxListLimit asks for one
// more to learn whether a next page exists.
const (
	DefaultListLimit  = 20
	MaxListLimit      = 100
	DefaultStaleLimit = 100
	MaxStaleLimit     = 1000
)

var _ tts.JobStore = (*DB)(nil)

// jobColumns is the column list every job query selects, in jobRow order.
const jobColumns = `id, status, text, voice, speed, format, queue, attempts, max_attempts, error,
cancel_requested, idempotency_key, request_hash, audio_key, audio_content_type, audio_bytes,
audio_duration, engine, device, created_at, started_at, finished_at, updated_at, cache_key, cache_hit,
batch_id, callback_url, bitrate_kbps, sample_rate, user_id`

// liveStatuses is the SQL list of non-terminal states. jobs_live_updated_at
// is a partial index on the same expression.
const liveStatuses = `('queued', 'running')`

// jobRow is a jobs row as the driver returns it.
type jobRow struct {
	ID               string          `db:"id"`
	Status           string          `db:"status"`
	Text             string          `db:"text"`
	Voice            string          `db:"voice"`
	Speed            float64         `db:"speed"`
	Format           string          `db:"format"`
	Queue            string          `db:"queue"`
	Attempts         int             `db:"attempts"`
	MaxAttempts      int             `db:"max_attempts"`
	Error            string          `db:"error"`
	CancelRequested  int             `db:"cancel_requested"`
	IdempotencyKey   sql.NullString  `db:"idempotency_key"`
	RequestHash      string          `db:"request_hash"`
	AudioKey         sql.NullString  `db:"audio_key"`
	AudioContentType sql.NullString  `db:"audio_content_type"`
	AudioBytes       sql.NullInt64   `db:"audio_bytes"`
	AudioDuration    sql.NullFloat64 `db:"audio_duration"`
	Engine           string          `db:"engine"`
	Device           string          `db:"device"`
	CreatedAt        int64           `db:"created_at"`
	StartedAt        sql.NullInt64   `db:"started_at"`
	FinishedAt       sql.NullInt64   `db:"finished_at"`
	UpdatedAt        int64           `db:"updated_at"`
	CacheKey         sql.NullString  `db:"cache_key"`
	CacheHit         int             `db:"cache_hit"`
	BatchID          sql.NullString  `db:"batch_id"`
	CallbackURL      sql.NullString  `db:"callback_url"`
	BitrateKbps      int             `db:"bitrate_kbps"`
	SampleRate       int             `db:"sample_rate"`
	UserID           sql.NullString  `db:"user_id"`
}

func (r *jobRow) job() *tts.Job {
	j := &tts.Job{
		ID:              r.ID,
		Status:          tts.JobStatus(r.Status),
		Text:            r.Text,
		Voice:           r.Voice,
		Speed:           r.Speed,
		Format:          tts.Format(r.Format),
		Queue:           r.Queue,
		Attempts:        r.Attempts,
		MaxAttempts:     r.MaxAttempts,
		Error:           r.Error,
		CancelRequested: r.CancelRequested != 0,
		IdempotencyKey:  r.IdempotencyKey.String,
		RequestHash:     r.RequestHash,
		Engine:          r.Engine,
		Device:          r.Device,
		BatchID:         r.BatchID.String,
		UserID:          r.UserID.String,
		CallbackURL:     r.CallbackURL.String,
		Options:         tts.EncodeOptions{BitrateKbps: r.BitrateKbps, SampleRate: r.SampleRate},
		CreatedAt:       fromMillis(r.CreatedAt),
		StartedAt:       fromNullMillis(r.StartedAt),
		FinishedAt:      fromNullMillis(r.FinishedAt),
		UpdatedAt:       fromMillis(r.UpdatedAt),
	}
	if r.AudioKey.Valid {
		j.Audio = &tts.Audio{
			Key:             r.AudioKey.String,
			ContentType:     r.AudioContentType.String,
			Bytes:           r.AudioBytes.Int64,
			DurationSeconds: r.AudioDuration.Float64,
			CacheKey:        r.CacheKey.String,
			CacheHit:        r.CacheHit != 0,
		}
	}
	return j
}

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func fromNullMillis(ms sql.NullInt64) *time.Time {
	if !ms.Valid {
		return nil
	}
	t := fromMillis(ms.Int64)
	return &t
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// bit stores a boolean as SMALLINT 0/1.
func bit(b bool) int {
	if b {
		return 1
	}
	return 0
}

// nowMillis is the store's clock in the stored unit.
func (s *DB) nowMillis() int64 { return s.now().UnixMilli() }

// CreateJob inserts job as a new queued job and returns the stored row.
//
// The store owns the lifecycle fields: Status must be "" or queued
// (EINVALID otherwise) and Attempts, Error, CancelRequested, Audio, Engine,
// Device, StartedAt, FinishedAt and UpdatedAt are ignored; UpdatedAt is the
// store's clock, and so is CreatedAt when zero. Times are stored to the
// millisecond, so the returned job, not job, is what FindJob will return.
// An empty ID gets a new UUIDv7 (ids must sort by creation
// time for ListJobs). MaxAttempts must be at least 1 (EINVALID). job itself
// is not modified.
//
// When job.IdempotencyKey is already used CreateJob returns that job and
// created=false, or ECONFLICT if its RequestHash differs. The UNIQUE
// constraint on idempotency_key decides, so concurrent calls with one key
// create exactly one job. An ID that already exists is ECONFLICT.
func (s *DB) CreateJob(ctx context.Context, job *tts.Job) (*tts.Job, bool, error) {
	if job.Status != "" && job.Status != tts.StatusQueued {
		return nil, false, tts.Errorf(tts.EINVALID, "a new job must be queued, not %s", job.Status)
	}
	if job.MaxAttempts < 1 {
		return nil, false, tts.Errorf(tts.EINVALID, "max attempts must be at least 1")
	}
	id := job.ID
	if id == "" {
		u, err := uuid.NewV7()
		if err != nil {
			return nil, false, tts.Wrap(tts.EINTERNAL, err, "generate job id")
		}
		id = u.String()
	}
	now := s.nowMillis()
	created := now
	if !job.CreatedAt.IsZero() {
		created = job.CreatedAt.UnixMilli()
	}
	// Two tries: if the job holding the key vanished between the INSERT and
	// the SELECT (a future retention sweep), the second INSERT wins.
	for range 2 {
		var r jobRow
		err := s.db.GetContext(ctx, &r, `INSERT INTO jobs (
			id, status, text, voice, speed, format, queue, attempts, max_attempts,
			idempotency_key, request_hash, created_at, updated_at, batch_id, callback_url, bitrate_kbps, sample_rate, user_id
		) VALUES (?, 'queued', ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (idempotency_key) DO NOTHING
		RETURNING `+jobColumns,
			id, job.Text, job.Voice, job.Speed, string(job.Format), job.Queue, job.MaxAttempts,
			nullString(job.IdempotencyKey), job.RequestHash, created, now, nullString(job.BatchID), nullString(job.CallbackURL),
			job.Options.BitrateKbps, job.Options.SampleRate, nullString(job.UserID))
		if err == nil {
			return r.job(), true, nil
		} else if isUniqueViolation(err) {
			return nil, false, tts.Wrap(tts.ECONFLICT, err, "a job with this id already exists")
		} else if !errors.Is(err, sql.ErrNoRows) {
			return nil, false, dbError(err, "create job")
		}
		// The key is taken.
		existing, err := s.findBy(ctx, "idempotency_key", job.IdempotencyKey)
		if tts.ErrorCode(err) == tts.ENOTFOUND {
			continue
		} else if err != nil {
			return nil, false, err
		}
		if existing.RequestHash != job.RequestHash {
			return nil, false, tts.Errorf(tts.ECONFLICT, "idempotency key already used for a different request")
		}
		return existing, false, nil
	}
	return nil, false, tts.Errorf(tts.EUNAVAILABLE, "create job: idempotency key is contended, try again")
}

// DeleteJob removes a job that never started: queued with no attempt. The
// API uses it to take back a job it could not enqueue. ECONFLICT otherwise,
// ENOTFOUND.
func (s *DB) DeleteJob(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM jobs WHERE id = ? AND status = 'queued' AND attempts = 0`, id)
	if err != nil {
		return dbError(err, "delete job")
	}
	if n, err := res.RowsAffected(); err != nil {
		return dbError(err, "delete job")
	} else if n == 1 {
		return nil
	}
	j, err := s.FindJob(ctx, id)
	if err != nil {
		return err
	}
	if j.Status.Terminal() {
		return conflict(j, 0)
	}
	return tts.Errorf(tts.ECONFLICT, "job has started, it cannot be deleted")
}

// FindJob returns a job by id (ENOTFOUND).
func (s *DB) FindJob(ctx context.Context, id string) (*tts.Job, error) {
	return s.findBy(ctx, "id", id)
}

// findBy returns the job whose column (id or idempotency_key, never user
// input) equals value.
func (s *DB) findBy(ctx context.Context, column, value string) (*tts.Job, error) {
	var r jobRow
	err := s.db.GetContext(ctx, &r, `SELECT `+jobColumns+` FROM jobs WHERE `+column+` = ?`, value)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tts.Errorf(tts.ENOTFOUND, "job not found")
	} else if err != nil {
		return nil, dbError(err, "find job")
	}
	return r.job(), nil
}

// ListJobs returns jobs newest first (by id, descending). f.Status filters
// by state (EINVALID if unknown); f.Before, the last id of the previous
// page, continues a listing; f.Limit defaults to DefaultListLimit and is
// capped at MaxListLimit+1 (one over a full page, so that a caller can probe
// for a next page).
func (s *DB) ListJobs(ctx context.Context, f tts.JobFilter) ([]*tts.Job, error) {
	if f.Status != "" && !f.Status.Valid() {
		return nil, tts.Errorf(tts.EINVALID, "status: must be one of queued, running, succeeded, failed, canceled")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	f.Limit = min(limit, MaxListLimit+1)
	like := "LIKE" // SQLite's ignores ASCII case
	if s.dialect == DriverPostgres {
		like = "ILIKE"
	}
	q, args := listQuery(f, like)
	return s.selectJobs(ctx, "list jobs", q, args...)
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// listQuery builds ListJobs' query, with like the case-insensitive LIKE
// operator. The jobs_status_id index serves the status filter, the primary
// key the rest.
func listQuery(f tts.JobFilter, like string) (string, []any) {
	q := `SELECT ` + jobColumns + ` FROM jobs WHERE 1 = 1`
	var args []any
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, string(f.Status))
	}
	if f.UserID != "" {
		q += ` AND user_id = ?`
		args = append(args, f.UserID)
	}
	if f.Voice != "" {
		q += ` AND voice = ?`
		args = append(args, f.Voice)
	}
	if f.Queue != "" {
		q += ` AND queue = ?`
		args = append(args, f.Queue)
	}
	if !f.Since.IsZero() {
		q += ` AND created_at >= ?`
		args = append(args, f.Since.UnixMilli())
	}
	if !f.Until.IsZero() {
		q += ` AND created_at < ?`
		args = append(args, f.Until.UnixMilli())
	}
	if f.Text != "" {
		// The pattern's own metacharacters escaped.
		q += ` AND text ` + like + ` ? ESCAPE '\'`
		args = append(args, "%"+likeEscaper.Replace(f.Text)+"%")
	}
	if f.Before != "" {
		q += ` AND id < ?`
		args = append(args, f.Before)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	return q, append(args, f.Limit)
}

func (s *DB) selectJobs(ctx context.Context, op, q string, args ...any) ([]*tts.Job, error) {
	var rows []jobRow
	if err := s.db.SelectContext(ctx, &rows, q, args...); err != nil {
		return nil, dbError(err, op)
	}
	jobs := make([]*tts.Job, len(rows))
	for i := range rows {
		jobs[i] = rows[i].job()
	}
	return jobs, nil
}

// StartAttempt moves a queued or running job to running, increments its
// attempt counter and records engine and device; it returns the new attempt
// number. A running job may be started again: that is a re-delivery after
// its worker was lost, and the new attempt number fences the old worker off.
// StartedAt is set by the first attempt only. Error is left as it is (only
// a terminal FailJob sets it, so today it is empty here); CompleteJob
// clears it.
//
// ECONFLICT when the job is terminal or cancel was requested, ENOTFOUND
// when it does not exist.
func (s *DB) StartAttempt(ctx context.Context, id string, engine, device string) (int, error) {
	now := s.nowMillis()
	var attempt int
	err := s.db.QueryRowContext(ctx, `UPDATE jobs
		SET status = 'running', attempts = attempts + 1, engine = ?, device = ?,
		    started_at = COALESCE(started_at, ?), updated_at = ?
		WHERE id = ? AND status IN `+liveStatuses+` AND cancel_requested = 0
		RETURNING attempts`,
		engine, device, now, now, id).Scan(&attempt)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, s.whyNot(ctx, id, 0)
	} else if err != nil {
		return 0, dbError(err, "start attempt")
	}
	return attempt, nil
}

// CompleteJob marks the job succeeded with its audio, only if it is still
// running attempt `attempt` (ECONFLICT otherwise, ENOTFOUND). It clears
// Error and sets FinishedAt; Engine and Device stay as StartAttempt set
// them. A pending cancel request does not stop it: the audio exists.
func (s *DB) CompleteJob(ctx context.Context, id string, attempt int, audio tts.Audio) error {
	now := s.nowMillis()
	res, err := s.db.ExecContext(ctx, `UPDATE jobs
		SET status = 'succeeded', error = '', audio_key = ?, audio_content_type = ?,
		    audio_bytes = ?, audio_duration = ?, cache_key = ?, cache_hit = ?, finished_at = ?, updated_at = ?
		WHERE id = ? AND status = 'running' AND attempts = ?`,
		audio.Key, audio.ContentType, audio.Bytes, audio.DurationSeconds, nullString(audio.CacheKey), bit(audio.CacheHit),
		now, now, id, attempt)
	return s.checkUpdated(ctx, res, err, id, attempt, "complete job")
}

// FindCached returns the newest succeeded job whose audio has cacheKey
// (ENOTFOUND when there is none).
func (s *DB) FindCached(ctx context.Context, cacheKey string) (*tts.Job, error) {
	if cacheKey == "" {
		return nil, tts.Errorf(tts.ENOTFOUND, "no cached audio")
	}
	jobs, err := s.selectJobs(ctx, "find cached audio", `SELECT `+jobColumns+` FROM jobs
		WHERE cache_key = ? AND status = 'succeeded' ORDER BY id DESC LIMIT 1`, cacheKey)
	if err != nil {
		return nil, err
	}
	if len(jobs) == 0 {
		return nil, tts.Errorf(tts.ENOTFOUND, "no cached audio")
	}
	return jobs[0], nil
}

// FailJob marks a live job failed with a readable reason (an empty reason
// is stored as "job failed"). With attempt > 0 the job must be running that
// attempt; attempt 0 fails it in any live state (the reconciler's call).
// ECONFLICT if the job is terminal or on another attempt, ENOTFOUND.
func (s *DB) FailJob(ctx context.Context, id string, attempt int, reason string) error {
	if reason == "" {
		reason = "job failed"
	}
	now := s.nowMillis()
	q := `UPDATE jobs SET status = 'failed', error = ?, finished_at = ?, updated_at = ? WHERE id = ?`
	args := []any{reason, now, now, id}
	if attempt > 0 {
		q += ` AND status = 'running' AND attempts = ?`
		args = append(args, attempt)
	} else {
		q += ` AND status IN ` + liveStatuses
	}
	res, err := s.db.ExecContext(ctx, q, args...)
	return s.checkUpdated(ctx, res, err, id, attempt, "fail job")
}

// RequestCancel flags a job for cancelation and returns it after the
// change. A queued job becomes canceled at once (FinishedAt set); a running
// job keeps running with CancelRequested set until its worker calls
// CancelJob. Asking again for a running job is harmless and does not touch
// UpdatedAt, which the reconciler reads. ECONFLICT if the job is already
// terminal, ENOTFOUND.
func (s *DB) RequestCancel(ctx context.Context, id string) (*tts.Job, error) {
	now := s.nowMillis()
	// SET expressions all read the row as it was before the UPDATE.
	var r jobRow
	err := s.db.GetContext(ctx, &r, `UPDATE jobs
		SET cancel_requested = 1,
		    status = CASE WHEN status = 'queued' THEN 'canceled' ELSE status END,
		    finished_at = CASE WHEN status = 'queued' THEN ? ELSE finished_at END,
		    updated_at = CASE WHEN status = 'running' AND cancel_requested = 1 THEN updated_at ELSE ? END
		WHERE id = ? AND status IN `+liveStatuses+`
		RETURNING `+jobColumns,
		now, now, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, s.whyNot(ctx, id, 0)
	} else if err != nil {
		return nil, dbError(err, "request cancel")
	}
	return r.job(), nil
}

// CancelJob marks a live job canceled (the worker's answer to
// CancelRequested, or the reconciler's for a job whose worker is gone).
// ECONFLICT if it is terminal, ENOTFOUND.
func (s *DB) CancelJob(ctx context.Context, id string) error {
	now := s.nowMillis()
	res, err := s.db.ExecContext(ctx, `UPDATE jobs
		SET status = 'canceled', cancel_requested = 1, finished_at = ?, updated_at = ?
		WHERE id = ? AND status IN `+liveStatuses,
		now, now, id)
	return s.checkUpdated(ctx, res, err, id, 0, "cancel job")
}

// RequeueJob returns a running job to queued (its worker was lost); the
// attempt counter stays, so the next StartAttempt fences the lost worker
// off. ECONFLICT if the job is not running, or if cancel was requested:
// such a job would never start again, so the caller should CancelJob it
// instead. ENOTFOUND.
func (s *DB) RequeueJob(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE jobs SET status = 'queued', updated_at = ?
		WHERE id = ? AND status = 'running' AND cancel_requested = 0`,
		s.nowMillis(), id)
	if err != nil {
		return dbError(err, "requeue job")
	}
	if n, err := res.RowsAffected(); err != nil {
		return dbError(err, "requeue job")
	} else if n == 1 {
		return nil
	}
	j, err := s.FindJob(ctx, id)
	if err != nil {
		return err
	}
	if j.Status == tts.StatusQueued {
		return tts.Errorf(tts.ECONFLICT, "job is queued, not running")
	}
	return conflict(j, 0)
}

// Heartbeat touches a job running attempt `attempt` and returns its cancel
// flag. ECONFLICT when it is not running that attempt, ENOTFOUND.
func (s *DB) Heartbeat(ctx context.Context, id string, attempt int) (bool, error) {
	var cancel int
	err := s.db.QueryRowContext(ctx, `UPDATE jobs SET updated_at = ?
		WHERE id = ? AND status = 'running' AND attempts = ?
		RETURNING cancel_requested`, s.nowMillis(), id, attempt).Scan(&cancel)
	if errors.Is(err, sql.ErrNoRows) {
		return false, s.whyNot(ctx, id, attempt)
	} else if err != nil {
		return false, dbError(err, "heartbeat")
	}
	return cancel != 0, nil
}

// ReleaseAttempt returns a job running attempt `attempt` to queued with
// attempts decremented (an attempt cut short by a shutdown does not count).
// ECONFLICT when the job is not running that attempt, ENOTFOUND.
func (s *DB) ReleaseAttempt(ctx context.Context, id string, attempt int) error {
	res, err := s.db.ExecContext(ctx, `UPDATE jobs SET status = 'queued', attempts = attempts - 1, updated_at = ?
		WHERE id = ? AND status = 'running' AND attempts = ?`,
		s.nowMillis(), id, attempt)
	return s.checkUpdated(ctx, res, err, id, attempt, "release attempt")
}

// StaleJobs returns live jobs (queued or running) last updated before
// `before`, least recently updated first, for the reconciler. limit
// defaults to DefaultStaleLimit and is capped at MaxStaleLimit.
func (s *DB) StaleJobs(ctx context.Context, before time.Time, limit int) ([]*tts.Job, error) {
	if limit <= 0 {
		limit = DefaultStaleLimit
	}
	limit = min(limit, MaxStaleLimit)
	return s.selectJobs(ctx, "stale jobs", staleJobsQuery, before.UnixMilli(), limit)
}

// staleJobsQuery repeats the WHERE clause of the partial index
// jobs_live_updated_at so that SQLite uses it.
const staleJobsQuery = `SELECT ` + jobColumns + ` FROM jobs
WHERE status IN ` + liveStatuses + ` AND updated_at < ?
ORDER BY updated_at, id LIMIT ?`

// CountByStatus returns how many jobs are in each state; every state is
// present, with 0 when it has no jobs.
func (s *DB) CountByStatus(ctx context.Context) (map[tts.JobStatus]int, error) {
	var rows []struct {
		Status string `db:"status"`
		N      int    `db:"n"`
	}
	if err := s.db.SelectContext(ctx, &rows, `SELECT status, COUNT(*) AS n FROM jobs GROUP BY status`); err != nil {
		return nil, dbError(err, "count jobs")
	}
	counts := map[tts.JobStatus]int{
		tts.StatusQueued: 0, tts.StatusRunning: 0, tts.StatusSucceeded: 0, tts.StatusFailed: 0, tts.StatusCanceled: 0,
	}
	for _, r := range rows {
		counts[tts.JobStatus(r.Status)] = r.N
	}
	return counts, nil
}

// checkUpdated turns the result of a conditional UPDATE into nil when it
// changed the row, or the reason it did not.
func (s *DB) checkUpdated(ctx context.Context, res sql.Result, err error, id string, attempt int, op string) error {
	if err != nil {
		return dbError(err, op)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return dbError(err, op)
	}
	if n == 1 {
		return nil
	}
	return s.whyNot(ctx, id, attempt)
}

// whyNot explains why a conditional UPDATE matched no row: ENOTFOUND, or
// ECONFLICT naming the state that refused it.
func (s *DB) whyNot(ctx context.Context, id string, attempt int) error {
	j, err := s.FindJob(ctx, id)
	if err != nil {
		return err
	}
	return conflict(j, attempt)
}

// conflict describes, in words safe for a client, why j refused a change.
func conflict(j *tts.Job, attempt int) error {
	switch {
	case j.Status.Terminal():
		return tts.Errorf(tts.ECONFLICT, "job is already %s", j.Status)
	case attempt > 0 && j.Status != tts.StatusRunning:
		return tts.Errorf(tts.ECONFLICT, "job is %s, not running attempt %d", j.Status, attempt)
	case attempt > 0 && j.Attempts != attempt:
		return tts.Errorf(tts.ECONFLICT, "job is on attempt %d, not %d", j.Attempts, attempt)
	case j.CancelRequested:
		return tts.Errorf(tts.ECONFLICT, "cancel was requested for this job")
	}
	// The row changed between the UPDATE and the re-read.
	return tts.Errorf(tts.ECONFLICT, "job changed concurrently, try again")
}
