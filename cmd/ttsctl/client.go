package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// client calls the kokoro-tts HTTP API. It holds no per-request state and
// is safe for concurrent use.
type client struct {
	base    string        // server URL without a trailing slash, e.g. http://localhost:8080
	key     string        // API key sent as a bearer token; empty: none
	timeout time.Duration // bound on each API call; for downloads, on each silence of the stream
	http    *http.Client
	// retryWait is the first pause between retries of a call that may be
	// repeated safely; it doubles up to 2 s unless the server sends a
	// Retry-After.
	retryWait time.Duration
}

// maxAttempts is how many times a call that may be repeated safely is tried
// when the network or the server fails in a way that may pass.
const maxAttempts = 4

// newClient returns a client for the API at server (http or https URL).
func newClient(server, key string, timeout time.Duration) (*client, error) {
	u, err := url.Parse(strings.TrimSpace(server))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageErrorf("-server %q: want an http:// or https:// URL such as http://localhost:8080", server)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, usageErrorf("-server %q: must not have a query or fragment", server)
	}
	if timeout <= 0 {
		return nil, usageErrorf("-timeout must be positive, not %s", timeout)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = timeout
	// No Client.Timeout: API calls get a context deadline and downloads an
	// idle timeout, so that long audio is not cut off. The default redirect
	// policy follows the 307 to presigned storage URLs and drops the
	// Authorization header when the host changes.
	return &client{
		base: strings.TrimRight(u.String(), "/"), key: key, timeout: timeout,
		http: &http.Client{Transport: tr}, retryWait: 250 * time.Millisecond,
	}, nil
}

// apiError is an error response of the API: {"error":{"code","message"}}.
type apiError struct {
	Status     int    // HTTP status
	Code       string // e.g. invalid_request, not_found, conflict
	Message    string
	RequestID  string
	RetryAfter time.Duration // from the Retry-After header; 0 when absent
}

func (e *apiError) Error() string {
	s := e.Code + ": " + e.Message
	if e.Status >= 500 && e.RequestID != "" {
		s += " (request id " + e.RequestID + ")"
	}
	return s
}

// netError is a request that got no HTTP answer (connection refused, DNS,
// timeout, a cut stream).
type netError struct {
	Server string
	Err    error
}

func (e *netError) Error() string { return "cannot reach " + e.Server + ": " + e.Err.Error() }
func (e *netError) Unwrap() error { return e.Err }

// job is a job as GET /api/jobs/{id} shows it (pkg/httpapi's jobView).
type job struct {
	ID              string     `json:"id"`
	Status          string     `json:"status"`
	Voice           string     `json:"voice"`
	Speed           float64    `json:"speed"`
	Format          string     `json:"format"`
	Queue           string     `json:"queue"`
	Characters      int        `json:"characters"`
	Attempts        int        `json:"attempts"`
	CancelRequested bool       `json:"cancel_requested,omitempty"`
	Error           string     `json:"error,omitempty"`
	Audio           *jobAudio  `json:"audio,omitempty"`
	Engine          string     `json:"engine,omitempty"`
	Device          string     `json:"device,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	StartedAt       *time.Time `json:"started_at,omitempty"`
	FinishedAt      *time.Time `json:"finished_at,omitempty"`
}

// jobAudio describes a succeeded job's audio.
type jobAudio struct {
	URL             string  `json:"url"`
	ContentType     string  `json:"content_type"`
	Bytes           int64   `json:"bytes"`
	DurationSeconds float64 `json:"duration_seconds"`
}

// The job states (pkg/tts.JobStatus).
const (
	statusQueued    = "queued"
	statusRunning   = "running"
	statusSucceeded = "succeeded"
	statusFailed    = "failed"
	statusCanceled  = "canceled"
)

// terminal reports whether the job has reached a state that never changes.
func (j *job) terminal() bool {
	return j.Status == statusSucceeded || j.Status == statusFailed || j.Status == statusCanceled
}

// ttsRequest is the body of POST /api/tts. Empty fields take the server's
// defaults.
type ttsRequest struct {
	Text   string   `json:"text"`
	Voice  string   `json:"voice,omitempty"`
	Speed  *float64 `json:"speed,omitempty"`
	Format string   `json:"format,omitempty"`
	Queue  string   `json:"queue,omitempty"`
}

// jobList is a page of GET /api/jobs.
type jobList struct {
	Jobs       []json.RawMessage `json:"jobs"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

// voice is one entry of GET /api/voices.
type voice struct {
	ID           string `json:"id"`
	LanguageCode string `json:"language_code"`
	Language     string `json:"language"`
	Gender       string `json:"gender"`
	Grade        string `json:"grade,omitempty"`
}

// voiceList is the body of GET /api/voices.
type voiceList struct {
	Voices  []voice `json:"voices"`
	Default string  `json:"default"`
}

// newIdempotencyKey returns a random key, so that a POST whose answer was
// lost can be sent again without creating a second job.
func newIdempotencyKey() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "ttsctl:" + hex.EncodeToString(b[:])
}

