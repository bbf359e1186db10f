package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"github.com/google/uuid"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

var _ tts.BatchStore = (*DB)(nil)

// MaxBatchItemsPage is the default page of BatchItems and LiveBatchItems;
// they return at most one more (a caller showing pages of this size asks
// for one more to learn whether a next page exists).
const MaxBatchItemsPage = 1000

const batchColumns = `id, status, item_count, voice, speed, format, callback_url, idempotency_key,
request_hash, created_at, updated_at, user_id`

// batchRow is a batches row as the driver returns it.
type batchRow struct {
	ID             string         `db:"id"`
	Status         string         `db:"status"`
	ItemCount      int            `db:"item_count"`
	Voice          string         `db:"voice"`
	Speed          float64        `db:"speed"`
	Format         string         `db:"format"`
	CallbackURL    sql.NullString `db:"callback_url"`
	IdempotencyKey sql.NullString `db:"idempotency_key"`
	RequestHash    string         `db:"request_hash"`
	CreatedAt      int64          `db:"created_at"`
	UpdatedAt      int64          `db:"updated_at"`
	UserID         sql.NullString `db:"user_id"`
}

func (r *batchRow) batch() *tts.Batch {
	return &tts.Batch{
		ID: r.ID, Status: tts.BatchStatus(r.Status), Items: r.ItemCount, Voice: r.Voice, Speed: r.Speed,
		Format: tts.Format(r.Format), CallbackURL: r.CallbackURL.String, IdempotencyKey: r.IdempotencyKey.String,
		RequestHash: r.RequestHash, UserID: r.UserID.String, CreatedAt: fromMillis(r.CreatedAt), UpdatedAt: fromMillis(r.UpdatedAt),
	}
}

// itemRow is a job row with its batch key.
type itemRow struct {
	jobRow
	BatchKey sql.NullString `db:"batch_key"`
}

// CreateBatch inserts the batch and its items' jobs in one transaction and
// returns the stored batch with its counts.
//
// batch.ID and each job's ID get a new UUIDv7 when empty (the items' ids
// must sort in submission order: generate them in order). batch.Items is set
// from len(items); every job is stored queued, with BatchID = the batch's id,
// and its key; lifecycle fields are ignored as in CreateJob. CreatedAt
// defaults to the store's clock. Neither batch nor the jobs are modified.
//
// When batch.IdempotencyKey is already used it returns that batch and
// created=false, or ECONFLICT if its RequestHash differs; the UNIQUE
// constraint decides, so concurrent calls with one key create one batch.
// EINVALID for no items, an invalid or duplicate key, MaxAttempts below 1;
// ECONFLICT when an id exists.
func (s *DB) CreateBatch(ctx context.Context, batch *tts.Batch, items []tts.BatchItem) (*tts.Batch, bool, error) {
	if len(items) == 0 {
		return nil, false, tts.Errorf(tts.EINVALID, "a batch needs at least one item")
	}
	keys := make(map[string]bool, len(items))
	for _, it := range items {
		switch {
		case it.Job == nil:
			return nil, false, tts.Errorf(tts.EINVALID, "batch item %q has no job", it.Key)
		case !tts.ValidBatchKey(it.Key):
			return nil, false, tts.Errorf(tts.EINVALID, "invalid batch item key %q", it.Key)
		case keys[it.Key]:
			return nil, false, tts.Errorf(tts.EINVALID, "duplicate batch item key %q", it.Key)
		case it.Job.Status != "" && it.Job.Status != tts.StatusQueued:
			return nil, false, tts.Errorf(tts.EINVALID, "a new job must be queued, not %s", it.Job.Status)
		case it.Job.MaxAttempts < 1:
			return nil, false, tts.Errorf(tts.EINVALID, "max attempts must be at least 1")
		}
		keys[it.Key] = true
	}
	id := batch.ID
	if id == "" {
		u, err := uuid.NewV7()
		if err != nil {
			return nil, false, tts.Wrap(tts.EINTERNAL, err, "generate batch id")
		}
		id = u.String()
	}
	now := s.nowMillis()
	created := now
	if !batch.CreatedAt.IsZero() {
		created = batch.CreatedAt.UnixMilli()
	}
	// Two tries, as in CreateJob: the holder of the key may vanish between
	// the INSERT and the SELECT.
	for range 2 {
		stored, ok, err := s.insertBatch(ctx, id, batch, items, created, now)
		if err != nil {
			return nil, false, err
		} else if ok {
			return stored, true, nil
		}
		existing, err := s.findBatchBy(ctx, "idempotency_key", batch.IdempotencyKey)
		if tts.ErrorCode(err) == tts.ENOTFOUND {
			continue
		} else if err != nil {
			return nil, false, err
		}
		if existing.RequestHash != batch.RequestHash {
			return nil, false, tts.Errorf(tts.ECONFLICT, "idempotency key already used for a different batch")
		}
		return existing, false, nil
	}
	return nil, false, tts.Errorf(tts.EUNAVAILABLE, "create batch: idempotency key is contended, try again")
}

