package browser

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
)

// binDir holds the api binary built once for the package.
var binDir string

func TestMain(m *testing.M) { os.Exit(testsvc.RunWithCommands(m, &binDir, "api")) }

// service is the API under test and a Go client for the setup and the
// cross-checks the browser cannot make.
type service struct {
	t          *testing.T
	base       string
	authOn     bool
	adminEmail string
	adminPass  string
	http       *http.Client
	// hold, while true, keeps every job that reaches encoding running.
	hold func(on bool)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// randPassword passes the password policy (12+ characters, not one repeated).
func randPassword() string { return "Pw-" + randHex(12) }

// startService runs cmd/api in embedded mode with the tone engine, one job
// at a time, and an ffmpeg wrapper that waits while a hold file exists (so
// a test can keep a job running and others queued, without timing) and
// fails every FLAC encoding (so a test can make a failed job).
func startService(t *testing.T, auth bool) *service {
	t.Helper()
	s := &service{t: t, authOn: auth, adminEmail: "admin@example.com", adminPass: randPassword(),
		http: &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	ffmpeg := testsvc.Require(t, "ffmpeg", "ffmpeg")
	dir := t.TempDir()
	holdFile := filepath.Join(dir, "hold")
	wrapper := filepath.Join(dir, "ffmpeg-hold")
	script := "#!/bin/sh\n" +
		"# FLAC encoding always fails (the tests' way to make failed jobs).\n" +
		"case \" $* \" in *' -f flac '*) echo 'simulated encoder failure' >&2; exit 1;; esac\n" +
		"# Other encodings wait while the hold file exists.\n" +
		"while [ -e '" + holdFile + "' ]; do sleep 0.05; done\n" +
		"exec '" + ffmpeg + "' \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	s.hold = func(on bool) {
		if on {
			if err := os.WriteFile(holdFile, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		} else if err := os.Remove(holdFile); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { s.hold(false) })
	env := map[string]string{
		"DATA_DIR": filepath.Join(dir, "data"), "TTS_ENGINE": "tone",
		"KOKORO_TTS_MAX_CONCURRENCY": "1", "FFMPEG_PATH": wrapper, "LOG_FORMAT": "text",
	}
	if auth {
		env["JWT_SECRET"] = randHex(32)
		env["ADMIN_EMAIL"] = s.adminEmail
		env["ADMIN_PASSWORD"] = s.adminPass
	}
	// A port found free can be taken before the API binds it (by the
	// embedded Redis, for one): then start again on another.
	for attempt := 1; ; attempt++ {
		addr := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
		env["HTTP_ADDR"] = addr
		s.base = "http://" + addr
		p := testsvc.StartProc(t, filepath.Join(binDir, "api"), env)
		err := s.waitHealthy(p)
		if err == nil {
			return s
		}
		if attempt < 3 && strings.Contains(p.Output(), "address already in use") {
			t.Logf("api start %d: %v; trying another port", attempt, err)
			continue
		}
		t.Fatalf("%v:\n%s", err, p.Output())
	}
}

func (s *service) waitHealthy(p *testsvc.Proc) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-p.Done:
			return fmt.Errorf("api exited before it was healthy")
		default:
		}
		res, err := s.http.Get(s.base + "/api/health")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("api not healthy within 60 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// call sends a JSON request with a bearer token (when tok is set) and
// decodes the JSON answer into a map.
func (s *service) call(method, path, tok string, body any) (int, map[string]any) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := s.http.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m
}

func (s *service) must(want int, method, path, tok string, body any) map[string]any {
	s.t.Helper()
	st, m := s.call(method, path, tok, body)
	if st != want {
		s.t.Fatalf("%s %s: %d, want %d: %v", method, path, st, want, m)
	}
	return m
}

// login returns a token for the account (empty in open mode).
func (s *service) login(email, password string) string {
	s.t.Helper()
	if !s.authOn {
		return ""
	}
	m := s.must(200, "POST", "/api/auth/login", "", map[string]string{"email": email, "password": password})
	return m["token"].(string)
}

func (s *service) adminToken() string { return s.login(s.adminEmail, s.adminPass) }

// createUser makes an account through the admin API and returns its id.
func (s *service) createUser(adminTok, email, password, role string) string {
	s.t.Helper()
	m := s.must(201, "POST", "/api/admin/users", adminTok, map[string]string{"email": email, "password": password, "role": role})
	return m["user"].(map[string]any)["id"].(string)
}

func (s *service) submit(tok, text string) string {
	s.t.Helper()
	return s.submitFormat(tok, text, "mp3")
}

func (s *service) submitFormat(tok, text, format string) string {
	s.t.Helper()
	m := s.must(202, "POST", "/api/tts", tok, map[string]any{"text": text, "format": format})
	return m["id"].(string)
}

// waitJob polls the job (as its owner) until ok accepts its status.
func (s *service) waitJob(tok, id string, ok func(status string) bool) map[string]any {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var last map[string]any
	for ctx.Err() == nil {
		_, last = s.call("GET", "/api/jobs/"+id, tok, nil)
		if st, _ := last["status"].(string); ok(st) {
			return last
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("job %s did not reach the wanted status; last seen: %v", id, last)
	return nil
}

func terminal(st string) bool { return st == "succeeded" || st == "failed" || st == "canceled" }

// get fetches a path with a session cookie and returns status, content type
// and body.
func (s *service) getWithCookie(path, cookie string) (int, string, []byte) {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.base+path, nil)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	res, err := s.http.Do(req)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Content-Type"), b
}

func hasPrefixAny(s string, ps ...string) bool {
	for _, p := range ps {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
