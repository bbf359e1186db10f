// Package config holds the typed configuration the binaries read from the
// environment (one struct per binary, built from the shared parts here) and
// builds the adapters it names: logger, database, Redis, object storage.
// Library packages never read the environment; only this package and cmd/ do.
package config

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/kokorotts/kokoro-tts/pkg/sqlstore"
	"github.com/kokorotts/kokoro-tts/storage"
	"github.com/kokorotts/kokoro-tts/storage/disk"
	"github.com/kokorotts/kokoro-tts/storage/s3"
)

// Base is what every binary reads.
type Base struct {
	DataDir     string `env:"DATA_DIR" envDefault:"./data"`
	DatabaseURL string `env:"DATABASE_URL"` // default sqlite:$DATA_DIR/kokoro-tts.db
	RedisURL    string `env:"REDIS_URL"`    // unset: embedded mode (cmd/api only)
	LogLevel    string `env:"LOG_LEVEL" envDefault:"info"`
	LogFormat   string `env:"LOG_FORMAT"` // json or text; default json in service mode, text embedded
	S3          S3
	Webhooks    Webhooks
}

// Webhooks configures job callbacks. Without a secret, callback_url is
// refused: deliveries must be verifiable.
type Webhooks struct {
	Secret       string `env:"WEBHOOK_SECRET"`
	AllowPrivate bool   `env:"WEBHOOK_ALLOW_PRIVATE" envDefault:"false"`
}

// Enabled reports whether callbacks are accepted.
func (w Webhooks) Enabled() bool { return w.Secret != "" }

// S3 selects the S3 backend when Endpoint is set; otherwise audio is stored
// on disk under $DATA_DIR/audio.
type S3 struct {
	Endpoint       string `env:"S3_ENDPOINT"` // host:port, no scheme
	Bucket         string `env:"S3_BUCKET" envDefault:"kokoro-tts"`
	AccessKey      string `env:"S3_ACCESS_KEY"`
	SecretKey      string `env:"S3_SECRET_KEY"`
	UseSSL         bool   `env:"S3_USE_SSL" envDefault:"false"`
	Region         string `env:"S3_REGION" envDefault:"us-east-1"`
	PublicEndpoint string `env:"S3_PUBLIC_ENDPOINT"` // host clients reach for presigned URLs
	// PresignTTL > 0 makes audio downloads redirect to presigned URLs valid
	// this long; 0 streams audio through the API.
	PresignTTL time.Duration `env:"S3_PRESIGN_TTL" envDefault:"0s"`
}

// Parse fills cfg (a pointer to a struct built from these parts) from the
// environment.
func Parse(cfg any) error {
	return env.Parse(cfg)
}

// Validate checks the shared settings and names the offending variable.
func (b *Base) Validate() error {
	switch strings.ToLower(b.LogLevel) {
	case "debug", "info", "warn", "warning", "error":
	default:
		return fmt.Errorf("LOG_LEVEL: %q is not one of debug, info, warn, error", b.LogLevel)
	}
	switch b.LogFormat {
	case "", "json", "text":
	default:
		return fmt.Errorf("LOG_FORMAT: %q is not json or text", b.LogFormat)
	}
	if b.DataDir == "" {
		return fmt.Errorf("DATA_DIR: must not be empty")
	}
	if b.RedisURL != "" {
		if _, err := asynq.ParseRedisURI(b.RedisURL); err != nil {
			return fmt.Errorf("REDIS_URL: %v", err)
		}
	}
	if b.S3.Endpoint != "" {
		if strings.Contains(b.S3.Endpoint, "://") {
			return fmt.Errorf("S3_ENDPOINT: give host:port without a scheme (use S3_USE_SSL for https)")
		}
		if b.S3.AccessKey == "" || b.S3.SecretKey == "" {
			return fmt.Errorf("S3_ACCESS_KEY and S3_SECRET_KEY: required when S3_ENDPOINT is set")
		}
		if b.S3.Bucket == "" {
			return fmt.Errorf("S3_BUCKET: must not be empty")
		}
	}
	if s := b.Webhooks.Secret; s != "" && len(s) < 16 {
		return fmt.Errorf("WEBHOOK_SECRET: at least 16 characters (generate one with: openssl rand -hex 32)")
	}
	if b.S3.PresignTTL < 0 || b.S3.PresignTTL > 7*24*time.Hour {
		return fmt.Errorf("S3_PRESIGN_TTL: must be from 0s to 168h")
	}
	return nil
}

// Database returns the database URL, defaulting to a SQLite file in DataDir.
func (b *Base) Database() string {
	if b.DatabaseURL != "" {
		return b.DatabaseURL
	}
	return "sqlite:" + filepath.Join(b.DataDir, "kokoro-tts.db")
}

