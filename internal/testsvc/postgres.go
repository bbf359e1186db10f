package testsvc

import (
	"crypto/rand"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/jmoiron/sqlx"
)

// PostgresEnv names the PostgreSQL server the tests use (scripts/test.sh
// sets it from scripts/ensure-postgres.sh).
const PostgresEnv = "KOKORO_TEST_POSTGRES"

// PostgresSchema creates a schema of its own for a test in the PostgreSQL
// database base names, and drops it when the test ends. It returns a URL to
// that database whose search_path is the new schema (what DATABASE_URL of a
// binary under test is set to), the schema's name, and a connection of the
// test's own to the database for looking behind the store's back.
func PostgresSchema(t testing.TB, base string) (url, schema string, admin *sqlx.DB) {
	t.Helper()
	admin, err := sqlx.Open("pgx", base)
	if err != nil {
		t.Fatalf("%s: %v", PostgresEnv, err)
	}
	t.Cleanup(func() { admin.Close() })
	schema = "kokoro_test_" + strings.ToLower(rand.Text())
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("%s: creating a schema: %v", PostgresEnv, err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("dropping the test schema %s: %v", schema, err)
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema, schema, admin
}
