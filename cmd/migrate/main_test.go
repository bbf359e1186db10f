package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/caarlos0/env/v11"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
	"github.com/kokorotts/kokoro-tts/pkg/sqlstore"
)

// runMigrate runs the command and returns its exit code and output.
func runMigrate(t *testing.T, environ map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, environ, &out, &errOut)
	return code, out.String(), errOut.String()
}

// jsonLogs decodes JSON log lines.
func jsonLogs(t *testing.T, s string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", sc.Text(), err)
		}
		recs = append(recs, rec)
	}
	return recs
}

func TestMigrateThenCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db", "tts.db")
	environ := map[string]string{"DATABASE_URL": "sqlite:" + path, "LOG_FORMAT": "json"}

	// -check never creates the database.
	code, _, stderr := runMigrate(t, environ, "-check")
	if code != 1 || !strings.Contains(stderr, `database does not exist: run \"migrate\"`) {
		t.Fatalf("-check on a missing database: exit %d, stderr %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Fatalf("-check created %s (%v)", filepath.Dir(path), err)
	}

	code, _, stderr = runMigrate(t, environ)
	if code != 0 {
		t.Fatalf("migrate: exit %d, stderr %s", code, stderr)
	}
	recs := jsonLogs(t, stderr)
	if len(recs) != 1 || recs[0]["msg"] != "database migrated" || recs[0]["database"] != path ||
		!slices.Equal(toInts(recs[0]["applied"]), allVersions()) || recs[0]["schema_version"] != float64(sqlstore.SchemaVersion) {
		t.Fatalf("migrate logged %v", recs)
	}

	code, _, stderr = runMigrate(t, environ, "-check")
	if code != 0 || !strings.Contains(stderr, "database schema is up to date") {
		t.Fatalf("-check after migrate: exit %d, stderr %s", code, stderr)
	}

	// Running again applies nothing.
	code, _, stderr = runMigrate(t, environ)
	recs = jsonLogs(t, stderr)
	if code != 0 || len(recs) != 1 || len(toInts(recs[0]["applied"])) != 0 || recs[0]["applied"] == nil {
		t.Fatalf("second migrate: exit %d, logged %v", code, recs)
	}
}

func toInts(v any) []int {
	a, _ := v.([]any)
	var out []int
	for _, x := range a {
		f, _ := x.(float64)
		out = append(out, int(f))
	}
	return out
}

func TestCheckBehind(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tts.db")
	db, err := sqlstore.Open(context.Background(), "sqlite:"+path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, _, stderr := runMigrate(t, map[string]string{"DATABASE_URL": "sqlite:" + path}, "-check")
	want := fmt.Sprintf(`database is not migrated (schema version 0, want %d): run \"migrate\" (go run ./cmd/migrate)`, sqlstore.SchemaVersion)
	if code != 1 || !strings.Contains(stderr, want) || !strings.Contains(stderr, "level=ERROR") {
		t.Fatalf("-check on an empty database: exit %d, stderr %s; want %s", code, stderr, want)
	}
}

// TestMigratePostgres migrates a PostgreSQL database (a schema of its own in
// KOKORO_TEST_POSTGRES, which scripts/test.sh sets) and checks it.
func TestMigratePostgres(t *testing.T) {
	base := os.Getenv(testsvc.PostgresEnv)
	if base == "" {
		t.Skip(testsvc.PostgresEnv + " is not set (scripts/ensure-postgres.sh prints one)")
	}
	dbURL, schema, admin := testsvc.PostgresSchema(t, base)
	environ := map[string]string{"DATABASE_URL": dbURL, "LOG_FORMAT": "json"}
	code, _, stderr := runMigrate(t, environ, "-check")
	if code != 1 || !strings.Contains(stderr, "database is not migrated") {
		t.Fatalf("-check before migrating: exit %d, stderr %s", code, stderr)
	}
	if code, _, stderr = runMigrate(t, environ); code != 0 || !strings.Contains(stderr, "database migrated") {
		t.Fatalf("migrate: exit %d, stderr %s", code, stderr)
	}
	if code, _, stderr = runMigrate(t, environ, "-check"); code != 0 || !strings.Contains(stderr, "up to date") {
		t.Fatalf("-check after migrating: exit %d, stderr %s", code, stderr)
	}
	var n int
	if err := admin.Get(&n, `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'jobs'`, schema); err != nil || n != 1 {
		t.Fatalf("jobs table in %s: %d, %v", schema, n, err)
	}
}

func TestDefaultDatabase(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := runMigrate(t, map[string]string{"DATA_DIR": dir})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "kokoro-tts.db")); err != nil {
		t.Fatalf("DATA_DIR/kokoro-tts.db: %v", err)
	}

	t.Chdir(t.TempDir())
	code, _, stderr = runMigrate(t, nil)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join("data", "kokoro-tts.db")); err != nil {
		t.Fatalf("./data/kokoro-tts.db: %v", err)
	}
}