// Embedded reports whether the binary runs without an external Redis.
func (b *Base) Embedded() bool { return b.RedisURL == "" }

// Logger builds the slog logger: JSON in service mode unless told otherwise.
func (b *Base) Logger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.Replace(strings.ToLower(b.LogLevel), "warning", "warn", 1)))
	opts := &slog.HandlerOptions{Level: level}
	format := b.LogFormat
	if format == "" {
		format = "json"
		if b.Embedded() {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// OpenDatabase opens the job store. With migrate it applies migrations
// (embedded mode); otherwise it refuses an unmigrated database.
func (b *Base) OpenDatabase(ctx context.Context, migrate bool, log *slog.Logger) (*sqlstore.DB, error) {
	db, err := sqlstore.Open(ctx, b.Database(), sqlstore.Options{})
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if migrate {
		applied, err := db.Migrate(ctx)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("migrating the database: %w", err)
		}
		if len(applied) > 0 {
			log.Info("database migrated", "applied", applied)
		}
	} else if err := db.CheckMigrated(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// OpenStorage builds the object store: S3 when S3_ENDPOINT is set, otherwise
// the disk under DATA_DIR/audio.
func (b *Base) OpenStorage(ctx context.Context) (storage.Store, error) {
	if b.S3.Endpoint == "" {
		dir := filepath.Join(b.DataDir, "audio")
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("DATA_DIR: %w", err)
		}
		return disk.New(dir)
	}
	st, err := s3.New(ctx, s3.Config{
		Endpoint: b.S3.Endpoint, Bucket: b.S3.Bucket, AccessKey: b.S3.AccessKey, SecretKey: b.S3.SecretKey,
		UseSSL: b.S3.UseSSL, Region: b.S3.Region, CreateBucket: true, PublicEndpoint: b.S3.PublicEndpoint,
	})
	if err != nil {
		return nil, fmt.Errorf("S3_ENDPOINT %s: %w", b.S3.Endpoint, err)
	}
	return st, nil
}

// staleTempAge is how old a temporary file of the disk store must be to
// count as left by a killed writer (a live Put writes its file in seconds).
const staleTempAge = 15 * time.Minute

// SweepStaleTemp removes, in the background, the temporary files that a
// worker killed in the middle of writing audio left in the disk store (S3
// cleans up after such writers in Put and Delete). Workers call it at start.
func SweepStaleTemp(st storage.Store, log *slog.Logger) {
	sw, ok := st.(interface {
		RemoveStaleTemp(olderThan time.Duration) (int, error)
	})
	if !ok {
		return
	}
	go func() {
		n, err := sw.RemoveStaleTemp(staleTempAge)
		if n > 0 {
			log.Info("removed temporary audio files left by interrupted writes", "files", n)
		}
		if err != nil {
			log.Warn("could not remove every stale temporary audio file", "err", err)
		}
	}()
}

// Worker is what a worker reads (cmd/worker, and cmd/api in embedded mode).
type Worker struct {
	Concurrency       int           `env:"KOKORO_TTS_MAX_CONCURRENCY" envDefault:"2"`
	ShutdownTimeout   time.Duration `env:"WORKER_SHUTDOWN_TIMEOUT" envDefault:"10m"`
	TaskCheckInterval time.Duration `env:"WORKER_TASK_CHECK_INTERVAL" envDefault:"100ms"`
	ReconcileInterval time.Duration `env:"RECONCILE_INTERVAL" envDefault:"30s"`
	// ReconcileStaleAfter: a live job untouched this long has its task
	// checked by the reconciler.
	ReconcileStaleAfter time.Duration `env:"RECONCILE_STALE_AFTER" envDefault:"1m"`
	// Engine: auto (kokoro when KOKORO_MODEL_PATH is set, else espeak),
	// kokoro, espeak or tone (a zero-cost test tone).
	Engine     string `env:"TTS_ENGINE" envDefault:"auto"`
	ESpeakPath string `env:"ESPEAK_NG_PATH" envDefault:"espeak-ng"`
	FFmpegPath string `env:"FFMPEG_PATH" envDefault:"ffmpeg"`
	MP3Bitrate int    `env:"MP3_BITRATE_KBPS" envDefault:"64"`
	// AudioCache makes identical requests reuse stored audio instead of
	// synthesising again (the job then shows cache_hit).
	AudioCache bool `env:"AUDIO_CACHE" envDefault:"true"`
}

// CacheSalt names the worker settings outside a job that change its audio,
// for the audio cache key.
func (w *Worker) CacheSalt() string { return fmt.Sprintf("mp3=%d", w.MP3Bitrate) }

// Validate checks the worker settings.
func (w *Worker) Validate() error {
	if w.Concurrency < 1 || w.Concurrency > 256 {
		return fmt.Errorf("KOKORO_TTS_MAX_CONCURRENCY: must be from 1 to 256, not %d", w.Concurrency)
	}
	if w.ShutdownTimeout < time.Second {
		return fmt.Errorf("WORKER_SHUTDOWN_TIMEOUT: must be at least 1s")
	}
	if w.TaskCheckInterval < 10*time.Millisecond || w.TaskCheckInterval > 10*time.Second {
		return fmt.Errorf("WORKER_TASK_CHECK_INTERVAL: must be from 10ms to 10s")
	}
	if w.ReconcileInterval < time.Second {
		return fmt.Errorf("RECONCILE_INTERVAL: must be at least 1s")
	}
	if w.ReconcileStaleAfter < 2*time.Second {
		return fmt.Errorf("RECONCILE_STALE_AFTER: must be at least 2s (running jobs send a heartbeat every second)")
	}
	switch w.MP3Bitrate {
	case 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160:
	default:
		return fmt.Errorf("MP3_BITRATE_KBPS: %d is not an MP3 bitrate at 24 kHz (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144 or 160)", w.MP3Bitrate)
	}
	switch w.Engine {
	case "auto", "kokoro", "espeak", "tone":
	default:
		return fmt.Errorf("TTS_ENGINE: %q is not one of auto, kokoro, espeak, tone", w.Engine)
	}
	return nil
}

// RedisOpt returns asynq's connection options for a validated REDIS_URL.
func RedisOpt(url string) asynq.RedisConnOpt {
	opt, _ := asynq.ParseRedisURI(url)
	return opt
}

// RedisClient returns a go-redis client for a validated REDIS_URL, with the
// same settings asynq would use, except that every command obeys its
// context's deadline (ContextTimeoutEnabled): the request path bounds each
// Redis call (rate limits, events, the enqueue), and a Redis that hangs
// then costs a request that bound, not go-redis's read timeout on every
// retry.
func RedisClient(url string) redis.UniversalClient {
	switch o := RedisOpt(url).(type) {
	case asynq.RedisFailoverClientOpt:
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: o.MasterName, SentinelAddrs: o.SentinelAddrs, SentinelUsername: o.SentinelUsername,
			SentinelPassword: o.SentinelPassword, Username: o.Username, Password: o.Password, DB: o.DB,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
			PoolSize: o.PoolSize, TLSConfig: o.TLSConfig, ContextTimeoutEnabled: true,
		})
	case asynq.RedisClientOpt:
		return redis.NewClient(&redis.Options{
			Network: o.Network, Addr: o.Addr, Username: o.Username, Password: o.Password, DB: o.DB,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
			PoolSize: o.PoolSize, TLSConfig: o.TLSConfig, ContextTimeoutEnabled: true,
		})
	default:
		return RedisOpt(url).MakeRedisClient().(redis.UniversalClient)
	}
}

