package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
)

// binDir holds the binaries TestMain builds once for the package.
var binDir string

func TestMain(m *testing.M) { os.Exit(testsvc.RunWithCommands(m, &binDir, "api", "worker", "migrate")) }

// slow skips a test unless FAULTS_SLOW=1 (scenarios bound by asynq's fixed
// lease recovery, over a minute each).
func slow(t *testing.T) {
	t.Helper()
	if os.Getenv("FAULTS_SLOW") != "1" {
		t.Skip("slow fault scenario: run with FAULTS_SLOW=1 go test ./internal/faults")
	}
}

// start runs one of the binaries with env and debug logging, in its own
// process group; cleanup kills the group.
func start(t *testing.T, name string, env map[string]string, args ...string) *testsvc.Proc {
	t.Helper()
	all := map[string]string{"LOG_LEVEL": "debug"}
	maps.Copy(all, env)
	return testsvc.StartProc(t, filepath.Join(binDir, name), all, args...)
}

// waitLog waits until p's output contains s.
func waitLog(t *testing.T, p *testsvc.Proc, s string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if strings.Contains(p.Output(), s) {
			return
		}
		select {
		case <-p.Done:
			t.Fatalf("%s exited while waiting for %q", p.Name, s)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("%s: no %q within %s", p.Name, s, within)
}

// run runs a binary to completion.
func run(t *testing.T, name string, env map[string]string, args ...string) (int, string) {
	t.Helper()
	p := start(t, name, env, args...)
	return p.Exited(t, 60*time.Second), p.Output()
}

// stack is one service-mode deployment: migrate run, the API up, workers
// started on demand, every job the API accepted remembered.
type stack struct {
	t     *testing.T
	env   map[string]string
	data  string
	base  string
	http  *http.Client
	redis *testsvc.RedisServer
	api   *testsvc.Proc

	// S3 only: the real server, the proxy the binaries go through and the
	// bucket.
	minio *testsvc.MinIOServer
	proxy *Proxy
	// The proxy in front of Redis (stackOptions.redisProxy).
	redisProxy *Proxy
	// The proxy in front of PostgreSQL (stackOptions.postgres).
	dbProxy *Proxy
	bucket  string

	mu       sync.Mutex
	accepted []string
}

type stackOptions struct {
	s3        bool              // audio in MinIO (through a Proxy) instead of on disk
	env       map[string]string // extra settings for every binary
	redisArgs []string          // extra redis-server arguments (persistence, limits)
	// redisProxy puts a Proxy between the binaries and Redis (redisProxy
	// field of the stack), to make Redis hang rather than die.
	redisProxy bool
	// postgres keeps the jobs in PostgreSQL (a schema of its own in the
	// server KOKORO_TEST_POSTGRES names) reached through a Proxy (dbProxy),
	// instead of SQLite.
	postgres bool
}

// newStack starts Redis (and MinIO), migrates a SQLite database and starts
// the API. Workers are started with startWorker.
func newStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	testsvc.Require(t, "ffmpeg", "ffmpeg")
	testsvc.Require(t, "espeak-ng", "espeak-ng")
	s := &stack{t: t, redis: testsvc.Redis(t, o.redisArgs...), data: t.TempDir(),
		http: &http.Client{Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	port := strconv.Itoa(testsvc.FreePort(t))
	s.base = "http://127.0.0.1:" + port
	s.env = map[string]string{
		"DATA_DIR": s.data, "DATABASE_URL": "sqlite:" + filepath.Join(s.data, "faults.db"), "REDIS_URL": s.redis.URL,
		"HTTP_ADDR": "127.0.0.1:" + port, "LOG_FORMAT": "json", "TTS_ENGINE": "espeak", "AUDIO_CACHE": "false",
		"WORKER_TASK_CHECK_INTERVAL": "50ms", "RECONCILE_INTERVAL": "1s", "RECONCILE_STALE_AFTER": "4s",
		"METRICS_ADDR": "127.0.0.1:0", "KOKORO_TTS_MAX_CONCURRENCY": "1", "AUTH_ALLOW_OPEN": "true",
	}
	if o.s3 {
		m := testsvc.MinIO(t)
		s.minio = &m
		p, err := NewProxy(m.Endpoint)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		s.proxy, s.bucket = p, "faults"
		maps.Copy(s.env, map[string]string{"S3_ENDPOINT": p.Addr(), "S3_ACCESS_KEY": m.AccessKey,
			"S3_SECRET_KEY": m.SecretKey, "S3_BUCKET": s.bucket})
	}
	if o.redisProxy {
		p, err := NewProxy(s.redis.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		s.redisProxy = p
		s.env["REDIS_URL"] = "redis://" + p.Addr() + "/0"
	}
	if o.postgres {
		s.env["DATABASE_URL"] = s.postgresThroughProxy()
	}
	maps.Copy(s.env, o.env)
	if code, out := run(t, "migrate", s.env); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, out)
	}
	s.startAPI()
	return s
}

// postgresThroughProxy makes a schema for the test on the PostgreSQL server
// KOKORO_TEST_POSTGRES names (skipping the test without one, or when it is
// reached over a Unix socket, which the TCP proxy cannot stand in for) and
// returns a DSN to it through a new Proxy (s.dbProxy).
func (s *stack) postgresThroughProxy() string {
	t := s.t
	t.Helper()
	base := os.Getenv(testsvc.PostgresEnv)
	if base == "" {
		t.Skip(testsvc.PostgresEnv + " is not set (scripts/ensure-postgres.sh prints one; make test sets it)")
	}
	dsn, _, _ := testsvc.PostgresSchema(t, base)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if u.Host == "" || u.Query().Get("host") != "" {
		t.Skip("PostgreSQL is reached over a Unix socket; this scenario needs TCP (a proxy stands in front of it)")
	}
	p, err := NewProxy(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	s.dbProxy = p
	u.Host = p.Addr()
	return u.String()
}

// startAPI starts the API and waits until it answers (its health is 503
// while no worker has announced itself).
func (s *stack) startAPI() {
	t := s.t
	t.Helper()
	s.api = start(t, "api", s.env)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := s.http.Get(s.base + "/api/health"); err == nil {
			res.Body.Close()
			return
		}
		select {
		case <-s.api.Done:
			t.Fatalf("api exited: %s", s.api.Output())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("api did not answer: %s", s.api.Output())
}

// startWorker starts a worker with the stack's settings and extra, and
// waits until it takes tasks.
func (s *stack) startWorker(extra map[string]string) *testsvc.Proc {
	s.t.Helper()
	env := maps.Clone(s.env)
	maps.Copy(env, extra)
	w := start(s.t, "worker", env)
	waitLog(s.t, w, `"msg":"worker started"`, 60*time.Second)
	return w
}

// longText is a distinct text of about n characters: espeak-ng then runs
// for a while and the audio takes a while to encode, which is the window
// the faults are injected in. Distinct texts keep objects apart even with
// the audio cache on.
func longText(tag string, n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "In test %s, the teacher reads sentence number %d slowly, and the class repeats it twice. ", tag, i)
	}
	return strings.TrimSpace(b.String())
}

type response struct {
	status int
	header http.Header
	body   map[string]any
}

func (s *stack) do(method, path, body string) response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := s.http.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	r := response{status: res.StatusCode, header: res.Header}
	_ = json.NewDecoder(res.Body).Decode(&r.body)
	return r
}

