package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

type config struct {
	server      string
	clients     int
	duration    time.Duration
	grace       time.Duration
	format      string
	voice       string
	text        string
	distinct    bool
	poll        time.Duration
	timeout     time.Duration
	soak        bool
	sampleEvery time.Duration
	key         string // sent as Authorization: Bearer when set
}

// load is one run: the configuration, the HTTP client and what was counted.
type load struct {
	cfg   config
	http  *http.Client
	runID int64

	mu         sync.Mutex
	submitted  int
	accepted   int
	rejected   map[int]int
	succeeded  int
	failed     int
	canceled   int
	unfinished int
	errors     int
	errSamples []string
	submitLat  []time.Duration
	e2eLat     []time.Duration
	lastDone   time.Time
}

func newLoad(cfg config) *load {
	tr := &http.Transport{
		MaxIdleConns:        cfg.clients * 2,
		MaxIdleConnsPerHost: cfg.clients * 2,
		IdleConnTimeout:     30 * time.Second,
	}
	return &load{
		cfg:      cfg,
		http:     &http.Client{Transport: tr, Timeout: cfg.timeout},
		runID:    time.Now().UnixNano() % 1e9,
		rejected: map[int]int{},
	}
}

// run drives the clients and returns the report. Submissions stop at the
// duration (or on ctx); polling of accepted jobs goes on for the grace
// period after it, unless ctx ends.
func (l *load) run(ctx context.Context) *report {
	start := time.Now()
	submitUntil := start.Add(l.cfg.duration)
	pollUntil := submitUntil.Add(l.cfg.grace)

	var s *sampler
	sampleCtx, stopSampling := context.WithCancel(ctx)
	samplerDone := make(chan struct{})
	if l.cfg.soak {
		s = &sampler{l: l}
		go func() { defer close(samplerDone); s.loop(sampleCtx, l.cfg.sampleEvery) }()
	} else {
		close(samplerDone)
	}

	var wg sync.WaitGroup
	for c := 0; c < l.cfg.clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for seq := 0; ctx.Err() == nil && time.Now().Before(submitUntil); seq++ {
				l.one(ctx, c, seq, pollUntil)
			}
		}(c)
	}
	wg.Wait()
	drained := time.Now()
	stopSampling()
	<-samplerDone
	if s != nil {
		s.sample(context.WithoutCancel(ctx)) // the state after the drain
	}
	return l.report(start, drained, s)
}

// one submits a job and follows it to its end.
func (l *load) one(ctx context.Context, client, seq int, pollUntil time.Time) {
	text := l.cfg.text
	if l.cfg.distinct {
		text = fmt.Sprintf("%s Run %d, client %d, number %d.", text, l.runID, client, seq)
	}
	body, _ := json.Marshal(map[string]string{"text": text, "voice": l.cfg.voice, "format": l.cfg.format})
	t0 := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.cfg.server+"/api/tts", bytes.NewReader(body))
	if err != nil {
		l.fail("submit: %v", err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	l.authorize(req)
	res, err := l.http.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			l.mu.Lock()
			l.submitted++
			l.mu.Unlock()
			l.fail("submit: %v", err)
		}
		return
	}
	var job struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	res.Body.Close()
	lat := time.Since(t0)
	l.mu.Lock()
	l.submitted++
	if res.StatusCode != http.StatusAccepted {
		l.rejected[res.StatusCode]++
		l.mu.Unlock()
		// A rejection is the server's answer, not a tool error; back off a
		// little so a saturated server is not spun against.
		sleep(ctx, l.cfg.poll)
		return
	}
	l.accepted++
	l.submitLat = append(l.submitLat, lat)
	l.mu.Unlock()
	if err != nil || json.Unmarshal(raw, &job) != nil || job.ID == "" {
		l.fail("submit: unreadable 202 body %.200q (%v)", raw, err)
		return
	}

	for {
		if terminal(job.Status) {
			l.finish(job.Status, time.Since(t0))
			return
		}
		if time.Now().After(pollUntil) || ctx.Err() != nil {
			l.mu.Lock()
			l.unfinished++
			l.mu.Unlock()
			return
		}
		sleep(ctx, l.cfg.poll)
		st, err := l.status(ctx, job.ID)
		if err != nil {
			if ctx.Err() == nil {
				l.fail("poll %s: %v", job.ID, err)
			} else {
				l.mu.Lock()
				l.unfinished++
				l.mu.Unlock()
			}
			return
		}
		job.Status = st
	}
}

