//go:build unix

package main

import (
	"bytes"
	"context"
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
	"github.com/kokorotts/kokoro-tts/pkg/audio"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// bins are the binaries the end-to-end test builds.
type bins struct{ dir string }

func (b bins) path(name string) string { return filepath.Join(b.dir, name) }

// buildBinaries builds cmd/api, cmd/migrate and this command into a
// temporary folder.
func buildBinaries(t *testing.T) bins {
	t.Helper()
	b := bins{dir: t.TempDir()}
	for name, pkg := range map[string]string{"api": "../api", "migrate": "../migrate", "ttsctl": "."} {
		cmd := exec.Command("go", "build", "-o", b.path(name), pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", name, err, out)
		}
	}
	return b
}

// proc is a running binary in its own process group; its output is kept.
type proc struct {
	cmd            *exec.Cmd
	mu             sync.Mutex
	stdout, stderr bytes.Buffer
	done           chan struct{}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (p *proc) output() (string, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String(), p.stderr.String()
}

// start runs bin with exactly env (plus PATH and HOME) in dir, and kills its
// process group when the test ends.
func start(t *testing.T, bin, dir string, env map[string]string, stdin string, args ...string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdin = strings.NewReader(stdin)
	p.cmd.Stdout, p.cmd.Stderr = lockedWriter{&p.mu, &p.stdout}, lockedWriter{&p.mu, &p.stderr}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			out, errOut := p.output()
			t.Logf("--- %s %v ---\n%s%s", filepath.Base(bin), args, out, errOut)
		}
	})
	return p
}

// wait waits for p to exit and returns its exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("%v did not finish", p.cmd.Args)
	}
	return p.cmd.ProcessState.ExitCode()
}

// server is an API under test.
type server struct {
	base string
	http *http.Client
}

func waitReady(t *testing.T, api *proc, base string) *server {
	t.Helper()
	s := &server{base: base, http: &http.Client{Timeout: 10 * time.Second}}
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-api.done:
			_, errOut := api.output()
			t.Fatalf("api exited: %s", errOut)
		default:
		}
		if res, err := s.http.Get(base + "/api/voices"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return s
			}
		}
	}
	t.Fatal("the api did not answer")
	return nil
}

