package httpapi_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/kokorotts/kokoro-tts/pkg/audio"
	"github.com/kokorotts/kokoro-tts/pkg/jobs"
	"github.com/kokorotts/kokoro-tts/pkg/tone"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// failMarker makes markerFailEngine refuse a text.
const failMarker = "PLEASE-FAIL"

// markerFailEngine is the tone engine, except that it refuses for good any
// text holding failMarker (the domain seam: a request the engine can never
// synthesise).
type markerFailEngine struct{ *tone.Engine }

func (e markerFailEngine) Synthesize(ctx context.Context, req tts.SynthesisRequest) (tts.PCM, error) {
	if strings.Contains(req.Text, failMarker) {
		return tts.PCM{}, tts.Errorf(tts.EINVALID, "the engine cannot say this")
	}
	return e.Engine.Synthesize(ctx, req)
}

// newBatchStack is newStack with the default 1 MiB body limit, the engine
// given and a worker of the given concurrency (none when 0).
func newBatchStack(t *testing.T, engine tts.Synthesizer, concurrency int) *stack {
	t.Helper()
	return newStackWith(t, stackOptions{engine: engine, concurrency: concurrency})
}

type itemBody struct {
	Key    string   `json:"key"`
	Text   string   `json:"text"`
	Voice  string   `json:"voice,omitempty"`
	Speed  *float64 `json:"speed,omitempty"`
	Format string   `json:"format,omitempty"`
}