func (l *load) status(ctx context.Context, id string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.cfg.server+"/api/jobs/"+id, nil)
	if err != nil {
		return "", err
	}
	l.authorize(req)
	res, err := l.http.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %.200s", res.StatusCode, raw)
	}
	var job struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(raw, &job); err != nil || job.Status == "" {
		return "", fmt.Errorf("unreadable job %.200q", raw)
	}
	return job.Status, nil
}

func terminal(status string) bool {
	return status == "succeeded" || status == "failed" || status == "canceled"
}

func (l *load) finish(status string, e2e time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastDone = time.Now()
	switch status {
	case "succeeded":
		l.succeeded++
		l.e2eLat = append(l.e2eLat, e2e)
	case "failed":
		l.failed++
	case "canceled":
		l.canceled++
	}
}

func (l *load) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errors++
	if len(l.errSamples) < 5 {
		l.errSamples = append(l.errSamples, fmt.Sprintf(format, args...))
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// sampler reads go_goroutines and process_resident_memory_bytes from the
// API's /metrics.
type sampler struct {
	l          *load
	goroutines series
	rss        series
	errors     int
}

// series is first, last and max of a sampled gauge.
type series struct {
	Samples int     `json:"samples"`
	First   float64 `json:"first"`
	Last    float64 `json:"last"`
	Max     float64 `json:"max"`
}

func (s *series) add(v float64) {
	if s.Samples == 0 {
		s.First = v
	}
	s.Samples++
	s.Last = v
	s.Max = math.Max(s.Max, v)
}

func (s *sampler) loop(ctx context.Context, every time.Duration) {
	s.sample(ctx)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sample(ctx)
		}
	}
}

func (s *sampler) sample(ctx context.Context) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.l.cfg.server+"/metrics", nil)
	if err != nil {
		s.errors++
		return
	}
	s.l.authorize(req)
	res, err := s.l.http.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			s.errors++
		}
		return
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		s.errors++
		return
	}
	var g, r float64 = -1, -1
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := gauge(line, "go_goroutines"); ok {
			g = v
		} else if v, ok := gauge(line, "process_resident_memory_bytes"); ok {
			r = v
		}
	}
	if sc.Err() != nil || g < 0 || r < 0 {
		s.errors++
		return
	}
	s.goroutines.add(g)
	s.rss.add(r)
}

// gauge parses "name value" (a label-less sample) from the text exposition
// format.
func gauge(line, name string) (float64, bool) {
	rest, ok := strings.CutPrefix(line, name+" ")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
	return v, err == nil
}

// report is what a run measured; it is also the -json output.
type report struct {
	Server          string         `json:"server"`
	Clients         int            `json:"clients"`
	Format          string         `json:"format"`
	Distinct        bool           `json:"distinct"`
	DurationSeconds float64        `json:"duration_seconds"`
	ElapsedSeconds  float64        `json:"elapsed_seconds"`
	Submitted       int            `json:"submitted"`
	Accepted        int            `json:"accepted"`
	Rejected        map[string]int `json:"rejected"`
	Succeeded       int            `json:"succeeded"`
	Failed          int            `json:"failed"`
	Canceled        int            `json:"canceled"`
	Unfinished      int            `json:"unfinished"`
	Errors          int            `json:"errors"`
	ErrorSamples    []string       `json:"error_samples,omitempty"`
	AcceptedPerSec  float64        `json:"accepted_per_second"`
	CompletedPerSec float64        `json:"completed_per_second"`
	SubmitMS        latency        `json:"submit_latency_ms"`
	EndToEndMS      latency        `json:"end_to_end_latency_ms"`
	Soak            *soakReport    `json:"soak,omitempty"`
}

// latency holds percentiles in milliseconds.
type latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

type soakReport struct {
	Goroutines   series `json:"goroutines"`
	RSSBytes     series `json:"rss_bytes"`
	SampleErrors int    `json:"sample_errors"`
}

