// Command worker processes synthesis jobs from Redis (asynq): it runs the
// engine (Kokoro through ONNX Runtime when KOKORO_MODEL_PATH is set,
// espeak-ng otherwise), encodes the audio, stores it and marks the job done.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/kokorotts/kokoro-tts/pkg/audio"
	"github.com/kokorotts/kokoro-tts/pkg/config"
	"github.com/kokorotts/kokoro-tts/pkg/events"
	"github.com/kokorotts/kokoro-tts/pkg/fleet"
	"github.com/kokorotts/kokoro-tts/pkg/metrics"
	"github.com/kokorotts/kokoro-tts/pkg/webhook"
	"github.com/kokorotts/kokoro-tts/pkg/worker"
	"github.com/kokorotts/kokoro-tts/queue"
)

// Config is everything cmd/worker reads from the environment.
type Config struct {
	config.Base
	config.Redis
	Worker config.Worker
	Kokoro KokoroConfig
	// MetricsAddr is where the worker serves Prometheus metrics at
	// /metrics; empty turns it off.
	MetricsAddr string `env:"METRICS_ADDR" envDefault:":9091"`
}

// Validate checks the configuration and names the offending variable.
func (c *Config) Validate() error {
	if err := c.Base.Validate(); err != nil {
		return err
	}
	if c.RedisURL == "" {
		return fmt.Errorf("REDIS_URL: required (the worker takes its jobs from Redis)")
	}
	if err := c.Redis.Validate(); err != nil {
		return err
	}
	if err := c.Worker.Validate(); err != nil {
		return err
	}
	return c.Kokoro.Validate()
}

// Main is the worker program: ParseEnv, Run, Close.
type Main struct {
	Config Config
	Logger *slog.Logger

	server  *worker.Server
	metrics *http.Server
	closers []func() error
}

// serveMetrics serves /metrics on METRICS_ADDR.
func (m *Main) serveMetrics(reg *prometheus.Registry) error {
	ln, err := net.Listen("tcp", m.Config.MetricsAddr)
	if err != nil {
		return fmt.Errorf("METRICS_ADDR %s: %w", m.Config.MetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	m.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := m.metrics.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Logger.Error("metrics server stopped", "err", err)
		}
	}()
	m.closers = append(m.closers, func() error { return m.metrics.Close() })
	m.Logger.Info("metrics listening", "addr", ln.Addr().String())
	return nil
}

// ParseEnv reads the configuration from the environment.
func (m *Main) ParseEnv() error {
	if err := config.Parse(&m.Config); err != nil {
		return err
	}
	return m.Config.Validate()
}

// Run starts the worker and returns once it takes tasks.
func (m *Main) Run(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	c := &m.Config
	if m.Logger == nil {
		m.Logger = c.Logger(os.Stderr)
	}
	log := m.Logger

	db, err := c.OpenDatabase(ctx, false, log)
	if err != nil {
		return err
	}
	m.closers = append(m.closers, db.Close)
	objects, err := c.OpenStorage(ctx)
	if err != nil {
		return err
	}
	config.SweepStaleTemp(objects, log)
	redisOpt := config.RedisOpt(c.RedisURL)
	rdb := redisOpt.MakeRedisClient().(redis.UniversalClient)
	m.closers = append(m.closers, rdb.Close)
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("REDIS_URL: Redis is not reachable: %w", err)
	}
	if err := c.Redis.CheckEviction(ctx, rdb, log); err != nil {
		return err
	}
	q := queue.NewClient(redisOpt)
	m.closers = append(m.closers, q.Close)

	engine, err := m.newEngine(ctx)
	if err != nil {
		return err
	}
	m.closers = append(m.closers, engine.Close)
	enc, err := audio.NewEncoder(audio.Config{FFmpegPath: c.Worker.FFmpegPath, MP3BitrateKbps: c.Worker.MP3Bitrate})
	if err != nil {
		return fmt.Errorf("FFMPEG_PATH: %w", err)
	}
	reg := metrics.NewRegistry()
	reg.MustRegister(metrics.NewQueueCollector(q.Inspector(), log))
	h := &worker.Handler{Store: db, Engine: engine, Encoder: enc, Objects: objects, Logger: log,
		Metrics: metrics.NewWorker(reg, engine.Info()), Events: events.NewRedis(rdb),
		Cache: c.Worker.AudioCache, CacheSalt: c.Worker.CacheSalt(), Locks: fleet.NewLocks(rdb), Webhooks: q}
	var hooks *worker.WebhookHandler
	if c.Webhooks.Enabled() {
		hooks = &worker.WebhookHandler{Store: db, Sender: webhook.NewSender(c.Webhooks.Secret, 30*time.Second, c.Webhooks.AllowPrivate),
			Logger: log.With("component", "webhook")}
	}
	if c.MetricsAddr != "" {
		if err := m.serveMetrics(reg); err != nil {
			return err
		}
	}
	m.server = worker.NewServer(worker.Config{
		Redis: redisOpt, Concurrency: c.Worker.Concurrency, ShutdownTimeout: c.Worker.ShutdownTimeout,
		TaskCheckInterval: c.Worker.TaskCheckInterval, ReconcileInterval: c.Worker.ReconcileInterval,
		StaleAfter: c.Worker.ReconcileStaleAfter, Logger: log, Webhooks: hooks,
	}, h, q, fleet.NewRegistry(rdb))
	return m.server.Start()
}

// Close stops taking tasks, lets running jobs finish (up to
// WORKER_SHUTDOWN_TIMEOUT) and releases everything in reverse order.
func (m *Main) Close() error {
	if m.server != nil {
		m.server.Shutdown()
		m.server = nil
	}
	var errs []error
	for i := len(m.closers) - 1; i >= 0; i-- {
		if err := m.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	m.closers = nil
	return errors.Join(errs...)
}

func main() {
	m := &Main{}
	if err := m.ParseEnv(); err != nil {
		fmt.Fprintln(os.Stderr, "worker: configuration:", err)
		os.Exit(2)
	}
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "health":
			os.Exit(healthCommand(&m.Config))
		default:
			fmt.Fprintf(os.Stderr, "worker: unknown command %q (usage: worker [health])\n", os.Args[1])
			os.Exit(2)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := m.Run(ctx); err != nil {
		if m.Logger != nil {
			m.Logger.Error("worker failed to start", "err", err)
		} else {
			fmt.Fprintln(os.Stderr, "worker:", err)
		}
		os.Exit(1)
	}
	<-ctx.Done()
	m.Logger.Info("shutting down: finishing running jobs", "timeout", m.Config.Worker.ShutdownTimeout)
	if err := m.Close(); err != nil {
		m.Logger.Error("shutdown", "err", err)
		os.Exit(1)
	}
}
