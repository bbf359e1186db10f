// Command api serves the HTTP API. With REDIS_URL unset it runs the whole
// service in one process (embedded mode): an in-memory Redis, an in-process
// worker, a SQLite file and audio on disk under DATA_DIR. With REDIS_URL set
// (service mode) it only serves; cmd/worker processes the jobs.
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
	"sync"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/kokorotts/kokoro-tts/pkg/audio"
	"github.com/kokorotts/kokoro-tts/pkg/config"
	"github.com/kokorotts/kokoro-tts/pkg/espeak"
	"github.com/kokorotts/kokoro-tts/pkg/events"
	"github.com/kokorotts/kokoro-tts/pkg/fleet"
	"github.com/kokorotts/kokoro-tts/pkg/httpapi"
	"github.com/kokorotts/kokoro-tts/pkg/jobs"
	"github.com/kokorotts/kokoro-tts/pkg/metrics"
	"github.com/kokorotts/kokoro-tts/pkg/sqlstore"
	"github.com/kokorotts/kokoro-tts/pkg/tone"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
	"github.com/kokorotts/kokoro-tts/pkg/webhook"
	"github.com/kokorotts/kokoro-tts/pkg/worker"
	"github.com/kokorotts/kokoro-tts/queue"
	"github.com/kokorotts/kokoro-tts/storage"
)

// Config is everything cmd/api reads from the environment.
type Config struct {
	config.Base
	// HTTPAddr defaults to :8080 with authentication on and to
	// 127.0.0.1:8080 when the API runs open (see defaultAddr).
	HTTPAddr     string `env:"HTTP_ADDR"`
	MaxTextChars int    `env:"MAX_TEXT_CHARS" envDefault:"20000"`
	MaxBodyBytes int64  `env:"MAX_BODY_BYTES" envDefault:"1048576"`
	// MaxBatchBodyBytes bounds POST /api/batches (up to 10,000 items).
	MaxBatchBodyBytes int64         `env:"MAX_BATCH_BODY_BYTES" envDefault:"33554432"`
	ShutdownTimeout   time.Duration `env:"HTTP_SHUTDOWN_TIMEOUT" envDefault:"30s"`
	// SpeechTimeout bounds the synchronous OpenAI-compatible endpoint's
	// wait for its job (504 and the job canceled after it).
	SpeechTimeout time.Duration `env:"SPEECH_TIMEOUT" envDefault:"120s"`
	// Worker configures the in-process worker of embedded mode.
	Worker config.Worker
	// KokoroModelPath, in embedded mode, makes the API start cmd/worker as
	// a child process (the API binary does not link ONNX Runtime); the
	// child reads the KOKORO_* variables itself.
	KokoroModelPath string `env:"KOKORO_MODEL_PATH"`
	// WorkerBin is the worker binary for that child; default "worker"
	// beside the api binary, then on PATH.
	WorkerBin string `env:"WORKER_BIN"`
	// Auth configures authentication and per-account limits.
	Auth AuthConfig
}

// Validate checks the configuration and names the offending variable.
func (c *Config) Validate() error {
	if err := c.Base.Validate(); err != nil {
		return err
	}
	if c.MaxTextChars < 1 || c.MaxTextChars > 1_000_000 {
		return fmt.Errorf("MAX_TEXT_CHARS: must be from 1 to 1000000")
	}
	if min := int64(c.MaxTextChars)*4 + 4096; c.MaxBodyBytes < min {
		return fmt.Errorf("MAX_BODY_BYTES: must be at least %d for MAX_TEXT_CHARS=%d", min, c.MaxTextChars)
	}
	if c.MaxBatchBodyBytes < c.MaxBodyBytes || c.MaxBatchBodyBytes > 1<<30 {
		return fmt.Errorf("MAX_BATCH_BODY_BYTES: must be from MAX_BODY_BYTES to 1 GiB")
	}
	if c.SpeechTimeout < time.Second || c.SpeechTimeout > time.Hour {
		return fmt.Errorf("SPEECH_TIMEOUT: must be from 1s to 1h")
	}
	if c.ShutdownTimeout < time.Second {
		return fmt.Errorf("HTTP_SHUTDOWN_TIMEOUT: must be at least 1s")
	}
	if err := c.Auth.validate(c.Embedded()); err != nil {
		return err
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = c.defaultAddr()
	}
	if c.Embedded() {
		return c.Worker.Validate()
	}
	return nil
}

// Main is the api program: ParseEnv, Run, Close.
type Main struct {
	Config Config
	Logger *slog.Logger
	// Registry holds the metrics served at /metrics.
	Registry *prometheus.Registry

	closers []func() error
	srv     *http.Server
	ln      net.Listener
	worker  *worker.Server
	child   *childWorker
	serveWG sync.WaitGroup
}

