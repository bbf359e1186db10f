package httpapi

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v5"

	"github.com/kokorotts/kokoro-tts/pkg/auth"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// SessionCookie carries the login token for what a browser loads by itself
// (audio elements, EventSource, downloads, the admin pages). It is accepted
// for GET and HEAD only, so that a cross-site form can never act with it;
// scripts send the token in the Authorization header.
const SessionCookie = "kokoro_session"

// publicRoutes answer without credentials.
var publicRoutes = map[[2]string]bool{
	{http.MethodGet, "/api/health"}:       true,
	{http.MethodHead, "/api/health"}:      true,
	{http.MethodPost, "/api/auth/login"}:  true,
	{http.MethodPost, "/api/auth/logout"}: true,
}

// isPublic reports whether the route needs no credentials: the health
// check, logging in and out, and the static page and its assets. The admin
// pages do their own check (pageGate).
func isPublic(c *echo.Context) bool {
	if publicRoutes[[2]string{c.Request().Method, c.Path()}] {
		return true
	}
	if m := c.Request().Method; m != http.MethodGet && m != http.MethodHead {
		return false
	}
	switch p := c.Path(); {
	case p == "/" || p == "/index.html" || p == "/favicon.ico" || p == "/assets/*":
		return true
	case p == "/admin" || p == "/admin/" || p == "/admin/queues" || p == "/admin/queues/*":
		return true // pageGate
	}
	return false
}

// credential returns the caller's bearer credential: the Authorization
// header, X-API-Key, or (GET and HEAD only) the session cookie.
func credential(r *http.Request) (string, error) {
	if h := r.Header.Get(echo.HeaderAuthorization); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return "", tts.Errorf(auth.EUNAUTHORIZED, "Authorization: use the Bearer scheme with a token or an API key")
		}
		return strings.TrimSpace(tok), nil
	}
	if k := r.Header.Get("X-API-Key"); k != "" {
		return strings.TrimSpace(k), nil
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		if ck, err := r.Cookie(SessionCookie); err == nil && ck.Value != "" {
			return ck.Value, nil
		}
	}
	return "", nil
}

// principalOf authenticates the request. ok=false with a nil error means no
// credential was given.
func (s *Server) principalOf(c *echo.Context) (tts.Principal, bool, error) {
	cred, err := credential(c.Request())
	if err != nil {
		return tts.Principal{}, false, err
	}
	if cred == "" {
		return tts.Principal{}, false, nil
	}
	p, err := s.cfg.Auth.Authenticate(c.Request().Context(), cred)
	if err != nil {
		return tts.Principal{}, false, err
	}
	return p, true, nil
}

// withPrincipal puts p on the request's context for the services.
func withPrincipal(c *echo.Context, p tts.Principal) {
	c.SetRequest(c.Request().WithContext(tts.WithPrincipal(c.Request().Context(), p)))
	c.Set("principal", p)
}

// authenticate is the gate of every route when authentication is on: a
// valid token or key, within its rate limit, or 401/429.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		if s.cfg.Auth == nil || isPublic(c) {
			return next(c)
		}
		p, ok, err := s.principalOf(c)
		if err != nil {
			return err
		}
		if !ok {
			return tts.Errorf(auth.EUNAUTHORIZED, "authentication required: send Authorization: Bearer <token or API key> (POST /api/auth/login gives a token)")
		}
		withPrincipal(c, p)
		if err := s.cfg.Limiter.AllowRequest(c.Request().Context(), p); err != nil {
			return err
		}
		return next(c)
	}
}

// requireAdmin refuses callers that are not admins (403). With
// authentication off every caller is the operator.
func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		if s.cfg.Auth == nil {
			return next(c)
		}
		p, _ := tts.PrincipalFrom(c.Request().Context())
		if !p.Admin() {
			return tts.Errorf(auth.EFORBIDDEN, "this endpoint is for administrators")
		}
		return next(c)
	}
}

// pageGate guards the admin pages, which browsers open directly: no
// credentials → redirect to the log-in page; a user → 403; an admin → on.
func (s *Server) pageGate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		if s.cfg.Auth == nil {
			return next(c)
		}
		p, ok, err := s.principalOf(c)
		// Pages redirect to the log-in; the queue dashboard's own API
		// calls get a JSON 401.
		page := !strings.HasPrefix(c.Request().URL.Path, "/admin/queues/api/")
		if (!ok || err != nil) && (c.Request().Method == http.MethodGet || c.Request().Method == http.MethodHead) && page {
			return c.Redirect(http.StatusFound, "/?next="+url.QueryEscape(c.Request().URL.Path))
		}
		if err != nil {
			return err
		}
		if !ok {
			return tts.Errorf(auth.EUNAUTHORIZED, "log in as an administrator first")
		}
		if !p.Admin() {
			c.Response().Header().Set("Cache-Control", "no-store")
			return c.HTML(http.StatusForbidden, forbiddenPage)
		}
		withPrincipal(c, p)
		return next(c)
	}
}

