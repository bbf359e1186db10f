package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"

	"github.com/kokorotts/kokoro-tts/pkg/auth"
	"github.com/kokorotts/kokoro-tts/pkg/fleet"
	"github.com/kokorotts/kokoro-tts/pkg/httpapi"
	"github.com/kokorotts/kokoro-tts/pkg/sqlstore"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
	"github.com/kokorotts/kokoro-tts/queue"
)

// AuthConfig is the authentication part of the API's configuration.
type AuthConfig struct {
	// JWTSecret, when set, closes the API (production): tokens and API
	// keys. Unset runs it open, which embedded mode allows on loopback.
	JWTSecret string        `env:"JWT_SECRET"`
	TokenTTL  time.Duration `env:"JWT_TTL" envDefault:"12h"`
	// AdminEmail and AdminPassword create the first admin when none exists.
	AdminEmail    string `env:"ADMIN_EMAIL"`
	AdminPassword string `env:"ADMIN_PASSWORD"`
	// AllowOpen lets service mode run without authentication (behind a
	// gateway that authenticates, for example).
	AllowOpen bool `env:"AUTH_ALLOW_OPEN" envDefault:"false"`
	// Limits per account, shared by all API replicas through Redis.
	RateLimitPerMinute int `env:"RATE_LIMIT_PER_MINUTE" envDefault:"600"`
	DailyCharQuota     int `env:"DAILY_CHAR_QUOTA" envDefault:"500000"`
	LoginPerMinute     int `env:"LOGIN_RATE_PER_MINUTE" envDefault:"10"`
	// QueuesUIReadOnly keeps asynq's dashboard at /admin/queues read-only.
	QueuesUIReadOnly bool `env:"QUEUES_UI_READ_ONLY" envDefault:"true"`
	// CORSOrigins lists other origins allowed to call the API from a
	// browser (comma-separated, e.g. https://trainer.example.com).
	CORSOrigins []string `env:"CORS_ALLOWED_ORIGINS"`
}

// Enabled reports whether the API requires authentication.
func (a *AuthConfig) Enabled() bool { return a.JWTSecret != "" }

func (a *AuthConfig) validate(embedded bool) error {
	if a.Enabled() && len(a.JWTSecret) < auth.MinSecretBytes {
		return fmt.Errorf("JWT_SECRET: at least %d bytes (generate one with: openssl rand -hex 32)", auth.MinSecretBytes)
	}
	if !a.Enabled() && !embedded && !a.AllowOpen {
		return fmt.Errorf("JWT_SECRET: required in service mode (REDIS_URL is set): the API is closed by default. " +
			"Generate one with `openssl rand -hex 32`, or set AUTH_ALLOW_OPEN=true to run it without authentication")
	}
	if a.TokenTTL < time.Minute || a.TokenTTL > 30*24*time.Hour {
		return fmt.Errorf("JWT_TTL: must be from 1m to 720h")
	}
	for _, o := range a.CORSOrigins {
		u, err := url.Parse(o)
		if o == "*" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" ||
			u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.Opaque != "" || strings.ContainsAny(o, "#?@ ") {
			return fmt.Errorf("CORS_ALLOWED_ORIGINS: %q is not an origin such as https://trainer.example.com (no wildcard, no path)", o)
		}
	}
	if a.RateLimitPerMinute < 0 || a.DailyCharQuota < 0 || a.LoginPerMinute < 0 {
		return fmt.Errorf("RATE_LIMIT_PER_MINUTE, DAILY_CHAR_QUOTA, LOGIN_RATE_PER_MINUTE: must not be negative (0 turns a limit off)")
	}
	return nil
}

// defaultAddr is where the API listens when HTTP_ADDR is unset: every
// interface when it requires authentication, loopback when it runs open.
func (c *Config) defaultAddr() string {
	if c.Auth.Enabled() {
		return ":8080"
	}
	return "127.0.0.1:8080"
}

