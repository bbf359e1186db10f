package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kokorotts/kokoro-tts/pkg/events"
	"github.com/kokorotts/kokoro-tts/pkg/jobs"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// fakeJobs stands in for the job service at the domain seam: it validates
// like the real one and records nothing.
type fakeJobs struct{ accepted int }

func (f *fakeJobs) Submit(_ context.Context, req tts.Request, _ string) (*tts.Job, bool, error) {
	v, err := req.Validate(tts.Limits{MaxTextChars: 500, Voices: tts.NewVoiceSet(tts.Catalogue())})
	if err != nil {
		return nil, false, err
	}
	f.accepted++
	return &tts.Job{ID: "0192d6a4-0000-7000-8000-000000000000", Status: tts.StatusQueued, Text: v.Text, Voice: v.Voice,
		Speed: v.Speed, Format: v.Format, Queue: v.Queue, CreatedAt: time.Now()}, true, nil
}
func (f *fakeJobs) Get(context.Context, string) (*tts.Job, error) {
	return nil, tts.Errorf(tts.ENOTFOUND, "no")
}
func (f *fakeJobs) List(context.Context, string, string, int) ([]*tts.Job, string, error) {
	return nil, "", nil
}
func (f *fakeJobs) Cancel(context.Context, string) (*tts.Job, error) {
	return nil, tts.Errorf(tts.ENOTFOUND, "no")
}
func (f *fakeJobs) Audio(context.Context, string, bool) (jobs.AudioResult, error) {
	return jobs.AudioResult{}, tts.Errorf(tts.ENOTFOUND, "no")
}
func (f *fakeJobs) Voices(context.Context) []tts.Voice { return tts.Catalogue() }
func (f *fakeJobs) MaxTextChars() int                  { return 500 }
func (f *fakeJobs) Wait(context.Context, string, time.Duration) (*tts.Job, error) {
	return nil, tts.Errorf(tts.ENOTFOUND, "no")
}
func (f *fakeJobs) Events(context.Context, string, string, time.Duration) ([]events.Event, error) {
	return nil, nil
}

// FuzzSubmit: whatever the body, POST /api/tts answers 202 or a JSON error
// with a 4xx status, never a 500 and never a panic.
func FuzzSubmit(f *testing.F) {
	for _, s := range []string{
		`{"text":"Hello world","voice":"af_heart"}`,
		`{"text":"Hi","speed":2.5}`, `{"text":"","format":"wav"}`, `{"text":42}`, `{"text":"a","voice":"af_bella(2)+af_sky"}`,
		`{"text":"a","text":"b"}`, `{"text":"\u0000\u202e"}`, `[]`, `null`, `{"text":"a"} x`, "{\"text\":\"\xff\"}",
		`{"speed":1e999}`, `{"text":"<speak><break time=\"9s\"/></speak>"}`,
	} {
		f.Add(s)
	}
	fj := &fakeJobs{}
	srv := New(Config{Jobs: fj, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxBodyBytes: 4096})
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/api/tts", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code == http.StatusAccepted {
			return
		}
		if rec.Code < 400 || rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		var e errorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Fatalf("not a JSON error for %q: %s", body, rec.Body)
		}
	})
}
