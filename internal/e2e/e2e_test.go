// Package e2e runs the real binaries (api, worker, migrate) as separate
// processes against real services and drives them through HTTP.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
	"github.com/kokorotts/kokoro-tts/pkg/audio"
)

// binDir holds the binaries TestMain builds once for the package.
var binDir string

func TestMain(m *testing.M) { os.Exit(testsvc.RunWithCommands(m, &binDir, "api", "worker", "migrate")) }

// start runs one of the binaries with env and debug logging; cleanup kills
// it and its children.
func start(t *testing.T, name string, env map[string]string, args ...string) *testsvc.Proc {
	t.Helper()
	all := map[string]string{"LOG_LEVEL": "debug"}
	maps.Copy(all, env)
	return testsvc.StartProc(t, filepath.Join(binDir, name), all, args...)
}

// run runs a binary to completion and returns its exit code and output.
func run(t *testing.T, name string, env map[string]string, args ...string) (int, string) {
	t.Helper()
	p := start(t, name, env, args...)
	return p.Exited(t, 60*time.Second), p.Output()
}

type client struct {
	base string
	http *http.Client
}

func waitHealthy(t *testing.T, p *testsvc.Proc, base string) *client {
	t.Helper()
	c := &client{base: base, http: &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.Done:
			t.Fatalf("api exited: %s", p.Output())
		default:
		}
		res, err := c.http.Get(base + "/api/health")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return c
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("api not healthy: %s", p.Output())
	return nil
}

// login logs in and makes the client send the token with every request.
func (c *client) login(t *testing.T, email, password string) {
	t.Helper()
	code, m := c.postJSON(t, "/api/auth/login", fmt.Sprintf(`{"email":%q,"password":%q}`, email, password))
	tok, _ := m["token"].(string)
	if code != http.StatusOK || tok == "" {
		t.Fatalf("login: %d %v", code, m)
	}
	c.http.Transport = bearerTransport{token: tok, next: http.DefaultTransport}
}

// bearerTransport adds a bearer token to each request.
type bearerTransport struct {
	token string
	next  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

func (c *client) postJSON(t *testing.T, path, body string) (int, map[string]any) {
	t.Helper()
	res, err := c.http.Post(c.base+path, "application/json", strings.NewReader(body))
	return decodeJSON(t, res, err)
}

func (c *client) getJSON(t *testing.T, path string) (int, map[string]any) {
	t.Helper()
	res, err := c.http.Get(c.base + path)
	return decodeJSON(t, res, err)
}

// decodeJSON returns a response's status and its body decoded as a JSON
// object, or fails the test on err.
func decodeJSON(t *testing.T, res *http.Response, err error) (int, map[string]any) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m
}

func (c *client) submit(t *testing.T, body string) string {
	t.Helper()
	st, m := c.postJSON(t, "/api/tts", body)
	if st != 202 {
		t.Fatalf("submit: %d %v", st, m)
	}
	return m["id"].(string)
}