// submit posts a synthesis request. It returns the job and whether the
// server replayed an earlier job for the same Idempotency-Key. With a key
// the call is retried on network errors and 502/503/504.
func (c *client) submit(ctx context.Context, req ttsRequest, idempotencyKey string) (*job, bool, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, false, err
	}
	h := http.Header{"Content-Type": {"application/json"}}
	if idempotencyKey != "" {
		h.Set("Idempotency-Key", idempotencyKey)
	}
	var j job
	res, err := c.call(ctx, http.MethodPost, "/api/tts", body, h, idempotencyKey != "", &j)
	if err != nil {
		return nil, false, err
	}
	return &j, res.Get("Idempotent-Replayed") == "true", nil
}

// job fetches a job and also returns the server's JSON as sent.
func (c *client) job(ctx context.Context, id string) (*job, json.RawMessage, error) {
	var raw json.RawMessage
	if _, err := c.call(ctx, http.MethodGet, jobPath(id), nil, nil, true, &raw); err != nil {
		return nil, nil, err
	}
	var j job
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, nil, fmt.Errorf("the server's answer for job %s is not a job: %w", id, err)
	}
	return &j, raw, nil
}

// cancel cancels a job (DELETE): a queued job at once, a running one at its
// worker's next check. A finished job is a 409 conflict.
func (c *client) cancel(ctx context.Context, id string) (*job, error) {
	var j job
	if _, err := c.call(ctx, http.MethodDelete, jobPath(id), nil, nil, true, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// jobs fetches one page of jobs, newest first.
func (c *client) jobs(ctx context.Context, status, cursor string, limit int) (*jobList, error) {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/api/jobs"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var l jobList
	if _, err := c.call(ctx, http.MethodGet, path, nil, nil, true, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// voices fetches the voices of the running engines, and the server's JSON.
func (c *client) voices(ctx context.Context) (*voiceList, json.RawMessage, error) {
	var raw json.RawMessage
	if _, err := c.call(ctx, http.MethodGet, "/api/voices", nil, nil, true, &raw); err != nil {
		return nil, nil, err
	}
	var v voiceList
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, nil, fmt.Errorf("the server's voice list is not what ttsctl expects: %w", err)
	}
	return &v, raw, nil
}

// wait polls a job until it reaches a terminal state, backing off from
// 100 ms to 2 s between polls. update, when not nil, sees every poll.
// It returns ctx's error when ctx ends first, with the last job seen.
func (c *client) wait(ctx context.Context, id string, update func(*job)) (*job, error) {
	pause := 100 * time.Millisecond
	var last *job
	for {
		j, _, err := c.job(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			return last, err
		}
		last = j
		if update != nil {
			update(j)
		}
		if j.terminal() {
			return j, nil
		}
		if err := sleep(ctx, pause); err != nil {
			return last, err
		}
		pause = min(pause*3/2, 2*time.Second)
	}
}

// download writes a succeeded job's audio to w, following a redirect to
// presigned storage. The transfer fails when it stalls for longer than the
// client's timeout (there is no bound on its total length, so long audio is
// never cut off); an interrupted transfer is not resumed here.
func (c *client) download(parent context.Context, id string, w io.Writer) (int64, error) {
	return c.get(parent, jobPath(id)+"/audio", w)
}

// writeError marks an error of the local destination, so that download
// does not report it as a network failure.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }

// fileWriter tags the errors of w as writeErrors.
type fileWriter struct{ w io.Writer }

func (f fileWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err != nil {
		err = &writeError{err}
	}
	return n, err
}

// idleReader restarts timer (which cancels the transfer) on every read that
// brings data.
type idleReader struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.timer.Reset(r.d)
	}
	return n, err
}

// transportError classifies a failed exchange run under ctx, a child of
// parent with a time limit: parent's own end (an interrupt) is returned as
// is; the time limit and everything else become a netError.
func (c *client) transportError(parent, ctx context.Context, err error) error {
	switch {
	case parent.Err() != nil:
		return parent.Err()
	case ctx.Err() != nil:
		return &netError{Server: c.base, Err: fmt.Errorf("no answer for %s (-timeout)", c.timeout)}
	}
	return &netError{Server: c.base, Err: unwrapURLError(err)}
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func jobPath(id string) string { return "/api/jobs/" + url.PathEscape(id) }

func (c *client) newRequest(ctx context.Context, method, path string, body []byte, h http.Header) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "ttsctl")
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	return req, nil
}

