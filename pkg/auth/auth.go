// Package auth authenticates API callers: accounts with bcrypt passwords,
// HS256 JWTs issued at login, and API keys stored as SHA-256 hashes. It
// turns a credential into a tts.Principal; pkg/httpapi decides which routes
// need one.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// Error codes of this package (mapped to 401 and 403 by the API).
const (
	EUNAUTHORIZED = "unauthorized"
	EFORBIDDEN    = "forbidden"
)

// KeyPrefix starts every API key, so that a key is told from a JWT at a
// glance (and by secret scanners).
const KeyPrefix = "ktts_"

// MinSecretBytes is the shortest JWT_SECRET accepted.
const MinSecretBytes = 32

// MinPasswordChars is the shortest password accepted.
const MinPasswordChars = 12

const issuer = "kokoro-tts"

// knownDefaults are passwords that ship in examples and tutorials; they are
// refused whatever their length.
var knownDefaults = []string{
	"admin", "administrator", "password", "changeme", "change-me", "change_me", "secret", "kokoro", "kokoro-tts",
	"letmein", "welcome", "qwerty", "123456", "12345678", "123456789", "1234567890", "password123", "admin123",
	"change-me-to-a-long-random-password", "changeme123", "changemechangeme",
}

// Config configures a Service.
type Config struct {
	Store tts.AccountStore
	// Secret signs the tokens (at least MinSecretBytes).
	Secret []byte
	// TokenTTL is how long a login token lasts; default 12 h.
	TokenTTL time.Duration
	// BcryptCost defaults to bcrypt.DefaultCost.
	BcryptCost int
	Logger     *slog.Logger
	Now        func() time.Time
}

// Service authenticates callers and manages accounts.
type Service struct {
	cfg       Config
	dummyHash []byte // compared against when the email is unknown, so both paths cost one bcrypt
}

// New builds a Service; it refuses a short secret.
func New(cfg Config) (*Service, error) {
	if len(cfg.Secret) < MinSecretBytes {
		return nil, fmt.Errorf("JWT_SECRET: at least %d bytes (generate one with: openssl rand -hex 32)", MinSecretBytes)
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 12 * time.Hour
	}
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = bcrypt.DefaultCost
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("not a password of anyone"), cfg.BcryptCost)
	if err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, dummyHash: dummy}, nil
}

// TokenTTL returns how long login tokens last.
func (s *Service) TokenTTL() time.Duration { return s.cfg.TokenTTL }

func unauthorized(msg string) error { return tts.Errorf(EUNAUTHORIZED, "%s", msg) }

// CheckPassword enforces the password policy.
func CheckPassword(password string) error {
	n := utf8.RuneCountInString(password)
	if n < MinPasswordChars {
		return tts.Errorf(tts.EINVALID, "password: at least %d characters", MinPasswordChars)
	}
	if n > 72 || len(password) > 72 {
		return tts.Errorf(tts.EINVALID, "password: at most 72 bytes (bcrypt's limit)")
	}
	lower := strings.ToLower(password)
	for _, d := range knownDefaults {
		if lower == d {
			return tts.Errorf(tts.EINVALID, "password: a well-known default password is not allowed")
		}
	}
	if strings.Count(lower, lower[:1]) == len(lower) {
		return tts.Errorf(tts.EINVALID, "password: must not repeat one character")
	}
	return nil
}

// NormalizeEmail checks an email address and returns it lower-case.
func NormalizeEmail(email string) (string, error) {
	e := strings.TrimSpace(email)
	if e == "" {
		return "", tts.Errorf(tts.EINVALID, "email: required")
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || len(e) > 254 {
		return "", tts.Errorf(tts.EINVALID, "email: not a valid address (give a bare address like teacher@example.com)")
	}
	return strings.ToLower(e), nil
}

// HashPassword returns the bcrypt hash of password.
func (s *Service) HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), s.cfg.BcryptCost)
	if err != nil {
		return "", tts.Wrap(tts.EINTERNAL, err, "hash password")
	}
	return string(h), nil
}

