package sqlstore

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// SchemaVersion is the schema version this code reads and writes: the number
// of the last embedded migration.
const SchemaVersion = 7

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one embedded schema change.
type migration struct {
	Version int
	Name    string // file name, e.g. "0001_init.sql"
	SQL     string
}

// loadMigrations reads the embedded migrations in version order. Versions
// must run 1, 2, 3... without gaps or duplicates.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql", base)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{Version: v, Name: base, SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %s: want version %d (versions must run 1, 2, 3... without gaps or duplicates)", m.Name, i+1)
		}
	}
	return ms, nil
}

// SchemaError reports a database whose schema does not match SchemaVersion.
type SchemaError struct {
	Current int // highest version applied to the database
	Want    int // SchemaVersion
}

// Error tells the operator what to do.
func (e *SchemaError) Error() string {
	if e.Current > e.Want {
		return fmt.Sprintf("database schema version %d is newer than this binary supports (%d): upgrade the binary, or restore a database of version %d", e.Current, e.Want, e.Want)
	}
	return fmt.Sprintf("database is not migrated (schema version %d, want %d): run \"migrate\" (go run ./cmd/migrate)", e.Current, e.Want)
}

// Newer reports whether the database is ahead of the binary.
func (e *SchemaError) Newer() bool { return e.Current > e.Want }

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at BIGINT  NOT NULL
)`

// appliedVersions returns the versions recorded in schema_migrations, or
// none when the table does not exist yet.
func (s *DB) appliedVersions(ctx context.Context) (map[int]bool, error) {
	q := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`
	if s.dialect == DriverPostgres {
		q = `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_migrations'`
	}
	var exists int
	err := s.db.QueryRowContext(ctx, q).Scan(&exists)
	if err != nil {
		return nil, dbError(err, "read schema version")
	}
	applied := map[int]bool{}
	if exists == 0 {
		return applied, nil
	}
	var vs []int
	if err := s.db.SelectContext(ctx, &vs, `SELECT version FROM schema_migrations`); err != nil {
		return nil, dbError(err, "read schema version")
	}
	for _, v := range vs {
		applied[v] = true
	}
	return applied, nil
}

// Version returns the database's schema version: the highest migration
// applied, 0 for a new database.
func (s *DB) Version(ctx context.Context) (int, error) {
	applied, err := s.appliedVersions(ctx)
	if err != nil {
		return 0, err
	}
	return maxVersion(applied), nil
}

func maxVersion(applied map[int]bool) int {
	v := 0
	for a := range applied {
		v = max(v, a)
	}
	return v
}

// CheckMigrated returns nil when every migration this binary knows is
// applied and the database knows none newer; otherwise a *SchemaError
// (or EUNAVAILABLE when the database cannot be read). Servers call it at
// start instead of migrating themselves.
func (s *DB) CheckMigrated(ctx context.Context) error {
	applied, err := s.appliedVersions(ctx)
	if err != nil {
		return err
	}
	cur := maxVersion(applied)
	if cur > SchemaVersion {
		return &SchemaError{Current: cur, Want: SchemaVersion}
	}
	for v := 1; v <= SchemaVersion; v++ {
		if !applied[v] {
			return &SchemaError{Current: cur, Want: SchemaVersion}
		}
	}
	return nil
}

// Migrate applies the migrations the database lacks, each in its own
// transaction together with its schema_migrations row, and returns the
// versions it applied (none when the database was up to date). Concurrent
// Migrate calls, from this or another process, apply each migration once:
// the transactions take SQLite's write lock first and re-check. A database
// newer than SchemaVersion is left alone and reported with a *SchemaError.
func (s *DB) Migrate(ctx context.Context) (applied []int, err error) {
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		return nil, err
	}
	if err := s.createMigrationsTable(ctx); err != nil {
		return nil, err
	}
	done, err := s.appliedVersions(ctx)
	if err != nil {
		return nil, err
	}
	if cur := maxVersion(done); cur > SchemaVersion {
		return nil, &SchemaError{Current: cur, Want: SchemaVersion}
	}
	for _, m := range ms {
		if done[m.Version] {
			continue
		}
		ok, err := s.apply(ctx, m)
		if err != nil {
			return applied, err
		}
		if ok {
			applied = append(applied, m.Version)
		}
	}
	return applied, nil
}

// migrationLock is the PostgreSQL advisory lock that serialises migrators
// (an arbitrary constant of this schema).
const migrationLock = 7061636173

// createMigrationsTable creates schema_migrations if it is missing. On
// PostgreSQL two concurrent CREATE TABLE IF NOT EXISTS can collide, so
// migrators take the migration lock first.
func (s *DB) createMigrationsTable(ctx context.Context) error {
	if s.dialect != DriverPostgres {
		if _, err := s.db.ExecContext(ctx, createMigrationsTable); err != nil {
			return dbError(err, "create schema_migrations")
		}
		return nil
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return dbError(err, "begin migration")
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, migrationLock); err != nil {
		return dbError(err, "lock for migration")
	}
	if _, err := tx.ExecContext(ctx, createMigrationsTable); err != nil {
		return dbError(err, "create schema_migrations")
	}
	return dbError(tx.Commit(), "create schema_migrations")
}

// apply runs one migration unless another migrator got there first.
func (s *DB) apply(ctx context.Context, m migration) (bool, error) {
	tx, err := s.db.BeginTxx(ctx, nil) // SQLite: BEGIN IMMEDIATE (see the DSN) holds the write lock
	if err != nil {
		return false, dbError(err, "begin migration")
	}
	defer tx.Rollback()
	if s.dialect == DriverPostgres {
		// Serialise migrators until this transaction ends.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, migrationLock); err != nil {
			return false, dbError(err, "lock for migration")
		}
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
		return false, dbError(err, "read schema version")
	}
	if n > 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return false, fmt.Errorf("migration %s: %w", m.Name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Name, s.now().UnixMilli()); err != nil {
		return false, dbError(err, "record migration")
	}
	if err := tx.Commit(); err != nil {
		return false, dbError(err, "commit migration")
	}
	return true, nil
}