const forbiddenPage = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Forbidden</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem">
<h1 id="forbidden">403: administrators only</h1>
<p>This page is for administrators. <a href="/">Back to the page</a>.</p></body></html>`

type loginBody struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type userView struct {
	ID          string     `json:"id"`
	Email       string     `json:"email"`
	Role        string     `json:"role"`
	Disabled    bool       `json:"disabled"`
	CreatedAt   *time.Time `json:"created_at,omitempty"`
	LastLoginAt *time.Time `json:"last_login_at,omitempty"`
}

func userViewOf(u *tts.User) userView {
	c := u.CreatedAt.UTC()
	return userView{ID: u.ID, Email: u.Email, Role: string(u.Role), Disabled: u.Disabled, CreatedAt: &c, LastLoginAt: utc(u.LastLoginAt)}
}

type tokenView struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	User      userView  `json:"user"`
}

func (s *Server) routesAuth(g *echo.Group) {
	g.POST("/auth/login", s.login)
	g.POST("/auth/logout", s.logout)
	g.GET("/auth/me", s.me)
	g.POST("/auth/refresh", s.refresh)
	g.GET("/auth/keys", s.myKeys)
	g.POST("/auth/keys", s.createMyKey)
	g.DELETE("/auth/keys/:id", s.revokeMyKey)
}

func (s *Server) authOff() error {
	return tts.Errorf(tts.EUNSUPPORTED, "authentication is off on this server (development mode: JWT_SECRET is not set)")
}

// clientIP is the address login attempts are counted against (Echo's
// RealIP, which trusts X-Forwarded-For only from the configured proxies).
func clientIP(c *echo.Context) string {
	ip := c.RealIP()
	if h, _, err := net.SplitHostPort(ip); err == nil {
		ip = h
	}
	return ip
}

func (s *Server) login(c *echo.Context) error {
	if s.cfg.Auth == nil {
		return s.authOff()
	}
	var b loginBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	if b.Email == "" || b.Password == "" {
		return tts.Errorf(tts.EINVALID, "email and password: both are required")
	}
	if len(b.Email) > 254 || len(b.Password) > 1024 {
		return tts.Errorf(auth.EUNAUTHORIZED, "wrong email or password")
	}
	ctx := c.Request().Context()
	if err := s.cfg.Limiter.AllowLogin(ctx, clientIP(c), strings.ToLower(strings.TrimSpace(b.Email))); err != nil {
		return err
	}
	tok, exp, u, err := s.cfg.Auth.Login(ctx, b.Email, b.Password)
	if err != nil {
		if tts.ErrorCode(err) == auth.EUNAUTHORIZED {
			s.cfg.Logger.Warn("login refused", "email", clipLog(b.Email), "ip", clientIP(c))
		}
		return err
	}
	s.setSession(c, tok, exp)
	return c.JSON(http.StatusOK, tokenView{Token: tok, ExpiresAt: exp.UTC(), User: userViewOf(u)})
}

func clipLog(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if utf8.RuneCountInString(s) > 64 {
		s = string([]rune(s)[:64])
	}
	return s
}

func (s *Server) setSession(c *echo.Context, tok string, exp time.Time) {
	c.SetCookie(&http.Cookie{Name: SessionCookie, Value: tok, Path: "/", Expires: exp, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.Scheme() == "https"})
}

// logout clears the cookie and, given the session's token, ends every
// session of the account (its tokens stop working; API keys do not).
func (s *Server) logout(c *echo.Context) error {
	if s.cfg.Auth != nil {
		r := c.Request()
		cred, _ := credential(r)
		if cred == "" {
			if ck, err := r.Cookie(SessionCookie); err == nil {
				cred = ck.Value // SameSite=Strict: only our own pages send it
			}
		}
		if cred != "" {
			if p, err := s.cfg.Auth.Authenticate(r.Context(), cred); err == nil && p.KeyID == "" {
				if err := s.cfg.Auth.EndSessions(r.Context(), p.UserID); err != nil {
					return err
				}
			}
		}
	}
	c.SetCookie(&http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.Scheme() == "https"})
	return c.NoContent(http.StatusNoContent)
}

type meView struct {
	AuthEnabled bool     `json:"auth_enabled"`
	User        userView `json:"user"`
	Via         string   `json:"via"` // token, key or open
}

func (s *Server) me(c *echo.Context) error {
	if s.cfg.Auth == nil {
		return c.JSON(http.StatusOK, meView{User: userView{Role: string(tts.RoleAdmin)}, Via: "open"})
	}
	p, _ := tts.PrincipalFrom(c.Request().Context())
	u, err := s.cfg.Accounts.FindUser(c.Request().Context(), p.UserID)
	if err != nil {
		return err
	}
	via := "token"
	if p.KeyID != "" {
		via = "key"
	}
	return c.JSON(http.StatusOK, meView{AuthEnabled: true, User: userViewOf(u), Via: via})
}

func (s *Server) refresh(c *echo.Context) error {
	if s.cfg.Auth == nil {
		return s.authOff()
	}
	p, _ := tts.PrincipalFrom(c.Request().Context())
	if p.KeyID != "" {
		return tts.Errorf(tts.EINVALID, "an API key does not expire and cannot be refreshed; log in for a token")
	}
	u, err := s.cfg.Accounts.FindUser(c.Request().Context(), p.UserID)
	if err != nil {
		return err
	}
	tok, exp, err := s.cfg.Auth.IssueToken(u)
	if err != nil {
		return err
	}
	s.setSession(c, tok, exp)
	return c.JSON(http.StatusOK, tokenView{Token: tok, ExpiresAt: exp.UTC(), User: userViewOf(u)})
}

type keyView struct {
	ID         string     `json:"id"`
	UserID     string     `json:"user_id"`
	UserEmail  string     `json:"user_email"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