// submit posts a job and records it as accepted when the answer is 202.
func (s *stack) submit(req map[string]any) (string, response) {
	s.t.Helper()
	b, _ := json.Marshal(req)
	r := s.do("POST", "/api/tts", string(b))
	if r.status != http.StatusAccepted {
		return "", r
	}
	id := r.body["id"].(string)
	s.mu.Lock()
	s.accepted = append(s.accepted, id)
	s.mu.Unlock()
	return id, r
}

// mustSubmit submits and fails the test on anything but 202.
func (s *stack) mustSubmit(req map[string]any) string {
	s.t.Helper()
	id, r := s.submit(req)
	if id == "" {
		s.t.Fatalf("submit: %d %v", r.status, r.body)
	}
	return id
}

func (s *stack) job(id string) map[string]any {
	s.t.Helper()
	r := s.do("GET", "/api/jobs/"+id, "")
	if r.status != 200 {
		s.t.Fatalf("GET job %s: %d %v", id, r.status, r.body)
	}
	return r.body
}

// waitStatus polls the job until its status is one of want.
func (s *stack) waitStatus(id string, within time.Duration, want ...string) map[string]any {
	s.t.Helper()
	deadline := time.Now().Add(within)
	var j map[string]any
	for time.Now().Before(deadline) {
		j = s.job(id)
		if slices.Contains(want, j["status"].(string)) {
			return j
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("job %s not %v within %s; last: %v", id, want, within, j)
	return nil
}

func terminal(status any) bool {
	return status == "succeeded" || status == "failed" || status == "canceled"
}

// objects lists every object in storage (disk: files under DATA_DIR/audio,
// temporary files included; S3: the bucket, read from MinIO directly, and
// incomplete multipart uploads as "incomplete:<key>").
func (s *stack) objects() []string {
	t := s.t
	t.Helper()
	var keys []string
	if s.minio == nil {
		root := filepath.Join(s.data, "audio")
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() {
				rel, _ := filepath.Rel(root, p)
				keys = append(keys, filepath.ToSlash(rel))
			}
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return keys
	}
	mc, err := minio.New(s.minio.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.minio.AccessKey, s.minio.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for o := range mc.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("listing the bucket: %v", o.Err)
		}
		keys = append(keys, o.Key)
	}
	for u := range mc.ListIncompleteUploads(ctx, s.bucket, "", true) {
		if u.Err != nil {
			t.Fatalf("listing incomplete uploads: %v", u.Err)
		}
		keys = append(keys, "incomplete:"+u.Key)
	}
	return keys
}

// metricsJobs reads the API's kokoro_tts_jobs gauge by status.
func (s *stack) metricsJobs() map[string]int {
	t := s.t
	t.Helper()
	res, err := s.http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("/metrics: %d %s", res.StatusCode, b)
	}
	counts := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, `kokoro_tts_jobs{status="`)
		if !ok {
			continue
		}
		status, value, _ := strings.Cut(rest, `"} `)
		n, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		counts[status] = int(n)
	}
	return counts
}

