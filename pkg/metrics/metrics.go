// Package metrics defines the Prometheus metrics of the API and the worker
// and the collectors that read queue and job state on each scrape. Every
// binary builds its own registry; nothing is registered globally.
package metrics

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
	"github.com/kokorotts/kokoro-tts/queue"
)

const namespace = "kokoro_tts"

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// HTTP holds the API's request metrics.
type HTTP struct {
	Duration *prometheus.HistogramVec
}

// NewHTTP registers the HTTP metrics on r.
func NewHTTP(r prometheus.Registerer) *HTTP {
	h := &HTTP{Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "http", Name: "request_duration_seconds",
		Help:    "HTTP request latency by route pattern, method and status.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 120},
	}, []string{"route", "method", "status"})}
	r.MustRegister(h.Duration)
	return h
}

// Worker holds the worker's job metrics.
type Worker struct {
	Jobs          *prometheus.CounterVec   // outcome: succeeded, failed, canceled, retried, interrupted, superseded, skipped, quarantined, unrecorded
	Failures      *prometheus.CounterVec   // stage: synthesis, encoding, storing the audio, ...
	Synthesis     *prometheus.HistogramVec // seconds spent in the engine, by engine/device
	AudioSeconds  *prometheus.CounterVec   // seconds of audio produced
	RealTime      *prometheus.HistogramVec // synthesis seconds / audio seconds
	Characters    prometheus.Counter
	CacheHits     prometheus.Counter
	EngineInfo    *prometheus.GaugeVec
	InFlight      prometheus.Gauge
	QueueWait     prometheus.Histogram // from creation to the first start of an attempt
	TotalDuration prometheus.Histogram // from creation to succeeded
}

// NewWorker registers the worker metrics on r and records the engine.
func NewWorker(r prometheus.Registerer, engine tts.EngineInfo) *Worker {
	w := &Worker{
		Jobs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "worker", Name: "jobs_total",
			Help: "Job executions by outcome (succeeded, failed, canceled, retried, interrupted, superseded, skipped, quarantined, unrecorded: audio stored but the database refused its success)."}, []string{"outcome"}),
		Failures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "worker", Name: "failures_total",
			Help: "Failed attempts by stage (synthesis, encoding, storing the audio, other)."}, []string{"stage"}),
		Synthesis: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "worker", Name: "synthesis_seconds",
			Help: "Time spent in the engine per job.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 16)}, []string{"engine", "device"}),
		AudioSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "worker", Name: "audio_seconds_total",
			Help: "Seconds of audio produced."}, []string{"engine", "device"}),
		RealTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "worker", Name: "real_time_factor",
			Help:    "Synthesis time divided by audio duration (below 1 is faster than real time).",
			Buckets: []float64{.01, .02, .05, .1, .2, .3, .5, .75, 1, 1.5, 2, 5}}, []string{"engine", "device"}),
		Characters: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: "worker", Name: "characters_total",
			Help: "Characters of text synthesised by succeeded jobs."}),
		CacheHits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: "worker", Name: "cache_hits_total",
			Help: "Succeeded jobs whose audio came from the audio cache."}),
		EngineInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "worker", Name: "engine_info",
			Help: "The engine this worker runs (value 1)."}, []string{"engine", "device", "model", "version"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "worker", Name: "jobs_in_flight",
			Help: "Jobs being processed now."}),
		QueueWait: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "worker", Name: "queue_wait_seconds",
			Help: "Time from submission to the first attempt's start.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 18)}),
		TotalDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "worker", Name: "job_duration_seconds",
			Help: "Time from submission to success.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 16)}),
	}
	r.MustRegister(w.CacheHits, w.Jobs, w.Failures, w.Synthesis, w.AudioSeconds, w.RealTime, w.Characters, w.EngineInfo, w.InFlight, w.QueueWait, w.TotalDuration)
	w.EngineInfo.WithLabelValues(engine.Name, engine.Device, engine.Model, engine.Version).Set(1)
	return w
}

// QueueCollector reports asynq's queue sizes and latency on each scrape.
type QueueCollector struct {
	inspector *asynq.Inspector
	log       *slog.Logger
	size      *prometheus.Desc
	latency   *prometheus.Desc
	up        *prometheus.Desc
}

// NewQueueCollector returns a collector over the service's queues.
func NewQueueCollector(i *asynq.Inspector, log *slog.Logger) *QueueCollector {
	return &QueueCollector{inspector: i, log: log,
		size: prometheus.NewDesc(namespace+"_queue_tasks", "Tasks in each asynq queue by state.", []string{"queue", "state"}, nil),
		latency: prometheus.NewDesc(namespace+"_queue_latency_seconds",
			"Age of the oldest pending task in each queue.", []string{"queue"}, nil),
		up: prometheus.NewDesc(namespace+"_queue_up", "Whether the queue state could be read from Redis.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *QueueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.size
	ch <- c.latency
	ch <- c.up
}

// Collect implements prometheus.Collector.
func (c *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	up := 1.0
	existing, err := c.inspector.Queues()
	if err != nil {
		c.log.Warn("metrics: listing queues failed", "err", err)
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	for q := range queue.Priorities() {
		if !slices.Contains(existing, q) {
			// A queue that never held a task does not exist yet.
			for _, s := range []string{"pending", "active", "scheduled", "retry", "archived"} {
				ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, 0, q, s)
			}
			ch <- prometheus.MustNewConstMetric(c.latency, prometheus.GaugeValue, 0, q)
			continue
		}
		info, err := c.inspector.GetQueueInfo(q)
		if err != nil {
			up = 0
			c.log.Warn("metrics: reading queue state failed", "queue", q, "err", err)
			continue
		}
		for s, n := range map[string]int{"pending": info.Pending, "active": info.Active, "scheduled": info.Scheduled,
			"retry": info.Retry, "archived": info.Archived} {
			ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(n), q, s)
		}
		ch <- prometheus.MustNewConstMetric(c.latency, prometheus.GaugeValue, info.Latency.Seconds(), q)
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up)
}

// JobCounter counts jobs by state.
type JobCounter interface {
	CountByStatus(ctx context.Context) (map[tts.JobStatus]int, error)
}

// JobsCollector reports how many jobs are in each state, read from the
// database on each scrape.
type JobsCollector struct {
	store JobCounter
	log   *slog.Logger
	desc  *prometheus.Desc
}

// NewJobsCollector returns the collector.
func NewJobsCollector(store JobCounter, log *slog.Logger) *JobsCollector {
	return &JobsCollector{store: store, log: log,
		desc: prometheus.NewDesc(namespace+"_jobs", "Jobs in the database by status.", []string{"status"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *JobsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *JobsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.store.CountByStatus(ctx)
	if err != nil {
		c.log.Warn("metrics: counting jobs failed", "err", err)
		return
	}
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), string(s))
	}
}
