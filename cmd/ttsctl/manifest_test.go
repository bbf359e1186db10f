package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestManifestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if m, err := readManifest(dir); m != nil || err != nil {
		t.Fatalf("empty folder: %v, %v", m, err)
	}
	m := &manifest{Batch: "unit1", Server: "http://localhost:8080", UpdatedAt: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
		Items: []manifestItem{
			{Key: "001", Text: "Fish & chips <b>", Voice: "af_heart", Speed: 1, Format: "mp3", JobID: "j1", Status: statusSucceeded,
				DurationSeconds: 1.25, File: "001.mp3", Bytes: 1234, IdempotencyKey: "unit1:001"},
			{Key: "002", Text: "Two", Voice: "bf_emma", Speed: 0.9, Format: "wav", Status: statusRejected, Error: "invalid_request: voice"},
		}}
	if err := writeManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	got, err := readManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("read back %+v\nwant %+v", got, m)
	}
	// The fields the lesson's readers rely on are always there, and the
	// text is written as is.
	b, _ := os.ReadFile(filepath.Join(dir, manifestName))
	for _, field := range []string{`"key"`, `"text": "Fish & chips <b>"`, `"voice"`, `"speed"`, `"format"`, `"job_id": ""`, `"status"`,
		`"duration_seconds": 0`, `"file": ""`, `"error": ""`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("manifest lacks %s:\n%s", field, b)
		}
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("folder holds %v", entries)
	}

	if err := os.WriteFile(filepath.Join(dir, manifestName), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readManifest(dir); exitCode(err) != exitUsage || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("corrupt manifest: %v", err)
	}
}