// checkInvariants checks what every fault must leave true, for every job
// the API accepted (202):
//  1. it reaches exactly one terminal state within `within`;
//  2. a succeeded job's audio downloads (200) with the recorded size;
//  3. storage holds exactly one object per succeeded job, at its key, and
//     nothing else (no second artifact, no partial or temporary object);
//  4. a terminal state never changes (read again a second later);
//  5. the API's kokoro_tts_jobs gauge sums to the number accepted, and
//     agrees with the states read over HTTP.
//
// It returns the final jobs by id.
func checkInvariants(t *testing.T, s *stack, within time.Duration) map[string]map[string]any {
	t.Helper()
	s.mu.Lock()
	ids := slices.Clone(s.accepted)
	s.mu.Unlock()

	final := map[string]map[string]any{}
	deadline := time.Now().Add(within)
	for _, id := range ids {
		for {
			j := s.job(id)
			if terminal(j["status"]) {
				final[id] = j
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("invariant 1: job %s still %v after %s: %v", id, j["status"], within, j)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	want := map[string]bool{}
	byStatus := map[string]int{}
	for id, j := range final {
		status := j["status"].(string)
		byStatus[status]++
		if status != "succeeded" {
			if j["audio"] != nil {
				t.Errorf("invariant 2: %s job %s has audio %v", status, id, j["audio"])
			}
			continue
		}
		a, _ := j["audio"].(map[string]any)
		if a == nil {
			t.Errorf("invariant 2: succeeded job %s has no audio", id)
			continue
		}
		res, err := s.http.Get(s.base + "/api/jobs/" + id + "/audio")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || int64(len(b)) != int64(a["bytes"].(float64)) || len(b) == 0 {
			t.Errorf("invariant 2: audio of %s: %d, %d bytes, recorded %v", id, res.StatusCode, len(b), a["bytes"])
		}
		want["jobs/"+id+"/audio."+j["format"].(string)] = true
	}

	got := s.objects()
	for _, k := range got {
		if !want[k] {
			t.Errorf("invariant 3: storage holds %q, which is no succeeded job's audio", k)
		}
	}
	for k := range want {
		if !slices.Contains(got, k) {
			t.Errorf("invariant 3: storage lacks %q", k)
		}
	}

	time.Sleep(time.Second)
	for id, j := range final {
		again := s.job(id)
		if again["status"] != j["status"] || again["finished_at"] != j["finished_at"] || again["attempts"] != j["attempts"] {
			t.Errorf("invariant 4: job %s changed after it ended: %v then %v", id, j, again)
		}
	}

	counts := s.metricsJobs()
	sum := 0
	for status, n := range counts {
		sum += n
		if n != byStatus[status] {
			t.Errorf("invariant 5: kokoro_tts_jobs{status=%q} is %d, HTTP shows %d", status, n, byStatus[status])
		}
	}
	if sum != len(ids) {
		t.Errorf("invariant 5: kokoro_tts_jobs sums to %d, %d jobs were accepted (%v)", sum, len(ids), counts)
	}
	return final
}
