// Package hostile runs the real API binary (embedded mode, tone engine) and
// attacks it over real TCP the way a hostile or broken client would: headers
// that never end, headers that are too large, a body that trickles in, and
// JSON with duplicate keys. Every test checks that the server cuts the client
// off (or refuses it with the right status) and keeps serving others.
//
// The timeouts under test are those of httpapi.NewHTTPServer
// (ReadHeaderTimeout 10 s, ReadTimeout 60 s, MaxHeaderBytes 256 KiB) and
// the API's own 64 KiB header limit (httpapi.Config.MaxHeaderBytes). The
// binary has no setting to shorten them, so these tests wait them out; they
// run in parallel, each against its own API process, and the slowest takes
// about a minute. They assert what happens, never how fast: the bounds below
// only keep a broken server from hanging the test.
package hostile

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
)

// Generous bounds, several times the server's own timeouts.
const (
	headerCutOffBound = 30 * time.Second  // ReadHeaderTimeout is 10 s
	bodyCutOffBound   = 150 * time.Second // ReadTimeout is 60 s
)

var binDir string

func TestMain(m *testing.M) { os.Exit(testsvc.RunWithCommands(m, &binDir, "api")) }

// api is one running API process.
type api struct {
	*testsvc.Proc
	addr string // 127.0.0.1:port
	base string // http://127.0.0.1:port
}

