package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/kokorotts/kokoro-tts/pkg/sqlstore"
)

func allVersions() []int {
	var vs []int
	for v := 1; v <= sqlstore.SchemaVersion; v++ {
		vs = append(vs, v)
	}
	return vs
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	s := open(t, dsn(t), sqlstore.Options{})

	err := s.CheckMigrated(ctx)
	want := fmt.Sprintf(`database is not migrated (schema version 0, want %d): run "migrate" (go run ./cmd/migrate)`, sqlstore.SchemaVersion)
	var se *sqlstore.SchemaError
	if !errors.As(err, &se) || err.Error() != want || se.Newer() {
		t.Fatalf("CheckMigrated before Migrate = %v, want %q", err, want)
	}
	if v, err := s.Version(ctx); err != nil || v != 0 {
		t.Fatalf("Version = %d, %v; want 0", v, err)
	}

	applied, err := s.Migrate(ctx)
	if err != nil || !slices.Equal(applied, allVersions()) {
		t.Fatalf("Migrate = %v, %v; want %v", applied, err, allVersions())
	}
	if err := s.CheckMigrated(ctx); err != nil {
		t.Fatalf("CheckMigrated after Migrate: %v", err)
	}
	if v, err := s.Version(ctx); err != nil || v != sqlstore.SchemaVersion {
		t.Fatalf("Version = %d, %v; want %d", v, err, sqlstore.SchemaVersion)
	}

	applied, err = s.Migrate(ctx)
	if err != nil || len(applied) != 0 {
		t.Fatalf("second Migrate = %v, %v; want nothing applied", applied, err)
	}
	if err := s.CheckMigrated(ctx); err != nil {
		t.Fatalf("CheckMigrated after the second Migrate: %v", err)
	}
	// The schema works.
	create(t, s, newJob("after migrate"))
}

// TestMigrateConcurrently: two processes' worth of pools migrating one file
// at once apply each migration exactly once between them.
func TestMigrateConcurrently(t *testing.T) {
	ctx := context.Background()
	d := dsn(t)
	const n = 4
	dbs := make([]*sqlstore.DB, n)
	for i := range dbs {
		dbs[i] = open(t, d, sqlstore.Options{})
	}
	var wg sync.WaitGroup
	results := make([][]int, n)
	errs := make([]error, n)
	for i := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = dbs[i].Migrate(ctx)
		}()
	}
	wg.Wait()
	var all []int
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Migrate %d: %v", i, errs[i])
		}
		all = append(all, results[i]...)
	}
	slices.Sort(all)
	if !slices.Equal(all, allVersions()) {
		t.Fatalf("versions applied between them = %v, want each of %v once", all, allVersions())
	}
	if err := dbs[0].CheckMigrated(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestDatabaseNewerThanBinary(t *testing.T) {
	ctx := context.Background()
	d := dsn(t)
	s := open(t, d, sqlstore.Options{})
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	raw := rawDB(t, d)
	if _, err := raw.Exec(raw.Rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future.sql', 0)`), sqlstore.SchemaVersion+1); err != nil {
		t.Fatal(err)
	}

	want := fmt.Sprintf("database schema version %d is newer than this binary supports (%d)", sqlstore.SchemaVersion+1, sqlstore.SchemaVersion)
	for name, err := range map[string]error{
		"CheckMigrated": s.CheckMigrated(ctx),
		"Migrate":       func() error { _, err := s.Migrate(ctx); return err }(),
	} {
		var se *sqlstore.SchemaError
		if !errors.As(err, &se) || !se.Newer() || len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
			t.Errorf("%s = %v, want a SchemaError starting %q", name, err, want)
		}
	}
}

// TestMigrationRollsBack: a migration that fails leaves neither its schema
// changes nor its schema_migrations row.
func TestMigrationRollsBack(t *testing.T) {
	ctx := context.Background()
	d := dsn(t)
	raw := rawDB(t, d)
	// An index name clash makes 0001 fail after its CREATE TABLE jobs has
	// run inside the transaction.
	if _, err := raw.Exec(`CREATE TABLE other (x INTEGER); CREATE INDEX jobs_status_id ON other (x)`); err != nil {
		t.Fatal(err)
	}
	s := open(t, d, sqlstore.Options{})
	if _, err := s.Migrate(ctx); err == nil {
		t.Fatal("Migrate succeeded despite the clashing index")
	}
	var n int
	q := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'jobs'`
	if onPostgres() {
		q = `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'jobs'`
	}
	if err := raw.QueryRow(q).Scan(&n); err != nil || n != 0 {
		t.Fatalf("jobs table left behind by a failed migration (count %d, %v)", n, err)
	}
	if v, err := s.Version(ctx); err != nil || v != 0 {
		t.Fatalf("Version after a failed migration = %d, %v; want 0", v, err)
	}
	if _, err := raw.Exec(`DROP TABLE other`); err != nil {
		t.Fatal(err)
	}
	if applied, err := s.Migrate(ctx); err != nil || !slices.Equal(applied, allVersions()) {
		t.Fatalf("Migrate after fixing = %v, %v", applied, err)
	}
}
