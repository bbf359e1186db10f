package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

var _ tts.AccountStore = (*DB)(nil)

const userColumns = `id, email, role, password_hash, disabled, created_at, updated_at, last_login_at, token_version`

type userRow struct {
	ID           string        `db:"id"`
	Email        string        `db:"email"`
	Role         string        `db:"role"`
	PasswordHash string        `db:"password_hash"`
	Disabled     int           `db:"disabled"`
	CreatedAt    int64         `db:"created_at"`
	UpdatedAt    int64         `db:"updated_at"`
	LastLoginAt  sql.NullInt64 `db:"last_login_at"`
	TokenVersion int           `db:"token_version"`
}

func (r *userRow) user() *tts.User {
	return &tts.User{
		ID: r.ID, Email: r.Email, Role: tts.Role(r.Role), PasswordHash: r.PasswordHash, Disabled: r.Disabled != 0,
		CreatedAt: fromMillis(r.CreatedAt), UpdatedAt: fromMillis(r.UpdatedAt), LastLoginAt: fromNullMillis(r.LastLoginAt),
		TokenVersion: r.TokenVersion,
	}
}

// CreateUser inserts a user with a new id; the email is stored lower-case.
// EINVALID for an unknown role, ECONFLICT when the email is taken.
func (s *DB) CreateUser(ctx context.Context, u *tts.User) (*tts.User, error) {
	if !u.Role.Valid() {
		return nil, tts.Errorf(tts.EINVALID, "role: must be admin or user")
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, tts.Wrap(tts.EINTERNAL, err, "generate user id")
	}
	now := s.nowMillis()
	var r userRow
	err = s.db.GetContext(ctx, &r, `INSERT INTO users (id, email, role, password_hash, disabled, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING `+userColumns,
		id.String(), strings.ToLower(u.Email), string(u.Role), u.PasswordHash, bit(u.Disabled), now, now)
	if isUniqueViolation(err) {
		return nil, tts.Errorf(tts.ECONFLICT, "a user with this email already exists")
	} else if err != nil {
		return nil, dbError(err, "create user")
	}
	return r.user(), nil
}

// FindUser returns a user by id (ENOTFOUND).
func (s *DB) FindUser(ctx context.Context, id string) (*tts.User, error) {
	return s.findUser(ctx, `id = ?`, id)
}

// FindUserByEmail returns a user by email, ignoring case (ENOTFOUND).
func (s *DB) FindUserByEmail(ctx context.Context, email string) (*tts.User, error) {
	return s.findUser(ctx, `email = ?`, strings.ToLower(email))
}

func (s *DB) findUser(ctx context.Context, where string, arg any) (*tts.User, error) {
	var r userRow
	err := s.db.GetContext(ctx, &r, `SELECT `+userColumns+` FROM users WHERE `+where, arg)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tts.Errorf(tts.ENOTFOUND, "user not found")
	} else if err != nil {
		return nil, dbError(err, "find user")
	}
	return r.user(), nil
}

// ListUsers returns every user, oldest first.
func (s *DB) ListUsers(ctx context.Context) ([]*tts.User, error) {
	var rows []userRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT `+userColumns+` FROM users ORDER BY id`); err != nil {
		return nil, dbError(err, "list users")
	}
	out := make([]*tts.User, len(rows))
	for i := range rows {
		out[i] = rows[i].user()
	}
	return out, nil
}

// UpdateUser applies p (ENOTFOUND; EINVALID for an unknown role).
func (s *DB) UpdateUser(ctx context.Context, id string, p tts.UserPatch) (*tts.User, error) {
	if p.Role != nil && !p.Role.Valid() {
		return nil, tts.Errorf(tts.EINVALID, "role: must be admin or user")
	}
	sets, args := []string{"updated_at = ?"}, []any{s.nowMillis()}
	if p.Role != nil {
		sets, args = append(sets, "role = ?"), append(args, string(*p.Role))
	}
	if p.Disabled != nil {
		sets, args = append(sets, "disabled = ?"), append(args, bit(*p.Disabled))
	}
	if p.PasswordHash != nil {
		sets, args = append(sets, "password_hash = ?"), append(args, *p.PasswordHash)
	}
	if p.EndSessions {
		sets = append(sets, "token_version = token_version + 1")
	}
	var r userRow
	err := s.db.GetContext(ctx, &r, `UPDATE users SET `+strings.Join(sets, ", ")+` WHERE id = ? RETURNING `+userColumns,
		append(args, id)...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tts.Errorf(tts.ENOTFOUND, "user not found")
	} else if err != nil {
		return nil, dbError(err, "update user")
	}
	return r.user(), nil
}

// CountAdmins returns how many enabled admins exist.
func (s *DB) CountAdmins(ctx context.Context) (int, error) {
	var n int
	if err := s.db.GetContext(ctx, &n, `SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0`); err != nil {
		return 0, dbError(err, "count admins")
	}
	return n, nil
}

// TouchLogin records a successful login.
func (s *DB) TouchLogin(ctx context.Context, id string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE users SET last_login_at = ? WHERE id = ?`, at.UnixMilli(), id)
	return dbError(err, "record login")
}

