// Package sqlstore is the SQL implementation of tts.JobStore, on SQLite
// (github.com/mattn/go-sqlite3, cgo; the default) or PostgreSQL
// (github.com/jackc/pgx/v5). One schema and one set of queries serve both:
// queries are written with ? placeholders and rebound for PostgreSQL, and
// the schema uses only types both know.
//
// # DSN
//
// Open takes a DSN in one of these forms:
//
//	sqlite:PATH             e.g. sqlite:data/kokoro-tts.db, sqlite:/var/lib/kokoro-tts/db.sqlite
//	sqlite://PATH           e.g. sqlite://data/kokoro-tts.db (relative), sqlite:///var/lib/kokoro-tts/db.sqlite (absolute)
//	PATH                    a bare path ending in .db, .sqlite or .sqlite3
//	postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=...   (or postgresql://; any pgx connection parameter)
//
// A SQLite PATH is a file path, relative to the working directory unless
// absolute. Its parent directory is created when missing. Query parameters
// and in-memory databases are refused: the store sets its own connection
// parameters, and each pooled connection to ":memory:" would be a different
// database.
//
// SQLite is one file: the API, the workers and migrate must share a host.
// PostgreSQL lets workers on other machines share the job database (scale
// out); they also need S3 storage.
//
// Every pooled SQLite connection is opened with journal_mode=WAL,
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
// milliseconds and booleans as SMALLINT 0/1, so the same SQL is valid for
// both databases. Job ids (UUIDv7 text) are compared and ordered as text: a
// PostgreSQL database should use the "C" collation or any whose order of
// lower-case hex digits and '-' is the byte order (every common one is).
//
// # Errors
//
// Methods return *tts.Error. A failure of the database itself (busy beyond
// the busy timeout, closed, unreachable, I/O, disk full, ctx expired) is
// EUNAVAILABLE with the driver error as its cause; a violated constraint that
// the store did not expect is EINTERNAL.
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

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/jmoiron/sqlx"
	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" database/sql driver
)

// Defaults for Options' zero values.
const (
	DefaultMaxOpenConns         = 4  // SQLite
	DefaultPostgresMaxOpenConns = 10 // PostgreSQL
	DefaultBusyTimeout          = 5 * time.Second
)

// Options tunes Open. The zero value is ready to use.
type Options struct {
	// Now is the clock used for every timestamp the store writes; nil means
	// time.Now. Tests pass a fake clock.
	Now func() time.Time
	// MaxOpenConns bounds the connection pool (DefaultMaxOpenConns, or
	// DefaultPostgresMaxOpenConns, when zero). SQLite serialises writers
	// whatever the pool size; the extra connections let readers run beside
	// a writer in WAL mode.
	MaxOpenConns int
	// BusyTimeout is how long a SQLite statement waits for another
	// connection's write lock before failing with EUNAVAILABLE
	// (DefaultBusyTimeout when zero). PostgreSQL waits for row locks.
	BusyTimeout time.Duration
	// NoCreate makes Open fail when the SQLite database file does not exist
	// instead of creating it (and its directory). Health checks use it so
	// that they never leave an empty database behind.
	NoCreate bool
}

// DB is a job store on an SQL database. It implements tts.JobStore and is
// safe for concurrent use.
type DB struct {
	db      rebinding
	dialect string // DriverSQLite or DriverPostgres
	name    string // for logs: the SQLite path, or PostgreSQL's host and database
	now     func() time.Time
}

// Database drivers (Source.Driver).
const (
	DriverSQLite   = "sqlite3"
	DriverPostgres = "pgx"
)

// Source is a parsed DSN.
type Source struct {
	Driver string // DriverSQLite or DriverPostgres
	// Path is the SQLite file (cleaned).
	Path string
	// URL is the PostgreSQL connection URL as given (it may hold a
	// password: never log it; Name is safe).
	URL string
	// Name is what logs may show: the SQLite path, or PostgreSQL's
	// host/database without credentials.
	Name string
}