// ParseEnv reads the configuration from the environment.
func (m *Main) ParseEnv() error {
	if err := config.Parse(&m.Config); err != nil {
		return err
	}
	return m.Config.Validate()
}

// Addr returns the address the API listens on once Run has returned.
func (m *Main) Addr() string { return m.ln.Addr().String() }

// Run starts the service and returns once it is listening.
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
	mode := "service"
	if c.Embedded() {
		mode = "embedded"
	}

	db, err := c.OpenDatabase(ctx, c.Embedded(), log)
	if err != nil {
		return err
	}
	m.closers = append(m.closers, db.Close)

	objects, err := c.OpenStorage(ctx)
	if err != nil {
		return err
	}

	redisURL := c.RedisURL
	if c.Embedded() {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("starting the embedded Redis: %w", err)
		}
		m.closers = append(m.closers, func() error { mr.Close(); return nil })
		m.closers = append(m.closers, expireKeys(mr, time.Minute))
		redisURL = "redis://" + mr.Addr()
		log.Warn("EMBEDDED MODE: the queue lives in memory and does not persist; jobs queued when the process stops are re-queued from the database at the next start. Set REDIS_URL for production.",
			"redis", mr.Addr(), "data_dir", c.DataDir)
	}
	redisOpt := config.RedisOpt(redisURL)
	rdb := config.RedisClient(redisURL)
	m.closers = append(m.closers, rdb.Close)
	q := queue.NewClientFromRedis(rdb)
	m.closers = append(m.closers, q.Close)
	registry := fleet.NewRegistry(rdb)
	bus := events.NewRedis(rdb)
	m.Registry = metrics.NewRegistry()
	m.Registry.MustRegister(metrics.NewQueueCollector(q.Inspector(), log), metrics.NewJobsCollector(db, log))

	var engine tts.Synthesizer
	if c.Embedded() && m.wantsKokoro() {
		if err := m.startChildWorker(ctx, redisURL); err != nil {
			return err
		}
	} else if c.Embedded() {
		config.SweepStaleTemp(objects, log)
		engine, err = m.startWorker(ctx, db, objects, q, registry, bus, rdb, redisOpt)
		if err != nil {
			return err
		}
	}

	voices := voiceSource(engine, registry)
	svc := jobs.New(jobs.Config{
		Store: db, Queue: q, Objects: objects, Voices: voices, MaxTextChars: c.MaxTextChars,
		PresignAudio: c.S3.PresignTTL, Events: bus, Logger: log,
		Webhooks: c.Webhooks.Enabled(), AllowPrivateCallbacks: c.Webhooks.AllowPrivate,
	})
	apiCfg := httpapi.Config{
		Jobs: svc, Logger: log, MaxBodyBytes: c.MaxBodyBytes, Mode: mode,
		Metrics: metrics.NewHTTP(m.Registry), MetricsHandler: promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}),
		SpeechTimeout: c.SpeechTimeout, MaxBatchBodyBytes: c.MaxBatchBodyBytes,
		Checks:      checks(db, rdb, objects, engine, registry),
		Fleet:       fleetView(q.Inspector(), registry),
		Web:         webHandler(),
		CORSOrigins: c.Auth.CORSOrigins,
	}
	if err := m.setupAuth(ctx, db, rdb, &apiCfg); err != nil {
		return err
	}
	ui := queuesUI(redisOpt, c.Auth.QueuesUIReadOnly)
	m.closers = append(m.closers, ui.Close)
	apiCfg.QueuesUI = ui
	api := httpapi.New(apiCfg)

	m.ln, err = net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP_ADDR %s: %w", c.HTTPAddr, err)
	}
	m.srv = httpapi.NewHTTPServer(c.HTTPAddr, api)
	m.serveWG.Add(1)
	go func() {
		defer m.serveWG.Done()
		if err := m.srv.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server stopped", "err", err)
		}
	}()
	log.Info("API listening", "addr", m.Addr(), "mode", mode, "storage", objects.Name(), "database", redactDSN(c.Database()))
	return nil
}