// startAPI runs the API in embedded mode (in-memory Redis, in-process
// worker with the tone engine, SQLite and audio in a temp dir) and waits
// until /api/health answers 200.
func startAPI(t *testing.T) *api {
	t.Helper()
	a := &api{addr: "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))}
	a.base = "http://" + a.addr
	a.Proc = testsvc.StartProc(t, filepath.Join(binDir, "api"), map[string]string{"DATA_DIR": t.TempDir(), "HTTP_ADDR": a.addr,
		"TTS_ENGINE": "tone", "LOG_FORMAT": "json"})
	c := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-a.Done:
			t.Fatalf("api exited during start-up")
		default:
		}
		if res, err := c.Get(a.base + "/api/health"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return a
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("api not healthy within 60 s")
	return nil
}

// requireHealthy fails unless the process is alive and a fresh client gets
// 200 from /api/health.
func (a *api) requireHealthy(t *testing.T, when string) {
	t.Helper()
	select {
	case <-a.Done:
		t.Fatalf("%s: the api process has exited", when)
	default:
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Get(a.base + "/api/health")
	if err != nil {
		t.Fatalf("%s: GET /api/health: %v", when, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("%s: GET /api/health: %d %s", when, res.StatusCode, b)
	}
}

// requireJobs fails unless the API lists exactly n jobs.
func (a *api) requireJobs(t *testing.T, n int) {
	t.Helper()
	res, err := http.Get(a.base + "/api/jobs?limit=100")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var page struct {
		Jobs []json.RawMessage `json:"jobs"`
	}
	if err := json.NewDecoder(res.Body).Decode(&page); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/jobs: %d %v", res.StatusCode, err)
	}
	if len(page.Jobs) != n {
		t.Fatalf("GET /api/jobs lists %d jobs, want %d", len(page.Jobs), n)
	}
}

// requireError fails unless res is the API's JSON error with status and
// code: {"error":{"code","message","request_id"}}.
func requireError(t *testing.T, res *http.Response, status int, code string) {
	t.Helper()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading the %d response: %v", res.StatusCode, err)
	}
	mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	shown := string(body)
	if mt != "application/json" { // audio, when a request was wrongly accepted
		shown = fmt.Sprintf("%d bytes of %s", len(body), mt)
	}
	if res.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", res.StatusCode, status, shown)
	}
	if mt != "application/json" {
		t.Fatalf("Content-Type %q, want application/json: %s", res.Header.Get("Content-Type"), shown)
	}
	var e struct {
		Error *struct {
			Code      string `json:"code"`
			Message   string `json:"message"`
			RequestID string `json:"request_id"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
		t.Fatalf("not the JSON error shape: %s", body)
	}
	if e.Error.Code != code || e.Error.Message == "" || e.Error.RequestID == "" {
		t.Fatalf("error %+v, want code %q with a message and a request id", *e.Error, code)
	}
}

// readUntilClosed reads r (conn, or a buffered reader on it) until the
// server closes conn and returns what it sent. A reset counts as closed; the
// read deadline failing the read does not.
func readUntilClosed(conn net.Conn, r io.Reader, bound time.Duration) ([]byte, error) {
	_ = conn.SetReadDeadline(time.Now().Add(bound))
	b, err := io.ReadAll(r)
	if err == nil || errors.Is(err, syscall.ECONNRESET) {
		return b, nil
	}
	return b, err
}

// trickle writes p one byte at a time, every interval, until it is all
// written, the server refuses a write or stop is closed. It reports how many
// bytes it wrote.
func trickle(conn net.Conn, p []byte, interval time.Duration, stop <-chan struct{}) int {
	for i := range p {
		select {
		case <-stop:
			return i
		case <-time.After(interval):
		}
		if _, err := conn.Write(p[i : i+1]); err != nil {
			return i
		}
	}
	return len(p)
}

// TestSlowHeadersAreCutOff is the slow-loris attack: 50 connections each
// send the start of a request and then one header byte every half second,
// never finishing the header block. The server must keep answering other
// clients meanwhile, and close every one of the 50 without a response
// (net/http's ReadHeaderTimeout: a deadline on the whole header, which
// trickled bytes do not extend).
func TestSlowHeadersAreCutOff(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	const conns = 50
	// 200 bytes at 2 per second: 100 s to finish the line, which never ends.
	slowHeader := []byte("X-Slow: " + strings.Repeat("a", 192))
	stop := make(chan struct{})
	defer close(stop)

	type result struct {
		got     []byte
		err     error
		written int
	}
	results := make(chan result, conns)
	closed := make(chan struct{}, conns) // one token per connection the server has closed
	for range conns {
		conn, err := net.Dial("tcp", a.addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET /api/health HTTP/1.1\r\nHost: "+a.addr+"\r\n"); err != nil {
			t.Fatalf("writing the request line: %v", err)
		}
		wrote := make(chan int, 1)
		go func() { wrote <- trickle(conn, slowHeader, 500*time.Millisecond, stop) }()
		go func() {
			got, err := readUntilClosed(conn, conn, headerCutOffBound)
			closed <- struct{}{}
			conn.Close() // ends the trickle's next write
			results <- result{got: got, err: err, written: <-wrote}
		}()
	}

	// Other clients are served while the 50 are held open.
	a.requireHealthy(t, "with 50 slow connections open")
	if open := conns - len(closed); open == 0 {
		t.Fatalf("every slow connection was closed before the health check answered; nothing was held open")
	} else {
		t.Logf("health answered 200 with %d of %d slow connections open", open, conns)
	}

	for range conns {
		r := <-results
		if r.err != nil {
			t.Fatalf("a slow connection was not closed by the server within %s: %v", headerCutOffBound, r.err)
		}
		if len(r.got) != 0 {
			t.Fatalf("the server answered a request whose header never ended: %q", r.got)
		}
		if r.written == len(slowHeader) {
			t.Fatalf("the client finished trickling its header line before the server closed the connection")
		}
	}
	a.requireHealthy(t, "after the slow connections were cut off")
}

// TestOversizedHeadersAre431 sends header blocks above the API's limit (64
// KiB): one big header, and many small ones. Each gets 431 in the API's
// JSON error shape and the connection is closed; a header block under the
// limit still works; the server keeps serving.
//
// Above net/http's own hard ceiling (256 KiB) the 431 is written by
// net/http before any handler runs, as text/plain: that case checks the
// status and that the connection ends.
func TestOversizedHeadersAre431(t *testing.T) {
	t.Parallel()
	a := startAPI(t)

	var many strings.Builder
	for i := range 2000 { // 2,000 × ~40 bytes ≈ 78 KiB
		fmt.Fprintf(&many, "X-Many-%04d: %s\r\n", i, strings.Repeat("m", 24))
	}
	for _, tc := range []struct {
		name, headers string
		json          bool // answered by the API (JSON) rather than net/http
	}{
		{"one 80 KiB header", "X-Big: " + strings.Repeat("b", 80<<10) + "\r\n", true},
		{"2,000 headers", many.String(), true},
		{"a 1 MiB header", "X-Huge: " + strings.Repeat("h", 1<<20) + "\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", a.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// The server may stop reading and answer while the request is
			// still being written; write from a goroutine and ignore its
			// error (a reset once the server has hung up).
			go func() {
				_, _ = io.WriteString(conn, "GET /api/health HTTP/1.1\r\nHost: "+a.addr+"\r\n"+tc.headers+"\r\n")
			}()
			_ = conn.SetReadDeadline(time.Now().Add(headerCutOffBound))
			br := bufio.NewReader(conn)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("reading the response: %v", err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("status %d, want 431: %s", res.StatusCode, body)
			}
			if !res.Close {
				t.Fatalf("the 431 response does not close the connection: %v", res.Header)
			}
			if tc.json {
				var e struct {
					Error struct{ Code, Message string }
				}
				if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != "headers_too_large" || e.Error.Message == "" {
					t.Fatalf("want the JSON error headers_too_large, got %s (%v)", body, err)
				}
			}
			t.Logf("431 body (%s): %q", res.Header.Get("Content-Type"), body)
			a.requireHealthy(t, "after "+tc.name)
		})
	}

	// Under the limit: 60 KiB of header is served normally.
	req, _ := http.NewRequest(http.MethodGet, a.base+"/api/health", nil)
	req.Header.Set("X-Big", strings.Repeat("b", 60<<10))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("a 60 KiB header block: status %d, want 200", res.StatusCode)
	}
}

// TestSlowBodyIsCutOff sends a complete header for a 4 KiB JSON body and
// then one body byte a second. ReadTimeout (60 s, for the whole request)
// ends the read; the handler answers 400 malformed_request in the JSON error
// shape, the connection is closed, no job is created and the server keeps
// serving.
func TestSlowBodyIsCutOff(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	body := []byte(`{"text":"` + strings.Repeat("a", 4096-len(`{"text":""}`)) + `"}`)
	conn, err := net.Dial("tcp", a.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := "POST /api/tts HTTP/1.1\r\nHost: " + a.addr + "\r\nContent-Type: application/json\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	wrote := make(chan int, 1)
	go func() { wrote <- trickle(conn, body, time.Second, stop) }() // 4,096 s to finish

	_ = conn.SetReadDeadline(time.Now().Add(bodyCutOffBound))
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	close(stop)
	if err != nil {
		t.Fatalf("no response to a trickling body within %s: %v", bodyCutOffBound, err)
	}
	requireError(t, res, http.StatusBadRequest, "malformed_request")
	res.Body.Close()
	if n := <-wrote; n == len(body) {
		t.Fatalf("the whole body was sent before the server cut it off")
	}
	if rest, err := readUntilClosed(conn, br, headerCutOffBound); err != nil || len(rest) != 0 {
		t.Fatalf("after the 400 the connection was not closed: %q %v", rest, err)
	}
	a.requireHealthy(t, "after the slow body")
	a.requireJobs(t, 0)
}

// TestDuplicateJSONKeysAreMalformed posts bodies in which one object holds
// the same key twice. encoding/json keeps the last value silently (and
// matches struct fields case-insensitively), so a client and the API could
// disagree on what was asked; the API must refuse such a body with 400
// malformed_request and create nothing.
func TestDuplicateJSONKeysAreMalformed(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	post := func(t *testing.T, path, body string) *http.Response {
		t.Helper()
		res, err := http.Post(a.base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	for _, tc := range []struct{ name, path, body string }{
		{"top level", "/api/tts", `{"text":"a","text":"b"}`},
		{"same key in another case", "/api/tts", `{"text":"a","Text":"b"}`},
		{"three times, one voice", "/api/tts", `{"voice":"af_heart","text":"a","speed":1,"text":"b","text":"c"}`},
		{"inside a batch item", "/api/batches", `{"items":[{"key":"k1","text":"a","text":"b"}]}`},
		{"batch top level", "/api/batches", `{"voice":"af_heart","items":[{"key":"k1","text":"a"}],"voice":"bf_emma"}`},
		{"OpenAI speech", "/v1/audio/speech", `{"model":"tts-1","input":"a","voice":"alloy","input":"b"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireError(t, post(t, tc.path, tc.body), http.StatusBadRequest, "malformed_request")
		})
	}
	a.requireJobs(t, 0)

	// The same body without the duplicate is accepted: the 400 is for the
	// duplicate, not for the rest.
	if res := post(t, "/api/tts", `{"text":"b"}`); res.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("the body without a duplicate: %d %s", res.StatusCode, b)
	}
	a.requireJobs(t, 1)
}