// TestManifestComplete is the resume rule: an item is skipped only when an
// earlier run finished the same request and its file has the job's size.
func TestManifestComplete(t *testing.T) {
	dir := t.TempDir()
	want := manifestItem{Key: "001", Text: "Hello.", Voice: "af_heart", Speed: 1, Format: "mp3"}
	done := want
	done.JobID, done.Status, done.File, done.Bytes = "j1", statusSucceeded, "001.mp3", 5
	write := func(n int) {
		if err := os.WriteFile(filepath.Join(dir, "001.mp3"), make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(5)
	if !done.complete(&want, dir) {
		t.Fatal("a finished item with its file is not complete")
	}
	change := func(f func(m *manifestItem)) *manifestItem { m := want; f(&m); return &m }
	for name, other := range map[string]*manifestItem{
		"text":   change(func(m *manifestItem) { m.Text = "Hello!" }),
		"voice":  change(func(m *manifestItem) { m.Voice = "bf_emma" }),
		"speed":  change(func(m *manifestItem) { m.Speed = 1.1 }),
		"format": change(func(m *manifestItem) { m.Format = "wav" }),
	} {
		if done.complete(other, dir) {
			t.Errorf("complete although the %s changed", name)
		}
	}
	failed := done
	failed.Status = statusFailed
	if failed.complete(&want, dir) {
		t.Error("a failed item is complete")
	}
	write(4)
	if done.complete(&want, dir) {
		t.Error("a short file is complete")
	}
	os.Remove(filepath.Join(dir, "001.mp3"))
	if done.complete(&want, dir) {
		t.Error("a missing file is complete")
	}
	if err := os.Mkdir(filepath.Join(dir, "001.mp3"), 0o755); err != nil {
		t.Fatal(err)
	}
	if done.complete(&want, dir) {
		t.Error("a folder is complete")
	}
}

func TestBatchDefaults(t *testing.T) {
	b := &batchConfig{voice: "af_heart", speed: 1.2, format: "mp3"}
	got := b.want(item{Key: "a", Text: "x"})
	if got != (manifestItem{Key: "a", Text: "x", Voice: "af_heart", Speed: 1.2, Format: "mp3", Status: statusPending}) {
		t.Errorf("defaults: %+v", got)
	}
	got = b.want(item{Key: "b", Text: "y", Voice: "bf_emma", Speed: ptr(0.8), Format: "wav"})
	if got.Voice != "bf_emma" || got.Speed != 0.8 || got.Format != "wav" || fileName(&got) != "b.wav" {
		t.Errorf("item's own values: %+v", got)
	}
	for _, name := range []string{"", "  ", "a\nb", "x\x00", strings.Repeat("n", 101)} {
		if err := checkBatchName(name); exitCode(err) != exitUsage {
			t.Errorf("name %q: %v", name, err)
		}
	}
	if err := checkBatchName("Unit 1 — greetings"); err != nil {
		t.Error(err)
	}
	// The changed-item key is stable and depends on every field.
	r := ttsRequest{Text: "x", Voice: "af_heart", Speed: ptr(1), Format: "mp3", Queue: "batch"}
	h := requestHash(r)
	if len(h) != 12 || requestHash(r) != h {
		t.Fatalf("hash %q", h)
	}
	r.Speed = ptr(1.1)
	if requestHash(r) == h {
		t.Fatal("the hash ignores the speed")
	}
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{&jobError{ID: "j", Status: statusFailed}, exitJob},
		{usageErrorf("bad"), exitUsage},
		{&apiError{Status: 422, Code: "invalid_request"}, exitUsage},
		{&apiError{Status: 413, Code: "too_large"}, exitUsage},
		{&apiError{Status: 404, Code: "not_found"}, exitServer},
		{&apiError{Status: 409, Code: "conflict"}, exitServer},
		{&apiError{Status: 503, Code: "unavailable"}, exitServer},
		{&netError{Server: "http://x", Err: errors.New("refused")}, exitServer},
		{context.Canceled, exitInterrupted},
		{os.ErrPermission, exitServer},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	if worst(exitJob, exitServer) != exitServer || worst(exitInterrupted, exitUsage) != exitInterrupted || worst(exitOK, exitJob) != exitJob {
		t.Error("worst")
	}
}

func TestReadAPIError(t *testing.T) {
	res := func(status int, body string, h http.Header) *http.Response {
		if h == nil {
			h = http.Header{}
		}
		u, _ := url.Parse("http://user:secret@host/api/jobs/x")
		return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body)),
			Request: &http.Request{Method: "GET", URL: u}}
	}
	err := readAPIError(res(409, `{"error":{"code":"conflict","message":"job is already succeeded","request_id":"r1"}}`, nil))
	if err.Error() != "conflict: job is already succeeded" {
		t.Errorf("409: %q", err)
	}
	err = readAPIError(res(500, `{"error":{"code":"internal_error","message":"internal error","request_id":"r2"}}`, nil))
	if err.Error() != "internal_error: internal error (request id r2)" {
		t.Errorf("500: %q", err)
	}
	err = readAPIError(res(502, "<html>Bad Gateway</html>", http.Header{"Retry-After": {"3"}}))
	var ae *apiError
	if !errors.As(err, &ae) || ae.Code != "bad_gateway" || ae.RetryAfter != 3*time.Second || !transient(err) ||
		strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "502 Bad Gateway") {
		t.Errorf("502: %q %+v", err, ae)
	}
}

func TestProgressBar(t *testing.T) {
	var b strings.Builder
	p := &batchProgress{w: &b, total: 4}
	p.started()
	p.started()
	p.started()
	p.started()
	p.finished(&itemResult{manifestItem: manifestItem{Key: "001", Status: statusSucceeded, File: "001.mp3", DurationSeconds: 1.25}}, true)
	p.finished(&itemResult{manifestItem: manifestItem{Key: "002", Status: statusFailed, Error: "boom"}, err: &jobError{}}, true)
	p.finished(&itemResult{manifestItem: manifestItem{Key: "003", Status: statusQueued, JobID: "j3"}, err: context.Canceled}, true)
	want := "[1/4] 001: 001.mp3 (1.2 s)\n[2/4] 002: failed: boom\n[3/4] 003: queued, left on the server (job j3)\n"
	if b.String() != want {
		t.Errorf("plain output:\n%s\nwant:\n%s", b.String(), want)
	}
	if got := p.bar(); got != "[######################........] 3/4  ok 1  failed 1  in flight 1" {
		t.Errorf("bar %q", got)
	}
}
