package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kokorotts/kokoro-tts/pkg/sqlstore"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

func TestParseDSN(t *testing.T) {
	tests := []struct {
		dsn     string
		path    string
		wantErr string
	}{
		{dsn: "sqlite:data/kokoro-tts.db", path: "data/kokoro-tts.db"},
		{dsn: "sqlite:/var/lib/kokoro-tts/db.sqlite", path: "/var/lib/kokoro-tts/db.sqlite"},
		{dsn: "sqlite://data/kokoro-tts.db", path: "data/kokoro-tts.db"},
		{dsn: "sqlite:///var/lib/kokoro-tts/db.sqlite", path: "/var/lib/kokoro-tts/db.sqlite"},
		{dsn: "SQLite:./data//x.db", path: "data/x.db"},
		{dsn: "  sqlite:x.db ", path: "x.db"},
		{dsn: "sqlite:data/no-extension", path: "data/no-extension"},
		{dsn: "data/kokoro-tts.db", path: "data/kokoro-tts.db"},
		{dsn: "/abs/kokoro.sqlite", path: "/abs/kokoro.sqlite"},
		{dsn: "x.SQLITE3", path: "x.SQLITE3"},
		{dsn: "sqlite:my dir/50%.db", path: "my dir/50%.db"},

		{dsn: "", wantErr: "empty"},
		{dsn: "sqlite:", wantErr: "no file path"},
		{dsn: "sqlite://", wantErr: "no file path"},
		{dsn: "postgres://user:secret@db:5432/tts?sslmode=require", path: "postgres://db:5432/tts"},
		{dsn: "postgresql://user:secret@db/tts", path: "postgres://db/tts"},
		{dsn: "postgres://user:secret@/tts?host=/var/run/postgresql", path: "postgres:///tts"},
		{dsn: "postgres://user:secret@db:5432", wantErr: "names no database"},
		{dsn: "postgres://user:secret@db:5432/", wantErr: "names no database"},
		{dsn: "postgres://user:secret@/tts", wantErr: "no host"},
		{dsn: "postgres://user:se%zzcret@db/tts", wantErr: "does not parse"},
		{dsn: "postgres:host=db user=u password=secret", wantErr: "use a URL"},
		{dsn: "mysql://user:secret@db/tts", wantErr: `unsupported database scheme "mysql"`},
		{dsn: "data/kokoro-tts.txt", wantErr: "unsupported database DSN"},
		{dsn: "sqlite::memory:", wantErr: "in-memory"},
		{dsn: "sqlite:file:x.db", wantErr: "in-memory and file: URI"},
		{dsn: "sqlite:x.db?_busy_timeout=1", wantErr: "query parameters"},
		{dsn: "sqlite:x#y.db", wantErr: "query parameters"},
	}
	for _, tt := range tests {
		t.Run(tt.dsn, func(t *testing.T) {
			src, err := sqlstore.ParseDSN(tt.dsn)
			path := src.Name // the SQLite path, or PostgreSQL without credentials
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseDSN(%q) = %q, %v; want error containing %q", tt.dsn, path, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("error repeats the password: %v", err)
				}
				return
			}
			if err != nil || path != tt.path {
				t.Fatalf("ParseDSN(%q) = %q, %v; want %q", tt.dsn, path, err, tt.path)
			}
			if strings.Contains(path, "secret") {
				t.Fatalf("the name for logs holds the password: %q", path)
			}
			if strings.HasPrefix(tt.path, "postgres") != (src.Driver == sqlstore.DriverPostgres) || (src.Driver == sqlstore.DriverPostgres && src.URL != strings.TrimSpace(tt.dsn)) {
				t.Fatalf("ParseDSN(%q) = %+v", tt.dsn, src)
			}
		})
	}
}

func TestOpenCreatesDirectory(t *testing.T) {
	// A path with characters that need escaping in a file: URI.
	path := filepath.Join(t.TempDir(), "a b", "50% c", "jobs.db")
	db := open(t, "sqlite:"+path, sqlstore.Options{})
	if db.Path() != path {
		t.Fatalf("Path() = %q, want %q", db.Path(), path)
	}
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file not at the path given: %v", err)
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Fatalf("no WAL file beside the database: %v", err)
	}
}

func TestOpenRelativePath(t *testing.T) {
	t.Chdir(t.TempDir())
	db := open(t, "sqlite:data/kokoro-tts.db", sqlstore.Options{})
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("data/kokoro-tts.db"); err != nil {
		t.Fatal(err)
	}
}

