package sqlstore

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/uuid"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

func openMigrated(t *testing.T) *DB {
	t.Helper()
	s, err := Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "x.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPragmasOnEveryConnection holds every pooled connection at once and
// checks each has the pragmas the DSN asks for.
func TestPragmasOnEveryConnection(t *testing.T) {
	s := openMigrated(t)
	ctx := context.Background()
	for i := range DefaultMaxOpenConns {
		conn, err := s.db.Connx(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var journal string
		var busy, fk, sync int
		if err := conn.QueryRowxContext(ctx, "PRAGMA journal_mode").Scan(&journal); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRowxContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRowxContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRowxContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
			t.Fatal(err)
		}
		if journal != "wal" || busy != 5000 || fk != 1 || sync != 1 {
			t.Errorf("connection %d: journal_mode=%s busy_timeout=%d foreign_keys=%d synchronous=%d; want wal 5000 1 1(NORMAL)",
				i, journal, busy, fk, sync)
		}
	}
	if n := s.db.Stats().OpenConnections; n != DefaultMaxOpenConns {
		t.Errorf("open connections = %d, want %d", n, DefaultMaxOpenConns)
	}
}

func TestEmbeddedMigrations(t *testing.T) {
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != SchemaVersion {
		t.Fatalf("%d embedded migrations, SchemaVersion = %d: bump SchemaVersion with every new migration", len(ms), SchemaVersion)
	}
	for _, m := range ms {
		if strings.Contains(strings.ToUpper(m.SQL), "AUTOINCREMENT") || strings.Contains(strings.ToUpper(m.SQL), "WITHOUT ROWID") {
			t.Errorf("%s uses SQLite-only syntax", m.Name)
		}
	}
}

func TestLoadMigrationsRejectsBadSets(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	tests := map[string]fstest.MapFS{
		"gap":       {"migrations/0001_a.sql": file("x"), "migrations/0003_c.sql": file("x")},
		"duplicate": {"migrations/0001_a.sql": file("x"), "migrations/001_b.sql": file("x")},
		"bad name":  {"migrations/init.sql": file("x")},
		"zero":      {"migrations/0000_a.sql": file("x")},
		"not first": {"migrations/0002_b.sql": file("x")},
	}
	for name, fsys := range tests {
		if ms, err := loadMigrations(fsys); err == nil {
			t.Errorf("%s: loadMigrations = %v, want error", name, ms)
		}
	}
	ms, err := loadMigrations(fstest.MapFS{"migrations/0002_b.sql": file("b"), "migrations/0001_a.sql": file("a")})
	if err != nil || len(ms) != 2 || ms[0].SQL != "a" || ms[1].Version != 2 || ms[1].Name != "0002_b.sql" {
		t.Fatalf("loadMigrations = %+v, %v", ms, err)
	}
}

// queryPlan returns SQLite's plan for q, one step per element.
func queryPlan(t *testing.T, s *DB, q string, args ...any) string {
	t.Helper()
	rows, err := s.db.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "; ")
}

