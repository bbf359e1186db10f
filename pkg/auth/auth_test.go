package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
	"github.com/kokorotts/kokoro-tts/pkg/auth"
	"github.com/kokorotts/kokoro-tts/pkg/sqlstore"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

const secret = "0123456789abcdef0123456789abcdef"

func newService(t testing.TB) (*auth.Service, *sqlstore.DB) {
	t.Helper()
	db := testsvc.Store(t)
	s, err := auth.New(auth.Config{Store: db, Secret: []byte(secret), BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

func TestShortSecretRefused(t *testing.T) {
	if _, err := auth.New(auth.Config{Secret: []byte("CHANGE-ME")}); err == nil || !strings.Contains(err.Error(), "JWT_SECRET") {
		t.Fatalf("short secret: %v", err)
	}
}

func TestPasswordPolicy(t *testing.T) {
	for _, pw := range []string{"", "short", "CHANGE-ME", "changemechangeme", "aaaaaaaaaaaaaaaa", "Password123", strings.Repeat("long", 20)} {
		if err := auth.CheckPassword(pw); tts.ErrorCode(err) != tts.EINVALID {
			t.Errorf("CheckPassword(%q) = %v, want EINVALID", pw, err)
		}
	}
	for _, pw := range []string{"correct horse battery", "ünïcødé pässwörd"} {
		if err := auth.CheckPassword(pw); err != nil {
			t.Errorf("CheckPassword(%q) = %v", pw, err)
		}
	}
}

// TestEnsureAdmin: the first start creates the admin from the configured
// account, refuses a missing or weak password, and later starts leave the
// accounts alone.
func TestEnsureAdmin(t *testing.T) {
	s, db := newService(t)
	ctx := context.Background()
	for _, c := range []struct{ email, pw, want string }{
		{"", "", "ADMIN_EMAIL and ADMIN_PASSWORD"},
		{"admin@example.com", "CHANGE-ME", "ADMIN_PASSWORD"},
		{"admin@example.com", "admin", "ADMIN_PASSWORD"},
		{"not an address", "correct horse battery", "ADMIN_EMAIL"},
	} {
		if _, _, err := s.EnsureAdmin(ctx, c.email, c.pw); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("EnsureAdmin(%q, %q) = %v, want an error naming %s", c.email, c.pw, err, c.want)
		}
	}
	if n, _ := db.CountAdmins(ctx); n != 0 {
		t.Fatalf("%d admins after refusals", n)
	}
	u, created, err := s.EnsureAdmin(ctx, "Admin@Example.com", "correct horse battery")
	if err != nil || !created || u.Role != tts.RoleAdmin || u.Email != "admin@example.com" {
		t.Fatalf("EnsureAdmin = %+v, %v, %v", u, created, err)
	}
	if strings.Contains(u.PasswordHash, "correct horse") || !strings.HasPrefix(u.PasswordHash, "$2") {
		t.Fatalf("password stored as %q, want a bcrypt hash", u.PasswordHash)
	}
	if _, created, err := s.EnsureAdmin(ctx, "other@example.com", "another good password"); err != nil || created {
		t.Fatalf("second start: created=%v err=%v", created, err)
	}
	if _, _, _, err := s.Login(ctx, "admin@example.com", "correct horse battery"); err != nil {
		t.Fatal(err)
	}
}

func TestAuthenticate(t *testing.T) {
	s, db := newService(t)
	ctx := context.Background()
	u, err := s.CreateUser(ctx, "user@example.com", "a fine password", tts.RoleUser)
	if err != nil {
		t.Fatal(err)
	}
	tok, exp, _, err := s.Login(ctx, "USER@example.com", "a fine password")
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(exp); d < 11*time.Hour || d > 13*time.Hour {
		t.Fatalf("token expires in %v, want the 12 h default", d)
	}
	p, err := s.Authenticate(ctx, tok)
	if err != nil || p.UserID != u.ID || p.Role != tts.RoleUser || p.KeyID != "" {
		t.Fatalf("Authenticate(token) = %+v, %v", p, err)
	}
	// Another secret, another issuer's token: refused.
	other, _ := auth.New(auth.Config{Store: db, Secret: []byte(strings.Repeat("z", 32))})
	foreign, _, _ := other.IssueToken(u)
	if _, err := s.Authenticate(ctx, foreign); tts.ErrorCode(err) != auth.EUNAUTHORIZED {
		t.Fatalf("foreign token: %v", err)
	}
	// A token of a user who no longer exists.
	ghost, _, _ := s.IssueToken(&tts.User{ID: "01a21fa8-0000-7000-8000-000000000000", Role: tts.RoleAdmin})
	if _, err := s.Authenticate(ctx, ghost); tts.ErrorCode(err) != auth.EUNAUTHORIZED {
		t.Fatalf("ghost token: %v", err)
	}
	// Keys: stored hashed, work until revoked.
	secretKey, k, err := s.CreateKey(ctx, u.ID, "script")
	if err != nil {
		t.Fatal(err)
	}
	if k.Hash == secretKey || k.Hash != auth.HashKey(secretKey) || !strings.HasPrefix(secretKey, k.Prefix) {
		t.Fatalf("key stored as %+v", k)
	}
	if p, err := s.Authenticate(ctx, secretKey); err != nil || p.KeyID != k.ID || p.UserID != u.ID {
		t.Fatalf("Authenticate(key) = %+v, %v", p, err)
	}
	if _, err := db.RevokeAPIKey(ctx, k.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, secretKey); tts.ErrorCode(err) != auth.EUNAUTHORIZED {
		t.Fatalf("revoked key: %v", err)
	}
	if _, err := s.Authenticate(ctx, ""); tts.ErrorCode(err) != auth.EUNAUTHORIZED {
		t.Fatalf("empty credential: %v", err)
	}
}

// FuzzAuthenticate: no credential string panics or authenticates, except
// the real ones.
func FuzzAuthenticate(f *testing.F) {
	s, _ := newService(f)
	for _, seed := range []string{"", "ktts_", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "Bearer x", "\x00\xff", strings.Repeat("a", 5000)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, cred string) {
		p, err := s.Authenticate(context.Background(), cred)
		if err == nil {
			t.Fatalf("%q authenticated as %+v", cred, p)
		}
		if c := tts.ErrorCode(err); c != auth.EUNAUTHORIZED {
			t.Fatalf("%q: error code %s (%v), want unauthorized", cred, c, err)
		}
	})
}

func TestLimiter(t *testing.T) {
	r := testsvc.Redis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	l := auth.NewLimiter(rdb, auth.Limits{RequestsPerMinute: 2, DailyChars: 100, LoginsPerMinute: 1})
	user := tts.Principal{UserID: "u1", Role: tts.RoleUser}
	for i := range 2 {
		if err := l.AllowRequest(ctx, user); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	err := l.AllowRequest(ctx, user)
	var le *auth.LimitError
	if !errors.As(err, &le) || tts.ErrorCode(err) != auth.ERATELIMITED || le.RetryAfter < time.Second || le.RetryAfter > time.Minute {
		t.Fatalf("third request: %v", err)
	}
	// Another user, and a key of the first user, have their own budgets —
	// but a key's requests also count against its account.
	if err := l.AllowRequest(ctx, tts.Principal{UserID: "u2", Role: tts.RoleUser}); err != nil {
		t.Fatalf("other user: %v", err)
	}
	if err := l.AllowRequest(ctx, tts.Principal{UserID: "u1", KeyID: "k1", Role: tts.RoleUser}); err == nil {
		t.Fatal("a key of a limited account passed")
	}
	// Quota: charge, refuse past the limit, refund.
	if err := l.ChargeChars(ctx, user, 60); err != nil {
		t.Fatal(err)
	}
	if err := l.ChargeChars(ctx, user, 41); !errors.As(err, &le) || le.RetryAfter > 25*time.Hour {
		t.Fatalf("over quota: %v", err)
	}
	if n, _ := l.Used(ctx, "u1"); n != 60 {
		t.Fatalf("used %d after a refused charge, want 60", n)
	}
	l.RefundChars(ctx, user, 60)
	if err := l.ChargeChars(ctx, user, 100); err != nil {
		t.Fatalf("after refund: %v", err)
	}
	// The quota key expires (a day at most, plus an hour).
	keys, _ := rdb.Keys(ctx, "kokoro:quota:u1:*").Result()
	if len(keys) != 1 {
		t.Fatalf("quota keys %v", keys)
	}
	if ttl := rdb.TTL(ctx, keys[0]).Val(); ttl <= 0 || ttl > 25*time.Hour {
		t.Fatalf("quota key TTL %v", ttl)
	}
	// Admins are never limited.
	admin := tts.Principal{UserID: "a", Role: tts.RoleAdmin}
	for range 5 {
		if err := l.AllowRequest(ctx, admin); err != nil {
			t.Fatal(err)
		}
		if err := l.ChargeChars(ctx, admin, 1000); err != nil {
			t.Fatal(err)
		}
	}
	// Logins: per address and per email.
	if err := l.AllowLogin(ctx, "192.0.2.1", "a@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := l.AllowLogin(ctx, "192.0.2.2", "a@example.com"); err == nil {
		t.Fatal("a second login for one email within the minute passed")
	}
	if err := l.AllowLogin(ctx, "192.0.2.1", "b@example.com"); err == nil {
		t.Fatal("a second login from one address within the minute passed")
	}
}

// BenchmarkAuthenticate measures what authentication adds to each request:
// verifying a token or hashing a key, plus reading the account.
func BenchmarkAuthenticate(b *testing.B) {
	s, _ := newService(b)
	ctx := context.Background()
	u, err := s.CreateUser(ctx, "bench@example.com", "a benchmark password", tts.RoleUser)
	if err != nil {
		b.Fatal(err)
	}
	tok, _, err := s.IssueToken(u)
	if err != nil {
		b.Fatal(err)
	}
	key, _, err := s.CreateKey(ctx, u.ID, "bench")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, cred string }{{"token", tok}, {"key", key}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Authenticate(ctx, c.cred); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLogin measures a log-in at bcrypt's default cost (10), which is
// what bounds log-in throughput.
func BenchmarkLogin(b *testing.B) {
	ctx := context.Background()
	db := testsvc.Store(b)
	s, err := auth.New(auth.Config{Store: db, Secret: []byte(secret)})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, "bench@example.com", "a benchmark password", tts.RoleUser); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, _, err := s.Login(ctx, "bench@example.com", "a benchmark password"); err != nil {
			b.Fatal(err)
		}
	}
}