func (c *client) wait(t *testing.T, id string, within time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		_, m := c.getJSON(t, "/api/jobs/"+id)
		switch m["status"] {
		case "succeeded", "failed", "canceled":
			return m
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("job %s did not finish within %s", id, within)
	return nil
}

// fetchAudio downloads a job's audio (following a redirect to storage) and
// checks it decodes to a plausible duration.
func (c *client) fetchAudio(t *testing.T, job map[string]any, format string, minSec, maxSec float64) ([]byte, *http.Response) {
	t.Helper()
	res, err := c.http.Get(c.base + "/api/jobs/" + job["id"].(string) + "/audio")
	if err != nil {
		t.Fatal(err)
	}
	first := res
	if res.StatusCode == http.StatusTemporaryRedirect {
		res.Body.Close()
		res, err = http.Get(res.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("audio: %d %s", res.StatusCode, b)
	}
	a := job["audio"].(map[string]any)
	if int64(len(b)) != int64(a["bytes"].(float64)) {
		t.Fatalf("downloaded %d bytes, job says %v", len(b), a["bytes"])
	}
	// ffprobe's names: Ogg Opus is "ogg" and decodes at 48 kHz whatever
	// its input rate; ADTS AAC is "aac"; headerless PCM must be described.
	probeName, rate := format, 24000
	var p audio.ProbeResult
	switch format {
	case "pcm":
		probeName = "s16le"
		p, err = audio.ProbeRaw(context.Background(), "ffprobe", b, 24000, 1)
	case "opus":
		probeName, rate = "ogg", 48000
		fallthrough
	default:
		p, err = audio.ProbeBytes(context.Background(), "ffprobe", b)
	}
	if err != nil {
		t.Fatal(err)
	}
	if p.Format != probeName && !strings.Contains(p.Format, probeName) {
		t.Fatalf("format %q, want %q", p.Format, probeName)
	}
	if p.SampleRate != rate || p.Channels != 1 || p.DurationSeconds < minSec || p.DurationSeconds > maxSec {
		t.Fatalf("probe %+v: want %d Hz mono of %.1f–%.1f s", p, rate, minSec, maxSec)
	}
	return b, first
}

func requireTools(t *testing.T) {
	testsvc.Require(t, "ffmpeg", "ffmpeg")
	testsvc.Require(t, "ffprobe", "ffmpeg")
	testsvc.Require(t, "espeak-ng", "espeak-ng")
}

// TestEmbeddedMode is the README's run command: one process, no Redis, real
// speech from espeak-ng.
func TestEmbeddedMode(t *testing.T) {
	requireTools(t)
	data := t.TempDir()
	port := strconv.Itoa(testsvc.FreePort(t))
	env := map[string]string{"DATA_DIR": data, "HTTP_ADDR": "127.0.0.1:" + port}
	api := start(t, "api", env)
	c := waitHealthy(t, api, "http://127.0.0.1:"+port)
	if !strings.Contains(api.Output(), "EMBEDDED MODE") {
		t.Fatalf("embedded mode did not warn that the queue does not persist")
	}

	id := c.submit(t, `{"text":"Hello world","voice":"af_heart"}`)
	job := c.wait(t, id, 60*time.Second)
	if job["status"] != "succeeded" || job["engine"] != "espeak-ng" {
		t.Fatalf("job: %v", job)
	}
	c.fetchAudio(t, job, "mp3", 0.5, 3)

	id = c.submit(t, `{"text":"Good morning. The lesson starts at nine.","voice":"bf_emma","format":"wav","speed":1.2}`)
	job = c.wait(t, id, 60*time.Second)
	c.fetchAudio(t, job, "wav", 1, 5)

	// Every format, real speech, through ffprobe.
	for _, f := range []string{"opus", "aac", "flac", "pcm"} {
		id := c.submit(t, `{"text":"Good morning. The lesson starts at nine.","voice":"bf_emma","format":"`+f+`"}`)
		c.fetchAudio(t, c.wait(t, id, 60*time.Second), f, 1, 5)
	}

	// A restart keeps finished jobs and runs jobs left queued.
	api.Signal(syscall.SIGTERM)
	<-api.Done
	api = start(t, "api", env)
	c = waitHealthy(t, api, "http://127.0.0.1:"+port)
	if _, m := c.getJSON(t, "/api/jobs/"+id); m["status"] != "succeeded" {
		t.Fatalf("after restart: %v", m)
	}
}

// TestServiceMode runs migrate, api and worker as separate processes
// against a real Redis and a real MinIO.
func TestServiceMode(t *testing.T) {
	requireTools(t)
	redis := testsvc.Redis(t)
	minio := testsvc.MinIO(t)
	data := t.TempDir()
	port := strconv.Itoa(testsvc.FreePort(t))
	env := map[string]string{
		"DATA_DIR": data, "DATABASE_URL": "sqlite:" + filepath.Join(data, "service.db"), "REDIS_URL": redis.URL,
		"S3_ENDPOINT": minio.Endpoint, "S3_ACCESS_KEY": minio.AccessKey, "S3_SECRET_KEY": minio.SecretKey,
		"S3_BUCKET": "tts-e2e", "HTTP_ADDR": "127.0.0.1:" + port, "LOG_FORMAT": "json",
		"WORKER_TASK_CHECK_INTERVAL": "50ms", "RECONCILE_INTERVAL": "1s", "RECONCILE_STALE_AFTER": "2s",
		"METRICS_ADDR": "127.0.0.1:0",
		"JWT_SECRET":   "e2e-secret-0123456789abcdef0123456789", "ADMIN_EMAIL": "admin@example.com",
		"ADMIN_PASSWORD": "an e2e admin password",
	}

	// Service mode is closed by default: without JWT_SECRET the API refuses to start.
	open := maps.Clone(env)
	delete(open, "JWT_SECRET")
	if code, out := run(t, "api", open); code == 0 || !strings.Contains(out, "JWT_SECRET: required in service mode") {
		t.Fatalf("api in service mode without JWT_SECRET: exit %d, output %s", code, out)
	}
	weak := maps.Clone(env)
	weak["ADMIN_PASSWORD"] = "CHANGE-ME"
	if code, out := run(t, "migrate", weak); code != 0 {
		t.Fatalf("migrate: %d %s", code, out)
	}
	if code, out := run(t, "api", weak); code == 0 || !strings.Contains(out, "ADMIN_PASSWORD") {
		t.Fatalf("api with the example's admin password: exit %d, output %s", code, out)
	}
	if err := os.Remove(filepath.Join(data, "service.db")); err != nil {
		t.Fatal(err)
	}

	// Both binaries refuse an unmigrated database and say what to do.
	for _, bin := range []string{"api", "worker"} {
		code, out := run(t, bin, env)
		if code == 0 || !strings.Contains(out, "not migrated") || !strings.Contains(out, "migrate") {
			t.Fatalf("%s on an unmigrated database: exit %d, output %s", bin, code, out)
		}
	}
	if code, out := run(t, "migrate", env); code != 0 {
		t.Fatalf("migrate: %d %s", code, out)
	}
	if code, out := run(t, "migrate", env, "-check"); code != 0 {
		t.Fatalf("migrate -check after migrate: %d %s", code, out)
	}

	api := start(t, "api", env)
	// Without a worker the API is up but reports the engine missing, and
	// still accepts jobs: they wait in Redis.
	base := "http://127.0.0.1:" + port
	var c *client
	deadline := time.Now().Add(30 * time.Second)
	for c == nil && time.Now().Before(deadline) {
		if res, err := http.Get(base + "/api/health"); err == nil {
			var h map[string]any
			_ = json.NewDecoder(res.Body).Decode(&h)
			res.Body.Close()
			if res.StatusCode == 503 && h["checks"].(map[string]any)["engine"].(map[string]any)["status"] == "down" {
				c = &client{base: base, http: &http.Client{Timeout: 10 * time.Second,
					CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if c == nil {
		t.Fatalf("health without a worker did not report the engine down: %s", api.Output())
	}
	// Closed: nothing but the health check and the log-in answers without a token.
	if code, m := c.postJSON(t, "/api/tts", `{"text":"Let me in."}`); code != http.StatusUnauthorized {
		t.Fatalf("submit without a token: %d %v", code, m)
	}
	c.login(t, "admin@example.com", "an e2e admin password")
	early := c.submit(t, `{"text":"I was queued before any worker started.","voice":"am_adam"}`)
	if code, out := run(t, "worker", env, "health"); code == 0 {
		t.Fatalf("worker health passed with no worker running: %s", out)
	}
	if code, _ := run(t, "api", env, "health"); code == 0 {
		t.Fatalf("api health passed with no engine")
	}

	// Redis restarted empty: the queued task is gone; the reconciler
	// rebuilds it from the database.
	redis.Restart(t)
	worker := start(t, "worker", env)
	c = waitHealthy(t, api, base)
	c.login(t, "admin@example.com", "an e2e admin password")
	for _, bin := range []string{"worker", "api"} {
		if code, out := run(t, bin, env, "health"); code != 0 {
			t.Fatalf("%s health with everything up: exit %d: %s", bin, code, out)
		}
	}
	job := c.wait(t, early, 90*time.Second)
	if job["status"] != "succeeded" {
		t.Fatalf("job queued before the Redis restart: %v\n%s", job, worker.Output())
	}
	if !strings.Contains(worker.Output(), "re-enqueued") {
		t.Fatalf("the reconciler did not report re-enqueueing")
	}
	_, resp := c.fetchAudio(t, job, "mp3", 1, 6)
	if resp.StatusCode != 200 {
		t.Fatalf("audio should stream through the API by default, got %d", resp.StatusCode)
	}

	id := c.submit(t, `{"text":"Hello world","voice":"af_heart","format":"wav"}`)
	job = c.wait(t, id, 60*time.Second)
	if job["status"] != "succeeded" {
		t.Fatalf("job: %v", job)
	}
	c.fetchAudio(t, job, "wav", 0.5, 3)

	// Events cross processes: the worker publishes, the API streams.
	long := strings.Repeat("The teacher reads the sentence slowly, and the class repeats it. ", 25)
	id = c.submit(t, `{"text":"`+long+`","voice":"af_sky","format":"wav"}`)
	joined := strings.Join(sse(t, c.http, base+"/api/jobs/"+id+"/events"), ",")
	if !strings.HasPrefix(joined, "queued,running") || !strings.HasSuffix(joined, ",succeeded") || strings.Count(joined, "running") < 2 {
		t.Fatalf("event types across processes: %s", joined)
	}

	// Operators' numbers: the API's /metrics and the worker's.
	apiMetrics := httpGet(t, c.http, base+"/metrics")
	for _, want := range []string{
		`kokoro_tts_http_request_duration_seconds_count{method="POST",route="/api/tts",status="202"}`,
		`kokoro_tts_jobs{status="succeeded"} 3`,
		`kokoro_tts_queue_tasks{queue="interactive",state="pending"} 0`,
		`kokoro_tts_queue_up 1`,
	} {
		if !strings.Contains(apiMetrics, want) {
			t.Fatalf("API metrics lack %s:\n%s", want, apiMetrics)
		}
	}
	workerMetrics := httpGet(t, http.DefaultClient, "http://"+logField(t, worker.Output(), "metrics listening", "addr")+"/metrics")
	for _, want := range []string{
		`kokoro_tts_worker_jobs_total{outcome="succeeded"} 3`,
		`kokoro_tts_worker_engine_info{device="cpu",engine="espeak-ng"`,
		`kokoro_tts_worker_real_time_factor_count{device="cpu",engine="espeak-ng"} 3`,
	} {
		if !strings.Contains(workerMetrics, want) {
			t.Fatalf("worker metrics lack %s:\n%s", want, workerMetrics)
		}
	}

	// With presigning on, the API redirects to MinIO.
	api.Signal(syscall.SIGTERM)
	<-api.Done
	env["S3_PRESIGN_TTL"] = "5m"
	api = start(t, "api", env)
	c = waitHealthy(t, api, base)
	c.login(t, "admin@example.com", "an e2e admin password")
	_, resp = c.fetchAudio(t, job, "wav", 0.5, 3)
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.Contains(resp.Header.Get("Location"), minio.Endpoint) {
		t.Fatalf("expected a redirect to MinIO, got %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}

	// The worker drains on SIGTERM and exits cleanly.
	worker.Signal(syscall.SIGTERM)
	if code := worker.Exited(t, 30*time.Second); code != 0 {
		t.Fatalf("worker exit code %d", code)
	}
	logs := bufio.NewScanner(strings.NewReader(api.Output()))
	for logs.Scan() {
		line := logs.Text()
		if strings.HasPrefix(line, "{") && !json.Valid([]byte(line)) {
			t.Fatalf("LOG_FORMAT=json wrote a non-JSON line: %s", line)
		}
	}
}

func httpGet(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, res.StatusCode, b)
	}
	return string(b)
}

// logField returns field of the first JSON log line whose msg is msg.
func logField(t *testing.T, output, msg, field string) string {
	t.Helper()
	for _, line := range strings.Split(output, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			if v, ok := m[field].(string); ok {
				return v
			}
		}
	}
	t.Fatalf("no log line %q with %s in:\n%s", msg, field, output)
	return ""
}

// sse reads a job's whole event stream and returns the event types in order.
func sse(t *testing.T, c *http.Client, url string) []string {
	t.Helper()
	res, err := (&http.Client{Timeout: 90 * time.Second, Transport: c.Transport}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var types []string
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			types = append(types, v)
		}
	}
	return types
}
