// Package webhook delivers a job's terminal event to the job's callback URL:
// an HTTP POST of the event JSON, signed with HMAC-SHA256 over a timestamp
// and the body, retried with backoff through the queue, with an event id for
// de-duplication, and never to loopback or private addresses unless allowed.
//
// Receivers verify a delivery like this:
//
//	Kokoro-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//	Kokoro-Event-Id:  <job id>:<event type>   (the same on every retry)
//
// recompute the HMAC over the timestamp, a dot and the raw body, compare in
// constant time, and reject timestamps more than a few minutes old.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Header names of a delivery.
const (
	HeaderSignature = "Kokoro-Signature"
	HeaderEventID   = "Kokoro-Event-Id"
)

// Sign returns the signature header value for body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature header against body, accepting timestamps
// within tolerance of now. Receivers (and tests) use it.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return errors.New("webhook: malformed signature header")
	}
	if d := now.Sub(time.Unix(n, 0)); d > tolerance || d < -tolerance {
		return errors.New("webhook: timestamp outside the tolerance")
	}
	want := Sign(secret, time.Unix(n, 0), body)
	if !hmac.Equal([]byte(want), []byte("t="+ts+",v1="+sig)) {
		return errors.New("webhook: signature mismatch")
	}
	return nil
}

// CheckURL says whether u may be a callback URL: absolute http or https
// with a host, at most 2048 bytes, and, unless allowPrivate, not naming
// localhost or a loopback, private or link-local address literally (names
// are checked again when the delivery connects).
func CheckURL(u string, allowPrivate bool) error {
	if len(u) > 2048 {
		return errors.New("must be at most 2048 characters")
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.User != nil {
		return errors.New("must be an absolute http or https URL without credentials")
	}
	if allowPrivate {
		return nil
	}
	host := strings.ToLower(p.Hostname())
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return errors.New("must not point to this machine")
	}
	if ip, err := netip.ParseAddr(host); err == nil && !publicAddr(ip) {
		return errors.New("must not point to a loopback, private or link-local address")
	}
	return nil
}

// cgnat is 100.64.0.0/10, shared address space that is not public either.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

func publicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsGlobalUnicast() && !ip.IsPrivate() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() && !cgnat.Contains(ip)
}

// ErrPermanent marks a delivery that must not be retried (the receiver said
// 410 Gone, or the URL is not allowed).
var ErrPermanent = errors.New("webhook: permanent failure")

// Sender posts signed events.
type Sender struct {
	secret []byte
	client *http.Client
}

// NewSender returns a Sender. Unless allowPrivate, its connections refuse
// loopback, private, link-local and shared addresses at dial time, after
// DNS resolution, so a name cannot be rebound to an internal address.
// Redirects are not followed.
func NewSender(secret string, timeout time.Duration, allowPrivate bool) *Sender {
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	if !allowPrivate {
		dialer.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !publicAddr(ap.Addr()) {
				return fmt.Errorf("%w: %s is not a public address", ErrPermanent, address)
			}
			return nil
		}
	}
	return &Sender{secret: []byte(secret), client: &http.Client{
		Timeout:       timeout,
		Transport:     &http.Transport{DialContext: dialer.DialContext, Proxy: nil, MaxIdleConnsPerHost: 4},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Deliver posts body to url with the signature and event id headers. A 2xx
// answer is success; 410 Gone and refused addresses wrap ErrPermanent;
// anything else is an error to retry.
func (s *Sender) Deliver(ctx context.Context, url, eventID string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "kokoro-tts-webhook/1")
	req.Header.Set(HeaderEventID, eventID)
	req.Header.Set(HeaderSignature, Sign(s.secret, time.Now(), body))
	res, err := s.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrPermanent) {
			return err
		}
		return fmt.Errorf("webhook: %w", err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300:
		return nil
	case res.StatusCode == http.StatusGone:
		return fmt.Errorf("%w: the receiver answered 410 Gone", ErrPermanent)
	}
	return fmt.Errorf("webhook: the receiver answered %d", res.StatusCode)
}
