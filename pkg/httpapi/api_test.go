package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
	"github.com/kokorotts/kokoro-tts/pkg/audio"
	"github.com/kokorotts/kokoro-tts/pkg/auth"
	"github.com/kokorotts/kokoro-tts/pkg/events"
	"github.com/kokorotts/kokoro-tts/pkg/fleet"
	"github.com/kokorotts/kokoro-tts/pkg/httpapi"
	"github.com/kokorotts/kokoro-tts/pkg/jobs"
	"github.com/kokorotts/kokoro-tts/pkg/sqlstore"
	"github.com/kokorotts/kokoro-tts/pkg/tone"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
	"github.com/kokorotts/kokoro-tts/pkg/web"
	"github.com/kokorotts/kokoro-tts/pkg/webhook"
	"github.com/kokorotts/kokoro-tts/pkg/worker"
	"github.com/kokorotts/kokoro-tts/queue"
	"github.com/kokorotts/kokoro-tts/storage/disk"
)

// webhookSecret signs the test stack's webhooks; the test stack lets
// callbacks reach loopback receivers only when allowPrivateCallbacks.
const (
	webhookSecret         = "test-secret-0123456789"
	allowPrivateCallbacks = true
)

// stack is the API wired to real SQLite, real Redis, disk storage and, when
// started, an in-process worker with the tone engine.
type stack struct {
	api       *httpapi.Server
	accounts  *auth.Service
	srv       *httptest.Server
	db        *sqlstore.DB
	redis     *testsvc.RedisServer
	worker    *worker.Server
	newWorker func() *worker.Server
	logs      *testsvc.LockedBuffer // everything the API and the worker logged
}

// stackOptions vary the test stack: the engine (default the tone engine),
// the worker's concurrency (0: no worker) and the API's body limit.
type stackOptions struct {
	engine       tts.Synthesizer
	concurrency  int
	maxBodyBytes int64
	// auth, when set, closes the API with these limits and creates the
	// admin testAdminEmail / testAdminPassword.
	auth *auth.Limits
	// wrap, when set, wraps the API handler (to bound the request context).
	wrap func(http.Handler) http.Handler
}

const (
	testAdminEmail    = "admin@example.com"
	testAdminPassword = "an admin password for tests"
	testJWTSecret     = "0123456789abcdef0123456789abcdef-test"
)

func newStack(t *testing.T, withWorker bool) *stack {
	t.Helper()
	o := stackOptions{maxBodyBytes: 16 << 10}
	if withWorker {
		o.concurrency = 2
	}
	return newStackWith(t, o)
}

