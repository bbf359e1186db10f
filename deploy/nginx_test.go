package deploy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
)

// lockedBuffer collects a child process's output; it may be read while the process writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startAPI runs the real api binary in embedded mode on a loopback port and waits until it answers.
func startAPI(t *testing.T, bin string) (addr string) {
	t.Helper()
	addr = "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	cmd := exec.Command(bin)
	cmd.Env = cleanEnv("TTS_ENGINE=tone", "DATA_DIR="+t.TempDir(), "HTTP_ADDR="+addr, "LOG_FORMAT=text", "LOG_LEVEL=warn")
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("api output:\n%s", out.String())
		}
	})
	waitHTTP(t, "http://"+addr+"/api/health", http.DefaultClient, exited, out)
	return addr
}

// waitHTTP polls url until it answers 200, failing early when the process exits.
func waitHTTP(t *testing.T, url string, client *http.Client, exited <-chan error, out *lockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("the process serving %s exited: %v\n%s", url, err, out.String())
		default:
		}
		res, err := client.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer 200 within 30s (last: %v, %v)\n%s", url, res, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// nginxVersion returns nginx's version ("1.22.1").
func nginxVersion(t *testing.T, nginx string) string {
	t.Helper()
	out, err := exec.Command(nginx, "-v").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -v: %v %s", err, out)
	}
	m := regexp.MustCompile(`nginx/(\d+\.\d+\.\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("nginx -v: %s", out)
	}
	return string(m[1])
}

// renderNginx turns the example into a configuration nginx can run here: the upstream on the API's
// loopback address, the listeners on free loopback ports, the certificates and temporary files in
// dir, and the worker user this process can switch to. Everything else is the example as shipped.
func renderNginx(t *testing.T, version, dir, apiAddr string, httpPort, httpsPort int) string {
	t.Helper()
	conf := readRepoFile(t, "nginx/nginx.conf.example")
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // the example's "nginx" user exists in the nginx image, not on this host
	}
	replace := []struct{ old, new string }{
		{"server api:8080;", "server " + apiAddr + ";"},
		{"listen 80;", "listen 127.0.0.1:" + strconv.Itoa(httpPort) + ";"},
		{"listen [::]:80;", ""},
		{"listen 443 ssl;", "listen 127.0.0.1:" + strconv.Itoa(httpsPort) + " ssl;"},
		{"listen [::]:443 ssl;", ""},
		{"/etc/nginx/certs/", dir + "/"},
		{"user nginx;", user},
		{"http {", "http {\n    client_body_temp_path " + dir + "/body;\n    proxy_temp_path " + dir + "/proxy;\n" +
			"    fastcgi_temp_path " + dir + "/fastcgi;\n    uwsgi_temp_path " + dir + "/uwsgi;\n    scgi_temp_path " + dir + "/scgi;"},
	}
	// "http2 on;" is nginx 1.25.1+; older ones (Debian bookworm has 1.22) speak HTTP/2 only via listen.
	if compareVersions(version, "1.25.1") < 0 {
		replace = append(replace, struct{ old, new string }{"http2 on;", ""})
	}
	if _, err := os.Stat("/etc/nginx/mime.types"); err != nil {
		replace = append(replace, struct{ old, new string }{"include /etc/nginx/mime.types;", "types { application/json json; }"})
	}
	for _, r := range replace {
		if !strings.Contains(conf, r.old) {
			t.Fatalf("nginx/nginx.conf.example no longer contains %q: update renderNginx", r.old)
		}
		conf = strings.ReplaceAll(conf, r.old, r.new)
	}
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// selfSigned makes a certificate for 127.0.0.1 and localhost with openssl, as DEPLOYMENT.md does
// for a first test, and returns a pool that trusts it.
func selfSigned(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	openssl := requireTool(t, "openssl", "openssl")
	cmd := exec.Command(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
		"-keyout", filepath.Join(dir, "privkey.pem"), "-out", filepath.Join(dir, "fullchain.pem"),
		"-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	pem, err := os.ReadFile(filepath.Join(dir, "fullchain.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("openssl wrote no certificate")
	}
	return pool
}

// TestNginxExample runs `nginx -t` on the example, then nginx itself in front of the real API, and
// sends requests through it: the redirect, TLS, health, a synthesis job to its audio, the rate
// limit and the body size limit.
func TestNginxExample(t *testing.T) {
	nginx := requireTool(t, "nginx", "nginx")
	bin, _ := buildBinaries(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil { // nginx workers (another user when not root) read the certificates
		t.Fatal(err)
	}
	pool := selfSigned(t, dir)
	apiAddr := startAPI(t, filepath.Join(bin, "api"))
	httpPort, httpsPort := testsvc.FreePort(t), testsvc.FreePort(t)
	conf := renderNginx(t, nginxVersion(t, nginx), dir, apiAddr, httpPort, httpsPort)
	global := "pid " + filepath.Join(dir, "nginx.pid") + ";"

	out, err := exec.Command(nginx, "-t", "-e", "stderr", "-p", dir+"/", "-c", conf, "-g", global).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "syntax is ok") || !strings.Contains(string(out), "test is successful") {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}

	cmd := exec.Command(nginx, "-e", "stderr", "-p", dir+"/", "-c", conf, "-g", global+" daemon off;")
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT) // graceful: workers finish, master removes its pid file
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("nginx output:\n%s", logs.String())
		}
	})

	noRedirect := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	httpsClient := &http.Client{
		Timeout:       20 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}},
		CheckRedirect: noRedirect.CheckRedirect,
	}
	base := "https://127.0.0.1:" + strconv.Itoa(httpsPort)
	waitHTTP(t, base+"/api/health", httpsClient, exited, logs)

	t.Run("http redirects to https", func(t *testing.T) {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			req, _ := http.NewRequest(method, "http://127.0.0.1:"+strconv.Itoa(httpPort)+"/api/tts?x=1", strings.NewReader(`{}`))
			res, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusPermanentRedirect || res.Header.Get("Location") != "https://127.0.0.1/api/tts?x=1" {
				t.Errorf("%s over HTTP: %d Location %q, want 308 to https://127.0.0.1/api/tts?x=1", method, res.StatusCode, res.Header.Get("Location"))
			}
		}
		// Except the container health check's own endpoint (docker-compose.gpu.yml), from loopback.
		res, err := noRedirect.Get("http://127.0.0.1:" + strconv.Itoa(httpPort) + "/nginx-health")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || string(body) != "ok\n" {
			t.Errorf("GET /nginx-health: %d %q", res.StatusCode, body)
		}
	})

	t.Run("tls versions", func(t *testing.T) {
		for _, v := range []struct {
			name     string
			max      uint16
			accepted bool
		}{{"TLS 1.1", tls.VersionTLS11, false}, {"TLS 1.2", tls.VersionTLS12, true}, {"TLS 1.3", tls.VersionTLS13, true}} {
			conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(httpsPort),
				&tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS10, MaxVersion: v.max})
			if err == nil {
				conn.Close()
			}
			if (err == nil) != v.accepted {
				t.Errorf("%s: handshake error %v, want accepted=%v", v.name, err, v.accepted)
			}
		}
	})

	t.Run("health and headers", func(t *testing.T) {
		res, err := httpsClient.Get(base + "/api/health")
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Status, Mode string }
		err = json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK || body.Status != "ok" || body.Mode != "embedded" {
			t.Fatalf("GET /api/health through nginx: %d %+v %v", res.StatusCode, body, err)
		}
		h := res.Header
		for name, want := range map[string]string{
			"Strict-Transport-Security": "max-age=63072000; includeSubDomains",
			"X-Content-Type-Options":    "nosniff",
			"X-Frame-Options":           "DENY",
			"Referrer-Policy":           "no-referrer",
			"Server":                    "nginx",
		} {
			// Exactly once: the API sets some of these too, and nginx hides the upstream's copy.
			if got := h.Values(name); len(got) != 1 || got[0] != want {
				t.Errorf("%s: %q, want exactly %q", name, got, want)
			}
		}
		if !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("Content-Security-Policy %q", h.Get("Content-Security-Policy"))
		}
		if len(h.Get("X-Request-Id")) != 32 {
			t.Errorf("X-Request-ID %q: nginx's $request_id should reach the API and come back", h.Get("X-Request-Id"))
		}
	})

	t.Run("page and dashboards through nginx", func(t *testing.T) {
		for _, c := range []struct{ path, ctype, csp string }{
			{"/", "text/html", "script-src 'self'"},
			{"/assets/app.js", "javascript", ""},
			{"/admin", "text/html", "script-src 'self'"},
			{"/admin/queues/", "text/html", "'unsafe-inline'"},
		} {
			res, err := httpsClient.Get(base + c.path)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK || !strings.Contains(res.Header.Get("Content-Type"), c.ctype) {
				t.Errorf("GET %s: %d %q", c.path, res.StatusCode, res.Header.Get("Content-Type"))
			}
			// Exactly one policy: the page's own where it has one (a second,
			// stricter one would block its scripts), else nginx's default.
			csp := res.Header.Values("Content-Security-Policy")
			if len(csp) != 1 || (c.csp != "" && (!strings.Contains(csp[0], c.csp) || strings.Contains(csp[0], "default-src 'none'"))) {
				t.Errorf("GET %s: Content-Security-Policy %q, want one containing %q", c.path, csp, c.csp)
			}
		}
		res, err := httpsClient.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET /metrics through nginx: %d, want 404 (scraped internally)", res.StatusCode)
		}
	})

	t.Run("synthesis through nginx", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, base+"/api/tts", strings.NewReader(`{"text":"Hello through nginx.","format":"wav"}`))
		req.Header.Set("Content-Type", "application/json")
		res, err := httpsClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var job struct {
			ID     string
			Status string
			Links  struct{ Self, Audio string }
		}
		err = json.NewDecoder(res.Body).Decode(&job)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusAccepted || job.ID == "" {
			t.Fatalf("POST /api/tts: %d %+v %v", res.StatusCode, job, err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for job.Status != "succeeded" {
			if job.Status == "failed" || job.Status == "canceled" || time.Now().After(deadline) {
				t.Fatalf("job %s is %s", job.ID, job.Status)
			}
			time.Sleep(50 * time.Millisecond)
			if err := getJSON(httpsClient, base+job.Links.Self, &job); err != nil {
				t.Fatal(err)
			}
		}
		res, err = httpsClient.Get(base + job.Links.Audio)
		if err != nil {
			t.Fatal(err)
		}
		audio, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK || !bytes.HasPrefix(audio, []byte("RIFF")) || len(audio) < 1000 {
			t.Fatalf("GET audio: %d, %d bytes %q..., %v", res.StatusCode, len(audio), audio[:min(len(audio), 4)], err)
		}
		if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") || !strings.Contains(cc, "max-age=31536000") {
			t.Errorf("audio Cache-Control %q: immutable audio should be cached for a year", cc)
		}
		if res.Header.Get("Strict-Transport-Security") == "" {
			t.Errorf("audio answer lacks the security headers")
		}
	})

	t.Run("body size limit", func(t *testing.T) {
		big := `{"text":"` + strings.Repeat("a", 2<<20) + `"}`
		req, _ := http.NewRequest(http.MethodPost, base+"/api/tts", strings.NewReader(big))
		req.Header.Set("Content-Type", "application/json")
		res, err := httpsClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge || res.Header.Get("X-Request-Id") != "" {
			t.Errorf("2 MiB body: %d (X-Request-ID %q), want 413 from nginx itself", res.StatusCode, res.Header.Get("X-Request-Id"))
		}
	})

	t.Run("synthesis rate limit", func(t *testing.T) {
		// The same Idempotency-Key: each accepted request returns the one job, creating no work.
		limited := 0
		for i := 0; i < 40 && limited == 0; i++ {
			req, _ := http.NewRequest(http.MethodPost, base+"/api/tts", strings.NewReader(`{"text":"Rate limited."}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", "deploy-rate-limit")
			res, err := httpsClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			switch res.StatusCode {
			case http.StatusTooManyRequests:
				limited++
				if res.Header.Get("Strict-Transport-Security") == "" {
					t.Errorf("429 lacks the security headers")
				}
			case http.StatusAccepted:
			default:
				t.Fatalf("POST %d: status %d", i, res.StatusCode)
			}
		}
		if limited == 0 {
			t.Errorf("40 submissions in a row were never limited (zone synthesis: 30r/m, burst 10)")
		}
		// Other endpoints have their own, larger allowance.
		if res, err := httpsClient.Get(base + "/api/voices"); err != nil || res.StatusCode != http.StatusOK {
			t.Errorf("GET /api/voices after the synthesis limit: %v %v", res, err)
		} else {
			res.Body.Close()
		}
	})

	t.Run("api health subcommand", func(t *testing.T) {
		// What the api image's HEALTHCHECK runs, against the running API.
		cmd := exec.Command(filepath.Join(bin, "api"), "health")
		cmd.Env = cleanEnv("HTTP_ADDR="+apiAddr, "DATA_DIR="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"status":"ok"`) {
			t.Errorf("api health: %v\n%s", err, out)
		}
	})
}

func getJSON(c *http.Client, url string, dst any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		return fmt.Errorf("GET %s: %d %s", url, res.StatusCode, b)
	}
	return json.NewDecoder(res.Body).Decode(dst)
}