// startWorker runs the in-process worker of embedded mode.
func (m *Main) startWorker(ctx context.Context, db *sqlstore.DB, objects storage.Store, q *queue.Client, registry *fleet.Registry, bus *events.Redis, rdb redis.UniversalClient, redisOpt asynq.RedisConnOpt) (tts.Synthesizer, error) {
	c := &m.Config
	engine, err := m.embeddedEngine()
	if err != nil {
		return nil, err
	}
	m.closers = append(m.closers, engine.Close)
	enc, err := audio.NewEncoder(audio.Config{FFmpegPath: c.Worker.FFmpegPath, MP3BitrateKbps: c.Worker.MP3Bitrate})
	if err != nil {
		return nil, fmt.Errorf("FFMPEG_PATH: %w", err)
	}
	h := &worker.Handler{Store: db, Engine: engine, Encoder: enc, Objects: objects, Logger: m.Logger.With("component", "worker"),
		Metrics: metrics.NewWorker(m.Registry, engine.Info()), Events: bus,
		Cache: c.Worker.AudioCache, CacheSalt: c.Worker.CacheSalt(), Locks: fleet.NewLocks(rdb), Webhooks: q}
	m.worker = worker.NewServer(worker.Config{
		Redis: redisOpt, Concurrency: c.Worker.Concurrency,
		ShutdownTimeout: c.Worker.ShutdownTimeout, TaskCheckInterval: c.Worker.TaskCheckInterval,
		ReconcileInterval: c.Worker.ReconcileInterval, StaleAfter: c.Worker.ReconcileStaleAfter,
		Webhooks: m.webhookHandler(db),
		Logger:   m.Logger.With("component", "worker"),
	}, h, q, registry)
	if err := m.worker.Start(); err != nil {
		return nil, err
	}
	// The queue was empty at start: hand it every job the database still
	// holds as live (the previous run's queue was in memory).
	if n, err := m.worker.Reconciler().PassAll(ctx); err != nil {
		m.Logger.Warn("re-queueing live jobs failed", "err", err)
	} else if n > 0 {
		m.Logger.Info("re-queued live jobs from the database", "jobs", n)
	}
	return engine, nil
}

// embeddedEngine picks the engine of the in-process worker: espeak-ng, or
// the test tone. The API binary does not link ONNX Runtime: Kokoro runs in
// a child cmd/worker (see startChildWorker).
func (m *Main) embeddedEngine() (tts.Synthesizer, error) {
	w := m.Config.Worker
	if w.Engine == "tone" {
		return tone.New(tone.Config{}), nil
	}
	e, err := espeak.New(espeak.Config{Path: w.ESpeakPath, MaxConcurrency: w.Concurrency})
	if err != nil {
		return nil, fmt.Errorf("ESPEAK_NG_PATH: %w", err)
	}
	m.Logger.Warn("embedded worker uses espeak-ng: no Kokoro model is configured (run `make model`, then set KOKORO_MODEL_PATH)", "engine", e.Info())
	return e, nil
}

// Close shuts down in reverse order of start.
func (m *Main) Close() error {
	var errs []error
	if m.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
		if err := m.srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
		m.serveWG.Wait()
	}
	if m.worker != nil {
		m.worker.Shutdown()
	}
	if m.child != nil {
		m.child.stop(m.Config.Worker.ShutdownTimeout)
		m.child = nil
	}
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
		fmt.Fprintln(os.Stderr, "api: configuration:", err)
		os.Exit(2)
	}
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "health":
			os.Exit(healthCommand(m.Config.HTTPAddr))
		default:
			fmt.Fprintf(os.Stderr, "api: unknown command %q (usage: api [health])\n", os.Args[1])
			os.Exit(2)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := m.Run(ctx); err != nil {
		if m.Logger != nil {
			m.Logger.Error("api failed to start", "err", err)
		} else {
			fmt.Fprintln(os.Stderr, "api:", err)
		}
		os.Exit(1)
	}
	<-ctx.Done()
	m.Logger.Info("shutting down")
	if err := m.Close(); err != nil {
		m.Logger.Error("shutdown", "err", err)
		os.Exit(1)
	}
}

// webhookHandler delivers callbacks when WEBHOOK_SECRET is set.
func (m *Main) webhookHandler(db *sqlstore.DB) *worker.WebhookHandler {
	w := m.Config.Webhooks
	if !w.Enabled() {
		return nil
	}
	return &worker.WebhookHandler{Store: db, Sender: webhook.NewSender(w.Secret, 30*time.Second, w.AllowPrivate),
		Logger: m.Logger.With("component", "webhook")}
}

// expireKeys makes the embedded Redis honour TTLs: miniredis ages keys only
// when told to, so without this the 24 h event streams, locks and rate-limit
// keys would live as long as the process (a soak grew by ~1.6 KB of heap per
// job). It returns the function that stops it.
func expireKeys(mr *miniredis.Miniredis, every time.Duration) func() error {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				mr.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	return func() error { close(stop); <-done; return nil }
}
