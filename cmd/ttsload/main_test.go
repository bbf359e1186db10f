package main

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
)

// binDir holds the api and ttsload binaries, built once for the package.
var binDir string

func TestMain(m *testing.M) { os.Exit(testsvc.RunWithCommands(m, &binDir, "api", "ttsload")) }

// startAPI runs the API in embedded mode with the tone engine, killed with
// its process group at cleanup, and returns its base URL once healthy.
func startAPI(t *testing.T, env map[string]string) string {
	t.Helper()
	port := strconv.Itoa(testsvc.FreePort(t))
	all := map[string]string{"DATA_DIR": t.TempDir(), "HTTP_ADDR": "127.0.0.1:" + port, "TTS_ENGINE": "tone"}
	maps.Copy(all, env)
	p := testsvc.StartProc(t, filepath.Join(binDir, "api"), all)
	base := "http://127.0.0.1:" + port
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.Done:
			t.Fatalf("api exited")
		default:
		}
		if res, err := http.Get(base + "/api/health"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return base
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("api not healthy within 60 s")
	return ""
}

func TestLoadAgainstEmbeddedAPI(t *testing.T) {
	load := filepath.Join(binDir, "ttsload")
	base := startAPI(t, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, load, "-server", base, "-clients", "4", "-duration", "3s",
		"-distinct", "-format", "wav", "-soak", "-sample-every", "1s", "-json")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ttsload: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	var r report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, stdout.String())
	}
	if r.Accepted == 0 || r.Submitted != r.Accepted || len(r.Rejected) != 0 {
		t.Fatalf("submitted %d, accepted %d, rejected %v", r.Submitted, r.Accepted, r.Rejected)
	}
	if r.Succeeded != r.Accepted || r.Failed != 0 || r.Canceled != 0 || r.Unfinished != 0 || r.Errors != 0 {
		t.Fatalf("accepted %d but succeeded %d, failed %d, canceled %d, unfinished %d, errors %d %v",
			r.Accepted, r.Succeeded, r.Failed, r.Canceled, r.Unfinished, r.Errors, r.ErrorSamples)
	}
	for name, l := range map[string]latency{"submit": r.SubmitMS, "end-to-end": r.EndToEndMS} {
		if l.Count != r.Accepted || l.P50 <= 0 || l.P50 > l.P95 || l.P95 > l.P99 || l.P99 > l.Max {
			t.Fatalf("%s latency %+v (accepted %d)", name, l, r.Accepted)
		}
	}
	// A job ends after it was submitted, so its end-to-end time is longer
	// than its submit time.
	if r.EndToEndMS.P50 < r.SubmitMS.P50 {
		t.Fatalf("end-to-end p50 %.2f ms below submit p50 %.2f ms", r.EndToEndMS.P50, r.SubmitMS.P50)
	}
	if r.AcceptedPerSec <= 0 || r.CompletedPerSec <= 0 {
		t.Fatalf("throughput %.2f accepted/s, %.2f completed/s", r.AcceptedPerSec, r.CompletedPerSec)
	}
	if r.Soak == nil || r.Soak.SampleErrors != 0 || r.Soak.Goroutines.Samples < 2 ||
		r.Soak.Goroutines.First <= 0 || r.Soak.RSSBytes.First <= 0 || r.Soak.RSSBytes.Max < r.Soak.RSSBytes.Last {
		t.Fatalf("soak samples %+v", r.Soak)
	}
}

func TestRefusesRemoteServer(t *testing.T) {
	for _, server := range []string{"http://8.8.8.8:8080", "http://192.0.2.1", "https://[2001:db8::1]:443"} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"-server", server, "-duration", "1s"}, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "refusing") || !strings.Contains(stderr.String(), "-allow-remote") {
			t.Fatalf("%s: exit %d, stderr %q", server, code, stderr.String())
		}
		if stdout.Len() != 0 {
			t.Fatalf("%s: ran anyway: %s", server, stdout.String())
		}
	}
}

func TestCheckLocal(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "127.0.0.2", "::1", "localhost", "0.0.0.0"} {
		if err := checkLocal(context.Background(), host); err != nil {
			t.Errorf("%s refused: %v", host, err)
		}
	}
	for _, host := range []string{"8.8.8.8", "10.255.255.254", "2001:db8::1", ""} {
		if err := checkLocal(context.Background(), host); err == nil {
			t.Errorf("%s accepted", host)
		}
	}
}

func TestPercentiles(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	got := percentiles(d)
	want := latency{Count: 100, P50: 50, P95: 95, P99: 99, Max: 100}
	if got != want {
		t.Fatalf("percentiles %+v, want %+v", got, want)
	}
	if percentiles(nil) != (latency{}) {
		t.Fatal("empty input")
	}
}

func TestGauge(t *testing.T) {
	if v, ok := gauge("go_goroutines 42", "go_goroutines"); !ok || v != 42 {
		t.Fatalf("%v %v", v, ok)
	}
	if v, ok := gauge("process_resident_memory_bytes 2.5e+07", "process_resident_memory_bytes"); !ok || v != 2.5e7 {
		t.Fatalf("%v %v", v, ok)
	}
	for _, line := range []string{"# HELP go_goroutines x", "go_goroutines_total 3", `go_goroutines{a="b"} 3`} {
		if _, ok := gauge(line, "go_goroutines"); ok {
			t.Fatalf("%q parsed", line)
		}
	}
}

// TestLoadWithAuthentication drives an API that requires authentication
// with an admin's token (exempt from the per-account limits); without it
// every submission is refused.
func TestLoadWithAuthentication(t *testing.T) {
	load := filepath.Join(binDir, "ttsload")
	base := startAPI(t, map[string]string{"JWT_SECRET": "load-test-secret-0123456789abcdef0123", "ADMIN_EMAIL": "admin@example.com",
		"ADMIN_PASSWORD": "a load test admin password"})
	res, err := http.Post(base+"/api/auth/login", "application/json",
		strings.NewReader(`{"email":"admin@example.com","password":"a load test admin password"}`))
	if err != nil {
		t.Fatal(err)
	}
	var login struct{ Token string }
	err = json.NewDecoder(res.Body).Decode(&login)
	res.Body.Close()
	if err != nil || login.Token == "" {
		t.Fatalf("login: %d %v", res.StatusCode, err)
	}
	runLoad := func(args ...string) report {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, load, append([]string{"-server", base, "-clients", "2", "-duration", "2s",
			"-distinct", "-format", "wav", "-soak", "-sample-every", "500ms", "-json"}, args...)...)
		cmd.Env = append(os.Environ(), "KOKORO_TTS_API_KEY=")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		_ = cmd.Run()
		var r report
		if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
			t.Fatalf("report is not JSON: %v\n%s\n%s", err, stdout.String(), stderr.String())
		}
		return r
	}
	r := runLoad("-key", login.Token)
	if r.Accepted == 0 || r.Succeeded != r.Accepted || r.Errors != 0 || r.Soak == nil || r.Soak.SampleErrors != 0 {
		t.Fatalf("with the token: accepted %d, succeeded %d, errors %d %v, soak %+v", r.Accepted, r.Succeeded, r.Errors, r.ErrorSamples, r.Soak)
	}
	if r := runLoad(); r.Accepted != 0 {
		t.Fatalf("without a token %d jobs were accepted", r.Accepted)
	}
}
