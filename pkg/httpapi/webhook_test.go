package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/kokorotts/kokoro-tts/pkg/webhook"
)

// receiver records webhook deliveries; the first `fail` answers are 500.
type receiver struct {
	mu    sync.Mutex
	fail  int
	calls []delivery
}

type delivery struct {
	id, sig string
	body    []byte
	status  int
}

func (rv *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rv.mu.Lock()
	defer rv.mu.Unlock()
	status := 204
	if len(rv.calls) < rv.fail {
		status = 500
	}
	rv.calls = append(rv.calls, delivery{r.Header.Get(webhook.HeaderEventID), r.Header.Get(webhook.HeaderSignature), b, status})
	w.WriteHeader(status)
}

func (rv *receiver) waitFor(t *testing.T, n int) []delivery {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		rv.mu.Lock()
		c := append([]delivery(nil), rv.calls...)
		rv.mu.Unlock()
		if len(c) >= n {
			return c
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("fewer than %d deliveries", n)
	return nil
}

func TestWebhookSignedAndRetried(t *testing.T) {
	s := newStack(t, true)
	rv := &receiver{fail: 1}
	hook := httptest.NewServer(rv)
	defer hook.Close()
	r := s.do(t, "POST", "/api/tts", jsonCT, `{"text":"Call me back.","format":"wav","callback_url":"`+hook.URL+`/hooks/tts"}`)
	if r.status != 202 || r.json(t)["callback_url"] != hook.URL+"/hooks/tts" {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	calls := rv.waitFor(t, 2) // one failure, then the retry (asynq backoff ~2 s)
	time.Sleep(500 * time.Millisecond)
	rv.mu.Lock()
	n := len(rv.calls)
	rv.mu.Unlock()
	if n != 2 || calls[0].status != 500 || calls[1].status != 204 {
		t.Fatalf("deliveries %+v", calls)
	}
	for _, c := range calls {
		if c.id != id+":succeeded" || webhook.Verify([]byte(webhookSecret), c.sig, c.body, time.Now(), time.Minute) != nil {
			t.Fatalf("delivery id %q signature %q", c.id, c.sig)
		}
		var e map[string]any
		if json.Unmarshal(c.body, &e) != nil || e["type"] != "succeeded" || e["job_id"] != id || e["audio"] == nil {
			t.Fatalf("body %s", c.body)
		}
	}
}

func TestWebhookOfCanceledJob(t *testing.T) {
	s := newStack(t, true)
	// A worker runs, but the job is canceled while still queued: stop the
	// worker first so it cannot take it.
	s.worker.Shutdown()
	rv := &receiver{}
	hook := httptest.NewServer(rv)
	defer hook.Close()
	id := s.do(t, "POST", "/api/tts", jsonCT, `{"text":"Never mind.","callback_url":"`+hook.URL+`"}`).json(t)["id"].(string)
	if r := s.do(t, "DELETE", "/api/jobs/"+id, "", ""); r.status != 202 {
		t.Fatal(r.status)
	}
	// The delivery task waits in Redis for a worker.
	s.restartWorker(t)
	calls := rv.waitFor(t, 1)
	if calls[0].id != id+":canceled" {
		t.Fatalf("delivery %+v", calls[0])
	}
}

func TestCallbackURLValidation(t *testing.T) {
	s := newStack(t, false)
	for _, u := range []string{"ftp://example.com/", "not a url", "https://user:pw@example.com/"} {
		r := s.do(t, "POST", "/api/tts", jsonCT, `{"text":"Hi","callback_url":"`+u+`"}`)
		if r.status != 422 {
			t.Fatalf("callback_url %q: %d %s", u, r.status, r.body)
		}
	}
}

func TestBatchWebhookOnCompletion(t *testing.T) {
	s := newStack(t, true)
	rv := &receiver{}
	hook := httptest.NewServer(rv)
	defer hook.Close()
	r := s.do(t, "POST", "/api/batches", jsonCT, `{"format":"wav","callback_url":"`+hook.URL+`","items":[
		{"key":"a","text":"One."},{"key":"b","text":"Two."},{"key":"c","text":"Three."}]}`)
	if r.status != 202 {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	calls := rv.waitFor(t, 1)
	time.Sleep(500 * time.Millisecond) // a second delivery would show up here
	rv.mu.Lock()
	n := len(rv.calls)
	rv.mu.Unlock()
	var e map[string]any
	if n != 1 || calls[0].id != "batch:"+id+":completed" || json.Unmarshal(calls[0].body, &e) != nil {
		t.Fatalf("%d deliveries, first %+v", n, calls[0])
	}
	if e["type"] != "batch.completed" || e["status"] != "completed" || e["items"].(float64) != 3 ||
		e["counts"].(map[string]any)["succeeded"].(float64) != 3 ||
		webhook.Verify([]byte(webhookSecret), calls[0].sig, calls[0].body, time.Now(), time.Minute) != nil {
		t.Fatalf("batch event %s", calls[0].body)
	}
}