// isLoopback reports whether addr (host:port) only listens on loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// setupAuth builds authentication, creates the first admin and fills the
// API's auth settings; with authentication off it warns.
func (m *Main) setupAuth(ctx context.Context, db *sqlstore.DB, rdb redis.UniversalClient, api *httpapi.Config) error {
	a := &m.Config.Auth
	if !a.Enabled() {
		m.Logger.Warn("AUTHENTICATION IS OFF: every caller acts as the operator. Set JWT_SECRET (openssl rand -hex 32), ADMIN_EMAIL and ADMIN_PASSWORD for production.",
			"addr", m.Config.HTTPAddr, "loopback_only", isLoopback(m.Config.HTTPAddr))
		if !isLoopback(m.Config.HTTPAddr) {
			m.Logger.Warn("the open API listens beyond loopback: anyone who reaches " + m.Config.HTTPAddr + " can use and administer it")
		}
		return nil
	}
	svc, err := auth.New(auth.Config{Store: db, Secret: []byte(a.JWTSecret), TokenTTL: a.TokenTTL, Logger: m.Logger})
	if err != nil {
		return err
	}
	u, created, err := svc.EnsureAdmin(ctx, a.AdminEmail, a.AdminPassword)
	if err != nil {
		return err
	}
	if created {
		m.Logger.Info("created the first admin account", "email", u.Email, "user_id", u.ID)
	}
	api.Auth, api.Accounts = svc, db
	api.Limiter = auth.NewLimiter(rdb, auth.Limits{RequestsPerMinute: a.RateLimitPerMinute, DailyChars: a.DailyCharQuota, LoginsPerMinute: a.LoginPerMinute})
	return nil
}

// fleetView feeds the dashboard from asynq's inspector and the worker
// registry.
func fleetView(insp *asynq.Inspector, registry *fleet.Registry) httpapi.Fleet {
	return httpapi.Fleet{
		Queues: func(ctx context.Context) ([]httpapi.QueueInfo, error) {
			existing, err := insp.Queues()
			if err != nil {
				return nil, err
			}
			var out []httpapi.QueueInfo
			for _, name := range []string{tts.QueueInteractive, queue.QueueWebhooks, tts.QueueBatch} {
				qi := httpapi.QueueInfo{Name: name}
				for _, e := range existing {
					if e != name {
						continue
					}
					info, err := insp.GetQueueInfo(name)
					if err != nil {
						return nil, err
					}
					qi = httpapi.QueueInfo{Name: name, Size: info.Size, Pending: info.Pending, Active: info.Active,
						Scheduled: info.Scheduled, Retry: info.Retry, Archived: info.Archived, Completed: info.Completed,
						LatencyMS: info.Latency.Milliseconds(), Paused: info.Paused}
				}
				out = append(out, qi)
			}
			return out, nil
		},
		Workers: func(ctx context.Context) ([]httpapi.WorkerInfo, error) {
			ws, err := registry.List(ctx)
			if err != nil {
				return nil, err
			}
			out := make([]httpapi.WorkerInfo, len(ws))
			for i, w := range ws {
				host, pid := splitWorkerID(w.ID)
				out[i] = httpapi.WorkerInfo{ID: w.ID, Host: host, PID: pid, Engine: w.Engine.Name, Model: w.Engine.Model,
					Device: w.Engine.Device, Concurrency: w.Concurrency, Voices: len(w.Voices), StartedAt: w.StartedAt, LastHeartbeat: w.LastSeen}
			}
			return out, nil
		},
	}
}

func splitWorkerID(id string) (string, int) {
	for i := len(id) - 1; i >= 0; i-- {
		if id[i] == ':' {
			var pid int
			if _, err := fmt.Sscanf(id[i+1:], "%d", &pid); err == nil {
				return id[:i], pid
			}
			break
		}
	}
	return id, 0
}

// queuesUI is asynq's own dashboard, mounted at /admin/queues.
func queuesUI(redisOpt asynq.RedisConnOpt, readOnly bool) *asynqmon.HTTPHandler {
	return asynqmon.New(asynqmon.Options{RootPath: "/admin/queues", RedisConnOpt: redisOpt, ReadOnly: readOnly})
}