func newStackWith(t *testing.T, o stackOptions) *stack {
	t.Helper()
	if o.engine == nil {
		o.engine = tone.New(tone.Config{})
	}
	ctx := context.Background()
	logs := &testsvc.LockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	db := testsvc.Store(t)
	objects, err := disk.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := testsvc.Redis(t)
	opt, _ := asynq.ParseRedisURI(r.URL)
	q := queue.NewClient(opt)
	t.Cleanup(func() { q.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { rdb.Close() })
	bus := events.NewRedis(rdb)
	svc := jobs.New(jobs.Config{Store: db, Queue: q, Objects: objects, MaxTextChars: 1000, Events: bus, Logger: log,
		Webhooks: true, AllowPrivateCallbacks: allowPrivateCallbacks})
	cfg := httpapi.Config{Jobs: svc, Logger: log, MaxBodyBytes: o.maxBodyBytes, Mode: "test",
		Checks: []httpapi.Check{{Name: "database", Check: func(ctx context.Context) (any, error) { return nil, db.Ping(ctx) }}}}
	var accounts *auth.Service
	if o.auth != nil {
		accounts, err = auth.New(auth.Config{Store: db, Secret: []byte(testJWTSecret), Logger: log, BcryptCost: 4})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := accounts.EnsureAdmin(ctx, testAdminEmail, testAdminPassword); err != nil {
			t.Fatal(err)
		}
		cfg.Auth, cfg.Accounts, cfg.Limiter = accounts, db, auth.NewLimiter(rdb, *o.auth)
		// Everything the real API mounts, so that the route walk covers it.
		cfg.Web = web.Handler()
		cfg.QueuesUI = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "queues dashboard") })
		cfg.MetricsHandler = promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{})
	}
	api := httpapi.New(cfg)
	var h http.Handler = api
	if o.wrap != nil {
		h = o.wrap(h)
	}
	s := &stack{api: api, accounts: accounts, srv: httptest.NewServer(h), db: db, redis: r, logs: logs}
	t.Cleanup(s.srv.Close)
	if o.concurrency > 0 {
		testsvc.Require(t, "ffmpeg", "ffmpeg")
		enc, err := audio.NewEncoder(audio.Config{})
		if err != nil {
			t.Fatal(err)
		}
		h := &worker.Handler{Store: db, Engine: o.engine, Encoder: enc, Objects: objects, Logger: log,
			CancelPoll: 50 * time.Millisecond, Events: bus, Cache: true, Locks: fleet.NewLocks(rdb), Webhooks: q}
		hooks := &worker.WebhookHandler{Store: db, Sender: webhook.NewSender(webhookSecret, 5*time.Second, true), Logger: log}
		s.newWorker = func() *worker.Server {
			return worker.NewServer(worker.Config{Redis: opt, Concurrency: o.concurrency, ShutdownTimeout: 5 * time.Second,
				TaskCheckInterval: 20 * time.Millisecond, Logger: log, Webhooks: hooks}, h, q, nil)
		}
		s.restartWorker(t)
		t.Cleanup(func() { s.worker.Shutdown() })
	}
	return s
}

// restartWorker starts a new in-process worker (after the last one was shut down).
func (s *stack) restartWorker(t *testing.T) {
	t.Helper()
	s.worker = s.newWorker()
	if err := s.worker.Start(); err != nil {
		t.Fatal(err)
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not JSON (%d): %q", r.status, r.body)
	}
	return m
}

func (s *stack) do(t *testing.T, method, path, contentType string, body string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, s.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{res.StatusCode, res.Header, b}
}