const keyColumns = `k.id, k.user_id, u.email AS user_email, k.name, k.prefix, k.hash, k.created_at, k.last_used_at, k.revoked_at`

type keyRow struct {
	ID         string        `db:"id"`
	UserID     string        `db:"user_id"`
	UserEmail  string        `db:"user_email"`
	Name       string        `db:"name"`
	Prefix     string        `db:"prefix"`
	Hash       string        `db:"hash"`
	CreatedAt  int64         `db:"created_at"`
	LastUsedAt sql.NullInt64 `db:"last_used_at"`
	RevokedAt  sql.NullInt64 `db:"revoked_at"`
}

func (r *keyRow) key() *tts.APIKey {
	return &tts.APIKey{
		ID: r.ID, UserID: r.UserID, UserEmail: r.UserEmail, Name: r.Name, Prefix: r.Prefix, Hash: r.Hash,
		CreatedAt: fromMillis(r.CreatedAt), LastUsedAt: fromNullMillis(r.LastUsedAt), RevokedAt: fromNullMillis(r.RevokedAt),
	}
}

// CreateAPIKey inserts a key with a new id (ENOTFOUND when the user does not
// exist, ECONFLICT when the hash exists).
func (s *DB) CreateAPIKey(ctx context.Context, k *tts.APIKey) (*tts.APIKey, error) {
	if _, err := s.FindUser(ctx, k.UserID); err != nil {
		return nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, tts.Wrap(tts.EINTERNAL, err, "generate key id")
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO api_keys (id, user_id, name, prefix, hash, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		id.String(), k.UserID, k.Name, k.Prefix, k.Hash, s.nowMillis())
	if isUniqueViolation(err) {
		return nil, tts.Errorf(tts.ECONFLICT, "an API key with this secret exists")
	} else if err != nil {
		return nil, dbError(err, "create API key")
	}
	return s.findKey(ctx, `k.id = ?`, id.String())
}

// FindAPIKeyByHash returns a key by the hash of its secret (ENOTFOUND).
func (s *DB) FindAPIKeyByHash(ctx context.Context, hash string) (*tts.APIKey, error) {
	return s.findKey(ctx, `k.hash = ?`, hash)
}

func (s *DB) findKey(ctx context.Context, where string, arg any) (*tts.APIKey, error) {
	var r keyRow
	err := s.db.GetContext(ctx, &r, `SELECT `+keyColumns+` FROM api_keys k JOIN users u ON u.id = k.user_id WHERE `+where, arg)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tts.Errorf(tts.ENOTFOUND, "API key not found")
	} else if err != nil {
		return nil, dbError(err, "find API key")
	}
	return r.key(), nil
}

// ListAPIKeys returns keys newest first; userID "" lists every user's.
func (s *DB) ListAPIKeys(ctx context.Context, userID string) ([]*tts.APIKey, error) {
	q, args := `SELECT `+keyColumns+` FROM api_keys k JOIN users u ON u.id = k.user_id`, []any{}
	if userID != "" {
		q, args = q+` WHERE k.user_id = ?`, append(args, userID)
	}
	var rows []keyRow
	if err := s.db.SelectContext(ctx, &rows, q+` ORDER BY k.id DESC`, args...); err != nil {
		return nil, dbError(err, "list API keys")
	}
	out := make([]*tts.APIKey, len(rows))
	for i := range rows {
		out[i] = rows[i].key()
	}
	return out, nil
}

// RevokeAPIKey revokes a key; a second revocation keeps the first time
// (ENOTFOUND).
func (s *DB) RevokeAPIKey(ctx context.Context, id string, at time.Time) (*tts.APIKey, error) {
	if _, err := s.db.ExecContext(ctx, `UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, at.UnixMilli(), id); err != nil {
		return nil, dbError(err, "revoke API key")
	}
	return s.findKey(ctx, `k.id = ?`, id)
}

// TouchAPIKey records a use of a key.
func (s *DB) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE api_keys SET last_used_at = ? WHERE id = ?`, at.UnixMilli(), id)
	return dbError(err, "record API key use")
}

