// Package httpapi is the HTTP API. Echo (v5) is used only inside this
// package (routes, middleware, error mapping) so that changing or upgrading
// it stays one contained change; the rest of the program sees an
// http.Handler.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/labstack/echo/v5/middleware"

	"github.com/kokorotts/kokoro-tts/pkg/auth"
	"github.com/kokorotts/kokoro-tts/pkg/events"
	"github.com/kokorotts/kokoro-tts/pkg/jobs"
	"github.com/kokorotts/kokoro-tts/pkg/metrics"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// Jobs is the application service the handlers call.
type Jobs interface {
	Submit(ctx context.Context, req tts.Request, idempotencyKey string) (*tts.Job, bool, error)
	Get(ctx context.Context, id string) (*tts.Job, error)
	List(ctx context.Context, status, cursor string, limit int) ([]*tts.Job, string, error)
	Cancel(ctx context.Context, id string) (*tts.Job, error)
	Audio(ctx context.Context, id string, redirect bool) (jobs.AudioResult, error)
	Voices(ctx context.Context) []tts.Voice
	MaxTextChars() int
	// Wait returns the job once it is terminal, or ctx's error (the
	// OpenAI-compatible speech endpoint answers synchronously).
	Wait(ctx context.Context, id string, poll time.Duration) (*tts.Job, error)
	Events(ctx context.Context, id, after string, block time.Duration) ([]events.Event, error)
}

// Check is one dependency health check. It returns details to show (may be
// nil) and an error when the dependency is down.
type Check struct {
	Name  string
	Check func(ctx context.Context) (any, error)
}

// Config configures the API.
type Config struct {
	Jobs   Jobs
	Checks []Check
	Logger *slog.Logger
	// MaxBodyBytes bounds request bodies; default 1 MiB.
	MaxBodyBytes int64
	// MaxHeaderBytes bounds a request's header block (names, values and
	// the request line), answered with a JSON 431; default 64 KiB. The
	// http.Server's own MaxHeaderBytes (NewHTTPServer) is a higher hard
	// ceiling that net/http enforces before any handler runs.
	MaxHeaderBytes int
	// Mode is shown by /api/health ("embedded" or "service").
	Mode string
	// Metrics, when set, records request latency; MetricsHandler, when
	// set, is served at GET /metrics.
	Metrics        *metrics.HTTP
	MetricsHandler http.Handler
	// MaxBatchBodyBytes bounds POST /api/batches bodies; default 32 MiB.
	MaxBatchBodyBytes int64
	// SpeechTimeout bounds how long POST /v1/audio/speech waits for its
	// job before answering 504 and canceling it; default 120 s.
	SpeechTimeout time.Duration

	// Auth, when set, closes the API: every route but the health check,
	// logging in and the static page needs a token or an API key. Nil runs
	// the API open (development), every caller acting as the operator.
	Auth *auth.Service
	// Accounts is the account store (required with Auth).
	Accounts tts.AccountStore
	// Limiter applies per-account rate limits and quotas (nil: none).
	Limiter *auth.Limiter
	// Fleet feeds the admin dashboard's overview.
	Fleet Fleet
	// Web serves the page at / and the dashboard at /admin (pkg/web);
	// QueuesUI is asynq's dashboard, mounted at /admin/queues. Both are
	// optional.
	Web      http.Handler
	QueuesUI http.Handler
	// CORSOrigins are the other origins whose pages may call the API
	// (e.g. the listening trainer's web app). Empty: same origin only.
	// Credentials (cookies) are never allowed cross-origin; such apps send
	// a token or key in Authorization.
	CORSOrigins []string
}

// Server is the API's HTTP handler.
type Server struct {
	e   *echo.Echo
	cfg Config
}