// ParseDSN checks a DSN (see the package documentation). Its errors never
// repeat the DSN itself, which for PostgreSQL may hold a password.
func ParseDSN(dsn string) (Source, error) {
	dsn = strings.TrimSpace(dsn)
	lower := strings.ToLower(dsn)
	var path string
	switch {
	case dsn == "":
		return Source{}, errors.New("database DSN is empty: use sqlite:PATH or postgres://USER:PASSWORD@HOST/DATABASE")
	case strings.HasPrefix(lower, "postgres://"), strings.HasPrefix(lower, "postgresql://"):
		u, err := url.Parse(dsn)
		if err != nil {
			return Source{}, errors.New("the PostgreSQL URL does not parse: use postgres://USER:PASSWORD@HOST:PORT/DATABASE (percent-encode special characters in the password)")
		}
		if u.Host == "" && u.Query().Get("host") == "" {
			return Source{}, errors.New("the PostgreSQL URL has no host: use postgres://USER:PASSWORD@HOST:PORT/DATABASE")
		}
		db := strings.TrimPrefix(u.Path, "/")
		if db == "" {
			return Source{}, errors.New("the PostgreSQL URL names no database: use postgres://USER:PASSWORD@HOST:PORT/DATABASE")
		}
		return Source{Driver: DriverPostgres, URL: dsn, Name: "postgres://" + u.Host + "/" + db}, nil
	case strings.HasPrefix(lower, "postgres:"):
		return Source{}, errors.New("unsupported PostgreSQL DSN: use a URL, postgres://USER:PASSWORD@HOST:PORT/DATABASE")
	case strings.HasPrefix(lower, "sqlite://"):
		path = dsn[len("sqlite://"):]
	case strings.HasPrefix(lower, "sqlite:"):
		path = dsn[len("sqlite:"):]
	default:
		if i := strings.Index(dsn, "://"); i > 0 {
			return Source{}, fmt.Errorf("unsupported database scheme %q: use sqlite:PATH or postgres://", dsn[:i])
		}
		ext := strings.ToLower(filepath.Ext(dsn))
		if ext != ".db" && ext != ".sqlite" && ext != ".sqlite3" {
			return Source{}, errors.New("unsupported database DSN: use sqlite:PATH, sqlite://PATH, a path ending in .db or .sqlite, or postgres://")
		}
		path = dsn
	}
	switch {
	case path == "":
		return Source{}, errors.New("database DSN has no file path: use sqlite:PATH")
	case path == ":memory:" || strings.HasPrefix(path, "file:") || strings.Contains(path, "mode=memory"):
		return Source{}, errors.New("in-memory and file: URI SQLite databases are not supported: use sqlite:PATH with a file path")
	case strings.ContainsAny(path, "?#"):
		return Source{}, errors.New("database DSN must not have query parameters or '?'/'#' in its path: the store sets its own SQLite parameters")
	case strings.ContainsRune(path, 0):
		return Source{}, errors.New("database path contains a NUL byte")
	}
	path = filepath.Clean(path)
	return Source{Driver: DriverSQLite, Path: path, Name: path}, nil
}

// Open opens (creating if needed, unless opts.NoCreate) the database named by
// dsn and checks that it answers. It does not migrate: call Migrate or
// CheckMigrated.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	src, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = DefaultBusyTimeout
	}
	var db *sqlx.DB
	switch src.Driver {
	case DriverPostgres:
		if opts.MaxOpenConns <= 0 {
			opts.MaxOpenConns = DefaultPostgresMaxOpenConns
		}
		db, err = sqlx.Open(DriverPostgres, src.URL)
	default:
		if opts.NoCreate {
			if _, err := os.Stat(src.Path); err != nil {
				return nil, fmt.Errorf("open database: %w", err)
			}
		} else if err := os.MkdirAll(filepath.Dir(src.Path), 0o750); err != nil {
			return nil, fmt.Errorf("create database directory: %w", err)
		}
		if opts.MaxOpenConns <= 0 {
			opts.MaxOpenConns = DefaultMaxOpenConns
		}
		db, err = sqlx.Open(DriverSQLite, sqliteURI(src.Path, opts.BusyTimeout))
	}
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", src.Name, err)
	}
	db.SetMaxOpenConns(opts.MaxOpenConns)
	// Keep the connections: opening one re-runs the pragmas, and WAL
	// checkpoints are cheaper with a live connection.
	db.SetMaxIdleConns(opts.MaxOpenConns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", src.Name, redact(err, src.URL))
	}
	return &DB{db: rebinding{db}, dialect: src.Driver, name: src.Name, now: opts.Now}, nil
}

// redact removes the connection URL (and its password) from a driver error.
func redact(err error, secretURL string) error {
	if secretURL == "" {
		return err
	}
	msg := err.Error()
	if u, perr := url.Parse(secretURL); perr == nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "***")
		}
	}
	return errors.New(strings.ReplaceAll(msg, secretURL, "***"))
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

// Path returns what logs show of the database: the SQLite file's path, or
// PostgreSQL's host and database (never credentials).
func (s *DB) Path() string { return s.name }

// Dialect returns the driver: DriverSQLite or DriverPostgres.
func (s *DB) Dialect() string { return s.dialect }

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