// PurgeJob deletes a terminal job's row for good and returns it (so that the
// caller can remove its audio). ECONFLICT while the job is live, ENOTFOUND.
func (s *DB) PurgeJob(ctx context.Context, id string) (*tts.Job, error) {
	var r jobRow
	err := s.db.GetContext(ctx, &r, `DELETE FROM jobs WHERE id = ? AND status NOT IN `+liveStatuses+` RETURNING `+jobColumns, id)
	if errors.Is(err, sql.ErrNoRows) {
		j, ferr := s.FindJob(ctx, id)
		if ferr != nil {
			return nil, ferr
		}
		return nil, tts.Errorf(tts.ECONFLICT, "job is %s: cancel it before deleting it", j.Status)
	} else if err != nil {
		return nil, dbError(err, "purge job")
	}
	return r.job(), nil
}

// AudioKeyInUse reports whether any job still points at the audio object
// (cached audio is shared between jobs).
func (s *DB) AudioKeyInUse(ctx context.Context, key string) (bool, error) {
	var n int
	if err := s.db.GetContext(ctx, &n, `SELECT COUNT(*) FROM jobs WHERE audio_key = ?`, key); err != nil {
		return false, dbError(err, "find audio users")
	}
	return n > 0, nil
}

// maxStatsSample bounds how many jobs JobStats reads for its percentiles.
const maxStatsSample = 20000

// statsHorizon bounds how far back JobStats looks for jobs that started or
// finished in its window: jobs created more than this before the window are
// not counted (none live that long: a task times out within an hour and is
// retried at most three times).
const statsHorizon = 24 * time.Hour

// idFloor returns the smallest UUIDv7 string of time t: ids sort by their
// creation time, so `id >= idFloor(t)` selects the jobs created since t
// through the primary key, with no index on created_at.
func idFloor(t time.Time) string {
	ms := uint64(max(t.UnixMilli(), 0))
	return fmt.Sprintf("%08x-%04x-0000-0000-000000000000", ms>>16, ms&0xffff)
}

// JobStats summarises the jobs of the window starting at since. It reads
// only the rows created since since minus statsHorizon (a range of the
// primary key), so it costs the same on a table of a million jobs.
func (s *DB) JobStats(ctx context.Context, since time.Time) (tts.JobStats, error) {
	st := tts.JobStats{Since: since}
	ms := since.UnixMilli()
	floor, horizon := idFloor(since), idFloor(since.Add(-statsHorizon))
	err := s.db.QueryRowxContext(ctx, `SELECT
		(SELECT COUNT(*) FROM jobs WHERE id >= ?),
		(SELECT COUNT(*) FROM jobs WHERE id >= ? AND status = 'succeeded' AND finished_at >= ?),
		(SELECT COUNT(*) FROM jobs WHERE id >= ? AND status = 'failed' AND finished_at >= ?),
		(SELECT COUNT(*) FROM jobs WHERE id >= ? AND status = 'canceled' AND finished_at >= ?)`,
		floor, horizon, ms, horizon, ms, horizon, ms).
		Scan(&st.Submitted, &st.Succeeded, &st.Failed, &st.Canceled)
	if err != nil {
		return st, dbError(err, "job stats")
	}
	var waits, synths []int64
	if err := s.db.SelectContext(ctx, &waits, `SELECT started_at - created_at FROM jobs
		WHERE id >= ? AND started_at >= ? ORDER BY id DESC LIMIT ?`, horizon, ms, maxStatsSample); err != nil {
		return st, dbError(err, "job stats")
	}
	if err := s.db.SelectContext(ctx, &synths, `SELECT finished_at - started_at FROM jobs
		WHERE id >= ? AND status = 'succeeded' AND finished_at >= ? AND started_at IS NOT NULL ORDER BY id DESC LIMIT ?`,
		horizon, ms, maxStatsSample); err != nil {
		return st, dbError(err, "job stats")
	}
	st.WaitP50, st.WaitP95 = percentile(waits, 50), percentile(waits, 95)
	st.SynthP50, st.SynthP95 = percentile(synths, 50), percentile(synths, 95)
	st.SampleSize = len(waits)
	return st, nil
}

// percentile returns the p-th percentile (nearest rank) of millisecond
// values, 0 for none.
func percentile(ms []int64, p int) time.Duration {
	if len(ms) == 0 {
		return 0
	}
	slices.Sort(ms)
	i := (len(ms)*p + 99) / 100
	return time.Duration(ms[max(i-1, 0)]) * time.Millisecond
}
