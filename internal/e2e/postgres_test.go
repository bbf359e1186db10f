package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
)

// TestScaleOutOnPostgres is the multi-host deployment (DEPLOYMENT.md, "More
// GPU hosts") on one machine: migrate, the API and two workers, each with a
// data folder of its own as if on its own host, sharing only PostgreSQL,
// Redis and S3 (MinIO). Every job succeeds with its audio in the bucket, and
// the rows are in PostgreSQL. KOKORO_TEST_POSTGRES (set by scripts/test.sh
// through scripts/ensure-postgres.sh) names the server; the test works in a
// schema of its own.
func TestScaleOutOnPostgres(t *testing.T) {
	base := os.Getenv(testsvc.PostgresEnv)
	if base == "" {
		t.Skip(testsvc.PostgresEnv + " is not set (scripts/ensure-postgres.sh prints one; make test sets it)")
	}
	requireTools(t)
	dbURL, schema, admin := testsvc.PostgresSchema(t, base)

	redis := testsvc.Redis(t)
	minio := testsvc.MinIO(t)
	port := strconv.Itoa(testsvc.FreePort(t))
	host := func(name string) map[string]string {
		return map[string]string{
			"DATA_DIR": filepath.Join(t.TempDir(), name), "DATABASE_URL": dbURL, "REDIS_URL": redis.URL,
			"S3_ENDPOINT": minio.Endpoint, "S3_ACCESS_KEY": minio.AccessKey, "S3_SECRET_KEY": minio.SecretKey,
			"S3_BUCKET": "tts-scale-out", "HTTP_ADDR": "127.0.0.1:" + port, "LOG_FORMAT": "json",
			"WORKER_TASK_CHECK_INTERVAL": "50ms", "KOKORO_TTS_MAX_CONCURRENCY": "1", "METRICS_ADDR": "127.0.0.1:0",
			"TTS_ENGINE": "espeak", "AUDIO_CACHE": "false",
			"JWT_SECRET": "e2e-secret-0123456789abcdef0123456789", "ADMIN_EMAIL": "admin@example.com",
			"ADMIN_PASSWORD": "an e2e admin password",
		}
	}

	// Like SQLite, an unmigrated PostgreSQL database is refused.
	if code, out := run(t, "worker", host("w1")); code == 0 || !strings.Contains(out, "not migrated") {
		t.Fatalf("worker on an unmigrated database: exit %d, output %s", code, out)
	}
	if code, out := run(t, "migrate", host("migrate")); code != 0 {
		t.Fatalf("migrate: %d %s", code, out)
	}
	api := start(t, "api", host("api"))
	w1 := start(t, "worker", host("w1"))
	w2 := start(t, "worker", host("w2"))
	c := waitHealthy(t, api, "http://127.0.0.1:"+port)
	c.login(t, "admin@example.com", "an e2e admin password")
	st, h := c.getJSON(t, "/api/health")
	checks, _ := h["checks"].(map[string]any)
	if db, _ := checks["database"].(map[string]any); st != http.StatusOK || db["status"] != "ok" {
		t.Fatalf("health: %d %v", st, h)
	}
	// Both workers announce themselves before the jobs go in, so that both
	// are polling the queue.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, ov := c.getJSON(t, "/api/admin/overview")
		if ws, _ := ov["workers"].([]any); len(ws) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("two workers did not announce themselves: %v", ov["workers"])
		}
		time.Sleep(100 * time.Millisecond)
	}

	const n = 8
	ids := make([]string, n)
	for i := range ids {
		ids[i] = c.submit(t, fmt.Sprintf(`{"text":"Sentence number %d of a lesson, read by whichever worker is free first.","format":"wav"}`, i+1))
	}
	for _, id := range ids {
		job := c.wait(t, id, 90*time.Second)
		if job["status"] != "succeeded" {
			t.Fatalf("job %s: %v", id, job)
		}
		c.fetchAudio(t, job, "wav", 2, 10)
	}

	// The rows are in PostgreSQL, in the test's schema.
	var rows []struct {
		Status string `db:"status"`
		Key    string `db:"audio_key"`
	}
	if err := admin.Select(&rows, `SELECT status, audio_key FROM `+schema+`.jobs ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	if len(rows) != n {
		t.Fatalf("%d jobs in PostgreSQL, want %d", len(rows), n)
	}
	for i, r := range rows {
		if r.Status != "succeeded" || !strings.HasPrefix(r.Key, "jobs/") {
			t.Fatalf("row %d: %+v", i, r)
		}
	}
	// Which worker ran what: the point is that either can, and both may.
	done := func(p *testsvc.Proc) int { return strings.Count(p.Output(), `"msg":"job succeeded"`) }
	if done(w1)+done(w2) != n {
		t.Fatalf("the workers logged %d and %d successes, want %d in all", done(w1), done(w2), n)
	}
	t.Logf("worker 1 ran %d jobs, worker 2 ran %d", done(w1), done(w2))
}