func keyViewOf(k *tts.APIKey) keyView {
	return keyView{ID: k.ID, UserID: k.UserID, UserEmail: k.UserEmail, Name: k.Name, Prefix: k.Prefix,
		CreatedAt: k.CreatedAt.UTC(), LastUsedAt: utc(k.LastUsedAt), RevokedAt: utc(k.RevokedAt)}
}

func keyViews(ks []*tts.APIKey) []keyView {
	out := make([]keyView, len(ks))
	for i, k := range ks {
		out[i] = keyViewOf(k)
	}
	return out
}

type newKeyView struct {
	Key    string  `json:"key"`
	APIKey keyView `json:"api_key"`
}

func (s *Server) myKeys(c *echo.Context) error {
	if s.cfg.Auth == nil {
		return s.authOff()
	}
	ks, err := s.cfg.Accounts.ListAPIKeys(c.Request().Context(), tts.Owner(c.Request().Context()))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"keys": keyViews(ks)})
}

type keyBody struct {
	UserID string `json:"user_id"`
	Name   string `json:"name"`
}

func (s *Server) createMyKey(c *echo.Context) error {
	if s.cfg.Auth == nil {
		return s.authOff()
	}
	var b keyBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	if b.UserID != "" {
		return tts.Errorf(tts.EINVALID, "user_id: not allowed here; keys made here belong to the caller")
	}
	return s.createKey(c, tts.Owner(c.Request().Context()), b.Name)
}

func (s *Server) createKey(c *echo.Context, userID, name string) error {
	secret, k, err := s.cfg.Auth.CreateKey(c.Request().Context(), userID, name)
	if err != nil {
		return err
	}
	s.cfg.Logger.Info("API key created", "key_id", k.ID, "user_id", userID, "by", tts.Owner(c.Request().Context()))
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, newKeyView{Key: secret, APIKey: keyViewOf(k)})
}

func (s *Server) revokeMyKey(c *echo.Context) error {
	if s.cfg.Auth == nil {
		return s.authOff()
	}
	return s.revokeKey(c, tts.Owner(c.Request().Context()))
}

// revokeKey revokes the key in the path; owner "" allows any key (admin).
func (s *Server) revokeKey(c *echo.Context, owner string) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	ks, err := s.cfg.Accounts.ListAPIKeys(ctx, owner)
	if err != nil {
		return err
	}
	for _, k := range ks {
		if k.ID == id {
			k, err := s.cfg.Accounts.RevokeAPIKey(ctx, id, time.Now())
			if err != nil {
				return err
			}
			s.cfg.Logger.Info("API key revoked", "key_id", id, "by", tts.Owner(ctx))
			return c.JSON(http.StatusOK, map[string]any{"api_key": keyViewOf(k)})
		}
	}
	return tts.Errorf(tts.ENOTFOUND, "no API key with id %q", clipID(id))
}

// charge takes the request's characters from the caller's daily quota and
// returns a function that gives them back (for a request that is then
// refused or replayed).
func (s *Server) charge(ctx context.Context, chars int) (refund func(), err error) {
	p, ok := tts.PrincipalFrom(ctx)
	if !ok || s.cfg.Limiter == nil {
		return func() {}, nil
	}
	if err := s.cfg.Limiter.ChargeChars(ctx, p, chars); err != nil {
		return nil, err
	}
	return func() { s.cfg.Limiter.RefundChars(ctx, p, chars) }, nil
}

func clipID(id string) string {
	id = strings.ToValidUTF8(id, "?")
	if len(id) > 64 {
		id = id[:64]
	}
	return id
}