// Redis is what binaries that talk to an external Redis read.
type Redis struct {
	// EvictionCheck is what to do when Redis's maxmemory-policy is not
	// noeviction (asynq loses tasks under eviction): warn or refuse.
	EvictionCheck string `env:"REDIS_EVICTION_CHECK" envDefault:"warn"`
}

// Validate checks the Redis settings.
func (r *Redis) Validate() error {
	if r.EvictionCheck != "warn" && r.EvictionCheck != "refuse" {
		return fmt.Errorf("REDIS_EVICTION_CHECK: %q is not warn or refuse", r.EvictionCheck)
	}
	return nil
}

// CheckEviction reads Redis's maxmemory-policy. A policy other than
// noeviction is logged, or refused when EvictionCheck is "refuse". A Redis
// that forbids CONFIG GET (managed services) is logged and accepted.
func (r *Redis) CheckEviction(ctx context.Context, rdb redis.UniversalClient, log *slog.Logger) error {
	res, err := rdb.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		log.Warn("could not read Redis maxmemory-policy; make sure it is noeviction", "err", err)
		return nil
	}
	policy := res["maxmemory-policy"]
	if policy == "noeviction" || policy == "" {
		return nil
	}
	msg := fmt.Sprintf("Redis maxmemory-policy is %q: under memory pressure Redis would evict queued tasks; set it to noeviction", policy)
	if r.EvictionCheck == "refuse" {
		return fmt.Errorf("REDIS_EVICTION_CHECK=refuse: %s", msg)
	}
	log.Warn(msg)
	return nil
}