// call sends one API request and decodes a 2xx JSON answer into out. When
// retry is set (the request may be repeated safely), network errors and
// 502/503/504 are retried with backoff or the server's Retry-After. It
// returns the response headers.
func (c *client) call(ctx context.Context, method, path string, body []byte, h http.Header, retry bool, out any) (http.Header, error) {
	pause := c.retryWait
	for attempt := 1; ; attempt++ {
		hdr, err := c.once(ctx, method, path, body, h, out)
		if err == nil || !retry || attempt == maxAttempts || ctx.Err() != nil || !transient(err) {
			return hdr, err
		}
		wait := pause
		var ae *apiError
		if errors.As(err, &ae) && ae.RetryAfter > 0 {
			wait = min(ae.RetryAfter, 10*time.Second)
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
		pause = min(pause*2, 2*time.Second)
	}
}

func (c *client) once(parent context.Context, method, path string, body []byte, h http.Header, out any) (http.Header, error) {
	ctx, cancel := context.WithTimeout(parent, c.timeout)
	defer cancel()
	req, err := c.newRequest(ctx, method, path, body, h)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	res, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(parent, ctx, err)
	}
	defer res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return res.Header, readAPIError(res)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, c.transportError(parent, ctx, err)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return nil, fmt.Errorf("%s %s: the answer is not the JSON ttsctl expects (is %s a kokoro-tts server?): %w", method, path, c.base, err)
		}
	}
	return res.Header, nil
}

// transient reports whether err may pass on its own.
func transient(err error) bool {
	var ne *netError
	if errors.As(err, &ne) {
		return true
	}
	var ae *apiError
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusTooManyRequests:
			return true
		}
	}
	return false
}

// readAPIError reads an error response. A body in the API's error shape
// gives its code and message; anything else (a proxy's HTML page) is named
// by its status.
func readAPIError(res *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	e := &apiError{Status: res.StatusCode, RequestID: res.Header.Get("X-Request-ID")}
	if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	var body struct {
		Error struct {
			Code      string `json:"code"`
			Message   string `json:"message"`
			RequestID string `json:"request_id"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message = body.Error.Code, body.Error.Message
		if body.Error.RequestID != "" {
			e.RequestID = body.Error.RequestID
		}
		return e
	}
	text := http.StatusText(res.StatusCode)
	if text == "" {
		text = "status " + strconv.Itoa(res.StatusCode)
	}
	e.Code = strings.ToLower(strings.ReplaceAll(text, " ", "_"))
	e.Message = fmt.Sprintf("the server answered %d %s to %s %s", res.StatusCode, text, res.Request.Method, res.Request.URL.Redacted())
	return e
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