func (s *stack) waitTerminal(t *testing.T, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		m := s.do(t, "GET", "/api/jobs/"+id, "", "").json(t)
		switch m["status"] {
		case "succeeded", "failed", "canceled":
			return m
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("job %s did not finish", id)
	return nil
}

const jsonCT = "application/json"

// TestBadInput is the catalogue of malformed and hostile requests: each gets
// a JSON error with the right status and code, and nothing is recorded.
func TestBadInput(t *testing.T) {
	s := newStack(t, false)
	long := strings.Repeat("a", 1001)
	cases := []struct {
		name, method, path, ct, body string
		status                       int
		code, msg                    string
	}{
		{"malformed json", "POST", "/api/tts", jsonCT, `{"text":`, 400, "malformed_request", "not valid JSON"},
		{"not an object", "POST", "/api/tts", jsonCT, `["Hello"]`, 400, "malformed_request", "object"},
		{"two objects", "POST", "/api/tts", jsonCT, `{"text":"a"}{"text":"b"}`, 400, "malformed_request", "exactly one"},
		{"trailing brace", "POST", "/api/tts", jsonCT, `{"text":"a"}}`, 400, "malformed_request", "exactly one"},
		{"trailing garbage", "POST", "/api/tts", jsonCT, `{"text":"a"} x`, 400, "malformed_request", "exactly one"},
		{"duplicate key", "POST", "/api/tts", jsonCT, `{"text":"a","text":"b"}`, 400, "malformed_request", "repeats the key"},
		{"duplicate key in another case", "POST", "/api/tts", jsonCT, `{"text":"a","Text":"b"}`, 400, "malformed_request", "repeats the key"},
		{"empty body", "POST", "/api/tts", jsonCT, ``, 400, "malformed_request", ""},
		{"invalid utf8 body", "POST", "/api/tts", jsonCT, "{\"text\":\"a\xff\"}", 400, "malformed_request", "UTF-8"},
		{"wrong content type", "POST", "/api/tts", "text/plain", `{"text":"Hello"}`, 415, "unsupported_media", "application/json"},
		{"no content type", "POST", "/api/tts", "", `{"text":"Hello"}`, 415, "unsupported_media", ""},
		{"form content type", "POST", "/api/tts", "application/x-www-form-urlencoded", `text=Hello`, 415, "unsupported_media", ""},
		{"body too large", "POST", "/api/tts", jsonCT, `{"text":"` + strings.Repeat("a", 17<<10) + `"}`, 413, "too_large", ""},
		{"text too long", "POST", "/api/tts", jsonCT, `{"text":"` + long + `"}`, 413, "too_large", "maximum of 1000"},
		{"missing text", "POST", "/api/tts", jsonCT, `{"voice":"af_heart"}`, 422, "invalid_request", "text: is required"},
		{"empty text", "POST", "/api/tts", jsonCT, `{"text":""}`, 422, "invalid_request", "text"},
		{"whitespace text", "POST", "/api/tts", jsonCT, `{"text":"  \n\t "}`, 422, "invalid_request", "text"},
		{"zero-width text", "POST", "/api/tts", jsonCT, `{"text":"\u200b\u200b"}`, 422, "invalid_request", "text"},
		{"text not a string", "POST", "/api/tts", jsonCT, `{"text":42}`, 422, "invalid_request", "text"},
		{"unknown voice", "POST", "/api/tts", jsonCT, `{"text":"Hi","voice":"zz_nobody"}`, 422, "invalid_request", "unknown voice"},
		{"path traversal voice", "POST", "/api/tts", jsonCT, `{"text":"Hi","voice":"../../etc/passwd"}`, 422, "invalid_request", "voice"},
		{"malformed blend", "POST", "/api/tts", jsonCT, `{"text":"Hi","voice":"af_bella(2+af_sky"}`, 422, "invalid_request", "voice"},
		{"speed too low", "POST", "/api/tts", jsonCT, `{"text":"Hi","speed":0.1}`, 422, "invalid_request", "speed: must be a number from 0.5 to 2.0"},
		{"speed huge", "POST", "/api/tts", jsonCT, `{"text":"Hi","speed":1e400}`, 422, "invalid_request", "speed"},
		{"speed string", "POST", "/api/tts", jsonCT, `{"text":"Hi","speed":"fast"}`, 422, "invalid_request", "speed: must be a number"},
		{"speed NaN literal", "POST", "/api/tts", jsonCT, `{"text":"Hi","speed":NaN}`, 400, "malformed_request", ""},
		{"unknown format", "POST", "/api/tts", jsonCT, `{"text":"Hi","format":"ogg"}`, 422, "invalid_request", "format: must be one of"},
		{"unknown field", "POST", "/api/tts", jsonCT, `{"text":"Hi","fromat":"wav"}`, 422, "invalid_request", "fromat: unknown field"},
		{"bad queue", "POST", "/api/tts", jsonCT, `{"text":"Hi","queue":"vip"}`, 422, "invalid_request", "queue"},
		{"long idempotency key", "POST", "/api/tts", jsonCT, `{"text":"Hi"}`, 422, "invalid_request", "Idempotency-Key"},
		{"unknown job", "GET", "/api/jobs/0192d6a4-0000-7000-8000-000000000000", "", "", 404, "not_found", "not found"},
		{"job id traversal", "GET", "/api/jobs/..%2F..%2Fetc%2Fpasswd", "", "", 404, "not_found", ""},
		{"job id sql", "GET", "/api/jobs/1'%20OR%20'1'='1", "", "", 404, "not_found", ""},
		{"audio of unknown job", "GET", "/api/jobs/not-a-job/audio", "", "", 404, "not_found", ""},
		{"cancel unknown job", "DELETE", "/api/jobs/0192d6a4-0000-7000-8000-000000000000", "", "", 404, "not_found", ""},
		{"list bad status", "GET", "/api/jobs?status=done", "", "", 422, "invalid_request", "status"},
		{"list bad limit", "GET", "/api/jobs?limit=1000", "", "", 422, "invalid_request", "limit"},
		{"list bad cursor", "GET", "/api/jobs?cursor=%27%3B%20DROP%20TABLE%20jobs", "", "", 422, "invalid_request", "cursor"},
		{"no route", "GET", "/api/nothing", "", "", 404, "not_found", "no such endpoint"},
		{"wrong method", "PUT", "/api/tts", jsonCT, `{}`, 405, "method_not_allowed", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var hdr []string
			if c.name == "long idempotency key" {
				hdr = []string{"Idempotency-Key", strings.Repeat("k", 300)}
			}
			r := s.do(t, c.method, c.path, c.ct, c.body, hdr...)
			if r.status != c.status {
				t.Fatalf("status = %d, want %d; body %s", r.status, c.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("content type %q", ct)
			}
			m := r.json(t)
			e, ok := m["error"].(map[string]any)
			if !ok {
				t.Fatalf("no error object: %s", r.body)
			}
			if e["code"] != c.code {
				t.Fatalf("code = %v, want %s (%s)", e["code"], c.code, r.body)
			}
			if msg, _ := e["message"].(string); msg == "" || !strings.Contains(msg, c.msg) {
				t.Fatalf("message %q does not contain %q", msg, c.msg)
			}
		})
	}
	// Nothing of the above was recorded.
	s.requireNoJobs(t)
}

// requireNoJobs fails the test unless the database holds no job (bad input
// records nothing).
func (s *stack) requireNoJobs(t *testing.T) {
	t.Helper()
	counts, err := s.db.CountByStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for st, n := range counts {
		if n != 0 {
			t.Fatalf("%d jobs recorded as %s from bad input", n, st)
		}
	}
}

func TestSubmitAndFetchAudio(t *testing.T) {
	s := newStack(t, true)
	for _, format := range []string{"mp3", "wav", "aac", "flac"} {
		t.Run(format, func(t *testing.T) {
			r := s.do(t, "POST", "/api/tts", "application/json; charset=utf-8", `{"text":"Hello world","voice":"af_heart","format":"`+format+`"}`)
			if r.status != 202 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			m := r.json(t)
			id, _ := m["id"].(string)
			if m["status"] != "queued" || r.header.Get("Location") != "/api/jobs/"+id {
				t.Fatalf("bad accept response %v %v", m, r.header)
			}
			links := m["links"].(map[string]any)
			if links["self"] != "/api/jobs/"+id || links["audio"] != "/api/jobs/"+id+"/audio" {
				t.Fatalf("links = %v", links)
			}
			done := s.waitTerminal(t, id)
			if done["status"] != "succeeded" {
				t.Fatalf("job ended %v", done)
			}
			a := done["audio"].(map[string]any)
			if a["content_type"] == "" || a["bytes"].(float64) <= 0 || a["duration_seconds"].(float64) <= 0 {
				t.Fatalf("audio = %v", a)
			}
			if done["started_at"] == nil || done["finished_at"] == nil || done["attempts"].(float64) != 1 {
				t.Fatalf("timestamps/attempts missing: %v", done)
			}
			full := s.do(t, "GET", "/api/jobs/"+id+"/audio", "", "")
			if full.status != 200 || full.header.Get("Content-Type") != a["content_type"] || int64(len(full.body)) != int64(a["bytes"].(float64)) {
				t.Fatalf("audio download: %d %v %d bytes", full.status, full.header, len(full.body))
			}
			p, err := audio.ProbeFormat(context.Background(), "ffprobe", tts.Format(format), full.body)
			if err != nil {
				t.Fatal(err)
			}
			rate := 24000
			if format == "opus" {
				rate = 48000 // Opus always decodes at 48 kHz
			}
			if p.SampleRate != rate || p.DurationSeconds < 0.05 {
				t.Fatalf("probe = %+v", p)
			}
			part := s.do(t, "GET", "/api/jobs/"+id+"/audio", "", "", "Range", "bytes=10-19")
			if part.status != 206 || !bytes.Equal(part.body, full.body[10:20]) || part.header.Get("Content-Range") == "" {
				t.Fatalf("range: %d %v", part.status, part.header)
			}
			// Terminal: cancel conflicts.
			if c := s.do(t, "DELETE", "/api/jobs/"+id, "", ""); c.status != 409 {
				t.Fatalf("cancel of a finished job: %d %s", c.status, c.body)
			}
		})
	}
}

func TestIdempotencyKey(t *testing.T) {
	s := newStack(t, false)
	body := `{"text":"Same request","voice":"af_sky"}`
	a := s.do(t, "POST", "/api/tts", jsonCT, body, "Idempotency-Key", "lesson-1-line-1")
	b := s.do(t, "POST", "/api/tts", jsonCT, body, "Idempotency-Key", "lesson-1-line-1")
	if a.status != 202 || b.status != 202 || a.json(t)["id"] != b.json(t)["id"] || b.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay gave another job: %s / %s", a.body, b.body)
	}
	c := s.do(t, "POST", "/api/tts", jsonCT, `{"text":"Different"}`, "Idempotency-Key", "lesson-1-line-1")
	if c.status != 409 || c.json(t)["error"].(map[string]any)["code"] != "conflict" {
		t.Fatalf("reuse for another request: %d %s", c.status, c.body)
	}
}