func TestOpenNoCreate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "jobs.db")
	_, err := sqlstore.Open(context.Background(), "sqlite:"+path, sqlstore.Options{NoCreate: true})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open(NoCreate) of a missing file: %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sub")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open(NoCreate) created the directory: %v", err)
	}
	open(t, "sqlite:"+path, sqlstore.Options{}).Close()
	open(t, "sqlite:"+path, sqlstore.Options{NoCreate: true})
}

// TestOpenPostgresUnreachable: a PostgreSQL server that does not answer is
// an error that names the server but never the password.
func TestOpenPostgresUnreachable(t *testing.T) {
	port := freePort(t)
	_, err := sqlstore.Open(context.Background(), "postgres://kokoro:s3cr3t-pw@127.0.0.1:"+port+"/tts?connect_timeout=2", sqlstore.Options{})
	if err == nil || !strings.Contains(err.Error(), "postgres://127.0.0.1:"+port+"/tts") {
		t.Fatalf("Open(unreachable postgres) = %v", err)
	}
	if strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Fatalf("the error holds the password: %v", err)
	}
}

func TestOpenFailsOnUnusableFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dir.db")
	if err := os.Mkdir(path, 0o755); err != nil { // a directory where the file should be
		t.Fatal(err)
	}
	if _, err := sqlstore.Open(context.Background(), "sqlite:"+path, sqlstore.Options{}); err == nil {
		t.Fatal("Open of a directory succeeded")
	}
}

func TestPing(t *testing.T) {
	s, _ := newStore(t)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	wantCode(t, s.Ping(context.Background()), tts.EUNAVAILABLE)
}

// TestClosedDB: every method of a closed store reports EUNAVAILABLE.
func TestClosedDB(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	j := create(t, s, newJob("hello"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"CreateJob": func() error { _, _, err := s.CreateJob(ctx, newJob("x")); return err },
		"DeleteJob": func() error { return s.DeleteJob(ctx, j.ID) },
		"FindJob":   func() error { _, err := s.FindJob(ctx, j.ID); return err },
		"ListJobs":  func() error { _, err := s.ListJobs(ctx, tts.JobFilter{}); return err },
		"StartAttempt": func() error {
			_, err := s.StartAttempt(ctx, j.ID, "e", "cpu")
			return err
		},
		"CompleteJob":   func() error { return s.CompleteJob(ctx, j.ID, 1, tts.Audio{Key: "k"}) },
		"FailJob":       func() error { return s.FailJob(ctx, j.ID, 0, "x") },
		"RequestCancel": func() error { _, err := s.RequestCancel(ctx, j.ID); return err },
		"CancelJob":     func() error { return s.CancelJob(ctx, j.ID) },
		"RequeueJob":    func() error { return s.RequeueJob(ctx, j.ID) },
		"StaleJobs":     func() error { _, err := s.StaleJobs(ctx, time.Now(), 10); return err },
		"CountByStatus": func() error { _, err := s.CountByStatus(ctx); return err },
		"Ping":          func() error { return s.Ping(ctx) },
		"CheckMigrated": func() error { return s.CheckMigrated(ctx) },
		"Migrate":       func() error { _, err := s.Migrate(ctx); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) { wantCode(t, call(), tts.EUNAVAILABLE) })
	}
}

// TestLockedBeyondBusyTimeout: a write lock held by another connection for
// longer than the busy timeout makes writes fail with EUNAVAILABLE, and
// they work again once it is released.
func TestLockedBeyondBusyTimeout(t *testing.T) {
	sqliteOnly(t, "SQLite's busy timeout and write lock")
	d := dsn(t)
	s := open(t, d, sqlstore.Options{BusyTimeout: 20 * time.Millisecond})
	ctx := context.Background()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	src, _ := sqlstore.ParseDSN(d)
	other, err := sql.Open("sqlite3", src.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.CreateJob(ctx, newJob("blocked"))
	wantCode(t, err, tts.EUNAVAILABLE)
	// Readers are not blocked by a writer in WAL mode.
	if _, err := s.CountByStatus(ctx); err != nil {
		t.Fatalf("read during a write lock: %v", err)
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateJob(ctx, newJob("unblocked")); err != nil {
		t.Fatal(err)
	}
}
