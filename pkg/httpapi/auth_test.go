package httpapi_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kokorotts/kokoro-tts/pkg/auth"
	"github.com/kokorotts/kokoro-tts/pkg/httpapi"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// newAuthStack is the API with authentication on, a worker, and generous
// limits unless given.
func newAuthStack(t *testing.T, limits auth.Limits) *stack {
	t.Helper()
	return newStackWith(t, stackOptions{concurrency: 2, maxBodyBytes: 16 << 10, auth: &limits})
}

// login returns a token for the account.
func (s *stack) login(t *testing.T, email, password string) string {
	t.Helper()
	r := s.do(t, "POST", "/api/auth/login", jsonCT, fmt.Sprintf(`{"email":%q,"password":%q}`, email, password))
	if r.status != http.StatusOK {
		t.Fatalf("login %s: %d %s", email, r.status, r.body)
	}
	tok, _ := r.json(t)["token"].(string)
	if tok == "" {
		t.Fatalf("login gave no token: %s", r.body)
	}
	return tok
}

// newUser creates an account through the admin API and logs it in.
func (s *stack) newUser(t *testing.T, admin, email string) (id, token string) {
	t.Helper()
	const pw = "a user password for tests"
	r := s.do(t, "POST", "/api/admin/users", jsonCT, fmt.Sprintf(`{"email":%q,"password":%q,"role":"user"}`, email, pw), "Authorization", "Bearer "+admin)
	if r.status != http.StatusCreated {
		t.Fatalf("create user: %d %s", r.status, r.body)
	}
	return r.json(t)["user"].(map[string]any)["id"].(string), s.login(t, email, pw)
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

func wantError(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	e, _ := r.json(t)["error"].(map[string]any)
	if e == nil || e["code"] != code || e["message"] == "" {
		t.Fatalf("error body %s, want code %q with a message", r.body, code)
	}
}

// fillPath turns a route pattern into a concrete path.
func fillPath(p string) string {
	p = strings.ReplaceAll(p, ":id", "01a21fa8-1bfb-7ce1-aa6a-25e9d21c3b18")
	return strings.ReplaceAll(p, "*", "x")
}

// TestEveryRouteRequiresAuth walks every registered route: without
// credentials, with a forged token and with a garbage key each answers 401
// with a JSON error, except the few public ones. Admin routes answer 403 to
// a user.
func TestEveryRouteRequiresAuth(t *testing.T) {
	s := newAuthStack(t, auth.Limits{})
	admin := s.login(t, testAdminEmail, testAdminPassword)
	_, user := s.newUser(t, admin, "walker@example.com")
	public := map[string]bool{
		"GET /api/health": true, "HEAD /api/health": true, "POST /api/auth/login": true, "POST /api/auth/logout": true,
		"GET /": true, "HEAD /": true, "GET /index.html": true, "HEAD /index.html": true, "GET /favicon.ico": true,
		"HEAD /favicon.ico": true, "GET /assets/*": true, "HEAD /assets/*": true,
	}
	// The pages gate themselves: browsers are sent to the log-in page.
	pages := map[string]bool{"/admin": true, "/admin/": true, "/admin/queues": true, "/admin/queues/*": true}
	// A token signed with another secret.
	other, err := auth.New(auth.Config{Store: s.db, Secret: []byte(strings.Repeat("x", 40))})
	if err != nil {
		t.Fatal(err)
	}
	forged, _, err := other.IssueToken(&tts.User{ID: "someone", Email: "x@example.com", Role: tts.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	walked := 0
	for _, rt := range s.api.Routes() {
		method, pattern := rt[0], rt[1]
		if method == "echo_route_not_found" || strings.HasPrefix(method, "echo_") {
			continue
		}
		name := method + " " + pattern
		if public[name] {
			continue
		}
		path := fillPath(pattern)
		walked++
		if pages[pattern] {
			r := s.noRedirect(t, method, path)
			if method == http.MethodGet && !strings.HasPrefix(path, "/admin/queues/") && r.status != http.StatusFound {
				t.Errorf("%s without credentials: %d, want a 302 to the log-in page", name, r.status)
			} else if r.status != http.StatusFound && r.status != http.StatusUnauthorized {
				t.Errorf("%s without credentials: %d, want 302 or 401", name, r.status)
			}
			continue
		}
		for _, cred := range [][]string{nil, bearer(forged), {"X-API-Key", auth.KeyPrefix + "not-a-key"}, {"Authorization", "Basic YWRtaW46YWRtaW4="}} {
			r := s.do(t, method, path, jsonCT, `{}`, cred...)
			if r.status != http.StatusUnauthorized {
				t.Errorf("%s with %v: %d, want 401: %s", name, cred, r.status, r.body)
				continue
			}
			if method != http.MethodHead {
				wantError(t, r, http.StatusUnauthorized, auth.EUNAUTHORIZED)
			}
			if r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: 401 without WWW-Authenticate", name)
			}
		}
		if strings.HasPrefix(pattern, "/api/admin/") || pattern == "/metrics" {
			r := s.do(t, method, path, jsonCT, `{}`, bearer(user)...)
			if r.status != http.StatusForbidden {
				t.Errorf("%s as a user: %d, want 403: %s", name, r.status, r.body)
			}
		}
	}
	if walked < 30 {
		t.Fatalf("walked only %d routes: the route list is incomplete", walked)
	}
	for name := range public {
		method, path, _ := strings.Cut(name, " ")
		if r := s.do(t, method, fillPath(path), "", ""); r.status == http.StatusUnauthorized {
			t.Errorf("public %s answered 401", name)
		}
	}
}

// noRedirect sends a request without following redirects.
func (s *stack) noRedirect(t *testing.T, method, path string, header ...string) response {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(method, s.srv.URL+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return response{status: res.StatusCode, header: res.Header}
}

func TestTokens(t *testing.T) {
	s := newAuthStack(t, auth.Limits{})
	admin := s.login(t, testAdminEmail, testAdminPassword)
	if r := s.do(t, "GET", "/api/auth/me", "", "", bearer(admin)...); r.status != 200 || r.json(t)["user"].(map[string]any)["role"] != "admin" {
		t.Fatalf("me: %d %s", r.status, r.body)
	}
	u, err := s.db.FindUserByEmail(context.Background(), testAdminEmail)
	if err != nil {
		t.Fatal(err)
	}
	// Expired: issued by the same secret 13 hours ago (12 h lifetime).
	past, err := auth.New(auth.Config{Store: s.db, Secret: []byte(testJWTSecret), Now: func() time.Time { return time.Now().Add(-13 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	expired, _, err := past.IssueToken(u)
	if err != nil {
		t.Fatal(err)
	}
	r := s.do(t, "GET", "/api/jobs", "", "", bearer(expired)...)
	wantError(t, r, 401, auth.EUNAUTHORIZED)
	if !strings.Contains(string(r.body), "expired") {
		t.Errorf("expired token: %s, want the message to say it expired", r.body)
	}
	// Tampered: the payload made to claim another role; the signature no longer matches.
	parts := strings.Split(admin, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"admin"`, `"root"`, 1)))
	wantError(t, s.do(t, "GET", "/api/jobs", "", "", bearer(strings.Join(parts, "."))...), 401, auth.EUNAUTHORIZED)
	// alg=none with the real payload.
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + strings.Split(admin, ".")[1] + "."
	wantError(t, s.do(t, "GET", "/api/jobs", "", "", bearer(none)...), 401, auth.EUNAUTHORIZED)
	// Garbage and empty bearer.
	wantError(t, s.do(t, "GET", "/api/jobs", "", "", bearer("abc")...), 401, auth.EUNAUTHORIZED)
	wantError(t, s.do(t, "GET", "/api/jobs", "", "", "Authorization", "Bearer "), 401, auth.EUNAUTHORIZED)
	// Refresh gives a new, working token.
	r = s.do(t, "POST", "/api/auth/refresh", "", "", bearer(admin)...)
	if r.status != 200 {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	if tok := r.json(t)["token"].(string); s.do(t, "GET", "/api/jobs", "", "", bearer(tok)...).status != 200 {
		t.Fatal("refreshed token refused")
	}
	// Wrong password and unknown email answer alike.
	a := s.do(t, "POST", "/api/auth/login", jsonCT, `{"email":"admin@example.com","password":"wrong password here"}`)
	b := s.do(t, "POST", "/api/auth/login", jsonCT, `{"email":"nobody@example.com","password":"wrong password here"}`)
	wantError(t, a, 401, auth.EUNAUTHORIZED)
	wantError(t, b, 401, auth.EUNAUTHORIZED)
	if a.json(t)["error"].(map[string]any)["message"] != b.json(t)["error"].(map[string]any)["message"] {
		t.Errorf("wrong password and unknown email must answer the same: %s / %s", a.body, b.body)
	}
	// Logging out ends the account's sessions: the old token stops working,
	// a new log-in works.
	if r := s.do(t, "POST", "/api/auth/logout", "", "", bearer(admin)...); r.status != 204 {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	r = s.do(t, "GET", "/api/jobs", "", "", bearer(admin)...)
	wantError(t, r, 401, auth.EUNAUTHORIZED)
	if !strings.Contains(string(r.body), "session has ended") {
		t.Errorf("token after logout: %s", r.body)
	}
	if tok := s.login(t, testAdminEmail, testAdminPassword); s.do(t, "GET", "/api/jobs", "", "", bearer(tok)...).status != 200 {
		t.Fatal("a new log-in after logout is refused")
	}
	// The secret never appears in an answer.
	if strings.Contains(string(a.body)+string(b.body)+string(r.body), testJWTSecret) {
		t.Fatal("the JWT secret leaked into a response")
	}
}

// TestNoSecretsInLogs: passwords, tokens, keys and the signing secret
// never reach the log, whatever the outcome of the request.
func TestNoSecretsInLogs(t *testing.T) {
	s := newAuthStack(t, auth.Limits{LoginsPerMinute: 100})
	admin := s.login(t, testAdminEmail, testAdminPassword)
	_, user := s.newUser(t, admin, "quiet@example.com")
	key := s.do(t, "POST", "/api/auth/keys", jsonCT, `{"name":"k"}`, bearer(user)...).json(t)["key"].(string)
	s.do(t, "POST", "/api/auth/login", jsonCT, `{"email":"quiet@example.com","password":"wrong-password-typed-here"}`)
	s.do(t, "GET", "/api/jobs", "", "", bearer(key)...)
	s.do(t, "GET", "/api/jobs", "", "", bearer(user+"x")...)
	s.do(t, "GET", "/api/jobs", "", "", "X-API-Key", key+"x")
	s.do(t, "POST", "/api/tts", jsonCT, `{"text":"Logged?"}`, bearer(user)...)
	logs := s.logs.String()
	if !strings.Contains(logs, "login refused") {
		t.Fatalf("the log does not show the refused login; is the stack logging? %s", logs)
	}
	for name, secret := range map[string]string{"admin password": testAdminPassword, "user password": "a user password for tests",
		"wrong password": "wrong-password-typed-here", "admin token": admin, "user token": user, "API key": key,
		"API key body": strings.TrimPrefix(key, auth.KeyPrefix), "JWT secret": testJWTSecret} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains the %s", name)
		}
	}
}

// TestForeignJobs: a user reaches neither another user's jobs nor batches
// by any route; the admin API sees them.
func TestForeignJobs(t *testing.T) {
	s := newAuthStack(t, auth.Limits{})
	admin := s.login(t, testAdminEmail, testAdminPassword)
	aliceID, alice := s.newUser(t, admin, "alice@example.com")
	_, bob := s.newUser(t, admin, "bob@example.com")
	r := s.do(t, "POST", "/api/tts", jsonCT, `{"text":"Alice's sentence.","format":"wav"}`, bearer(alice)...)
	if r.status != 202 {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	s.waitTerminalAs(t, id, alice)
	br := s.do(t, "POST", "/api/batches", jsonCT, `{"items":[{"key":"a","text":"One."}],"format":"wav"}`, bearer(alice)...)
	if br.status != 202 {
		t.Fatalf("batch: %d %s", br.status, br.body)
	}
	bid := br.json(t)["id"].(string)
	for _, path := range []string{"/api/jobs/" + id, "/api/jobs/" + id + "/audio", "/api/jobs/" + id + "/events", "/api/batches/" + bid,
		"/api/batches/" + bid + "/archive", "/api/batches/" + bid + "/events"} {
		wantError(t, s.do(t, "GET", path, "", "", bearer(bob)...), 404, tts.ENOTFOUND)
		if r := s.do(t, "GET", path, "", "", bearer(alice)...); r.status != 200 {
			t.Errorf("owner GET %s: %d", path, r.status)
		}
	}
	wantError(t, s.do(t, "DELETE", "/api/jobs/"+id, "", "", bearer(bob)...), 404, tts.ENOTFOUND)
	wantError(t, s.do(t, "DELETE", "/api/batches/"+bid, "", "", bearer(bob)...), 404, tts.ENOTFOUND)
	if l := s.do(t, "GET", "/api/jobs", "", "", bearer(bob)...).json(t); len(l["jobs"].([]any)) != 0 {
		t.Errorf("bob lists alice's jobs: %v", l)
	}
	if l := s.do(t, "GET", "/api/jobs", "", "", bearer(alice)...).json(t); len(l["jobs"].([]any)) != 2 {
		t.Errorf("alice lists %d jobs, want her job and her batch item", len(l["jobs"].([]any)))
	}
	// The same idempotency key used by both users makes two jobs.
	k1 := s.do(t, "POST", "/api/tts", jsonCT, `{"text":"Same key.","format":"wav"}`, append(bearer(alice), "Idempotency-Key", "lesson-1")...)
	k2 := s.do(t, "POST", "/api/tts", jsonCT, `{"text":"Same key.","format":"wav"}`, append(bearer(bob), "Idempotency-Key", "lesson-1")...)
	if k1.status != 202 || k2.status != 202 || k1.json(t)["id"] == k2.json(t)["id"] || k2.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("one idempotency key for two users: %d %s / %d %s", k1.status, k1.body, k2.status, k2.body)
	}
	// The admin sees alice's job with its owner.
	aj := s.do(t, "GET", "/api/admin/jobs/"+id, "", "", bearer(admin)...)
	if aj.status != 200 || aj.json(t)["job"].(map[string]any)["user_id"] != aliceID || aj.json(t)["job"].(map[string]any)["user_email"] != "alice@example.com" {
		t.Fatalf("admin job detail: %d %s", aj.status, aj.body)
	}
	if evs := aj.json(t)["events"].([]any); len(evs) < 2 {
		t.Errorf("timeline has %d events, want queued, running, succeeded: %s", len(evs), aj.body)
	}
	list := s.do(t, "GET", "/api/admin/jobs?user=alice@example.com&status=succeeded", "", "", bearer(admin)...).json(t)
	if jobs := list["jobs"].([]any); len(jobs) < 1 || jobs[0].(map[string]any)["user_email"] != "alice@example.com" {
		t.Fatalf("admin filter by user: %v", list)
	}
}

func (s *stack) waitTerminalAs(t *testing.T, id, tok string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		m := s.do(t, "GET", "/api/jobs/"+id, "", "", bearer(tok)...).json(t)
		switch m["status"] {
		case "succeeded", "failed", "canceled":
			return m
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("job %s did not finish", id)
	return nil
}

// TestKeysAndDisabledAccounts: API keys work in both headers until revoked;
// a disabled account loses its tokens and keys at once.
func TestKeysAndDisabledAccounts(t *testing.T) {
	s := newAuthStack(t, auth.Limits{})
	admin := s.login(t, testAdminEmail, testAdminPassword)
	uid, user := s.newUser(t, admin, "teacher@example.com")
	r := s.do(t, "POST", "/api/auth/keys", jsonCT, `{"name":"lesson script"}`, bearer(user)...)
	if r.status != 201 {
		t.Fatalf("create key: %d %s", r.status, r.body)
	}
	key := r.json(t)["key"].(string)
	keyID := r.json(t)["api_key"].(map[string]any)["id"].(string)
	if !strings.HasPrefix(key, auth.KeyPrefix) {
		t.Fatalf("key %q lacks the prefix", key)
	}
	for _, h := range [][]string{bearer(key), {"X-API-Key", key}} {
		if r := s.do(t, "GET", "/api/jobs", "", "", h...); r.status != 200 {
			t.Fatalf("key in %s: %d %s", h[0], r.status, r.body)
		}
	}
	// The listing never shows the secret.
	if l := s.do(t, "GET", "/api/admin/keys", "", "", bearer(admin)...); l.status != 200 || strings.Contains(string(l.body), key) || !strings.Contains(string(l.body), keyID) {
		t.Fatalf("admin key list: %d %s", l.status, l.body)
	}
	// Another user's key cannot be revoked through /api/auth/keys.
	_, other := s.newUser(t, admin, "other@example.com")
	wantError(t, s.do(t, "DELETE", "/api/auth/keys/"+keyID, "", "", bearer(other)...), 404, tts.ENOTFOUND)
	if r := s.do(t, "DELETE", "/api/auth/keys/"+keyID, "", "", bearer(user)...); r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	r = s.do(t, "GET", "/api/jobs", "", "", bearer(key)...)
	wantError(t, r, 401, auth.EUNAUTHORIZED)
	if !strings.Contains(string(r.body), "revoked") {
		t.Errorf("revoked key: %s", r.body)
	}
	// An admin-made key, then the account disabled: key and token stop.
	r = s.do(t, "POST", "/api/admin/keys", jsonCT, fmt.Sprintf(`{"user_id":%q,"name":"by admin"}`, uid), bearer(admin)...)
	if r.status != 201 {
		t.Fatalf("admin create key: %d %s", r.status, r.body)
	}
	key2 := r.json(t)["key"].(string)
	if r := s.do(t, "PATCH", "/api/admin/users/"+uid, jsonCT, `{"disabled":true}`, bearer(admin)...); r.status != 200 {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	wantError(t, s.do(t, "GET", "/api/jobs", "", "", bearer(user)...), 401, auth.EUNAUTHORIZED)
	wantError(t, s.do(t, "GET", "/api/jobs", "", "", bearer(key2)...), 401, auth.EUNAUTHORIZED)
	wantError(t, s.do(t, "POST", "/api/auth/login", jsonCT, `{"email":"teacher@example.com","password":"a user password for tests"}`), 401, auth.EUNAUTHORIZED)
	// Re-enabled: the key works again; promoted: the role counts at once.
	s.do(t, "PATCH", "/api/admin/users/"+uid, jsonCT, `{"disabled":false,"role":"admin"}`, bearer(admin)...)
	if r := s.do(t, "GET", "/api/admin/users", "", "", bearer(key2)...); r.status != 200 {
		t.Fatalf("promoted user's key on the admin API: %d %s", r.status, r.body)
	}
}

func TestAdminUsers(t *testing.T) {
	s := newAuthStack(t, auth.Limits{})
	admin := s.login(t, testAdminEmail, testAdminPassword)
	for _, c := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"email":"a@example.com","password":"short","role":"user"}`, 422, tts.EINVALID},
		{`{"email":"a@example.com","password":"changemechangeme","role":"user"}`, 422, tts.EINVALID},
		{`{"email":"not an email","password":"a long enough password","role":"user"}`, 422, tts.EINVALID},
		{`{"email":"a@example.com","password":"a long enough password","role":"root"}`, 422, tts.EINVALID},
		{`{"email":"a@example.com","password":"a long enough password","role":"user","extra":1}`, 422, tts.EINVALID},
		{`{"email":"ADMIN@example.com","password":"a long enough password","role":"user"}`, 409, tts.ECONFLICT},
	} {
		wantError(t, s.do(t, "POST", "/api/admin/users", jsonCT, c.body, bearer(admin)...), c.status, c.code)
	}
	l := s.do(t, "GET", "/api/admin/users", "", "", bearer(admin)...)
	if l.status != 200 || strings.Contains(string(l.body), "password") || strings.Contains(string(l.body), "$2a$") {
		t.Fatalf("user list: %d %s", l.status, l.body)
	}
	users := l.json(t)["users"].([]any)
	if len(users) != 1 {
		t.Fatalf("%d users, want only the admin", len(users))
	}
	adminID := users[0].(map[string]any)["id"].(string)
	// The last admin can neither be disabled nor demoted.
	wantError(t, s.do(t, "PATCH", "/api/admin/users/"+adminID, jsonCT, `{"disabled":true}`, bearer(admin)...), 409, tts.ECONFLICT)
	wantError(t, s.do(t, "PATCH", "/api/admin/users/"+adminID, jsonCT, `{"role":"user"}`, bearer(admin)...), 409, tts.ECONFLICT)
	wantError(t, s.do(t, "PATCH", "/api/admin/users/01a21fa8-1bfb-7ce1-aa6a-25e9d21c3b18", jsonCT, `{"disabled":true}`, bearer(admin)...), 404, tts.ENOTFOUND)
	// A password change takes effect.
	uid, old := s.newUser(t, admin, "pw@example.com")
	if r := s.do(t, "PATCH", "/api/admin/users/"+uid, jsonCT, `{"password":"the new password is long"}`, bearer(admin)...); r.status != 200 {
		t.Fatalf("password change: %d %s", r.status, r.body)
	}
	// The change ends the account's sessions; the new password logs in.
	wantError(t, s.do(t, "GET", "/api/jobs", "", "", bearer(old)...), 401, auth.EUNAUTHORIZED)
	wantError(t, s.do(t, "POST", "/api/auth/login", jsonCT, `{"email":"pw@example.com","password":"a user password for tests"}`), 401, auth.EUNAUTHORIZED)
	s.login(t, "pw@example.com", "the new password is long")
}

// TestAdminJobActions: retry makes a new job for the same owner, delete
// removes a finished job and its audio, and neither touches a live job.
func TestAdminJobActions(t *testing.T) {
	s := newStackWith(t, stackOptions{concurrency: 0, maxBodyBytes: 16 << 10, auth: &auth.Limits{}})
	admin := s.login(t, testAdminEmail, testAdminPassword)
	uid, user := s.newUser(t, admin, "learner@example.com")
	// No worker: the job stays queued.
	id := s.do(t, "POST", "/api/tts", jsonCT, `{"text":"Retry me.","format":"wav"}`, bearer(user)...).json(t)["id"].(string)
	wantError(t, s.do(t, "POST", "/api/admin/jobs/"+id+"/retry", "", "", bearer(admin)...), 409, tts.ECONFLICT)
	wantError(t, s.do(t, "DELETE", "/api/admin/jobs/"+id, "", "", bearer(admin)...), 409, tts.ECONFLICT)
	if r := s.do(t, "POST", "/api/admin/jobs/"+id+"/cancel", "", "", bearer(admin)...); r.status != 200 || r.json(t)["job"].(map[string]any)["status"] != "canceled" {
		t.Fatalf("admin cancel: %d %s", r.status, r.body)
	}
	r := s.do(t, "POST", "/api/admin/jobs/"+id+"/retry", "", "", bearer(admin)...)
	if r.status != 201 {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
	nj := r.json(t)["job"].(map[string]any)
	if nj["id"] == id || nj["user_id"] != uid || nj["text"] != "Retry me." || nj["status"] != "queued" {
		t.Fatalf("retried job: %v", nj)
	}
	// The owner sees the new job; the original keeps its terminal state.
	if r := s.do(t, "GET", "/api/jobs/"+nj["id"].(string), "", "", bearer(user)...); r.status != 200 {
		t.Fatalf("owner reads the retried job: %d", r.status)
	}
	if st := s.do(t, "GET", "/api/jobs/"+id, "", "", bearer(user)...).json(t)["status"]; st != "canceled" {
		t.Fatalf("original is %v after the retry", st)
	}
	if r := s.do(t, "DELETE", "/api/admin/jobs/"+id, "", "", bearer(admin)...); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	wantError(t, s.do(t, "GET", "/api/jobs/"+id, "", "", bearer(user)...), 404, tts.ENOTFOUND)
	// Filters are checked.
	wantError(t, s.do(t, "GET", "/api/admin/jobs?since=yesterday", "", "", bearer(admin)...), 422, tts.EINVALID)
	wantError(t, s.do(t, "GET", "/api/admin/jobs?sort=1", "", "", bearer(admin)...), 422, tts.EINVALID)
	wantError(t, s.do(t, "GET", "/api/admin/jobs?status=lost", "", "", bearer(admin)...), 422, tts.EINVALID)
	// Text search with LIKE metacharacters matches them literally.
	if l := s.do(t, "GET", "/api/admin/jobs?q="+url.QueryEscape("%"), "", "", bearer(admin)...).json(t); len(l["jobs"].([]any)) != 0 {
		t.Fatalf("q=%% matched: %v", l)
	}
	if l := s.do(t, "GET", "/api/admin/jobs?q=retry", "", "", bearer(admin)...).json(t); len(l["jobs"].([]any)) != 1 {
		t.Fatalf("q=retry: %v", l)
	}
	ov := s.do(t, "GET", "/api/admin/overview", "", "", bearer(admin)...)
	if ov.status != 200 || ov.json(t)["last_hour"].(map[string]any)["submitted"].(float64) < 1 {
		t.Fatalf("overview: %d %s", ov.status, ov.body)
	}
}

// TestRateLimitAndQuota: each account's requests per minute and characters
// per day are bounded with 429 and Retry-After; refused submissions give
// their characters back; admins are not limited.
func TestRateLimitAndQuota(t *testing.T) {
	s := newStackWith(t, stackOptions{maxBodyBytes: 16 << 10, auth: &auth.Limits{RequestsPerMinute: 5, DailyChars: 20, LoginsPerMinute: 3}})
	admin := s.login(t, testAdminEmail, testAdminPassword)
	_, user := s.newUser(t, admin, "limited@example.com")
	// Quota: 15 characters pass, a 10-character request does not.
	if r := s.do(t, "POST", "/api/tts", jsonCT, `{"text":"fifteen chars!!"}`, bearer(user)...); r.status != 202 {
		t.Fatalf("first submit: %d %s", r.status, r.body)
	}
	// A refused request (unknown voice) is not charged.
	wantError(t, s.do(t, "POST", "/api/tts", jsonCT, `{"text":"five!","voice":"nope"}`, bearer(user)...), 422, tts.EINVALID)
	if r := s.do(t, "POST", "/api/tts", jsonCT, `{"text":"five!"}`, bearer(user)...); r.status != 202 {
		t.Fatalf("submit within the quota: %d %s", r.status, r.body)
	}
	r := s.do(t, "POST", "/api/tts", jsonCT, `{"text":"x"}`, bearer(user)...)
	wantError(t, r, 429, auth.ERATELIMITED)
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 || ra > 25*3600 {
		t.Fatalf("quota Retry-After = %q", r.header.Get("Retry-After"))
	}
	// Rate: five requests a minute (four used above, the fifth passes).
	s.do(t, "GET", "/api/jobs", "", "", bearer(user)...)
	r = s.do(t, "GET", "/api/jobs", "", "", bearer(user)...)
	wantError(t, r, 429, auth.ERATELIMITED)
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Fatalf("rate Retry-After = %q", r.header.Get("Retry-After"))
	}
	// The admin is not limited.
	for range 8 {
		if r := s.do(t, "GET", "/api/jobs", "", "", bearer(admin)...); r.status != 200 {
			t.Fatalf("admin limited: %d", r.status)
		}
	}
	// Logins: three a minute per address and email, then 429 even with the right password.
	for range 3 {
		s.do(t, "POST", "/api/auth/login", jsonCT, `{"email":"limited@example.com","password":"wrong password!!"}`)
	}
	wantError(t, s.do(t, "POST", "/api/auth/login", jsonCT, `{"email":"limited@example.com","password":"a user password for tests"}`), 429, auth.ERATELIMITED)
}

// TestSessionCookie: the login cookie is HttpOnly and SameSite=Strict, and
// it is accepted for reads only, so a cross-site form cannot act with it.
func TestSessionCookie(t *testing.T) {
	s := newAuthStack(t, auth.Limits{})
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Post(s.srv.URL+"/api/auth/login", jsonCT, strings.NewReader(fmt.Sprintf(`{"email":%q,"password":%q}`, testAdminEmail, testAdminPassword)))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	ck := res.Cookies()
	if len(ck) != 1 || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Path != "/" {
		t.Fatalf("session cookie: %+v", ck)
	}
	get := func(path string) int {
		res, err := c.Get(s.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if st := get("/api/jobs"); st != 200 {
		t.Fatalf("GET with the cookie: %d", st)
	}
	if st := get("/admin"); st != 200 {
		t.Fatalf("/admin with an admin cookie: %d", st)
	}
	if st := get("/admin/queues/"); st != 200 {
		t.Fatalf("/admin/queues/ with an admin cookie: %d", st)
	}
	res, err = c.Post(s.srv.URL+"/api/tts", jsonCT, strings.NewReader(`{"text":"Cross-site?"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Fatalf("POST with only the cookie: %d, want 401", res.StatusCode)
	}
	// Logging out clears it.
	res, err = c.Post(s.srv.URL+"/api/auth/logout", jsonCT, nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if st := get("/api/jobs"); st != 401 {
		t.Fatalf("GET after logout: %d", st)
	}
	if st := get("/admin"); st != http.StatusFound {
		t.Fatalf("/admin after logout: %d, want a redirect to the log-in", st)
	}
}

// TestAdminPageRefusesUsers: a user's cookie opens the page but not the
// dashboard.
func TestAdminPageRefusesUsers(t *testing.T) {
	s := newAuthStack(t, auth.Limits{})
	admin := s.login(t, testAdminEmail, testAdminPassword)
	_, user := s.newUser(t, admin, "nosy@example.com")
	for _, p := range []string{"/admin", "/admin/", "/admin/queues/"} {
		r := s.noRedirect(t, "GET", p, "Cookie", "kokoro_session="+user)
		if r.status != http.StatusForbidden {
			t.Errorf("%s as a user: %d, want 403", p, r.status)
		}
	}
	if r := s.noRedirect(t, "GET", "/", "Cookie", "kokoro_session="+user); r.status != 200 {
		t.Errorf("/ as a user: %d", r.status)
	}
}

// TestOpenMode: without authentication every caller is the operator and
// the log-in is refused with a clear error.
func TestOpenMode(t *testing.T) {
	s := newStack(t, false)
	if h := s.do(t, "GET", "/api/health", "", "").json(t); h["auth"] != "open" {
		t.Fatalf("health auth = %v", h["auth"])
	}
	me := s.do(t, "GET", "/api/auth/me", "", "").json(t)
	if me["auth_enabled"] != false || me["user"].(map[string]any)["role"] != "admin" {
		t.Fatalf("me: %v", me)
	}
	if r := s.do(t, "GET", "/api/admin/overview", "", ""); r.status != 200 {
		t.Fatalf("overview in open mode: %d %s", r.status, r.body)
	}
	wantError(t, s.do(t, "POST", "/api/auth/login", jsonCT, `{"email":"a@example.com","password":"whatever it is"}`), 422, tts.EUNSUPPORTED)
}

// TestCORS: only the configured origins get CORS headers; a preflight
// needs no credentials; cookies are never allowed cross-origin.
func TestCORS(t *testing.T) {
	s := newStack(t, false)
	cfgd := httptest.NewServer(httpapi.New(httpapi.Config{Jobs: nil, CORSOrigins: []string{"https://trainer.example.com"}}))
	t.Cleanup(cfgd.Close)
	pre := func(base, origin string) *http.Response {
		req, _ := http.NewRequest("OPTIONS", base+"/api/tts", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	res := pre(cfgd.URL, "https://trainer.example.com")
	if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != "https://trainer.example.com" ||
		!strings.Contains(strings.ToLower(res.Header.Get("Access-Control-Allow-Headers")), "authorization") ||
		res.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("preflight from the allowed origin: %d %v", res.StatusCode, res.Header)
	}
	if res := pre(cfgd.URL, "https://evil.example.net"); res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("a foreign origin got CORS headers: %v", res.Header)
	}
	// Without configured origins there are no CORS headers at all.
	if res := pre(s.srv.URL, "https://trainer.example.com"); res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("CORS headers with no origins configured: %v", res.Header)
	}
}
