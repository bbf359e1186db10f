// Package sqlstore is the SQL implementation of tts.JobStore. Today it runs
// on SQLite (github.com/mattn/go-sqlite3, cgo); the schema and queries are
// kept portable so a PostgreSQL driver can follow without a new schema.
//
// # DSN
//
// Open takes a DSN in one of these forms:
//
//	sqlite:PATH             e.g. sqlite:data/kokoro-tts.db, sqlite:/var/lib/kokoro-tts/db.sqlite
//	sqlite://PATH           e.g. sqlite://data/kokoro-tts.db (relative), sqlite:///var/lib/kokoro-tts/db.sqlite (absolute)
//	PATH                    a bare path ending in .db, .sqlite or .sqlite3
//
// PATH is a file path, relative to the working directory unless absolute.
// Its parent directory is created when missing. Query parameters and
// in-memory databases are refused: the store sets its own connection
// parameters, and each pooled connection to ":memory:" would be a different
// database. postgres:// and postgresql:// are recognised and refused with
// "PostgreSQL is not supported yet".
//
// Every pooled connection is opened with journal_mode=WAL,
// busy_timeout (Options.BusyTimeout, 5 s by default), foreign_keys=on,
// synchronous=NORMAL and BEGIN IMMEDIATE transactions, passed as go-sqlite3
// DSN parameters so that a connection the pool opens later has them too.
//
// # Schema
//
// The schema is a sequence of embedded migrations (migrations/NNNN_name.sql)
// recorded in the schema_migrations table. Migrate applies the missing ones;
// CheckMigrated is what a server calls at start to refuse a database that is
// behind or ahead of SchemaVersion. Timestamps are stored as BIGINT unix
// milliseconds and booleans as SMALLINT 0/1, so the SQL is valid for
// PostgreSQL too.
//
// # Errors
//
// Methods return *tts.Error. A failure of the database itself (busy beyond
// the busy timeout, closed, I/O, disk full, ctx expired) is EUNAVAILABLE with
// the driver error as its cause; a violated constraint that the store did not
// expect is EINTERNAL.
package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" database/sql driver
)

// Defaults for Options' zero values.
const (
	DefaultMaxOpenConns = 4
	DefaultBusyTimeout  = 5 * time.Second
)

// Options tunes Open. The zero value is ready to use.
type Options struct {
	// Now is the clock used for every timestamp the store writes; nil means
	// time.Now. Tests pass a fake clock.
	Now func() time.Time
	// MaxOpenConns bounds the connection pool (DefaultMaxOpenConns when
	// zero). SQLite serialises writers whatever the pool size; the extra
	// connections let readers run beside a writer in WAL mode.
	MaxOpenConns int
	// BusyTimeout is how long a statement waits for another connection's
	// write lock before failing with EUNAVAILABLE (DefaultBusyTimeout when
	// zero).
	BusyTimeout time.Duration
	// NoCreate makes Open fail when the database file does not exist instead
	// of creating it (and its directory). Health checks use it so that they
	// never leave an empty database behind.
	NoCreate bool
}

// DB is a job store on an SQL database. It implements tts.JobStore and is
// safe for concurrent use.
type DB struct {
	db   *sqlx.DB
	path string
	now  func() time.Time
}

// ParseDSN checks a DSN (see the package documentation) and returns the
// SQLite file path it names. Its errors never repeat the DSN itself, which
// for other databases may hold a password.
func ParseDSN(dsn string) (path string, err error) {
	dsn = strings.TrimSpace(dsn)
	lower := strings.ToLower(dsn)
	switch {
	case dsn == "":
		return "", errors.New("database DSN is empty: use sqlite:PATH")
	case strings.HasPrefix(lower, "postgres://"), strings.HasPrefix(lower, "postgresql://"), strings.HasPrefix(lower, "postgres:"):
		return "", errors.New("PostgreSQL is not supported yet: use sqlite:PATH")
	case strings.HasPrefix(lower, "sqlite://"):
		path = dsn[len("sqlite://"):]
	case strings.HasPrefix(lower, "sqlite:"):
		path = dsn[len("sqlite:"):]
	default:
		if i := strings.Index(dsn, "://"); i > 0 {
			return "", fmt.Errorf("unsupported database scheme %q: use sqlite:PATH", dsn[:i])
		}
		ext := strings.ToLower(filepath.Ext(dsn))
		if ext != ".db" && ext != ".sqlite" && ext != ".sqlite3" {
			return "", errors.New("unsupported database DSN: use sqlite:PATH, sqlite://PATH or a path ending in .db or .sqlite")
		}
		path = dsn
	}
	switch {
	case path == "":
		return "", errors.New("database DSN has no file path: use sqlite:PATH")
	case path == ":memory:" || strings.HasPrefix(path, "file:") || strings.Contains(path, "mode=memory"):
		return "", errors.New("in-memory and file: URI SQLite databases are not supported: use sqlite:PATH with a file path")
	case strings.ContainsAny(path, "?#"):
		return "", errors.New("database DSN must not have query parameters or '?'/'#' in its path: the store sets its own SQLite parameters")
	case strings.ContainsRune(path, 0):
		return "", errors.New("database path contains a NUL byte")
	}
	return filepath.Clean(path), nil
}

// Open opens (creating if needed, unless opts.NoCreate) the database named by
// dsn and checks that it answers. It does not migrate: call Migrate or
// CheckMigrated.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	path, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if opts.NoCreate {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("open database: %w", err)
		}
	} else if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create database directory: %w", err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxOpenConns <= 0 {
		opts.MaxOpenConns = DefaultMaxOpenConns
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = DefaultBusyTimeout
	}
	db, err := sqlx.Open("sqlite3", sqliteURI(path, opts.BusyTimeout))
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	db.SetMaxOpenConns(opts.MaxOpenConns)
	// Keep the connections: opening one re-runs the pragmas, and WAL
	// checkpoints are cheaper with a live connection.
	db.SetMaxIdleConns(opts.MaxOpenConns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return &DB{db: db, path: path, now: opts.Now}, nil
}

// sqliteURI builds the go-sqlite3 DSN. The file: URI form lets a path
// contain any character (it is percent-encoded); SQLite ignores the
// underscore parameters, which go-sqlite3 turns into per-connection pragmas.
func sqliteURI(path string, busy time.Duration) string {
	u := url.URL{Path: path}
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", fmt.Sprint(busy.Milliseconds()))
	q.Set("_foreign_keys", "on")
	q.Set("_synchronous", "NORMAL")
	q.Set("_txlock", "immediate")
	// url.URL turns a relative path with a colon in its first segment
	// into "./seg", which is still the same file.
	return "file:" + u.EscapedPath() + "?" + q.Encode()
}

// Path returns the database file's path, for logs.
func (s *DB) Path() string { return s.path }

// Close closes the database. Calls after Close fail with EUNAVAILABLE.
func (s *DB) Close() error { return s.db.Close() }

// Ping checks that the database answers (EUNAVAILABLE).
func (s *DB) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return dbError(err, "ping")
	}
	return nil
}