func (s *server) getJSON(t *testing.T, path string, out any) {
	t.Helper()
	res, err := s.http.Get(s.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("GET %s: %d %s", path, res.StatusCode, b)
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// allJobs pages through GET /api/jobs.
func (s *server) allJobs(t *testing.T, status string) []job {
	t.Helper()
	var all []job
	cursor := ""
	for {
		var page struct {
			Jobs       []job  `json:"jobs"`
			NextCursor string `json:"next_cursor"`
		}
		s.getJSON(t, "/api/jobs?limit=100&status="+status+"&cursor="+cursor, &page)
		all = append(all, page.Jobs...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
}

// ctl runs ttsctl against an API.
type ctl struct {
	bin, dir, server string
}

func (c ctl) run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	p := start(t, c.bin, c.dir, map[string]string{"KOKORO_TTS_URL": c.server}, stdin, args...)
	code := p.wait(t)
	out, errOut := p.output()
	return code, out, errOut
}

// must runs ttsctl and fails the test unless it exits with code.
func (c ctl) must(t *testing.T, code int, args ...string) (string, string) {
	t.Helper()
	got, out, errOut := c.run(t, "", args...)
	if got != code {
		t.Fatalf("ttsctl %v: exit %d, want %d\nstdout: %s\nstderr: %s", args, got, code, out, errOut)
	}
	return out, errOut
}

// probe decodes a file with ffprobe.
func probe(t *testing.T, path, format string) audio.ProbeResult {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := audio.ProbeFormat(context.Background(), "ffprobe", tts.Format(format), b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if p.Channels != 1 || p.DurationSeconds <= 0 {
		t.Fatalf("%s: %+v", path, p)
	}
	return p
}

func readManifestFile(t *testing.T, dir string) *manifest {
	t.Helper()
	m, err := readManifest(dir)
	if err != nil || m == nil {
		t.Fatalf("manifest in %s: %v, %v", dir, m, err)
	}
	return m
}

// TestEndToEnd runs the built ttsctl against the built API in embedded
// mode with the test tone engine.
func TestEndToEnd(t *testing.T) {
	testsvc.Require(t, "ffmpeg", "ffmpeg")
	testsvc.Require(t, "ffprobe", "ffmpeg")
	b := buildBinaries(t)
	work := t.TempDir()
	port := strconv.Itoa(testsvc.FreePort(t))
	api := start(t, b.path("api"), work, map[string]string{
		"DATA_DIR": filepath.Join(work, "data"), "HTTP_ADDR": "127.0.0.1:" + port, "TTS_ENGINE": "tone",
		"WORKER_TASK_CHECK_INTERVAL": "50ms", "LOG_LEVEL": "warn",
	}, "")
	srv := waitReady(t, api, "http://127.0.0.1:"+port)
	c := ctl{bin: b.path("ttsctl"), dir: work, server: srv.base}

	var sayID string
	t.Run("say", func(t *testing.T) {
		out, _ := c.must(t, exitOK, "say", "-format", "wav", "-speed", "1.5", "-o", "hello.wav", "Hello world,", "this is a test.")
		if out != "hello.wav\n" {
			t.Fatalf("stdout %q", out)
		}
		// The tone lasts 10 ms a character: 28 characters at speed 1.5.
		if p := probe(t, filepath.Join(work, "hello.wav"), "wav"); p.SampleRate != 24000 || p.DurationSeconds < 0.186 || p.DurationSeconds > 0.187 {
			t.Fatalf("probe %+v", p)
		}

		// Text from standard input, the default file name, the global flags after the command.
		code, out, errOut := c.run(t, "Good morning, class.\n", "say", "-timeout", "20s", "-")
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		m := regexp.MustCompile(`^([0-9a-f-]{36})\.mp3\n$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("stdout %q", out)
		}
		sayID = m[1]
		if p := probe(t, filepath.Join(work, sayID+".mp3"), "mp3"); p.Codec != "mp3" {
			t.Fatalf("probe %+v", p)
		}
		if errOut != "" {
			t.Errorf("stderr is not a terminal, yet: %q", errOut)
		}

		// To standard output.
		code, out, _ = c.run(t, "", "say", "-format", "pcm", "-o", "-", "Hi")
		if code != exitOK || len(out) == 0 || len(out)%2 != 0 {
			t.Fatalf("exit %d, %d bytes", code, len(out))
		}

		_, errOut = c.must(t, exitUsage, "say", "-voice", "zz_nobody", "Hello")
		if !strings.HasPrefix(errOut, "ttsctl: invalid_request: voice: ") {
			t.Errorf("stderr %q", errOut)
		}
		c.must(t, exitUsage, "say")
		c.must(t, exitUsage, "say", "-speed", "fast", "x")
		_, errOut = c.must(t, exitServer, "-server", "http://127.0.0.1:"+strconv.Itoa(testsvc.FreePort(t)), "say", "Hello")
		if !strings.Contains(errOut, "ttsctl: cannot reach http://127.0.0.1:") {
			t.Errorf("stderr %q", errOut)
		}
	})

	t.Run("voices", func(t *testing.T) {
		out, _ := c.must(t, exitOK, "voices")
		for _, want := range []string{"a  en-us", "b  en-gb", "* af_heart", "bf_emma", "female", "male"} {
			if !strings.Contains(out, want) {
				t.Errorf("voices lack %q:\n%s", want, out)
			}
		}
		out, _ = c.must(t, exitOK, "voices", "-lang", "en-gb")
		if !strings.Contains(out, "bm_george") || strings.Contains(out, "af_heart") {
			t.Errorf("-lang en-gb:\n%s", out)
		}
		out, _ = c.must(t, exitOK, "voices", "-json", "-lang", "b")
		var vl voiceList
		if err := json.Unmarshal([]byte(out), &vl); err != nil || len(vl.Voices) == 0 || vl.Default != "af_heart" {
			t.Fatalf("-json: %v %s", err, out)
		}
		for _, v := range vl.Voices {
			if v.LanguageCode != "b" {
				t.Errorf("-lang b gave %+v", v)
			}
		}
		_, errOut := c.must(t, exitUsage, "voices", "-lang", "tlh")
		if !strings.Contains(errOut, "a (en-us)") {
			t.Errorf("stderr %q", errOut)
		}
	})

	t.Run("status", func(t *testing.T) {
		if sayID == "" {
			t.Skip("say failed")
		}
		out, _ := c.must(t, exitOK, "status", sayID)
		if !strings.Contains(out, sayID) || !strings.Contains(out, "succeeded") || !strings.HasPrefix(out, "ID ") {
			t.Errorf("table:\n%s", out)
		}
		out, _ = c.must(t, exitOK, "status", "-json", sayID)
		var j job
		if err := json.Unmarshal([]byte(out), &j); err != nil || j.ID != sayID || j.Status != statusSucceeded || j.Audio == nil {
			t.Fatalf("-json: %v %s", err, out)
		}
		fi, err := os.Stat(filepath.Join(work, sayID+".mp3"))
		if err != nil || fi.Size() != j.Audio.Bytes {
			t.Errorf("file %v, job says %d bytes", fi, j.Audio.Bytes)
		}
		missing := "01a21f4e-0000-7000-8000-000000000000"
		out, errOut := c.must(t, exitServer, "status", sayID, missing)
		if !strings.Contains(out, sayID) || !strings.Contains(errOut, "ttsctl: "+missing+": not_found: ") {
			t.Errorf("stdout %q stderr %q", out, errOut)
		}
	})

	t.Run("cancel finished", func(t *testing.T) {
		if sayID == "" {
			t.Skip("say failed")
		}
		_, errOut := c.must(t, exitServer, "cancel", sayID)
		if errOut != "ttsctl: "+sayID+": conflict: job is already succeeded (nothing to cancel)\n" {
			t.Errorf("stderr %q", errOut)
		}
	})

	t.Run("jobs", func(t *testing.T) {
		out, _ := c.must(t, exitOK, "jobs", "-limit", "2")
		if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 {
			t.Errorf("want a header and 2 rows:\n%s", out)
		}
		// Three pages of one job each: the cursor is followed.
		out, _ = c.must(t, exitOK, "jobs", "-json", "-limit", "3", "-page", "1")
		var got struct {
			Jobs       []job  `json:"jobs"`
			NextCursor string `json:"next_cursor"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		all := srv.allJobs(t, "")
		if len(got.Jobs) != 3 || len(all) < 3 {
			t.Fatalf("got %d jobs of %d", len(got.Jobs), len(all))
		}
		for i := range got.Jobs {
			if got.Jobs[i].ID != all[i].ID {
				t.Errorf("job %d: %s, want %s", i, got.Jobs[i].ID, all[i].ID)
			}
		}
		wantNext := ""
		if len(all) > 3 {
			wantNext = all[2].ID
		}
		if got.NextCursor != wantNext {
			t.Errorf("next_cursor %q", got.NextCursor)
		}
		out, _ = c.must(t, exitOK, "jobs", "-status", "failed")
		if out != "" {
			t.Errorf("failed jobs:\n%s", out)
		}
		c.must(t, exitUsage, "jobs", "-status", "done")
	})

	t.Run("batch txt", func(t *testing.T) {
		var lesson strings.Builder
		for i := range 30 {
			fmt.Fprintf(&lesson, "Sentence %d of the first lesson.\n", i+1)
		}
		if err := os.WriteFile(filepath.Join(work, "unit1.txt"), []byte(lesson.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		before := len(srv.allJobs(t, ""))
		out, errOut := c.must(t, exitOK, "batch", "-parallel", "4", "unit1.txt")
		if out != filepath.Join("unit1", "manifest.json")+"\n" || !strings.Contains(errOut, "ttsctl: batch unit1: 30 items: 30 succeeded\n") {
			t.Fatalf("stdout %q stderr %q", out, errOut)
		}
		dir := filepath.Join(work, "unit1")
		m := readManifestFile(t, dir)
		if m.Batch != "unit1" || m.Server != srv.base || len(m.Items) != 30 {
			t.Fatalf("manifest %+v", m)
		}
		ids := map[string]bool{}
		for i, it := range m.Items {
			key := fmt.Sprintf("%03d", i+1)
			if it.Key != key || it.Text != fmt.Sprintf("Sentence %d of the first lesson.", i+1) || it.Status != statusSucceeded ||
				it.File != key+".mp3" || it.Voice != "af_heart" || it.Speed != 1 || it.Format != "mp3" || it.Error != "" ||
				it.IdempotencyKey != "unit1:"+key || it.DurationSeconds <= 0 {
				t.Errorf("item %d: %+v", i, it)
			}
			fi, err := os.Stat(filepath.Join(dir, it.File))
			if err != nil || fi.Size() != it.Bytes {
				t.Errorf("%s: %v, manifest says %d bytes", it.File, err, it.Bytes)
			}
			ids[it.JobID] = true
		}
		if len(ids) != 30 {
			t.Errorf("%d distinct jobs", len(ids))
		}
		if n := len(srv.allJobs(t, "")); n != before+30 {
			t.Errorf("%d new jobs, want 30", n-before)
		}
		for _, i := range []int{0, 29} {
			it := m.Items[i]
			p := probe(t, filepath.Join(dir, it.File), "mp3")
			if d := p.DurationSeconds - it.DurationSeconds; d < -0.01 || d > 0.1 { // mp3 adds its codec delay
				t.Errorf("%s lasts %.3f s, the job says %.3f s", it.File, p.DurationSeconds, it.DurationSeconds)
			}
		}

		// Again, against a server that is not there: everything is
		// complete, so nothing is asked.
		dead := ctl{bin: c.bin, dir: work, server: "http://127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))}
		_, errOut = dead.must(t, exitOK, "batch", "unit1.txt")
		if !strings.Contains(errOut, "30 of 30 items already downloaded") {
			t.Errorf("stderr %q", errOut)
		}
		if m2 := readManifestFile(t, dir); !equalItems(m2.Items, m.Items) {
			t.Errorf("the manifest changed")
		}

		// A lost file and a lost manifest: the jobs are replayed through
		// their Idempotency-Keys, and nothing is synthesised again.
		if err := os.Remove(filepath.Join(dir, "007.mp3")); err != nil {
			t.Fatal(err)
		}
		_, errOut = c.must(t, exitOK, "batch", "unit1.txt")
		if !strings.Contains(errOut, "29 of 30 items already downloaded") {
			t.Errorf("stderr %q", errOut)
		}
		if err := os.Remove(filepath.Join(dir, manifestName)); err != nil {
			t.Fatal(err)
		}
		c.must(t, exitOK, "batch", "unit1.txt")
		m3 := readManifestFile(t, dir)
		if !equalItems(m3.Items, m.Items) {
			t.Errorf("after replays the manifest differs:\n%+v\n%+v", m3.Items, m.Items)
		}
		if n := len(srv.allJobs(t, "")); n != before+30 {
			t.Errorf("re-runs made %d new jobs", n-before-30)
		}

		// An edited line is synthesised anew under a key of its own; the
		// others stay.
		edited := strings.Replace(lesson.String(), "Sentence 5 of", "Sentence five of", 1)
		if err := os.WriteFile(filepath.Join(work, "unit1.txt"), []byte(edited), 0o644); err != nil {
			t.Fatal(err)
		}
		_, errOut = c.must(t, exitOK, "batch", "unit1.txt")
		if !strings.Contains(errOut, "29 of 30 items already downloaded") {
			t.Errorf("stderr %q", errOut)
		}
		m4 := readManifestFile(t, dir)
		it := m4.Items[4]
		if it.Text != "Sentence five of the first lesson." || it.JobID == m.Items[4].JobID || it.Status != statusSucceeded ||
			!regexp.MustCompile(`^unit1:005:[0-9a-f]{12}$`).MatchString(it.IdempotencyKey) {
			t.Errorf("edited item: %+v", it)
		}
		if n := len(srv.allJobs(t, "")); n != before+31 {
			t.Errorf("%d new jobs, want 31", n-before)
		}
	})

	t.Run("batch csv", func(t *testing.T) {
		lesson := "key,text,voice,speed,format\n" +
			"intro,\"Hello, class. Today: greetings.\",bf_emma,0.8,wav\n" +
			"q1,How are you?,,,\n" +
			"q2,\"Fine,\nthank you.\",am_adam,1.5,opus\n" +
			"q3,Goodbye.,,,flac\n"
		if err := os.WriteFile(filepath.Join(work, "unit2.csv"), []byte(lesson), 0o644); err != nil {
			t.Fatal(err)
		}
		out, _ := c.must(t, exitOK, "batch", "-out", "audio/unit2", "-name", "course-a/unit2", "-voice", "bm_george", "unit2.csv")
		dir := filepath.Join(work, "audio", "unit2")
		if out != filepath.Join("audio", "unit2", "manifest.json")+"\n" {
			t.Fatalf("stdout %q", out)
		}
		m := readManifestFile(t, dir)
		want := []manifestItem{
			{Key: "intro", Text: "Hello, class. Today: greetings.", Voice: "bf_emma", Speed: 0.8, Format: "wav", File: "intro.wav"},
			{Key: "q1", Text: "How are you?", Voice: "bm_george", Speed: 1, Format: "mp3", File: "q1.mp3"},
			{Key: "q2", Text: "Fine,\nthank you.", Voice: "am_adam", Speed: 1.5, Format: "opus", File: "q2.opus"},
			{Key: "q3", Text: "Goodbye.", Voice: "bm_george", Speed: 1, Format: "flac", File: "q3.flac"},
		}
		if len(m.Items) != len(want) {
			t.Fatalf("manifest %+v", m.Items)
		}
		for i, w := range want {
			it := m.Items[i]
			if it.Key != w.Key || it.Text != w.Text || it.Voice != w.Voice || it.Speed != w.Speed || it.Format != w.Format ||
				it.File != w.File || it.Status != statusSucceeded || it.IdempotencyKey != "course-a/unit2:"+w.Key {
				t.Errorf("item %d: %+v, want %+v", i, it, w)
			}
			var j job
			srv.getJSON(t, "/api/jobs/"+it.JobID, &j)
			if j.Voice != w.Voice || j.Speed != w.Speed || j.Format != w.Format || j.Queue != "batch" || j.Audio.Bytes != it.Bytes {
				t.Errorf("job of %s: %+v", w.Key, j)
			}
			p := probe(t, filepath.Join(dir, it.File), it.Format)
			if it.Format == "wav" || it.Format == "flac" {
				if d := p.DurationSeconds - it.DurationSeconds; d < -0.001 || d > 0.001 {
					t.Errorf("%s lasts %.4f s, the job says %.4f s", it.File, p.DurationSeconds, it.DurationSeconds)
				}
			}
		}
		before := len(srv.allJobs(t, ""))
		_, errOut := c.must(t, exitOK, "batch", "-out", "audio/unit2", "-name", "course-a/unit2", "-voice", "bm_george", "unit2.csv")
		if !strings.Contains(errOut, "4 of 4 items already downloaded") || len(srv.allJobs(t, "")) != before {
			t.Errorf("second run: %q", errOut)
		}
	})

	t.Run("batch server-side", func(t *testing.T) {
		lesson := "key,text,voice,speed,format\n"
		for i := range 12 {
			format := "mp3"
			if i%3 == 0 {
				format = "wav"
			}
			lesson += fmt.Sprintf("line%02d,Line %d of the third lesson.,,,%s\n", i+1, i+1, format)
		}
		if err := os.WriteFile(filepath.Join(work, "unit3.csv"), []byte(lesson), 0o644); err != nil {
			t.Fatal(err)
		}
		before := len(srv.allJobs(t, ""))
		out, errOut := c.must(t, exitOK, "batch", "-server-side", "-voice", "bf_emma", "unit3.csv")
		if out != filepath.Join("unit3", "manifest.json")+"\n" || !strings.Contains(errOut, "(server batch ") ||
			!strings.Contains(errOut, "ttsctl: batch unit3: 12 items: 12 succeeded\n") {
			t.Fatalf("stdout %q stderr %q", out, errOut)
		}
		dir := filepath.Join(work, "unit3")
		m := readManifestFile(t, dir)
		if m.Batch != "unit3" || m.Server != srv.base || len(m.Items) != 12 {
			t.Fatalf("manifest %+v", m)
		}
		for i, it := range m.Items {
			key, format := fmt.Sprintf("line%02d", i+1), "mp3"
			if i%3 == 0 {
				format = "wav"
			}
			if it.Key != key || it.Status != statusSucceeded || it.Voice != "bf_emma" || it.Format != format ||
				it.File != key+"."+format || it.JobID == "" || it.DurationSeconds <= 0 {
				t.Errorf("item %d: %+v", i, it)
			}
			fi, err := os.Stat(filepath.Join(dir, it.File))
			if err != nil || fi.Size() != it.Bytes || it.Bytes <= 0 {
				t.Errorf("%s: %v, manifest says %d bytes", it.File, err, it.Bytes)
			}
		}
		probe(t, filepath.Join(dir, "line01.wav"), "wav")
		probe(t, filepath.Join(dir, "line02.mp3"), "mp3")
		if entries, _ := os.ReadDir(dir); len(entries) != 13 {
			t.Errorf("the folder holds %d files, want 12 and the manifest (no leftover archive)", len(entries))
		}
		if n := len(srv.allJobs(t, "")); n != before+12 {
			t.Errorf("%d new jobs, want 12", n-before)
		}

		// Again: the same server batch is collected, nothing is synthesised.
		_, errOut = c.must(t, exitOK, "batch", "-server-side", "-voice", "bf_emma", "unit3.csv")
		if !strings.Contains(errOut, "submitted by an earlier run") {
			t.Errorf("stderr %q", errOut)
		}
		if n := len(srv.allJobs(t, "")); n != before+12 {
			t.Errorf("the re-run made %d jobs", n-before-12)
		}
		if m2 := readManifestFile(t, dir); !equalItems(m2.Items, m.Items) {
			t.Errorf("the manifest changed")
		}
		_, errOut = c.must(t, exitUsage, "batch", "-server-side", "-queue", "interactive", "unit3.csv")
		if !strings.Contains(errOut, "-queue does not apply to -server-side") {
			t.Errorf("stderr %q", errOut)
		}

		// -wait over before the batch is done: what is done so far is
		// unpacked, the rest is left to the server, and the next run
		// collects it.
		var long strings.Builder
		for i := range 40 {
			fmt.Fprintf(&long, "Sentence %d of the fourth lesson, a little longer than the others.\n", i+1)
		}
		if err := os.WriteFile(filepath.Join(work, "unit4.txt"), []byte(long.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		_, errOut = c.must(t, exitJob, "batch", "-server-side", "-wait", "1ms", "unit4.txt")
		if !strings.Contains(errOut, "-wait is over") || !strings.Contains(errOut, "not finished") {
			t.Errorf("stderr %q", errOut)
		}
		if m := readManifestFile(t, filepath.Join(work, "unit4")); len(m.Items) != 40 {
			t.Errorf("manifest of the unfinished batch: %d items", len(m.Items))
		}
		_, errOut = c.must(t, exitOK, "batch", "-server-side", "unit4.txt")
		if !strings.Contains(errOut, "submitted by an earlier run") || !strings.Contains(errOut, "40 items: 40 succeeded") {
			t.Errorf("stderr %q", errOut)
		}
	})

	t.Run("batch json and rejections", func(t *testing.T) {
		lesson := `[{"key":"ok","text":"Fine."},{"key":"bad","text":"Who?","voice":"zz_nobody"}]`
		if err := os.WriteFile(filepath.Join(work, "unit3.json"), []byte(lesson), 0o644); err != nil {
			t.Fatal(err)
		}
		_, errOut := c.must(t, exitUsage, "batch", "unit3.json")
		if !strings.Contains(errOut, `bad: rejected: invalid_request: voice: unknown voice "zz_nobody"`) {
			t.Errorf("stderr %q", errOut)
		}
		m := readManifestFile(t, filepath.Join(work, "unit3"))
		if m.Items[0].Status != statusSucceeded || m.Items[1].Status != statusRejected || !strings.Contains(m.Items[1].Error, "zz_nobody") {
			t.Errorf("manifest %+v", m.Items)
		}
	})

	t.Run("batch bad keys", func(t *testing.T) {
		lesson := "key,text\nintro,Hi\n../../escape,Out\nintro,Again\n"
		if err := os.WriteFile(filepath.Join(work, "evil.csv"), []byte(lesson), 0o644); err != nil {
			t.Fatal(err)
		}
		before := len(srv.allJobs(t, ""))
		_, errOut := c.must(t, exitUsage, "batch", "evil.csv")
		for _, want := range []string{`line 3: key "../../escape" contains a path separator`, `line 4: key "intro" repeats the key "intro" of line 2`} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr lacks %q: %s", want, errOut)
			}
		}
		if _, err := os.Stat(filepath.Join(work, "evil")); !os.IsNotExist(err) {
			t.Errorf("the output folder was made: %v", err)
		}
		if len(srv.allJobs(t, "")) != before {
			t.Error("jobs were submitted")
		}
	})
}

func equalItems(a, b []manifestItem) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestInterrupt uses an API in service mode with no worker, so that jobs
// stay queued for as long as the test needs: Ctrl-C and -wait cancel the
// job of say; Ctrl-C leaves a batch's jobs on the server.
func TestInterrupt(t *testing.T) {
	testsvc.Require(t, "ffmpeg", "ffmpeg")
	redis := testsvc.Redis(t)
	b := buildBinaries(t)
	work := t.TempDir()
	port := strconv.Itoa(testsvc.FreePort(t))
	env := map[string]string{
		"DATA_DIR": filepath.Join(work, "data"), "DATABASE_URL": "sqlite:" + filepath.Join(work, "jobs.db"),
		"REDIS_URL": redis.URL, "HTTP_ADDR": "127.0.0.1:" + port, "LOG_LEVEL": "info", "AUTH_ALLOW_OPEN": "true",
	}
	if err := os.MkdirAll(filepath.Join(work, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if code := start(t, b.path("migrate"), work, env, "").wait(t); code != 0 {
		t.Fatalf("migrate: exit %d", code)
	}
	api := start(t, b.path("api"), work, env, "")
	srv := waitReady(t, api, "http://127.0.0.1:"+port)
	c := ctl{bin: b.path("ttsctl"), dir: work, server: srv.base}

	// waitQueued waits until n jobs are queued and ttsctl has polled
	// each of them (the API's request log shows it), so that it knows their
	// ids when it is interrupted.
	waitQueued := func(t *testing.T, n int) []job {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			q := srv.allJobs(t, statusQueued)
			if len(q) < n {
				continue
			}
			_, log := api.output()
			polled := 0
			for _, j := range q {
				if strings.Contains(log, `"path":"/api/jobs/`+j.ID+`"`) {
					polled++
				}
			}
			if polled == len(q) {
				return q
			}
		}
		t.Fatalf("%d jobs were not queued and polled", n)
		return nil
	}

	t.Run("say Ctrl-C", func(t *testing.T) {
		p := start(t, c.bin, work, map[string]string{"KOKORO_TTS_URL": srv.base}, "", "say", "-o", "never.mp3", "Nobody will say this.")
		q := waitQueued(t, 1)
		if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if code := p.wait(t); code != exitInterrupted {
			t.Fatalf("exit %d", code)
		}
		_, errOut := p.output()
		if errOut != "ttsctl: interrupted; canceled job "+q[0].ID+"\n" {
			t.Errorf("stderr %q", errOut)
		}
		var j job
		srv.getJSON(t, "/api/jobs/"+q[0].ID, &j)
		if j.Status != statusCanceled {
			t.Errorf("job %+v", j)
		}
		if _, err := os.Stat(filepath.Join(work, "never.mp3")); !os.IsNotExist(err) {
			t.Errorf("output file: %v", err)
		}
	})

	t.Run("say -wait", func(t *testing.T) {
		_, errOut := c.must(t, exitJob, "say", "-wait", "300ms", "Too slow.")
		m := regexp.MustCompile(`^ttsctl: not finished after 300ms \(-wait\); canceled job ([0-9a-f-]{36})\n$`).FindStringSubmatch(errOut)
		if m == nil {
			t.Fatalf("stderr %q", errOut)
		}
		var j job
		srv.getJSON(t, "/api/jobs/"+m[1], &j)
		if j.Status != statusCanceled {
			t.Errorf("job %+v", j)
		}
	})

	t.Run("batch Ctrl-C", func(t *testing.T) {
		lesson := "One.\nTwo.\nThree.\nFour.\nFive.\nSix.\n"
		if err := os.WriteFile(filepath.Join(work, "wait.txt"), []byte(lesson), 0o644); err != nil {
			t.Fatal(err)
		}
		p := start(t, c.bin, work, map[string]string{"KOKORO_TTS_URL": srv.base}, "", "batch", "-parallel", "2", "wait.txt")
		q := waitQueued(t, 2)
		if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if code := p.wait(t); code != exitInterrupted {
			t.Fatalf("exit %d", code)
		}
		_, errOut := p.output()
		if !strings.Contains(errOut, "6 items: 0 succeeded, 6 not finished") || !strings.Contains(errOut, "run the same command again") {
			t.Errorf("stderr %q", errOut)
		}
		m := readManifestFile(t, filepath.Join(work, "wait"))
		queued := map[string]bool{}
		for _, j := range q {
			queued[j.ID] = true
		}
		var withJob int
		for _, it := range m.Items {
			switch {
			case it.JobID != "":
				withJob++
				if !queued[it.JobID] || it.Status != statusQueued || it.Error != noteUnfinished {
					t.Errorf("item %+v", it)
				}
			case it.Status != statusPending:
				t.Errorf("item %+v", it)
			}
		}
		if withJob != 2 {
			t.Errorf("%d items with a job, want 2 (-parallel 2)", withJob)
		}
		// The jobs were left to run.
		if n := len(srv.allJobs(t, statusQueued)); n != 2 {
			t.Fatalf("%d jobs queued, want 2", n)
		}

		// Canceled meanwhile: a re-run replays the canceled jobs, says how
		// to try them again and submits the next items.
		out, _ := c.must(t, exitOK, "cancel", q[0].ID, q[1].ID)
		if out != q[0].ID+" canceled\n"+q[1].ID+" canceled\n" {
			t.Errorf("cancel: %q", out)
		}
		p = start(t, c.bin, work, map[string]string{"KOKORO_TTS_URL": srv.base}, "", "batch", "-parallel", "2", "wait.txt")
		waitQueued(t, 2)
		if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if code := p.wait(t); code != exitInterrupted {
			t.Fatalf("exit %d", code)
		}
		_, errOut = p.output()
		for _, want := range []string{"001: canceled", "002: canceled", "6 items: 0 succeeded, 2 failed", "4 not finished",
			"run the batch with a new -name"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr lacks %q: %s", want, errOut)
			}
		}
		m = readManifestFile(t, filepath.Join(work, "wait"))
		var states []string
		for _, it := range m.Items {
			states = append(states, it.Status)
		}
		if got := strings.Join(states, " "); got != "canceled canceled queued queued pending pending" {
			t.Errorf("states %s", got)
		}

		// A new name submits the canceled items again; -wait gives up on
		// jobs that cannot finish (no worker) and leaves them queued.
		_, errOut = c.must(t, exitJob, "batch", "-name", "wait-again", "-wait", "300ms", "wait.txt")
		if !strings.Contains(errOut, "-wait is over") {
			t.Errorf("stderr %q", errOut)
		}
		m2 := readManifestFile(t, filepath.Join(work, "wait"))
		for i, it := range m2.Items {
			switch {
			case it.Status == statusPending && it.JobID == "":
			case it.Status == statusQueued && it.JobID != "" && it.JobID != m.Items[i].JobID && it.IdempotencyKey == "wait-again:"+it.Key:
			default:
				t.Errorf("item %+v", it)
			}
		}
	})
}