// New builds the API.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.MaxBatchBodyBytes <= 0 {
		cfg.MaxBatchBodyBytes = defaultBatchBodyBytes
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if cfg.SpeechTimeout <= 0 {
		cfg.SpeechTimeout = defaultSpeechTimeout
	}
	e := echo.New()
	// Echo's own complaints (a response written twice) go to our log.
	e.Logger = cfg.Logger
	e.HTTPErrorHandler = errorHandler(cfg.Logger)
	// X-Forwarded-For is believed only from loopback and private
	// addresses (the reverse proxy), so that clients cannot pick the
	// address their login attempts are counted against.
	e.IPExtractor = echo.ExtractIPFromXFFHeader()
	e.Use(requestID)
	e.Use(recoverPanics(cfg.Logger))
	e.Use(requestLogger(cfg.Logger))
	if cfg.Metrics != nil {
		e.Use(observe(cfg.Metrics))
	}
	e.Use(middleware.SecureWithConfig(middleware.SecureConfig{
		XSSProtection: "0", ContentTypeNosniff: "nosniff", XFrameOptions: "DENY",
		ReferrerPolicy: "no-referrer",
	}))
	e.Use(limitHeaders(cfg.MaxHeaderBytes))
	s := &Server{e: e, cfg: cfg}
	if len(cfg.CORSOrigins) > 0 {
		// Before authentication: a preflight carries no credentials.
		e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
			AllowOrigins: cfg.CORSOrigins,
			AllowMethods: []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPatch, http.MethodDelete},
			AllowHeaders: []string{echo.HeaderAuthorization, echo.HeaderContentType, "Idempotency-Key", "X-API-Key",
				echo.HeaderXRequestID, "Last-Event-ID"},
			ExposeHeaders: []string{echo.HeaderLocation, "Retry-After", "X-Job-ID", echo.HeaderXRequestID, "Idempotent-Replayed"},
			MaxAge:        600,
		}))
	}
	e.Use(s.authenticate)
	// Applied with Use, not on a Group: Echo gives a group with middleware
	// a catch-all route that turns 405 into 404.
	// Batches have their own, larger bound (MaxBatchBodyBytes, applied by
	// their handler).
	e.Use(middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{
		LimitBytes: cfg.MaxBodyBytes,
		Skipper: func(c *echo.Context) bool {
			return c.Request().Method == http.MethodPost && c.Request().URL.Path == "/api/batches"
		},
	}))
	api := e.Group("/api")
	api.POST("/tts", s.submit)
	api.GET("/jobs", s.list)
	api.GET("/jobs/:id", s.get)
	api.DELETE("/jobs/:id", s.cancel)
	api.GET("/jobs/:id/audio", s.audio)
	api.HEAD("/jobs/:id/audio", s.audio)
	api.GET("/voices", s.voices)
	api.GET("/health", s.health)
	api.HEAD("/health", s.health)
	api.GET("/jobs/:id/events", s.jobEvents)
	s.routesBatches(api)
	s.routesAuth(api)
	s.routesAdmin(api)
	s.routesOpenAI(e.Group("/v1"))
	if cfg.MetricsHandler != nil {
		// Behind authentication like the rest: scrape it with an admin's
		// API key (Prometheus: authorization.credentials).
		e.GET("/metrics", echo.WrapHandler(cfg.MetricsHandler), s.requireAdmin)
	}
	s.routesPages()
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.e.ServeHTTP(w, r) }

// Routes lists the registered method and path pairs (for tests that walk
// every route).
func (s *Server) Routes() [][2]string {
	var out [][2]string
	for _, r := range s.e.Router().Routes() {
		out = append(out, [2]string{r.Method, r.Path})
	}
	return out
}

// DefaultMaxHeaderBytes is the header block the API accepts (Config.MaxHeaderBytes).
const DefaultMaxHeaderBytes = 64 << 10

// hardMaxHeaderBytes is net/http's limit (NewHTTPServer): header blocks
// between DefaultMaxHeaderBytes and this get the API's JSON 431, larger ones
// net/http's plain-text 431, written before any handler runs.
const hardMaxHeaderBytes = 256 << 10

// NewHTTPServer wraps h in an http.Server with timeouts that protect against
// slow clients.
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    hardMaxHeaderBytes,
	}
}

// limitHeaders answers a request whose header block exceeds limit bytes with
// 431 in the API's error shape and closes the connection. It counts what
// net/http counts: the request line and every "Name: value\r\n" line.
func limitHeaders(limit int) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			r := c.Request()
			n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4 + len("Host: \r\n") + len(r.Host)
			for name, values := range r.Header {
				for _, v := range values {
					n += len(name) + len(v) + 4
				}
			}
			if n > limit {
				c.Response().Header().Set("Connection", "close")
				return echo.NewHTTPError(http.StatusRequestHeaderFieldsTooLarge,
					"the request headers are too large: "+strconv.Itoa(n)+" bytes, the limit is "+strconv.Itoa(limit))
			}
			return next(c)
		}
	}
}