// insertBatch runs CreateBatch's transaction. ok=false means the idempotency
// key is taken (nothing was written).
func (s *DB) insertBatch(ctx context.Context, id string, b *tts.Batch, items []tts.BatchItem, created, now int64) (*tts.Batch, bool, error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return nil, false, dbError(err, "begin create batch")
	}
	defer tx.Rollback()
	var r batchRow
	err = tx.GetContext(ctx, &r, `INSERT INTO batches (
		id, status, item_count, voice, speed, format, callback_url, idempotency_key, request_hash, created_at, updated_at, user_id
	) VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (idempotency_key) DO NOTHING
	RETURNING `+batchColumns,
		id, len(items), b.Voice, b.Speed, string(b.Format), nullString(b.CallbackURL), nullString(b.IdempotencyKey),
		b.RequestHash, created, now, nullString(b.UserID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	} else if isUniqueViolation(err) {
		return nil, false, tts.Wrap(tts.ECONFLICT, err, "a batch with this id already exists")
	} else if err != nil {
		return nil, false, dbError(err, "create batch")
	}
	if err := insertItems(ctx, tx, id, items, created, now); err != nil {
		return nil, false, err
	}
	if err := tx.Commit(); err != nil {
		return nil, false, dbError(err, "commit create batch")
	}
	stored := r.batch()
	stored.Counts = zeroCounts()
	stored.Counts[tts.StatusQueued] = len(items)
	return stored, true, nil
}

func insertItems(ctx context.Context, tx rebindingTx, batchID string, items []tts.BatchItem, created, now int64) error {
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO jobs (
		id, status, text, voice, speed, format, queue, attempts, max_attempts,
		idempotency_key, request_hash, created_at, updated_at, batch_id, callback_url, batch_key, user_id
	) VALUES (?, 'queued', ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return dbError(err, "create batch items")
	}
	defer stmt.Close()
	for _, it := range items {
		j := it.Job
		jid := j.ID
		if jid == "" {
			u, err := uuid.NewV7()
			if err != nil {
				return tts.Wrap(tts.EINTERNAL, err, "generate job id")
			}
			jid = u.String()
		}
		jc := created
		if !j.CreatedAt.IsZero() {
			jc = j.CreatedAt.UnixMilli()
		}
		_, err := stmt.ExecContext(ctx, jid, j.Text, j.Voice, j.Speed, string(j.Format), j.Queue, j.MaxAttempts,
			nullString(j.IdempotencyKey), j.RequestHash, jc, now, batchID, nullString(j.CallbackURL), it.Key, nullString(j.UserID))
		if isUniqueViolation(err) {
			return tts.Wrap(tts.ECONFLICT, err, "a job of this batch has an id or idempotency key that exists")
		} else if err != nil {
			return dbError(err, "create batch items")
		}
	}
	return nil
}