// TestQueryPlans checks that the reconciler's and the filtered list's
// queries search an index instead of scanning the table, and that once
// SQLite has statistics of a typical table (many finished jobs, few live
// ones) the reconciler's query reads the partial index in order.
func TestQueryPlans(t *testing.T) {
	s := openMigrated(t)
	ctx := context.Background()
	listQ, listArgs := listQuery(tts.JobFilter{Status: tts.StatusQueued, Before: "z", Limit: 10}, "LIKE")
	staleArgs := []any{time.Now().UnixMilli(), 10}
	for name, p := range map[string]string{
		"stale":          queryPlan(t, s, staleJobsQuery, staleArgs...),
		"list by status": queryPlan(t, s, listQ, listArgs...),
	} {
		if !strings.Contains(p, "USING INDEX") || strings.Contains(p, "SCAN jobs") {
			t.Errorf("%s: plan %q does not search an index", name, p)
		}
	}
	if p := queryPlan(t, s, listQ, listArgs...); !strings.Contains(p, "jobs_status_id") || strings.Contains(p, "TEMP B-TREE") {
		t.Errorf("list by status: plan %q does not read jobs_status_id in order", p)
	}

	for i := range 200 {
		j := &tts.Job{Text: "t", Voice: "af_heart", Speed: 1, Format: tts.FormatMP3, Queue: tts.QueueBatch, MaxAttempts: 1}
		j, _, err := s.CreateJob(ctx, j)
		if err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			continue // a few stay queued
		}
		if _, err := s.StartAttempt(ctx, j.ID, "e", "cpu"); err != nil {
			t.Fatal(err)
		}
		if err := s.CompleteJob(ctx, j.ID, 1, tts.Audio{Key: j.ID}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.db.ExecContext(ctx, "ANALYZE"); err != nil {
		t.Fatal(err)
	}
	if p := queryPlan(t, s, staleJobsQuery, staleArgs...); !strings.Contains(p, "jobs_live_updated_at") || strings.Contains(p, "TEMP B-TREE") {
		t.Errorf("stale with statistics: plan %q does not read jobs_live_updated_at in order", p)
	}
}

func TestSQLiteURIEscapesPath(t *testing.T) {
	u := sqliteURI("/tmp/a b/50%.db", 5*time.Second)
	if !strings.HasPrefix(u, "file:/tmp/a%20b/50%25.db?") {
		t.Fatalf("sqliteURI = %q", u)
	}
	for _, p := range []string{"_journal_mode=WAL", "_busy_timeout=5000", "_foreign_keys=on", "_synchronous=NORMAL", "_txlock=immediate"} {
		if !strings.Contains(u, p) {
			t.Errorf("sqliteURI = %q lacks %s", u, p)
		}
	}
}

// TestHotQueryPlans: the cache lookup, a user's own listing and the
// dashboard's statistics use their indexes without sorting (a soak found
// FindCached scanning every succeeded job).
func TestHotQueryPlans(t *testing.T) {
	s := openMigrated(t)
	own, ownArgs := listQuery(tts.JobFilter{UserID: "u", Before: "z", Limit: 21}, "LIKE")
	for _, c := range []struct {
		name, query, index string
		args               []any
	}{
		{"FindCached", `SELECT id FROM jobs WHERE cache_key = ? AND status = 'succeeded' ORDER BY id DESC LIMIT 1`, "jobs_cache_key", []any{"k"}},
		{"own jobs", own, "jobs_user_id", ownArgs},
		{"stats window", `SELECT COUNT(*) FROM jobs WHERE id >= ? AND status = 'failed' AND finished_at >= ?`, "id>?", []any{idFloor(time.Now()), 0}},
	} {
		if p := queryPlan(t, s, c.query, c.args...); !strings.Contains(p, c.index) || strings.Contains(p, "TEMP B-TREE") {
			t.Errorf("%s: plan %q, want it to use %s without sorting", c.name, p, c.index)
		}
	}
}

// TestIDFloor: idFloor(t) sorts after every id made before t and at or
// before every id made from t on.
func TestIDFloor(t *testing.T) {
	now := time.Now()
	before, at := uuidAt(t, now.Add(-time.Millisecond)), uuidAt(t, now)
	if f := idFloor(now); !(before < f && f <= at) {
		t.Fatalf("idFloor = %s, want between %s and %s", f, before, at)
	}
}

func uuidAt(t *testing.T, at time.Time) string {
	t.Helper()
	u, err := uuid.NewV7FromReader(bytes.NewReader(make([]byte, 16)))
	if err != nil {
		t.Fatal(err)
	}
	ms := uint64(at.UnixMilli())
	for i := range 6 {
		u[i] = byte(ms >> (40 - 8*i))
	}
	return u.String()
}
