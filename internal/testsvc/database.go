package testsvc

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/kokorotts/kokoro-tts/pkg/sqlstore"
)

// DatabaseEnv picks the job database of the tests that use DatabaseURL or
// Store: "sqlite" (the default: a file in the test's temp dir) or "postgres"
// (a schema of its own in the server PostgresEnv names). scripts/test.sh
// runs the store's, the services' and the API's tests once on each.
const DatabaseEnv = "KOKORO_TEST_DATABASE"

// OnPostgres reports whether this run's tests use PostgreSQL.
func OnPostgres() bool { return os.Getenv(DatabaseEnv) == "postgres" }

// DatabaseURL returns the DSN of a new, empty job database for the test (see
// DatabaseEnv).
func DatabaseURL(t testing.TB) string {
	t.Helper()
	switch v := os.Getenv(DatabaseEnv); v {
	case "", "sqlite":
		return "sqlite:" + filepath.Join(t.TempDir(), "db.sqlite")
	case "postgres":
		base := os.Getenv(PostgresEnv)
		if base == "" {
			t.Fatalf("%s=postgres needs %s (scripts/ensure-postgres.sh prints one)", DatabaseEnv, PostgresEnv)
		}
		url, _, _ := PostgresSchema(t, base)
		return url
	default:
		t.Fatalf("%s=%q: want sqlite or postgres", DatabaseEnv, v)
		return ""
	}
}

// Store opens a new, migrated job database for the test (see DatabaseEnv)
// and closes it when the test ends.
func Store(t testing.TB) *sqlstore.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, DatabaseURL(t), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}
