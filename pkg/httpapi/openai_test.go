package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/kokorotts/kokoro-tts/pkg/audio"
	"github.com/kokorotts/kokoro-tts/pkg/tone"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// post sends a JSON body and returns the response with its body read.
func (s *stack) post(t *testing.T, ctx context.Context, path, body string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", s.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, b, err
}

// job reads job id from the database.
func (s *stack) job(t *testing.T, id string) *tts.Job {
	t.Helper()
	j, err := s.db.FindJob(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// waitStatus reads job id until it has the status want (or any terminal
// status, which then must be want).
func (s *stack) waitStatus(t *testing.T, id string, want tts.JobStatus) *tts.Job {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		j := s.job(t, id)
		if j.Status == want {
			return j
		}
		if j.Status.Terminal() {
			t.Fatalf("job %s ended %s (%s), want %s", id, j.Status, j.Error, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("job %s never became %s", id, want)
	return nil
}

// onlyJob waits for the one job of the stack to have status want and its
// task to be in Redis (so that Submit has returned), and returns its id.
func (s *stack) onlyJob(t *testing.T, want tts.JobStatus) string {
	t.Helper()
	opt, err := asynq.ParseRedisURI(s.redis.URL)
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		list, err := s.db.ListJobs(context.Background(), tts.JobFilter{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) > 1 {
			t.Fatalf("%d jobs, want one", len(list))
		}
		if len(list) == 1 && list[0].Status == want {
			if _, err := insp.GetTaskInfo(tts.QueueInteractive, list[0].ID); err == nil {
				return list[0].ID
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %s job appeared", want)
	return ""
}

type apiError struct {
	Error struct {
		Code, Message string
		RequestID     string `json:"request_id"`
	} `json:"error"`
}

func decodeError(t *testing.T, status int, body []byte) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("not a JSON error (%d): %q", status, body)
	}
	return e
}

// TestOpenAISpeechFormats: every response_format comes back as audio of
// that format (checked with ffprobe), under any model name, with unknown
// fields ignored and the job recorded on the interactive queue.
func TestOpenAISpeechFormats(t *testing.T) {
	s := newStack(t, true)
	cases := []struct{ format, model string }{
		{"", "kokoro"}, // mp3 by default
		{"mp3", "tts-1"},
		{"opus", "tts-1-hd"},
		{"aac", "gpt-4o-mini-tts"},
		{"flac", "a-model-nobody-has-heard-of"},
		{"wav", "kokoro"},
		{"pcm", ""},
	}
	for _, c := range cases {
		name := c.format
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			body := map[string]any{"input": "Hello world", "voice": "af_heart", "instructions": "Speak cheerfully.",
				"stream_format": "audio", "user": "someone", "extra_body_field": map[string]any{"x": 1}}
			if c.model != "" {
				body["model"] = c.model
			}
			if c.format != "" {
				body["response_format"] = c.format
			}
			b, _ := json.Marshal(body)
			res, data, err := s.post(t, context.Background(), "/v1/audio/speech", string(b))
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != 200 {
				t.Fatalf("status %d: %s", res.StatusCode, data)
			}
			want := tts.Format(c.format)
			if want == "" {
				want = tts.FormatMP3
			}
			if ct := res.Header.Get("Content-Type"); ct != want.ContentType() {
				t.Fatalf("Content-Type %q, want %q", ct, want.ContentType())
			}
			if res.ContentLength != int64(len(data)) || len(data) == 0 {
				t.Fatalf("Content-Length %d for %d bytes", res.ContentLength, len(data))
			}
			p, err := audio.ProbeFormat(context.Background(), "ffprobe", want, data)
			if err != nil {
				t.Fatal(err)
			}
			rate := 24000
			if want == tts.FormatOpus {
				rate = 48000 // Opus always decodes at 48 kHz
			}
			if p.SampleRate != rate || p.Channels != 1 || p.DurationSeconds < 0.05 {
				t.Fatalf("probe = %+v", p)
			}
			j := s.job(t, res.Header.Get("X-Job-ID"))
			if j.Status != tts.StatusSucceeded || j.Format != want || j.Queue != tts.QueueInteractive || j.Text != "Hello world" || j.Voice != "af_heart" {
				t.Fatalf("job = %+v", j)
			}
		})
	}
}

// TestOpenAIVoiceMapping: OpenAI's voice names reach the engine as the
// documented Kokoro voices; Kokoro ids and blends pass through.
func TestOpenAIVoiceMapping(t *testing.T) {
	s := newStack(t, true)
	cases := map[string]string{
		"alloy": "af_alloy", "ash": "am_michael", "ballad": "bm_george", "coral": "bf_emma", "echo": "am_echo",
		"fable": "bm_fable", "onyx": "am_onyx", "nova": "af_nova", "sage": "af_sarah", "shimmer": "af_sky",
		"verse": "am_puck", "Nova": "af_nova",
		"nova(2)+alloy":      "af_nova(2)+af_alloy",
		"af_bella":           "af_bella",
		"af_bella(2)+af_sky": "af_bella(2)+af_sky",
		"":                   tts.DefaultVoice,
	}
	for voice, want := range cases {
		t.Run(voice, func(t *testing.T) {
			b, _ := json.Marshal(map[string]any{"model": "tts-1", "input": "Hi", "voice": voice, "response_format": "wav"})
			res, data, err := s.post(t, context.Background(), "/v1/audio/speech", string(b))
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != 200 {
				t.Fatalf("status %d: %s", res.StatusCode, data)
			}
			if j := s.job(t, res.Header.Get("X-Job-ID")); j.Voice != want {
				t.Fatalf("voice %q became %q, want %q", voice, j.Voice, want)
			}
		})
	}
}

// TestOpenAIBadInput: bad requests get this API's JSON errors, with the
// OpenAI field names, and record nothing; the read-only endpoints answer in
// the shapes clients expect.
func TestOpenAIBadInput(t *testing.T) {
	s := newStack(t, false)
	cases := []struct {
		name, ct, body string
		status         int
		code, msg      string
	}{
		{"missing input", "application/json", `{"model":"tts-1","voice":"alloy"}`, 422, "invalid_request", "input: is required"},
		{"null input", "application/json", `{"model":"tts-1","input":null}`, 422, "invalid_request", "input: is required"},
		{"empty input", "application/json", `{"model":"tts-1","input":""}`, 422, "invalid_request", "input: must contain"},
		{"input not a string", "application/json", `{"input":42}`, 422, "invalid_request", "input: must be a string"},
		{"input too long", "application/json", `{"input":"` + strings.Repeat("a", 1001) + `"}`, 413, "too_large", "input: 1001 characters"},
		{"speed OpenAI minimum", "application/json", `{"input":"Hi","speed":0.25}`, 422, "invalid_request", "speed: must be a number from 0.5 to 2.0"},
		{"speed OpenAI maximum", "application/json", `{"input":"Hi","speed":4.0}`, 422, "invalid_request", "speed: must be a number from 0.5 to 2.0"},
		{"speed string", "application/json", `{"input":"Hi","speed":"fast"}`, 422, "invalid_request", "speed: must be a number"},
		{"unknown voice", "application/json", `{"input":"Hi","voice":"marin"}`, 422, "invalid_request", `voice: unknown voice "marin"`},
		{"voice not a string", "application/json", `{"input":"Hi","voice":{"id":"x"}}`, 422, "invalid_request", "voice: must be a string"},
		{"unknown format", "application/json", `{"input":"Hi","response_format":"ogg"}`, 422, "invalid_request", "response_format: must be one of"},
		{"sse", "application/json", `{"input":"Hi","stream_format":"sse"}`, 422, "unsupported_feature", "stream_format"},
		{"bad stream format", "application/json", `{"input":"Hi","stream_format":"video"}`, 422, "invalid_request", "stream_format"},
		{"model not a string", "application/json", `{"input":"Hi","model":1}`, 422, "invalid_request", "model: must be a string"},
		{"null body", "application/json", `null`, 400, "malformed_request", "object"},
		{"array body", "application/json", `["Hi"]`, 400, "malformed_request", "object"},
		{"malformed json", "application/json", `{"input":`, 400, "malformed_request", "not valid JSON"},
		{"wrong content type", "text/plain", `{"input":"Hi"}`, 415, "unsupported_media", "application/json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.do(t, "POST", "/v1/audio/speech", c.ct, c.body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			e := decodeError(t, r.status, r.body)
			if e.Error.Code != c.code || !strings.Contains(e.Error.Message, c.msg) {
				t.Fatalf("error %+v, want code %s and message with %q", e.Error, c.code, c.msg)
			}
		})
	}
	s.requireNoJobs(t)

	r := s.do(t, "GET", "/v1/audio/voices", "", "")
	var voices struct{ Voices []string }
	if err := json.Unmarshal(r.body, &voices); r.status != 200 || err != nil || len(voices.Voices) != 54 || !contains(voices.Voices, "af_heart") {
		t.Fatalf("voices: %d %s", r.status, r.body)
	}
	r = s.do(t, "GET", "/v1/models", "", "")
	var models struct {
		Object string
		Data   []struct {
			ID, Object string
			OwnedBy    string `json:"owned_by"`
			Created    int64
		}
	}
	if err := json.Unmarshal(r.body, &models); r.status != 200 || err != nil || models.Object != "list" || len(models.Data) < 3 {
		t.Fatalf("models: %d %s", r.status, r.body)
	}
	var ids []string
	for _, m := range models.Data {
		if m.Object != "model" || m.Created <= 0 {
			t.Fatalf("model entry %+v", m)
		}
		ids = append(ids, m.ID)
	}
	for _, want := range []string{"kokoro", "tts-1", "tts-1-hd"} {
		if !contains(ids, want) {
			t.Fatalf("models %v lack %s", ids, want)
		}
	}
	if r = s.do(t, "GET", "/v1/models/tts-1", "", ""); r.status != 200 || !strings.Contains(string(r.body), `"id":"tts-1"`) {
		t.Fatalf("model tts-1: %d %s", r.status, r.body)
	}
	if r = s.do(t, "GET", "/v1/models/whisper-1", "", ""); r.status != 404 || decodeError(t, r.status, r.body).Error.Code != "not_found" {
		t.Fatalf("unknown model: %d %s", r.status, r.body)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// failingEngine is a synthesizer fake at the domain seam that rejects every
// request as the real engines reject text they cannot speak.
type failingEngine struct{ *tone.Engine }

func (failingEngine) Synthesize(context.Context, tts.SynthesisRequest) (tts.PCM, error) {
	return tts.PCM{}, tts.Errorf(tts.EINVALID, "the text has no speakable words")
}

// TestOpenAISpeechFailedJob: a job that fails answers 502 with the job's own
// readable reason, and tells the SDKs not to retry.
func TestOpenAISpeechFailedJob(t *testing.T) {
	s := newStackWith(t, stackOptions{engine: failingEngine{tone.New(tone.Config{})}, concurrency: 2, maxBodyBytes: 16 << 10})
	res, body, err := s.post(t, context.Background(), "/v1/audio/speech", `{"model":"kokoro","input":"Hello","voice":"af_heart"}`)
	if err != nil {
		t.Fatal(err)
	}
	e := decodeError(t, res.StatusCode, body)
	j := s.job(t, res.Header.Get("X-Job-ID"))
	if res.StatusCode != 502 || e.Error.Code != "synthesis_failed" || j.Status != tts.StatusFailed ||
		e.Error.Message != j.Error || !strings.Contains(e.Error.Message, "no speakable words") || e.Error.RequestID == "" {
		t.Fatalf("failed job: %d %s; job %s %q", res.StatusCode, body, j.Status, j.Error)
	}
	if res.Header.Get("X-Should-Retry") != "false" {
		t.Fatalf("X-Should-Retry = %q", res.Header.Get("X-Should-Retry"))
	}
}

// TestOpenAISpeechClientDisconnect: when the client goes away while it
// waits, its job is canceled, whether it was still queued or running.
func TestOpenAISpeechClientDisconnect(t *testing.T) {
	cases := []struct {
		name   string
		stack  stackOptions
		before tts.JobStatus // the job's status when the client leaves
	}{
		{"queued", stackOptions{maxBodyBytes: 16 << 10}, tts.StatusQueued},
		// The tone engine stands in for a long synthesis: it would sleep for
		// an hour unless canceled.
		{"running", stackOptions{engine: tone.New(tone.Config{Delay: time.Hour}), concurrency: 2, maxBodyBytes: 16 << 10}, tts.StatusRunning},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newStackWith(t, c.stack)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() {
				_, _, err := s.post(t, ctx, "/v1/audio/speech", `{"model":"tts-1","input":"Hello","voice":"nova"}`)
				errc <- err
			}()
			id := s.onlyJob(t, c.before)
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Fatalf("client error %v, want canceled", err)
			}
			j := s.waitStatus(t, id, tts.StatusCanceled)
			if !j.CancelRequested {
				t.Fatalf("job canceled without the flag: %+v", j)
			}
		})
	}
}

// TestOpenAISpeechTimeout: when the wait ends before the audio is ready
// (here the request's own deadline), the answer is 504 and the job is
// canceled.
func TestOpenAISpeechTimeout(t *testing.T) {
	s := newStackWith(t, stackOptions{maxBodyBytes: 16 << 10, wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), 200*time.Millisecond)
			defer cancel()
			h.ServeHTTP(w, r.WithContext(ctx))
		})
	}})
	res, body, err := s.post(t, context.Background(), "/v1/audio/speech", `{"model":"tts-1","input":"Hello"}`)
	if err != nil {
		t.Fatal(err)
	}
	if e := decodeError(t, res.StatusCode, body); res.StatusCode != 504 || e.Error.Code != "timeout" {
		t.Fatalf("timeout: %d %s", res.StatusCode, body)
	}
	if j := s.job(t, res.Header.Get("X-Job-ID")); j.Status != tts.StatusCanceled {
		t.Fatalf("job after the timeout: %s", j.Status)
	}
}