// CreateUser checks and stores a new account.
func (s *Service) CreateUser(ctx context.Context, email, password string, role tts.Role) (*tts.User, error) {
	e, err := NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	if role == "" {
		role = tts.RoleUser
	}
	if !role.Valid() {
		return nil, tts.Errorf(tts.EINVALID, "role: must be admin or user")
	}
	if err := CheckPassword(password); err != nil {
		return nil, err
	}
	h, err := s.HashPassword(password)
	if err != nil {
		return nil, err
	}
	return s.cfg.Store.CreateUser(ctx, &tts.User{Email: e, Role: role, PasswordHash: h})
}

// SetPassword checks and stores a new password for a user.
func (s *Service) SetPassword(ctx context.Context, userID, password string) (*tts.User, error) {
	if err := CheckPassword(password); err != nil {
		return nil, err
	}
	h, err := s.HashPassword(password)
	if err != nil {
		return nil, err
	}
	return s.cfg.Store.UpdateUser(ctx, userID, tts.UserPatch{PasswordHash: &h, EndSessions: true})
}

// EndSessions invalidates every token of the account (log-out); its API
// keys keep working.
func (s *Service) EndSessions(ctx context.Context, userID string) error {
	_, err := s.cfg.Store.UpdateUser(ctx, userID, tts.UserPatch{EndSessions: true})
	return err
}

// EnsureAdmin creates the first admin from ADMIN_EMAIL and ADMIN_PASSWORD
// when no enabled admin exists. It refuses a weak password.
func (s *Service) EnsureAdmin(ctx context.Context, email, password string) (*tts.User, bool, error) {
	n, err := s.cfg.Store.CountAdmins(ctx)
	if err != nil {
		return nil, false, err
	}
	if n > 0 {
		return nil, false, nil
	}
	if email == "" || password == "" {
		return nil, false, errors.New("ADMIN_EMAIL and ADMIN_PASSWORD: required to create the first admin account (no admin exists yet)")
	}
	if err := CheckPassword(password); err != nil {
		return nil, false, fmt.Errorf("ADMIN_PASSWORD: %s", tts.ErrorMessage(err))
	}
	if existing, err := s.cfg.Store.FindUserByEmail(ctx, email); err == nil {
		// The account exists but is not an enabled admin: make it one, with
		// the configured password (the operator asked for this account).
		h, err := s.HashPassword(password)
		if err != nil {
			return nil, false, err
		}
		role, enabled := tts.RoleAdmin, false
		u, err := s.cfg.Store.UpdateUser(ctx, existing.ID, tts.UserPatch{Role: &role, Disabled: &enabled, PasswordHash: &h, EndSessions: true})
		return u, err == nil, err
	}
	u, err := s.CreateUser(ctx, email, password, tts.RoleAdmin)
	if err != nil {
		return nil, false, fmt.Errorf("ADMIN_EMAIL: %s", tts.ErrorMessage(err))
	}
	return u, true, nil
}

// Login checks an email and password and issues a token. Unknown email,
// wrong password and disabled account answer the same.
func (s *Service) Login(ctx context.Context, email, password string) (string, time.Time, *tts.User, error) {
	bad := unauthorized("wrong email or password")
	u, err := s.cfg.Store.FindUserByEmail(ctx, strings.TrimSpace(email))
	if tts.ErrorCode(err) == tts.ENOTFOUND {
		_ = bcrypt.CompareHashAndPassword(s.dummyHash, []byte(password))
		return "", time.Time{}, nil, bad
	} else if err != nil {
		return "", time.Time{}, nil, err
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil || u.Disabled {
		return "", time.Time{}, nil, bad
	}
	tok, exp, err := s.IssueToken(u)
	if err != nil {
		return "", time.Time{}, nil, err
	}
	if err := s.cfg.Store.TouchLogin(ctx, u.ID, s.cfg.Now()); err != nil {
		s.cfg.Logger.Warn("could not record a login", "user_id", u.ID, "err", err)
	}
	return tok, exp, u, nil
}

// claims are the token's claims: the standard ones plus the role and email
// as they were at login (the role that counts is re-read on every request).
type claims struct {
	Email   string `json:"email"`
	Role    string `json:"role"`
	Version int    `json:"ver"` // the account's TokenVersion at issue
	jwt.RegisteredClaims
}

// IssueToken signs a token for u.
func (s *Service) IssueToken(u *tts.User) (string, time.Time, error) {
	now := s.cfg.Now()
	exp := now.Add(s.cfg.TokenTTL).Truncate(time.Second)
	jti := make([]byte, 12)
	_, _ = rand.Read(jti)
	c := claims{Email: u.Email, Role: string(u.Role), Version: u.TokenVersion, RegisteredClaims: jwt.RegisteredClaims{
		Issuer: issuer, Subject: u.ID, IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
		ExpiresAt: jwt.NewNumericDate(exp), ID: hex.EncodeToString(jti),
	}}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.cfg.Secret)
	if err != nil {
		return "", time.Time{}, tts.Wrap(tts.EINTERNAL, err, "sign token")
	}
	return tok, exp, nil
}

