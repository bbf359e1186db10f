package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/kokorotts/kokoro-tts/pkg/events"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// Admin is the operator's side of the application service (jobs.Service
// implements it). The admin job routes exist only when Config.Jobs
// implements it.
type Admin interface {
	ListAll(ctx context.Context, f tts.JobFilter, cursor string) ([]*tts.Job, string, error)
	Retry(ctx context.Context, id string) (*tts.Job, error)
	Delete(ctx context.Context, id string) error
	Stats(ctx context.Context, window time.Duration) (tts.JobStats, error)
	Timeline(ctx context.Context, id string) ([]events.Event, error)
	Counts(ctx context.Context) (map[tts.JobStatus]int, error)
}

// QueueInfo is one queue's state for the dashboard.
type QueueInfo struct {
	Name      string `json:"name"`
	Size      int    `json:"size"`
	Pending   int    `json:"pending"`
	Active    int    `json:"active"`
	Scheduled int    `json:"scheduled"`
	Retry     int    `json:"retry"`
	Archived  int    `json:"archived"`
	Completed int    `json:"completed"`
	LatencyMS int64  `json:"latency_ms"`
	Paused    bool   `json:"paused"`
}

// WorkerInfo is one worker's announcement for the dashboard.
type WorkerInfo struct {
	ID            string    `json:"id"`
	Host          string    `json:"host"`
	PID           int       `json:"pid"`
	Engine        string    `json:"engine"`
	Model         string    `json:"model,omitempty"`
	Device        string    `json:"device"`
	Concurrency   int       `json:"concurrency"`
	Voices        int       `json:"voices"`
	StartedAt     time.Time `json:"started_at"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
}

// Fleet tells the dashboard about queues and workers (cmd/api wires asynq's
// inspector and the worker registry).
type Fleet struct {
	Queues  func(ctx context.Context) ([]QueueInfo, error)
	Workers func(ctx context.Context) ([]WorkerInfo, error)
}

func (s *Server) routesAdmin(g *echo.Group) {
	a := g.Group("/admin", s.requireAdmin)
	if adm, ok := s.cfg.Jobs.(Admin); ok {
		h := &adminHandlers{s: s, a: adm}
		a.GET("/overview", h.overview)
		a.GET("/jobs", h.jobs)
		a.GET("/jobs/:id", h.job)
		a.POST("/jobs/:id/retry", h.retry)
		a.POST("/jobs/:id/cancel", h.cancel)
		a.DELETE("/jobs/:id", h.delete)
	}
	if s.cfg.Auth != nil {
		a.GET("/users", s.listUsers)
		a.POST("/users", s.createUser)
		a.PATCH("/users/:id", s.patchUser)
		a.GET("/keys", s.listKeys)
		a.POST("/keys", s.adminCreateKey)
		a.DELETE("/keys/:id", s.adminRevokeKey)
	}
}

type adminHandlers struct {
	s *Server
	a Admin
}

// adminJobView is a job with what the operator needs besides.
type adminJobView struct {
	jobView
	UserID      string `json:"user_id,omitempty"`
	UserEmail   string `json:"user_email,omitempty"`
	BatchID     string `json:"batch_id,omitempty"`
	MaxAttempts int    `json:"max_attempts"`
	WaitMS      *int64 `json:"wait_ms,omitempty"`  // created → first start
	SynthMS     *int64 `json:"synth_ms,omitempty"` // first start → finish
}

func (s *Server) adminViewOf(j *tts.Job, emails map[string]string) adminJobView {
	v := adminJobView{jobView: viewOf(j), UserID: j.UserID, UserEmail: emails[j.UserID], BatchID: j.BatchID,
		MaxAttempts: j.MaxAttempts}
	if j.StartedAt != nil {
		w := j.StartedAt.Sub(j.CreatedAt).Milliseconds()
		v.WaitMS = &w
		if j.FinishedAt != nil && j.Status == tts.StatusSucceeded {
			d := j.FinishedAt.Sub(*j.StartedAt).Milliseconds()
			v.SynthMS = &d
		}
	}
	return v
}

// emails maps user ids to emails for display ("" when accounts are off).
func (s *Server) emails(ctx context.Context) map[string]string {
	out := map[string]string{}
	if s.cfg.Accounts == nil {
		return out
	}
	us, err := s.cfg.Accounts.ListUsers(ctx)
	if err != nil {
		s.cfg.Logger.Warn("listing users for the dashboard failed", "err", err)
		return out
	}
	for _, u := range us {
		out[u.ID] = u.Email
	}
	return out
}

func parseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, tts.Errorf(tts.EINVALID, "%s: an RFC 3339 time such as 2026-01-02T15:04:05Z", name)
	}
	return t, nil
}

func (h *adminHandlers) jobs(c *echo.Context) error {
	q := c.QueryParams()
	for k := range q {
		switch k {
		case "status", "user", "voice", "queue", "since", "until", "q", "cursor", "limit":
		default:
			return tts.Errorf(tts.EINVALID, "%s: unknown query parameter (use status, user, voice, queue, since, until, q, cursor, limit)", clipID(k))
		}
	}
	ctx := c.Request().Context()
	f := tts.JobFilter{Status: tts.JobStatus(q.Get("status")), Voice: q.Get("voice"), Queue: q.Get("queue"), Text: q.Get("q")}
	var err error
	if f.Since, err = parseTime("since", q.Get("since")); err != nil {
		return err
	}
	if f.Until, err = parseTime("until", q.Get("until")); err != nil {
		return err
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil {
			return tts.Errorf(tts.EINVALID, "limit: must be from 1 to 100")
		}
		f.Limit = n
	}
	emails := h.s.emails(ctx)
	if u := strings.TrimSpace(q.Get("user")); u != "" {
		f.UserID = u
		if strings.Contains(u, "@") {
			f.UserID = "\x00no such user"
			for id, e := range emails {
				if strings.EqualFold(e, u) {
					f.UserID = id
				}
			}
		}
	}
	list, next, err := h.a.ListAll(ctx, f, q.Get("cursor"))
	if err != nil {
		return err
	}
	out := make([]adminJobView, len(list))
	for i, j := range list {
		out[i] = h.s.adminViewOf(j, emails)
	}
	return c.JSON(http.StatusOK, map[string]any{"jobs": out, "next_cursor": next})
}

type timelineEntry struct {
	ID       string    `json:"id"`
	Type     string    `json:"type"`
	Time     time.Time `json:"time"`
	Error    string    `json:"error,omitempty"`
	Progress *float64  `json:"progress,omitempty"`
	Attempt  int       `json:"attempt,omitempty"`
}

func (h *adminHandlers) job(c *echo.Context) error {
	ctx := c.Request().Context()
	j, err := h.s.cfg.Jobs.Get(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	evs, err := h.a.Timeline(ctx, j.ID)
	if err != nil {
		h.s.cfg.Logger.Warn("reading a job's timeline failed", "job_id", j.ID, "err", err)
	}
	tl := make([]timelineEntry, 0, len(evs))
	for _, e := range evs {
		tl = append(tl, timelineEntry{ID: e.ID, Type: e.Type, Time: e.Time, Error: e.Error, Progress: e.Progress, Attempt: e.Attempt})
	}
	return c.JSON(http.StatusOK, map[string]any{"job": h.s.adminViewOf(j, h.s.emails(ctx)), "events": tl})
}

func (h *adminHandlers) retry(c *echo.Context) error {
	j, err := h.a.Retry(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, jobPath(j.ID))
	return c.JSON(http.StatusCreated, map[string]any{"job": h.s.adminViewOf(j, h.s.emails(c.Request().Context()))})
}

func (h *adminHandlers) cancel(c *echo.Context) error {
	j, err := h.s.cfg.Jobs.Cancel(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"job": h.s.adminViewOf(j, h.s.emails(c.Request().Context()))})
}

func (h *adminHandlers) delete(c *echo.Context) error {
	if err := h.a.Delete(c.Request().Context(), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type statsView struct {
	WindowSeconds int     `json:"window_seconds"`
	Submitted     int     `json:"submitted"`
	Succeeded     int     `json:"succeeded"`
	Failed        int     `json:"failed"`
	Canceled      int     `json:"canceled"`
	JobsPerMinute float64 `json:"jobs_per_minute"` // finished per minute
	FailureRate   float64 `json:"failure_rate"`    // failed / finished
	WaitP50MS     int64   `json:"wait_p50_ms"`
	WaitP95MS     int64   `json:"wait_p95_ms"`
	SynthP50MS    int64   `json:"synth_p50_ms"`
	SynthP95MS    int64   `json:"synth_p95_ms"`
}

func (h *adminHandlers) overview(c *echo.Context) error {
	ctx := c.Request().Context()
	const window = time.Hour
	st, err := h.a.Stats(ctx, window)
	if err != nil {
		return err
	}
	finished := st.Succeeded + st.Failed + st.Canceled
	sv := statsView{WindowSeconds: int(window.Seconds()), Submitted: st.Submitted, Succeeded: st.Succeeded, Failed: st.Failed,
		Canceled: st.Canceled, JobsPerMinute: float64(finished) / window.Minutes(),
		WaitP50MS: st.WaitP50.Milliseconds(), WaitP95MS: st.WaitP95.Milliseconds(),
		SynthP50MS: st.SynthP50.Milliseconds(), SynthP95MS: st.SynthP95.Milliseconds()}
	if finished > 0 {
		sv.FailureRate = float64(st.Failed) / float64(finished)
	}
	out := map[string]any{"last_hour": sv, "queues": []QueueInfo{}, "workers": []WorkerInfo{}}
	var problems []string
	if f := h.s.cfg.Fleet.Queues; f != nil {
		if qs, err := f(ctx); err != nil {
			problems = append(problems, "queues: "+tts.ErrorMessage(err))
		} else {
			out["queues"] = qs
		}
	}
	if f := h.s.cfg.Fleet.Workers; f != nil {
		if ws, err := f(ctx); err != nil {
			problems = append(problems, "workers: "+tts.ErrorMessage(err))
		} else {
			out["workers"] = ws
		}
	}
	if counts, err := h.a.Counts(ctx); err != nil {
		problems = append(problems, "jobs: "+tts.ErrorMessage(err))
	} else {
		out["jobs"] = counts
	}
	if problems != nil {
		out["problems"] = problems
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, out)
}

type userBody struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Role     string `json:"role"`
}

func (s *Server) listUsers(c *echo.Context) error {
	us, err := s.cfg.Accounts.ListUsers(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]userView, len(us))
	for i, u := range us {
		out[i] = userViewOf(u)
	}
	return c.JSON(http.StatusOK, map[string]any{"users": out})
}

func (s *Server) createUser(c *echo.Context) error {
	var b userBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	u, err := s.cfg.Auth.CreateUser(c.Request().Context(), b.Email, b.Password, tts.Role(b.Role))
	if err != nil {
		return err
	}
	s.cfg.Logger.Info("user created", "user_id", u.ID, "role", u.Role, "by", tts.Owner(c.Request().Context()))
	return c.JSON(http.StatusCreated, map[string]any{"user": userViewOf(u)})
}

type userPatchBody struct {
	Disabled *bool   `json:"disabled"`
	Role     *string `json:"role"`
	Password *string `json:"password"`
}

func (s *Server) patchUser(c *echo.Context) error {
	var b userPatchBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	ctx := c.Request().Context()
	id := c.Param("id")
	target, err := s.cfg.Accounts.FindUser(ctx, id)
	if err != nil {
		return err
	}
	var p tts.UserPatch
	if b.Role != nil {
		r := tts.Role(*b.Role)
		if !r.Valid() {
			return tts.Errorf(tts.EINVALID, "role: must be admin or user")
		}
		p.Role = &r
	}
	p.Disabled = b.Disabled
	p.EndSessions = b.Disabled != nil && *b.Disabled
	// An operator must not lock everyone out: the last enabled admin stays.
	if target.Role == tts.RoleAdmin && !target.Disabled &&
		((p.Role != nil && *p.Role != tts.RoleAdmin) || (p.Disabled != nil && *p.Disabled)) {
		n, err := s.cfg.Accounts.CountAdmins(ctx)
		if err != nil {
			return err
		}
		if n <= 1 {
			return tts.Errorf(tts.ECONFLICT, "this is the last enabled admin: make another admin first")
		}
	}
	if b.Password != nil {
		if _, err := s.cfg.Auth.SetPassword(ctx, id, *b.Password); err != nil {
			return err
		}
	}
	u, err := s.cfg.Accounts.UpdateUser(ctx, id, p)
	if err != nil {
		return err
	}
	s.cfg.Logger.Info("user changed", "user_id", u.ID, "role", u.Role, "disabled", u.Disabled,
		"password_changed", b.Password != nil, "by", tts.Owner(ctx))
	return c.JSON(http.StatusOK, map[string]any{"user": userViewOf(u)})
}

func (s *Server) listKeys(c *echo.Context) error {
	uid := c.QueryParam("user_id")
	ks, err := s.cfg.Accounts.ListAPIKeys(c.Request().Context(), uid)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"keys": keyViews(ks)})
}

func (s *Server) adminCreateKey(c *echo.Context) error {
	var b keyBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	if b.UserID == "" {
		return tts.Errorf(tts.EINVALID, "user_id: required (the account the key acts as)")
	}
	if _, err := s.cfg.Accounts.FindUser(c.Request().Context(), b.UserID); err != nil {
		if tts.ErrorCode(err) == tts.ENOTFOUND {
			return tts.Errorf(tts.EINVALID, "user_id: no such user")
		}
		return err
	}
	return s.createKey(c, b.UserID, b.Name)
}

func (s *Server) adminRevokeKey(c *echo.Context) error { return s.revokeKey(c, "") }