func batchBody(t *testing.T, items []itemBody, extra map[string]any) string {
	t.Helper()
	m := map[string]any{"items": items}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func lessonItems(n int) []itemBody {
	out := make([]itemBody, n)
	for i := range out {
		out[i] = itemBody{Key: fmt.Sprintf("line-%04d", i), Text: fmt.Sprintf("Sentence %d of the lesson.", i)}
	}
	return out
}

// waitBatch polls the batch until every item is terminal.
func (s *stack) waitBatch(t *testing.T, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(50 * time.Second)
	for time.Now().Before(deadline) {
		m := s.do(t, "GET", "/api/batches/"+id+"?limit=1", "", "").json(t)
		if m["finished"] == m["total"] {
			return m
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("batch %s did not finish", id)
	return nil
}

func counts(m map[string]any) map[string]int {
	out := map[string]int{}
	for k, v := range m["counts"].(map[string]any) {
		out[k] = int(v.(float64))
	}
	return out
}

// TestBatchEndToEnd: 1,000 items in mixed formats, one of which the engine
// refuses, through the worker; the status lists every item and the archive
// holds every succeeded item's audio and a complete manifest.
func TestBatchEndToEnd(t *testing.T) {
	s := newBatchStack(t, markerFailEngine{tone.New(tone.Config{})}, 4)
	const n = 1000
	items := lessonItems(n)
	special := map[int]string{10: "mp3", 20: "flac", 30: "opus", 40: "pcm", 50: "aac"}
	for i, f := range special {
		items[i].Format = f
	}
	slow := 0.75
	items[60].Voice, items[60].Speed = "bm_george", &slow
	items[77].Text = "This one will " + failMarker + "."
	r := s.do(t, "POST", "/api/batches", jsonCT, batchBody(t, items, map[string]any{"format": "wav", "voice": "af_sky",
		"callback_url": "https://lessons.example.com/hooks/tts"}))
	if r.status != 202 {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	m := r.json(t)
	id := m["id"].(string)
	if r.header.Get("Location") != "/api/batches/"+id || m["total"].(float64) != n || m["callback_url"] != "https://lessons.example.com/hooks/tts" {
		t.Fatalf("accept: %v %s", r.header, r.body)
	}
	links := m["links"].(map[string]any)
	if links["archive"] != "/api/batches/"+id+"/archive" || links["events"] != "/api/batches/"+id+"/events" {
		t.Fatalf("links %v", links)
	}

	done := s.waitBatch(t, id)
	c := counts(done)
	if done["status"] != "completed" || c["succeeded"] != n-1 || c["failed"] != 1 || done["progress"].(float64) != 1 {
		t.Fatalf("batch ended %v", done)
	}

	// Every item, in order, in one page (the default is up to 1,000).
	full := s.do(t, "GET", "/api/batches/"+id, "", "").json(t)
	list := full["items"].([]any)
	if len(list) != n || full["next_cursor"] != nil {
		t.Fatalf("%d items listed, next %v", len(list), full["next_cursor"])
	}
	jobIDs := map[string]string{}
	for i, x := range list {
		it := x.(map[string]any)
		jobIDs[it["key"].(string)] = it["job_id"].(string)
		if it["key"] != items[i].Key {
			t.Fatalf("item %d is %v", i, it["key"])
		}
		if i == 77 {
			if it["status"] != "failed" || !strings.Contains(it["error"].(string), "the engine cannot say this") || it["audio"] != nil {
				t.Fatalf("failing item %v", it)
			}
			continue
		}
		if it["status"] != "succeeded" || it["audio"] == nil {
			t.Fatalf("item %d %v", i, it)
		}
	}
	// Items are jobs on the batch queue.
	j := s.do(t, "GET", "/api/jobs/"+jobIDs["line-0060"], "", "").json(t)
	if j["queue"] != "batch" || j["voice"] != "bm_george" || j["speed"] != 0.75 || j["format"] != "wav" {
		t.Fatalf("item job %v", j)
	}
	// Pages of 300.
	var paged []string
	cursor := ""
	for range 10 {
		p := s.do(t, "GET", "/api/batches/"+id+"?limit=300&cursor="+cursor, "", "").json(t)
		for _, x := range p["items"].([]any) {
			paged = append(paged, x.(map[string]any)["key"].(string))
		}
		next, _ := p["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(paged) != n || paged[999] != items[999].Key {
		t.Fatalf("paged %d items", len(paged))
	}

	ar := s.do(t, "GET", "/api/batches/"+id+"/archive", "", "")
	if ar.status != 200 || ar.header.Get("Content-Type") != "application/zip" {
		t.Fatalf("archive: %d %v", ar.status, ar.header)
	}
	zr, err := zip.NewReader(bytes.NewReader(ar.body), int64(len(ar.body)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		if f.Name != "manifest.json" && f.Method != zip.Store {
			t.Fatalf("%s is compressed (method %d)", f.Name, f.Method)
		}
		files[f.Name] = b
	}
	if len(files) != n { // 999 audio files and the manifest
		t.Fatalf("%d files in the archive", len(files))
	}
	var manifest []jobs.ManifestEntry
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || len(manifest) != n {
		t.Fatalf("manifest: %d entries, %v", len(manifest), err)
	}
	for i, e := range manifest {
		want := items[i]
		format := "wav"
		if f, ok := special[i]; ok {
			format = f
		}
		if e.Key != want.Key || e.Text != want.Text || e.Format != format || e.JobID != jobIDs[want.Key] {
			t.Fatalf("manifest[%d] = %+v", i, e)
		}
		if i == 77 {
			if e.Status != "failed" || e.File != "" || e.DurationSeconds != nil || e.Error == "" {
				t.Fatalf("failed item in the manifest: %+v", e)
			}
			continue
		}
		if e.Status != "succeeded" || e.File != want.Key+"."+format || e.DurationSeconds == nil || *e.DurationSeconds <= 0 ||
			len(files[e.File]) == 0 || e.Error != "" {
			t.Fatalf("manifest[%d] = %+v (%d bytes)", i, e, len(files[e.File]))
		}
		if i == 60 && (e.Voice != "bm_george" || e.Speed != 0.75) || i == 0 && (e.Voice != "af_sky" || e.Speed != 1) {
			t.Fatalf("manifest[%d] = %+v", i, e)
		}
	}
	// The audio decodes, in every format.
	for _, i := range []int{0, 10, 20, 30, 40, 50, 60, 999} {
		e := manifest[i]
		p, err := audio.ProbeFormat(context.Background(), "ffprobe", tts.Format(e.Format), files[e.File])
		if err != nil {
			t.Fatalf("%s: %v", e.File, err)
		}
		if p.DurationSeconds <= 0 {
			t.Fatalf("%s: probe %+v", e.File, p)
		}
	}
	// The job's own download is the same bytes.
	a := s.do(t, "GET", "/api/jobs/"+jobIDs["line-0010"]+"/audio", "", "")
	if !bytes.Equal(a.body, files["line-0010.mp3"]) {
		t.Fatal("the archive's audio differs from the job's")
	}
	// A finished batch cannot be canceled.
	if r := s.do(t, "DELETE", "/api/batches/"+id, "", ""); r.status != 409 {
		t.Fatalf("cancel of a completed batch: %d %s", r.status, r.body)
	}
}

// TestBatchCancelTheRest: canceling a running batch cancels what is left;
// what finished stays; the event stream shows progress and ends with
// completed; the archive holds the finished items only.
func TestBatchCancelTheRest(t *testing.T) {
	s := newBatchStack(t, tone.New(tone.Config{Delay: 20 * time.Millisecond}), 1)
	const n = 100
	r := s.do(t, "POST", "/api/batches", jsonCT, batchBody(t, lessonItems(n), map[string]any{"format": "wav"}))
	if r.status != 202 {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	evc := make(chan []sseEvent, 1)
	go func() { evc <- readSSE(t, s.srv.URL+"/api/batches/"+id+"/events", "") }()
	// Wait for a few items to succeed.
	for deadline := time.Now().Add(30 * time.Second); ; {
		if counts(s.do(t, "GET", "/api/batches/"+id+"?limit=1", "", "").json(t))["succeeded"] >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no item succeeded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The archive of a running batch: what is done so far.
	ar := s.do(t, "GET", "/api/batches/"+id+"/archive", "", "")
	zr, err := zip.NewReader(bytes.NewReader(ar.body), int64(len(ar.body)))
	if err != nil || len(zr.File) < 4 || len(zr.File) > n {
		t.Fatalf("archive of a running batch: %v, %d files", err, len(zr.File))
	}
	c := s.do(t, "DELETE", "/api/batches/"+id, "", "")
	if c.status != 202 || c.json(t)["status"] != "canceled" {
		t.Fatalf("cancel: %d %s", c.status, c.body)
	}
	done := s.waitBatch(t, id)
	k := counts(done)
	if done["status"] != "canceled" || k["succeeded"] < 3 || k["canceled"] < 1 || k["succeeded"]+k["canceled"] != n || k["failed"] != 0 {
		t.Fatalf("after cancel: %v", done)
	}
	// Canceling again is harmless.
	if again := s.do(t, "DELETE", "/api/batches/"+id, "", ""); again.status != 202 {
		t.Fatalf("second cancel: %d %s", again.status, again.body)
	}

	var evs []sseEvent
	select {
	case evs = <-evc:
	case <-time.After(30 * time.Second):
		t.Fatal("the event stream did not end")
	}
	if len(evs) < 2 {
		t.Fatalf("events %+v", evs)
	}
	last := evs[len(evs)-1]
	if last.Type != "completed" || last.Data["status"] != "canceled" || last.Data["finished"].(float64) != n {
		t.Fatalf("last event %+v", last)
	}
	seen, prev := map[string]bool{}, -1.0
	for _, e := range evs[:len(evs)-1] {
		f := e.Data["finished"].(float64)
		if e.Type != "progress" || e.ID == "" || seen[e.ID] || f < prev || e.Data["batch_id"] != id {
			t.Fatalf("progress event %+v", e)
		}
		seen[e.ID], prev = true, f
	}
	// A stream of a finished batch is its completed event.
	if again := readSSE(t, s.srv.URL+"/api/batches/"+id+"/events", last.ID); len(again) != 1 || again[0].Type != "completed" {
		t.Fatalf("events after the end: %+v", again)
	}

	ar = s.do(t, "GET", "/api/batches/"+id+"/archive", "", "")
	zr, err = zip.NewReader(bytes.NewReader(ar.body), int64(len(ar.body)))
	if err != nil || len(zr.File) != k["succeeded"]+1 {
		t.Fatalf("archive after cancel: %v, %d files for %d succeeded", err, len(zr.File), k["succeeded"])
	}
}

// TestInteractiveNotStarvedByBatch: with one worker slot, an interactive
// job submitted after a 200-item batch finishes while the batch still has
// most of its items to do.
func TestInteractiveNotStarvedByBatch(t *testing.T) {
	s := newBatchStack(t, tone.New(tone.Config{Delay: 20 * time.Millisecond}), 1)
	r := s.do(t, "POST", "/api/batches", jsonCT, batchBody(t, lessonItems(200), map[string]any{"format": "wav"}))
	if r.status != 202 {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	job := s.do(t, "POST", "/api/tts", jsonCT, `{"text":"I am in a hurry.","format":"wav"}`).json(t)["id"].(string)
	if done := s.waitTerminal(t, job); done["status"] != "succeeded" {
		t.Fatalf("interactive job %v", done)
	}
	b := s.do(t, "GET", "/api/batches/"+id+"?limit=1", "", "").json(t)
	if b["status"] != "running" || b["finished"].(float64) >= 200 {
		t.Fatalf("the batch finished before the interactive job: %v", b)
	}
	s.do(t, "DELETE", "/api/batches/"+id, "", "")
}

func TestBatchIdempotentRetry(t *testing.T) {
	s := newBatchStack(t, nil, 0)
	body := batchBody(t, lessonItems(5), nil)
	a := s.do(t, "POST", "/api/batches", jsonCT, body, "Idempotency-Key", "lesson-7")
	b := s.do(t, "POST", "/api/batches", jsonCT, body, "Idempotency-Key", "lesson-7")
	if a.status != 202 || b.status != 202 || a.json(t)["id"] != b.json(t)["id"] || b.header.Get("Idempotent-Replayed") != "true" ||
		a.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("retry: %d %s / %d %s", a.status, a.body, b.status, b.body)
	}
	c := s.do(t, "POST", "/api/batches", jsonCT, batchBody(t, lessonItems(6), nil), "Idempotency-Key", "lesson-7")
	if c.status != 409 || c.json(t)["error"].(map[string]any)["code"] != "conflict" {
		t.Fatalf("key reused for another batch: %d %s", c.status, c.body)
	}
	counts, _ := s.db.CountByStatus(context.Background())
	if counts["queued"] != 5 {
		t.Fatalf("%d jobs queued, want 5", counts["queued"])
	}
}

func TestBatchBadInput(t *testing.T) {
	s := newBatchStack(t, nil, 0)
	dup := lessonItems(3)
	dup[2].Key = dup[0].Key
	badKey := lessonItems(4)
	badKey[3].Key = "../../etc/passwd"
	badSpeed := lessonItems(4)
	fast := 3.0
	badSpeed[3].Speed = &fast
	many := make([]itemBody, 10001)
	for i := range many {
		many[i] = itemBody{Key: fmt.Sprint(i), Text: "a"}
	}
	allBad := lessonItems(30)
	for i := range allBad {
		allBad[i].Format = "ogg"
	}
	missing := "0192d6a4-0000-7000-8000-000000000000"
	cases := []struct {
		name, method, path, body string
		status                   int
		code, msg                string
		items                    int // item errors listed
	}{
		{"duplicate keys", "POST", "/api/batches", batchBody(t, dup, nil), 422, "invalid_request", `items[2] (key "line-0000"): key: duplicates items[0]`, 1},
		{"bad key", "POST", "/api/batches", batchBody(t, badKey, nil), 422, "invalid_request", `items[3] (key "../../etc/passwd"): key:`, 1},
		{"bad item speed", "POST", "/api/batches", batchBody(t, badSpeed, nil), 422, "invalid_request", `items[3] (key "line-0003"): speed: must be`, 1},
		{"twenty listed", "POST", "/api/batches", batchBody(t, allBad, nil), 422, "invalid_request", "30 of the items are invalid", 20},
		{"too many items", "POST", "/api/batches", batchBody(t, many, nil), 422, "invalid_request", "items: must hold 1 to 10000 items, not 10001", 0},
		{"empty items", "POST", "/api/batches", `{"items":[]}`, 422, "invalid_request", "items: must hold", 0},
		{"no items", "POST", "/api/batches", `{"voice":"af_sky"}`, 422, "invalid_request", "items: must hold", 0},
		{"bad default voice", "POST", "/api/batches", batchBody(t, lessonItems(2), map[string]any{"voice": "zz_nobody"}), 422, "invalid_request", "voice: unknown voice", 0},
		{"bad callback", "POST", "/api/batches", batchBody(t, lessonItems(2), map[string]any{"callback_url": "javascript:alert(1)"}), 422, "invalid_request", "callback_url", 0},
		{"unknown field", "POST", "/api/batches", `{"items":[{"key":"a","text":"b","txet":"c"}]}`, 422, "invalid_request", "unknown field", 0},
		{"malformed", "POST", "/api/batches", `{"items":[`, 400, "malformed_request", "", 0},
		{"unknown batch", "GET", "/api/batches/" + missing, "", 404, "not_found", "", 0},
		{"bad batch id", "GET", "/api/batches/..%2Fx", "", 404, "not_found", "", 0},
		{"archive of unknown batch", "GET", "/api/batches/" + missing + "/archive", "", 404, "not_found", "", 0},
		{"events of unknown batch", "GET", "/api/batches/" + missing + "/events", "", 404, "not_found", "", 0},
		{"cancel unknown batch", "DELETE", "/api/batches/" + missing, "", 404, "not_found", "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ct := ""
			if c.method == "POST" {
				ct = jsonCT
			}
			r := s.do(t, c.method, c.path, ct, c.body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			e := r.json(t)["error"].(map[string]any)
			if e["code"] != c.code || !strings.Contains(e["message"].(string), c.msg) {
				t.Fatalf("error %v", e)
			}
			if c.items > 0 {
				if got := len(e["items"].([]any)); got != c.items {
					t.Fatalf("%d item errors listed, want %d", got, c.items)
				}
			}
		})
	}
	counts, _ := s.db.CountByStatus(context.Background())
	for st, n := range counts {
		if n != 0 {
			t.Fatalf("%d jobs recorded as %s from bad input", n, st)
		}
	}
}

// TestBatchBodyLargerThanTheAPILimit: a lesson may exceed MAX_BODY_BYTES
// (1 MiB by default; the test stack uses 16 KiB); batches have their own
// bound.
func TestBatchBodyLargerThanTheAPILimit(t *testing.T) {
	s := newStack(t, false)
	var b strings.Builder
	b.WriteString(`{"format":"wav","items":[`)
	for i := 0; i < 300; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"key":"line-%04d","text":"%s"}`, i, strings.Repeat("Listen and repeat. ", 10))
	}
	b.WriteString(`]}`)
	if b.Len() < 32<<10 {
		t.Fatalf("body only %d bytes", b.Len())
	}
	r := s.do(t, "POST", "/api/batches", jsonCT, b.String())
	if r.status != 202 {
		t.Fatalf("large batch: %d %s", r.status, r.body)
	}
	// The single-job endpoint keeps its own, smaller bound.
	if r := s.do(t, "POST", "/api/tts", jsonCT, `{"text":"`+strings.Repeat("a", 40<<10)+`"}`); r.status != 413 {
		t.Fatalf("single job over the API limit: %d", r.status)
	}
}
