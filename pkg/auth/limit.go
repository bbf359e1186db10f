package auth

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// ERATELIMITED is the error code of a refused request (429 with
// Retry-After).
const ERATELIMITED = "rate_limited"

// LimitError is a refusal with the time after which a retry may succeed.
type LimitError struct {
	Err        *tts.Error
	RetryAfter time.Duration
}

func (e *LimitError) Error() string { return e.Err.Error() }
func (e *LimitError) Unwrap() error { return e.Err }

// Limits configures the Limiter. Zero disables a limit.
type Limits struct {
	// RequestsPerMinute bounds each account's (and each API key's) API
	// requests.
	RequestsPerMinute int
	// DailyChars bounds the characters each account submits per UTC day.
	DailyChars int
	// LoginsPerMinute bounds login attempts per client address and per
	// email.
	LoginsPerMinute int
}

// Limiter keeps rate limits and quotas in Redis, so that every API replica
// shares them.
type Limiter struct {
	rdb    redis.UniversalClient
	rate   *redis_rate.Limiter
	limits Limits
	now    func() time.Time
}

// NewLimiter builds a Limiter on rdb.
func NewLimiter(rdb redis.UniversalClient, l Limits) *Limiter {
	return &Limiter{rdb: rdb, rate: redis_rate.NewLimiter(rdb), limits: l, now: time.Now}
}

// Limits returns the configured limits.
func (l *Limiter) Limits() Limits { return l.limits }

// callTimeout bounds each call to Redis: a limit is checked on every
// request, and a Redis that hangs must cost a request this much, not
// go-redis's read timeout on every retry (the client must honour context
// deadlines: config.RedisClient).
const callTimeout = time.Second

func limited(retry time.Duration, format string, args ...any) error {
	return &LimitError{Err: tts.Errorf(ERATELIMITED, format, args...), RetryAfter: max(retry, time.Second)}
}

// AllowRequest counts one request of the principal (by account, and by key
// when one is used). Admins are not limited.
func (l *Limiter) AllowRequest(ctx context.Context, p tts.Principal) error {
	if l == nil || l.limits.RequestsPerMinute <= 0 || p.Admin() || p.UserID == "" {
		return nil
	}
	keys := []string{"kokoro:rl:user:" + p.UserID}
	if p.KeyID != "" {
		keys = append(keys, "kokoro:rl:key:"+p.KeyID)
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	for _, k := range keys {
		res, err := l.rate.Allow(ctx, k, redis_rate.PerMinute(l.limits.RequestsPerMinute))
		if err != nil {
			return tts.Wrap(tts.EUNAVAILABLE, err, "rate limiter unavailable")
		}
		if res.Allowed == 0 {
			return limited(res.RetryAfter, "too many requests: at most %d a minute; retry later", l.limits.RequestsPerMinute)
		}
	}
	return nil
}

// AllowLogin counts one login attempt from a client address for an email.
func (l *Limiter) AllowLogin(ctx context.Context, clientIP, email string) error {
	if l == nil || l.limits.LoginsPerMinute <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	for _, k := range []string{"kokoro:rl:login-ip:" + clientIP, "kokoro:rl:login-email:" + email} {
		res, err := l.rate.Allow(ctx, k, redis_rate.PerMinute(l.limits.LoginsPerMinute))
		if err != nil {
			return tts.Wrap(tts.EUNAVAILABLE, err, "rate limiter unavailable")
		}
		if res.Allowed == 0 {
			return limited(res.RetryAfter, "too many login attempts: retry later")
		}
	}
	return nil
}

// chargeScript adds ARGV[1] to the day's counter unless that passes the
// quota ARGV[2]; it returns the new total, or -1 when refused. The key
// expires a day after its last change at the latest.
var chargeScript = redis.NewScript(`
local used = tonumber(redis.call("GET", KEYS[1]) or "0")
local n = tonumber(ARGV[1])
if used + n > tonumber(ARGV[2]) then
  return -1
end
local total = redis.call("INCRBY", KEYS[1], n)
redis.call("EXPIRE", KEYS[1], tonumber(ARGV[3]))
return total
`)

// ChargeChars takes chars from the account's daily character quota
// (UTC days). Admins and unscoped callers are not charged.
func (l *Limiter) ChargeChars(ctx context.Context, p tts.Principal, chars int) error {
	if l == nil || l.limits.DailyChars <= 0 || p.Admin() || p.UserID == "" || chars <= 0 {
		return nil
	}
	now := l.now().UTC()
	tomorrow := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
	key := fmt.Sprintf("kokoro:quota:%s:%s", p.UserID, now.Format("2006-01-02"))
	ttl := int(tomorrow.Sub(now).Seconds()) + 3600
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	v, err := chargeScript.Run(ctx, l.rdb, []string{key}, chars, l.limits.DailyChars, ttl).Int64()
	if err != nil {
		return tts.Wrap(tts.EUNAVAILABLE, err, "quota store unavailable")
	}
	if v < 0 {
		return limited(tomorrow.Sub(now), "daily character quota of %d exceeded; it resets at %s", l.limits.DailyChars, tomorrow.Format(time.RFC3339))
	}
	return nil
}

// RefundChars gives back characters charged for a request that was then
// refused (validation failed, the queue was down).
func (l *Limiter) RefundChars(ctx context.Context, p tts.Principal, chars int) {
	if l == nil || l.limits.DailyChars <= 0 || p.Admin() || p.UserID == "" || chars <= 0 {
		return
	}
	key := fmt.Sprintf("kokoro:quota:%s:%s", p.UserID, l.now().UTC().Format("2006-01-02"))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	l.rdb.DecrBy(ctx, key, int64(chars))
}

// Used returns the characters the account has used today.
func (l *Limiter) Used(ctx context.Context, userID string) (int, error) {
	key := fmt.Sprintf("kokoro:quota:%s:%s", userID, l.now().UTC().Format("2006-01-02"))
	n, err := l.rdb.Get(ctx, key).Int()
	if err == redis.Nil {
		return 0, nil
	}
	return n, err
}
