package sqlstore_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
	"github.com/kokorotts/kokoro-tts/pkg/sqlstore"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// onPostgres reports whether this run uses PostgreSQL (KOKORO_TEST_DATABASE=
// postgres, set by scripts/test.sh for a second run): every test then gets
// a schema of its own in the server KOKORO_TEST_POSTGRES names.
func onPostgres() bool { return testsvc.OnPostgres() }

// sqliteOnly skips a test of SQLite's own behaviour in the PostgreSQL run.
func sqliteOnly(t testing.TB, what string) {
	t.Helper()
	if onPostgres() {
		t.Skip("tests " + what + ": SQLite only")
	}
}

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// dsn returns a DSN for a new, empty database: a file in a temp dir, or a
// schema of its own on PostgreSQL (see onPostgres).
func dsn(t testing.TB) string { return testsvc.DatabaseURL(t) }

// rawDB opens a connection of the test's own to the database d names,
// beside the store (to break things behind its back).
func rawDB(t testing.TB, d string) *sqlx.DB {
	t.Helper()
	src, err := sqlstore.ParseDSN(d)
	if err != nil {
		t.Fatal(err)
	}
	conn := src.Path
	if src.Driver == sqlstore.DriverPostgres {
		conn = src.URL
	}
	raw, err := sqlx.Open(src.Driver, conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

// freePort returns a TCP port nothing listens on (for now).
func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// open opens a database without migrating it.
func open(t testing.TB, dsn string, opts sqlstore.Options) *sqlstore.DB {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newStore returns a migrated store on a fresh database and its clock.
func newStore(t testing.TB) (*sqlstore.DB, *clock) {
	t.Helper()
	c := newClock()
	db := open(t, dsn(t), sqlstore.Options{Now: c.Now})
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return db, c
}

// newJob returns a valid job to create.
func newJob(text string) *tts.Job {
	return &tts.Job{
		Status:      tts.StatusQueued,
		Text:        text,
		Voice:       "af_heart",
		Speed:       1.0,
		Format:      tts.FormatMP3,
		Queue:       tts.QueueInteractive,
		MaxAttempts: 3,
		RequestHash: "hash-" + text,
	}
}

func create(t testing.TB, s *sqlstore.DB, j *tts.Job) *tts.Job {
	t.Helper()
	got, created, err := s.CreateJob(context.Background(), j)
	if err != nil || !created {
		t.Fatalf("CreateJob: created=%v err=%v", created, err)
	}
	return got
}

func find(t testing.TB, s *sqlstore.DB, id string) *tts.Job {
	t.Helper()
	j, err := s.FindJob(context.Background(), id)
	if err != nil {
		t.Fatalf("FindJob(%s): %v", id, err)
	}
	return j
}

// wantCode fails unless err carries the code ("" for no error).
func wantCode(t testing.TB, err error, code string) {
	t.Helper()
	if got := tts.ErrorCode(err); got != code {
		t.Fatalf("error code = %q, want %q (err: %v)", got, code, err)
	}
	var te *tts.Error
	if err != nil && !errors.As(err, &te) {
		t.Fatalf("error %v is not a *tts.Error", err)
	}
}