func TestBadConfiguration(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "x.db")
	tests := []struct {
		environ map[string]string
		want    string
	}{
		{map[string]string{"DATABASE_URL": "postgres://user:secret@db"}, "DATABASE_URL: the PostgreSQL URL names no database"},
		{map[string]string{"DATABASE_URL": "postgres://user:secret@127.0.0.1:1/tts?connect_timeout=2"}, "cannot open the database"},
		{map[string]string{"DATABASE_URL": "redis://localhost"}, `DATABASE_URL: unsupported database scheme \"redis\"`},
		{map[string]string{"DATABASE_URL": db, "LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		{map[string]string{"DATABASE_URL": db, "LOG_FORMAT": "xml"}, "LOG_FORMAT"},
	}
	for _, tt := range tests {
		code, _, stderr := runMigrate(t, tt.environ)
		if code != 1 || !strings.Contains(stderr, tt.want) || strings.Contains(stderr, "secret") {
			t.Errorf("%v: exit %d, stderr %s; want 1 and %q", tt.environ, code, stderr, tt.want)
		}
	}
	// JSON logging applies to configuration errors too.
	code, _, stderr := runMigrate(t, map[string]string{"DATABASE_URL": "postgres://x", "LOG_FORMAT": "json"})
	if recs := jsonLogs(t, stderr); code != 1 || len(recs) != 1 || recs[0]["level"] != "ERROR" {
		t.Errorf("JSON configuration error: exit %d, %v", code, recs)
	}
}

func TestFlags(t *testing.T) {
	code, stdout, _ := runMigrate(t, nil, "-version")
	if code != 0 || !strings.Contains(stdout, fmt.Sprintf("schema version %d", sqlstore.SchemaVersion)) {
		t.Fatalf("-version: exit %d, %q", code, stdout)
	}
	if code, _, _ := runMigrate(t, nil, "-nope"); code != 2 {
		t.Fatalf("unknown flag: exit %d, want 2", code)
	}
	if code, _, _ := runMigrate(t, nil, "extra"); code != 2 {
		t.Fatalf("stray argument: exit %d, want 2", code)
	}
	if code, _, stderr := runMigrate(t, nil, "-h"); code != 0 || !strings.Contains(stderr, "-check") {
		t.Fatalf("-h: exit %d, %q", code, stderr)
	}
}

// TestConfigVariables: the variables are discoverable from the struct tags.
func TestConfigVariables(t *testing.T) {
	params, err := env.GetFieldParams(&config{})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, p := range params {
		keys = append(keys, p.Key)
	}
	want := []string{"DATABASE_URL", "DATA_DIR", "LOG_LEVEL", "LOG_FORMAT"}
	if !slices.Equal(keys, want) {
		t.Fatalf("variables %v, want %v", keys, want)
	}
}

// allVersions lists every migration version, 1 to SchemaVersion.
func allVersions() []int {
	var v []int
	for i := 1; i <= sqlstore.SchemaVersion; i++ {
		v = append(v, i)
	}
	return v
}
