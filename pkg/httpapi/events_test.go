package httpapi_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	ID, Type string
	Data     map[string]any
}

// readSSE reads a whole event stream (it must end by itself).
func readSSE(t *testing.T, url, lastEventID string) []sseEvent {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("events: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	var (
		out []sseEvent
		cur sseEvent
	)
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.Type != "" {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.ID = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			cur.Type = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.Data); err != nil {
				t.Fatalf("bad data line %q", line)
			}
		}
	}
	return out
}

func TestJobEvents(t *testing.T) {
	s := newStack(t, true)
	id := s.do(t, "POST", "/api/tts", jsonCT, `{"text":"Hello world. This is a test.","format":"wav"}`).json(t)["id"].(string)
	evs := readSSE(t, s.srv.URL+"/api/jobs/"+id+"/events", "")
	if len(evs) < 3 {
		t.Fatalf("events %+v", evs)
	}
	if evs[0].Type != "queued" || evs[len(evs)-1].Type != "succeeded" {
		t.Fatalf("first %s, last %s", evs[0].Type, evs[len(evs)-1].Type)
	}
	last, prevProgress := evs[len(evs)-1], -1.0
	for _, e := range evs[1 : len(evs)-1] {
		p, ok := e.Data["progress"].(float64)
		if e.Type != "running" || !ok || p < prevProgress || p > 1 {
			t.Fatalf("middle event %+v (progress must rise within 0..1)", e)
		}
		prevProgress = p
	}
	for _, e := range evs {
		if e.ID == "" || e.Data["job_id"] != id {
			t.Fatalf("event without id or job: %+v", e)
		}
	}
	audio := last.Data["audio"].(map[string]any)
	if audio["url"] != "/api/jobs/"+id+"/audio" || audio["bytes"].(float64) <= 0 {
		t.Fatalf("succeeded event audio %v", audio)
	}
	// Resuming after the last event replays the terminal event only; after
	// the first, the rest in order.
	again := readSSE(t, s.srv.URL+"/api/jobs/"+id+"/events", last.ID)
	if len(again) != 1 || again[0].Type != "succeeded" {
		t.Fatalf("resume after the terminal event: %+v", again)
	}
	rest := readSSE(t, s.srv.URL+"/api/jobs/"+id+"/events", evs[0].ID)
	if len(rest) != len(evs)-1 || rest[0].ID != evs[1].ID {
		t.Fatalf("resume after the first event: %d events, want %d", len(rest), len(evs)-1)
	}
	// Garbage ids replay from the start rather than fail.
	if all := readSSE(t, s.srv.URL+"/api/jobs/"+id+"/events", "../../x"); len(all) != len(evs) {
		t.Fatalf("bad Last-Event-ID: %d events", len(all))
	}
	if r := s.do(t, "GET", "/api/jobs/0192d6a4-0000-7000-8000-000000000000/events", "", ""); r.status != 404 {
		t.Fatalf("events of an unknown job: %d", r.status)
	}
}

func TestEventsOfCanceledJob(t *testing.T) {
	s := newStack(t, false)
	id := s.do(t, "POST", "/api/tts", jsonCT, `{"text":"Never mind"}`).json(t)["id"].(string)
	if r := s.do(t, "DELETE", "/api/jobs/"+id, "", ""); r.status != 202 {
		t.Fatal(r.status)
	}
	evs := readSSE(t, s.srv.URL+"/api/jobs/"+id+"/events", "")
	if len(evs) != 2 || evs[0].Type != "queued" || evs[1].Type != "canceled" {
		t.Fatalf("events %+v", evs)
	}
}