// Authenticate turns a bearer credential (a token or an API key) into the
// principal it stands for. Expired, tampered or foreign tokens, unknown or
// revoked keys and disabled accounts are EUNAUTHORIZED.
func (s *Service) Authenticate(ctx context.Context, credential string) (tts.Principal, error) {
	if credential == "" {
		return tts.Principal{}, unauthorized("authentication required: send Authorization: Bearer <token or API key>")
	}
	if strings.HasPrefix(credential, KeyPrefix) {
		return s.authenticateKey(ctx, credential)
	}
	var c claims
	_, err := jwt.ParseWithClaims(credential, &c, func(*jwt.Token) (any, error) { return s.cfg.Secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithTimeFunc(s.cfg.Now))
	if errors.Is(err, jwt.ErrTokenExpired) {
		return tts.Principal{}, unauthorized("the token has expired: log in again")
	} else if err != nil {
		return tts.Principal{}, unauthorized("the token is not valid")
	}
	u, err := s.cfg.Store.FindUser(ctx, c.Subject)
	if tts.ErrorCode(err) == tts.ENOTFOUND || (err == nil && u.Disabled) {
		return tts.Principal{}, unauthorized("the account is disabled or no longer exists")
	} else if err != nil {
		return tts.Principal{}, err
	}
	if c.Version != u.TokenVersion {
		return tts.Principal{}, unauthorized("the session has ended (logged out or password changed): log in again")
	}
	return tts.Principal{UserID: u.ID, Email: u.Email, Role: u.Role}, nil
}

// HashKey returns the stored form of an API key's secret.
func HashKey(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

func (s *Service) authenticateKey(ctx context.Context, secret string) (tts.Principal, error) {
	k, err := s.cfg.Store.FindAPIKeyByHash(ctx, HashKey(secret))
	if tts.ErrorCode(err) == tts.ENOTFOUND {
		return tts.Principal{}, unauthorized("the API key is not valid")
	} else if err != nil {
		return tts.Principal{}, err
	}
	if k.RevokedAt != nil {
		return tts.Principal{}, unauthorized("the API key has been revoked")
	}
	u, err := s.cfg.Store.FindUser(ctx, k.UserID)
	if err != nil {
		return tts.Principal{}, err
	}
	if u.Disabled {
		return tts.Principal{}, unauthorized("the account is disabled")
	}
	now := s.cfg.Now()
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) > time.Minute {
		if err := s.cfg.Store.TouchAPIKey(ctx, k.ID, now); err != nil {
			s.cfg.Logger.Warn("could not record an API key use", "key_id", k.ID, "err", err)
		}
	}
	return tts.Principal{UserID: u.ID, Email: u.Email, Role: u.Role, KeyID: k.ID}, nil
}

// CreateKey makes a new API key for a user and returns its secret (shown
// once) with the stored key.
func (s *Service) CreateKey(ctx context.Context, userID, name string) (string, *tts.APIKey, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		name = "API key"
	}
	if utf8.RuneCountInString(name) > 100 || !utf8.ValidString(name) {
		return "", nil, tts.Errorf(tts.EINVALID, "name: at most 100 characters")
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", nil, tts.Wrap(tts.EINTERNAL, err, "generate key")
	}
	secret := KeyPrefix + base64.RawURLEncoding.EncodeToString(raw)
	k, err := s.cfg.Store.CreateAPIKey(ctx, &tts.APIKey{UserID: userID, Name: name, Prefix: secret[:len(KeyPrefix)+6], Hash: HashKey(secret)})
	if err != nil {
		return "", nil, err
	}
	return secret, k, nil
}