func (l *load) report(start, drained time.Time, s *sampler) *report {
	l.mu.Lock()
	defer l.mu.Unlock()
	window := l.cfg.duration.Seconds()
	if submitEnd := drained.Sub(start).Seconds(); submitEnd < window {
		window = submitEnd // interrupted early
	}
	r := &report{
		Server: l.cfg.server, Clients: l.cfg.clients, Format: l.cfg.format, Distinct: l.cfg.distinct,
		DurationSeconds: l.cfg.duration.Seconds(), ElapsedSeconds: drained.Sub(start).Seconds(),
		Submitted: l.submitted, Accepted: l.accepted, Rejected: map[string]int{},
		Succeeded: l.succeeded, Failed: l.failed, Canceled: l.canceled, Unfinished: l.unfinished,
		Errors: l.errors, ErrorSamples: l.errSamples,
		SubmitMS: percentiles(l.submitLat), EndToEndMS: percentiles(l.e2eLat),
	}
	for code, n := range l.rejected {
		r.Rejected[strconv.Itoa(code)] = n
	}
	if window > 0 {
		r.AcceptedPerSec = float64(l.accepted) / window
	}
	// Completions are counted over the time from the start to the last one,
	// which includes the drain after the submission window.
	if done := l.lastDone.Sub(start).Seconds(); l.succeeded > 0 && done > 0 {
		r.CompletedPerSec = float64(l.succeeded) / done
	}
	if s != nil {
		r.Soak = &soakReport{Goroutines: s.goroutines, RSSBytes: s.rss, SampleErrors: s.errors}
	}
	return r
}

func percentiles(d []time.Duration) latency {
	if len(d) == 0 {
		return latency{}
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1 // nearest rank
		i = max(0, min(i, len(s)-1))
		return ms(s[i])
	}
	return latency{Count: len(s), P50: at(0.50), P95: at(0.95), P99: at(0.99), Max: ms(s[len(s)-1])}
}

func ms(d time.Duration) float64 { return math.Round(float64(d.Microseconds())/10) / 100 }

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "server %s, %d clients, %s, distinct %v, %.0f s (+%.1f s drain)\n",
		r.Server, r.Clients, r.Format, r.Distinct, r.DurationSeconds, r.ElapsedSeconds-math.Min(r.ElapsedSeconds, r.DurationSeconds))
	fmt.Fprintf(w, "submitted %d, accepted %d, rejected %v\n", r.Submitted, r.Accepted, r.Rejected)
	fmt.Fprintf(w, "succeeded %d, failed %d, canceled %d, unfinished %d, errors %d\n",
		r.Succeeded, r.Failed, r.Canceled, r.Unfinished, r.Errors)
	for _, e := range r.ErrorSamples {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
	fmt.Fprintf(w, "throughput: %.1f jobs/s accepted, %.1f jobs/s completed\n", r.AcceptedPerSec, r.CompletedPerSec)
	fmt.Fprintf(w, "submit latency ms:     p50 %.1f  p95 %.1f  p99 %.1f  max %.1f  (n=%d)\n",
		r.SubmitMS.P50, r.SubmitMS.P95, r.SubmitMS.P99, r.SubmitMS.Max, r.SubmitMS.Count)
	fmt.Fprintf(w, "end-to-end latency ms: p50 %.1f  p95 %.1f  p99 %.1f  max %.1f  (n=%d)\n",
		r.EndToEndMS.P50, r.EndToEndMS.P95, r.EndToEndMS.P99, r.EndToEndMS.Max, r.EndToEndMS.Count)
	if r.Soak != nil {
		g, m := r.Soak.Goroutines, r.Soak.RSSBytes
		fmt.Fprintf(w, "goroutines: first %.0f, last %.0f, max %.0f (%d samples)\n", g.First, g.Last, g.Max, g.Samples)
		fmt.Fprintf(w, "RSS MiB:    first %.1f, last %.1f, max %.1f (%d samples, %d sample errors)\n",
			m.First/(1<<20), m.Last/(1<<20), m.Max/(1<<20), m.Samples, r.Soak.SampleErrors)
	}
}

// authorize adds the API key or token, if any.
func (l *load) authorize(req *http.Request) {
	if l.cfg.key != "" {
		req.Header.Set("Authorization", "Bearer "+l.cfg.key)
	}
}
