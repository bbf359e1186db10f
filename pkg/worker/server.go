package worker

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/kokorotts/kokoro-tts/pkg/fleet"
	"github.com/kokorotts/kokoro-tts/queue"
)

// Config configures a Server.
type Config struct {
	Redis       asynq.RedisConnOpt
	Concurrency int // tasks in flight; default 1
	// ShutdownTimeout is how long Shutdown waits for running jobs before it
	// puts them back on the queue. It must exceed the longest synthesis.
	ShutdownTimeout time.Duration
	// TaskCheckInterval is how long an idle worker sleeps between polls of
	// empty queues (asynq's default is 1 s).
	TaskCheckInterval time.Duration
	ReconcileInterval time.Duration
	StaleAfter        time.Duration
	Logger            *slog.Logger
	// Webhooks, when set, delivers TypeWebhook tasks.
	Webhooks *WebhookHandler
}

// Server runs the asynq server with the Handler, the Reconciler and the
// fleet announcement.
type Server struct {
	srv      *asynq.Server
	mux      *asynq.ServeMux
	rec      *Reconciler
	registry *fleet.Registry
	handler  *Handler
	cfg      Config
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// NewServer returns a Server; Start runs it.
func NewServer(cfg Config, h *Handler, q TaskQueue, registry *fleet.Registry) *Server {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	srv := asynq.NewServer(cfg.Redis, asynq.Config{
		Concurrency:       cfg.Concurrency,
		Queues:            queue.Priorities(),
		StrictPriority:    true,
		ShutdownTimeout:   cfg.ShutdownTimeout,
		TaskCheckInterval: cfg.TaskCheckInterval,
		RetryDelayFunc:    RetryDelay,
		IsFailure:         IsFailure,
		Logger:            asynqLogger{cfg.Logger.With("component", "asynq")},
		LogLevel:          asynq.WarnLevel,
	})
	mux := asynq.NewServeMux()
	mux.Handle(queue.TypeSynthesize, h)
	if cfg.Webhooks != nil {
		mux.Handle(queue.TypeWebhook, cfg.Webhooks)
	}
	return &Server{
		srv: srv, mux: mux, handler: h, registry: registry, cfg: cfg,
		rec: &Reconciler{Store: h.Store, Queue: q, Events: h.Events, Webhooks: h.Webhooks, Objects: h.Objects, Logger: cfg.Logger.With("component", "reconciler"),
			Interval: cfg.ReconcileInterval, StaleAfter: cfg.StaleAfter},
	}
}

// RetryDelay is the backoff between attempts: 2 s, 4 s, 8 s... up to 2 min,
// with up to 25 % jitter.
func RetryDelay(n int, _ error, _ *asynq.Task) time.Duration {
	d := 2 * time.Second << min(n, 6)
	if d > 2*time.Minute {
		d = 2 * time.Minute
	}
	return d + rand.N(d/4+1)
}

// Start starts processing, reconciling and announcing. It returns once the
// asynq server runs.
func (s *Server) Start() error {
	if err := s.srv.Start(s.mux); err != nil {
		return fmt.Errorf("starting the asynq server: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.rec.Run(ctx) }()
	if s.registry != nil {
		host, _ := os.Hostname()
		info := s.handler.Engine.Info()
		var voices []string
		for _, v := range s.handler.Engine.Voices() {
			voices = append(voices, v.ID)
		}
		w := fleet.Worker{ID: fmt.Sprintf("%s:%d", host, os.Getpid()), Engine: info,
			Concurrency: s.cfg.Concurrency, Voices: voices, StartedAt: time.Now().UTC()}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.registry.Run(ctx, w, func(err error) { s.cfg.Logger.Warn("fleet announcement failed", "err", err) })
		}()
	}
	s.cfg.Logger.Info("worker started", "concurrency", s.cfg.Concurrency, "engine", s.handler.Engine.Info().Name,
		"device", s.handler.Engine.Info().Device, "task_check_interval", s.cfg.TaskCheckInterval, "shutdown_timeout", s.cfg.ShutdownTimeout)
	return nil
}

// Shutdown stops taking tasks, waits up to ShutdownTimeout for running ones
// (then puts them back on the queue) and stops the background loops.
func (s *Server) Shutdown() {
	s.srv.Shutdown()
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
}

// Reconciler returns the server's reconciler (tests run passes directly).
func (s *Server) Reconciler() *Reconciler { return s.rec }

// asynqLogger adapts slog to asynq's logger.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)); os.Exit(1) }