func requestLogger(log *slog.Logger) echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogStatus: true, LogURIPath: true, LogMethod: true, LogLatency: true, LogRequestID: true,
		HandleError: true,
		LogValuesFunc: func(c *echo.Context, v middleware.RequestLoggerValues) error {
			level := slog.LevelInfo
			if v.Status >= 500 {
				level = slog.LevelError
			} else if c.Path() == "/api/health" && v.Status < 400 {
				level = slog.LevelDebug
			}
			log.LogAttrs(context.Background(), level, "request", slog.String("method", v.Method), slog.String("path", v.URIPath),
				slog.Int("status", v.Status), slog.Duration("latency", v.Latency), slog.String("request_id", v.RequestID))
			return nil
		},
	})
}

// observe records each request's latency by route pattern (never the raw
// path, which would make one series per job id).
func observe(m *metrics.HTTP) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			start := time.Now()
			err := next(c)
			status := http.StatusOK
			if r, _ := echo.UnwrapResponse(c.Response()); r != nil {
				status = r.Status
			}
			echoStatus := echo.StatusCode(err)
			if err != nil {
				// The error handler has not written yet: derive the status it will write.
				if echoStatus != 0 {
					status = echoStatus
				} else {
					status = statusOf(tts.ErrorCode(err))
				}
			}
			route := c.Path()
			if route == "" || (echoStatus == http.StatusNotFound && route == "/*") {
				route = "unmatched"
			}
			m.Duration.WithLabelValues(route, c.Request().Method, strconv.Itoa(status)).Observe(time.Since(start).Seconds())
			return err
		}
	}
}

// routesPages mounts the browser page, the dashboard and asynq's
// dashboard. The page and its assets are public (the page logs in through
// the API); the dashboards pass pageGate.
func (s *Server) routesPages() {
	if s.cfg.Web != nil {
		web := echo.WrapHandler(s.cfg.Web)
		for _, p := range []string{"/", "/index.html", "/favicon.ico", "/assets/*"} {
			s.e.GET(p, web)
			s.e.HEAD(p, web)
		}
		for _, p := range []string{"/admin", "/admin/"} {
			s.e.GET(p, web, s.pageGate)
			s.e.HEAD(p, web, s.pageGate)
		}
	}
	if s.cfg.QueuesUI != nil {
		ui := echo.WrapHandler(s.cfg.QueuesUI)
		// asynqmon's page needs inline scripts and styles; nothing leaves
		// the origin (its web fonts are not fetched).
		csp := func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c *echo.Context) error {
				c.Response().Header().Set("Content-Security-Policy", queuesUICSP)
				return next(c)
			}
		}
		s.e.Match(anyMethods, "/admin/queues", ui, s.pageGate, csp)
		s.e.Match(anyMethods, "/admin/queues/*", ui, s.pageGate, csp)
	}
}

// anyMethods are the methods the queue dashboard's routes take: those of
// Echo v4's Any. Echo v5's Any also passes methods it does not know to the
// dashboard; these answer 405 instead.
var anyMethods = []string{http.MethodConnect, http.MethodDelete, http.MethodGet, http.MethodHead, http.MethodOptions,
	http.MethodPatch, http.MethodPost, echo.PROPFIND, http.MethodPut, http.MethodTrace, echo.REPORT}

// recoverPanics turns a panic in a handler into an internal error, logged
// once with its stack; http.ErrAbortHandler still breaks the connection.
func recoverPanics(log *slog.Logger) echo.MiddlewareFunc {
	recoverer := middleware.Recover()
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		h := recoverer(next)
		return func(c *echo.Context) error {
			err := h(c)
			var pe *middleware.PanicStackError
			if errors.As(err, &pe) {
				log.Error("panic in handler", "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "err", pe.Err, "stack", string(pe.Stack))
				return pe.Err
			}
			return err
		}
	}
}

const queuesUICSP = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'"