// TestOpenAISDK drives the endpoint with the official openai npm package
// (scripts/openai-sdk, version pinned in its package-lock.json): the audio
// it writes is a WAV file ffprobe reads, GET /v1/models works through it,
// and a bad voice or speed reaches the caller as an APIError carrying our
// status, code, message and request id.
func TestOpenAISDK(t *testing.T) {
	node, npm := lookTool(t, "node"), lookTool(t, "npm")
	dir, err := filepath.Abs(filepath.Join("..", "..", "scripts", "openai-sdk"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openai", "package.json")); err != nil {
		cmd := exec.CommandContext(ctx, npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	}
	s := newStack(t, true)
	run := func(args ...string) (map[string]any, int) {
		t.Helper()
		cmd := exec.CommandContext(ctx, node, append([]string{"speech.mjs", s.srv.URL + "/v1"}, args...)...)
		cmd.Dir = dir
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if jerr := json.Unmarshal(out, &m); jerr != nil {
			t.Fatalf("node exited %d with %q; stderr:\n%s", code, out, stderr.String())
		}
		return m, code
	}

	file := filepath.Join(t.TempDir(), "hello.wav")
	m, code := run(file, "af_heart", "wav")
	if code != 0 || m["ok"] != true || m["content_type"] != "audio/wav" {
		t.Fatalf("speech through the SDK: exit %d, %v", code, m)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if int(m["bytes"].(float64)) != len(data) {
		t.Fatalf("SDK read %v bytes, file has %d", m["bytes"], len(data))
	}
	p, err := audio.ProbeFormat(ctx, "ffprobe", tts.FormatWAV, data)
	if err != nil {
		t.Fatal(err)
	}
	if p.Codec != "pcm_s16le" || p.SampleRate != 24000 || p.Channels != 1 || p.DurationSeconds < 0.05 {
		t.Fatalf("probe = %+v", p)
	}
	var models []string
	for _, id := range m["models"].([]any) {
		models = append(models, id.(string))
	}
	if !contains(models, "kokoro") || !contains(models, "tts-1") {
		t.Fatalf("models through the SDK: %v", models)
	}

	m, code = run(filepath.Join(t.TempDir(), "never.wav"), "zz_nobody", "wav")
	if code != 2 || m["ok"] != false || m["status"] != float64(422) || m["code"] != "invalid_request" ||
		m["message"] != `422 voice: unknown voice "zz_nobody"; GET /api/voices lists the 54 available voices` ||
		m["name"] != "UnprocessableEntityError" || m["request_id"] == "" || m["request_id"] == nil {
		t.Fatalf("bad voice through the SDK: exit %d, %v", code, m)
	}
	// A speed OpenAI allows and this service does not.
	m, code = run(filepath.Join(t.TempDir(), "never.wav"), "alloy", "wav", "3")
	if code != 2 || m["status"] != float64(422) || m["code"] != "invalid_request" ||
		m["message"] != "422 speed: must be a number from 0.5 to 2.0" {
		t.Fatalf("bad speed through the SDK: exit %d, %v", code, m)
	}
}

// lookTool finds a command the SDK test needs: missing, it fails under
// CI=true and skips elsewhere.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := name + " is not installed (apt-get install nodejs npm)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}