func TestAudioNotReadyAndCancelQueued(t *testing.T) {
	s := newStack(t, false) // no worker: jobs stay queued
	id := s.do(t, "POST", "/api/tts", jsonCT, `{"text":"Wait for me"}`).json(t)["id"].(string)
	r := s.do(t, "GET", "/api/jobs/"+id+"/audio", "", "")
	if r.status != 409 || r.json(t)["error"].(map[string]any)["code"] != "not_ready" || r.header.Get("Retry-After") == "" {
		t.Fatalf("audio of a queued job: %d %s", r.status, r.body)
	}
	c := s.do(t, "DELETE", "/api/jobs/"+id, "", "")
	if c.status != 202 || c.json(t)["status"] != "canceled" {
		t.Fatalf("cancel queued: %d %s", c.status, c.body)
	}
	r = s.do(t, "GET", "/api/jobs/"+id+"/audio", "", "")
	if r.status != 409 || r.json(t)["error"].(map[string]any)["code"] != "conflict" {
		t.Fatalf("audio of a canceled job: %d %s", r.status, r.body)
	}
}

func TestListPagination(t *testing.T) {
	s := newStack(t, false)
	var ids []string
	for i := 0; i < 7; i++ {
		ids = append(ids, s.do(t, "POST", "/api/tts", jsonCT, `{"text":"Line"}`).json(t)["id"].(string))
	}
	var got []string
	cursor := ""
	for pages := 0; pages < 10; pages++ {
		m := s.do(t, "GET", "/api/jobs?limit=3&cursor="+cursor, "", "").json(t)
		for _, j := range m["jobs"].([]any) {
			got = append(got, j.(map[string]any)["id"].(string))
		}
		next, _ := m["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(got) != 7 {
		t.Fatalf("listed %d jobs, want 7: %v", len(got), got)
	}
	for i := range got {
		if got[i] != ids[len(ids)-1-i] {
			t.Fatalf("not newest first: %v vs %v", got, ids)
		}
	}
	m := s.do(t, "GET", "/api/jobs?status=succeeded", "", "").json(t)
	if n := len(m["jobs"].([]any)); n != 0 {
		t.Fatalf("status filter returned %d", n)
	}
}

func TestRedisDownAnswers503(t *testing.T) {
	s := newStack(t, false)
	s.redis.Stop()
	r := s.do(t, "POST", "/api/tts", jsonCT, `{"text":"Nobody will queue me"}`, "Idempotency-Key", "k1")
	if r.status != 503 || r.header.Get("Retry-After") == "" || r.json(t)["error"].(map[string]any)["code"] != "unavailable" {
		t.Fatalf("with Redis down: %d %v %s", r.status, r.header, r.body)
	}
	if strings.Contains(string(r.body), "127.0.0.1") || strings.Contains(string(r.body), "dial") {
		t.Fatalf("internal detail leaked: %s", r.body)
	}
	counts, _ := s.db.CountByStatus(context.Background())
	if counts["queued"] != 0 {
		t.Fatalf("a job was kept although it could not be queued")
	}
	// Once Redis is back, the same key creates the job.
	s.redis.Restart(t)
	r = s.do(t, "POST", "/api/tts", jsonCT, `{"text":"Nobody will queue me"}`, "Idempotency-Key", "k1")
	if r.status != 202 {
		t.Fatalf("after Redis is back: %d %s", r.status, r.body)
	}
}

func TestHealthAndVoices(t *testing.T) {
	s := newStack(t, false)
	h := s.do(t, "GET", "/api/health", "", "")
	if h.status != 200 || h.json(t)["status"] != "ok" {
		t.Fatalf("health: %d %s", h.status, h.body)
	}
	v := s.do(t, "GET", "/api/voices", "", "").json(t)
	if n := len(v["voices"].([]any)); n != 54 {
		t.Fatalf("%d voices", n)
	}
	s.db.Close()
	h = s.do(t, "GET", "/api/health", "", "")
	if h.status != 503 || h.json(t)["checks"].(map[string]any)["database"].(map[string]any)["status"] != "down" {
		t.Fatalf("health with the database closed: %d %s", h.status, h.body)
	}
	r := s.do(t, "GET", "/api/jobs/0192d6a4-0000-7000-8000-000000000000", "", "")
	if r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("database down: %d %s", r.status, r.body)
	}
}