// FindBatch returns a batch with its counts (ENOTFOUND).
func (s *DB) FindBatch(ctx context.Context, id string) (*tts.Batch, error) {
	return s.findBatchBy(ctx, "id", id)
}

// findBatchBy returns the batch whose column (id or idempotency_key, never
// user input) equals value, with its counts.
func (s *DB) findBatchBy(ctx context.Context, column, value string) (*tts.Batch, error) {
	var r batchRow
	err := s.db.GetContext(ctx, &r, `SELECT `+batchColumns+` FROM batches WHERE `+column+` = ?`, value)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tts.Errorf(tts.ENOTFOUND, "batch not found")
	} else if err != nil {
		return nil, dbError(err, "find batch")
	}
	b := r.batch()
	var rows []struct {
		Status string `db:"status"`
		N      int    `db:"n"`
	}
	// jobs_batch_id (batch_id, id) serves this.
	if err := s.db.SelectContext(ctx, &rows, `SELECT status, COUNT(*) AS n FROM jobs WHERE batch_id = ? GROUP BY status`, b.ID); err != nil {
		return nil, dbError(err, "count batch items")
	}
	b.Counts = zeroCounts()
	for _, row := range rows {
		b.Counts[tts.JobStatus(row.Status)] = row.N
	}
	return b, nil
}

func zeroCounts() map[tts.JobStatus]int {
	return map[tts.JobStatus]int{
		tts.StatusQueued: 0, tts.StatusRunning: 0, tts.StatusSucceeded: 0, tts.StatusFailed: 0, tts.StatusCanceled: 0,
	}
}

// BatchItems returns up to limit (default MaxBatchItemsPage, at most one
// more) items
// of a batch in submission order (job id order), after the item whose job
// id is `after`. ENOTFOUND when the batch does not exist.
func (s *DB) BatchItems(ctx context.Context, id, after string, limit int) ([]tts.BatchItem, error) {
	return s.batchItems(ctx, id, after, limit, false)
}

// LiveBatchItems is BatchItems restricted to queued and running items.
func (s *DB) LiveBatchItems(ctx context.Context, id, after string, limit int) ([]tts.BatchItem, error) {
	return s.batchItems(ctx, id, after, limit, true)
}

func (s *DB) batchItems(ctx context.Context, id, after string, limit int, live bool) ([]tts.BatchItem, error) {
	if limit <= 0 {
		limit = MaxBatchItemsPage
	}
	limit = min(limit, MaxBatchItemsPage+1)
	var n int
	if err := s.db.GetContext(ctx, &n, `SELECT COUNT(*) FROM batches WHERE id = ?`, id); err != nil {
		return nil, dbError(err, "find batch")
	} else if n == 0 {
		return nil, tts.Errorf(tts.ENOTFOUND, "batch not found")
	}
	q := `SELECT ` + jobColumns + `, batch_key FROM jobs WHERE batch_id = ? AND id > ?`
	if live {
		q += ` AND status IN ` + liveStatuses
	}
	q += ` ORDER BY id LIMIT ?`
	var rows []itemRow
	if err := s.db.SelectContext(ctx, &rows, q, id, after, limit); err != nil {
		return nil, dbError(err, "list batch items")
	}
	out := make([]tts.BatchItem, len(rows))
	for i := range rows {
		out[i] = tts.BatchItem{Key: rows[i].BatchKey.String, Job: rows[i].job()}
	}
	return out, nil
}

// CancelBatch marks a batch canceled and returns it with its counts. It does
// not touch the items: the caller cancels each live one (RequestCancel).
// Canceling again is harmless and keeps UpdatedAt. ENOTFOUND.
func (s *DB) CancelBatch(ctx context.Context, id string) (*tts.Batch, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE batches SET status = 'canceled', updated_at = ? WHERE id = ? AND status = 'running'`,
		s.nowMillis(), id)
	if err != nil {
		return nil, dbError(err, "cancel batch")
	}
	if _, err := res.RowsAffected(); err != nil {
		return nil, dbError(err, "cancel batch")
	}
	return s.FindBatch(ctx, id)
}