func TestIdenticalRequestsHitTheCache(t *testing.T) {
	s := newStack(t, true)
	body := `{"text":"Repeat after me.","voice":"af_bella(2)+af_sky","format":"wav"}`
	first := s.waitTerminal(t, s.do(t, "POST", "/api/tts", jsonCT, body).json(t)["id"].(string))
	// The blend written in another order is the same voice.
	second := s.waitTerminal(t, s.do(t, "POST", "/api/tts", jsonCT, `{"text":"Repeat after me.","voice":"af_sky+af_bella(2)","format":"wav"}`).json(t)["id"].(string))
	if first["cache_hit"] != false || second["cache_hit"] != true || second["status"] != "succeeded" {
		t.Fatalf("first %v\nsecond %v", first, second)
	}
	a := s.do(t, "GET", "/api/jobs/"+first["id"].(string)+"/audio", "", "")
	b := s.do(t, "GET", "/api/jobs/"+second["id"].(string)+"/audio", "", "")
	if a.status != 200 || !bytes.Equal(a.body, b.body) {
		t.Fatalf("cached audio differs: %d %d bytes", len(a.body), len(b.body))
	}
}

func TestBitrateAndSampleRateOptions(t *testing.T) {
	s := newStack(t, true)
	for _, c := range []struct {
		body  string
		codec string
		rate  int
	}{
		{`{"text":"Options.","format":"mp3","sample_rate":44100,"bitrate_kbps":128}`, "mp3", 44100},
		{`{"text":"Options.","format":"wav","sample_rate":16000}`, "pcm_s16le", 16000},
		{`{"text":"Options.","format":"flac","sample_rate":48000}`, "flac", 48000},
	} {
		r := s.do(t, "POST", "/api/tts", jsonCT, c.body)
		if r.status != 202 {
			t.Fatalf("%s: %d %s", c.body, r.status, r.body)
		}
		job := s.waitTerminal(t, r.json(t)["id"].(string))
		if job["status"] != "succeeded" {
			t.Fatalf("%s: %v", c.body, job)
		}
		a := s.do(t, "GET", "/api/jobs/"+job["id"].(string)+"/audio", "", "")
		p, err := audio.ProbeBytes(context.Background(), "ffprobe", a.body)
		if err != nil {
			t.Fatal(err)
		}
		if p.Codec != c.codec || p.SampleRate != c.rate || p.DurationSeconds < 0.05 {
			t.Fatalf("%s: probe %+v", c.body, p)
		}
	}
	if r := s.do(t, "POST", "/api/tts", jsonCT, `{"text":"x","format":"wav","bitrate_kbps":64}`); r.status != 422 {
		t.Fatalf("bitrate for wav: %d", r.status)
	}
}
