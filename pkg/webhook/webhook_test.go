package webhook

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	secret, body, now := []byte("0123456789abcdef"), []byte(`{"type":"succeeded"}`), time.Now()
	h := Sign(secret, now, body)
	if err := Verify(secret, h, body, now, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]func() error{
		"other body":   func() error { return Verify(secret, h, []byte(`{}`), now, time.Minute) },
		"other secret": func() error { return Verify([]byte("x"), h, body, now, time.Minute) },
		"too old":      func() error { return Verify(secret, h, body, now.Add(10*time.Minute), 5*time.Minute) },
		"garbage":      func() error { return Verify(secret, "v1=abc", body, now, time.Minute) },
	} {
		if bad() == nil {
			t.Errorf("%s verified", name)
		}
	}
}

func TestCheckURL(t *testing.T) {
	for u, ok := range map[string]bool{
		"https://example.com/hook":             true,
		"http://93.184.216.34:8080/x":          true,
		"ftp://example.com/":                   false,
		"/relative":                            false,
		"https://user:pw@example.com/":         false,
		"http://localhost:9000/":               false,
		"http://api.localhost/":                false,
		"http://127.0.0.1/":                    false,
		"http://[::1]/":                        false,
		"http://10.1.2.3/":                     false,
		"http://192.168.0.10/":                 false,
		"http://172.16.0.1/":                   false,
		"http://169.254.169.254/latest":        false, // cloud metadata
		"http://100.64.0.1/":                   false,
		"http://0.0.0.0/":                      false,
		"https://" + strings.Repeat("a", 2050): false,
	} {
		if err := CheckURL(u, false); (err == nil) != ok {
			t.Errorf("CheckURL(%q) = %v, want ok=%v", u, err, ok)
		}
	}
	if err := CheckURL("http://127.0.0.1:8080/", true); err != nil {
		t.Errorf("allowPrivate refused loopback: %v", err)
	}
}

func TestSenderRefusesPrivateAddressesAtDial(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	err := NewSender("0123456789abcdef", 5*time.Second, false).Deliver(context.Background(), srv.URL, "e1", []byte(`{}`))
	if !errors.Is(err, ErrPermanent) || hits.Load() != 0 {
		t.Fatalf("delivery to loopback: %v (hits %d)", err, hits.Load())
	}
}

func TestDeliverSignsAndClassifies(t *testing.T) {
	secret := "0123456789abcdef"
	var status atomic.Int32
	status.Store(200)
	var got struct {
		sig, id, body string
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.sig, got.id, got.body = r.Header.Get(HeaderSignature), r.Header.Get(HeaderEventID), string(b)
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	s := NewSender(secret, 5*time.Second, true)
	if err := s.Deliver(context.Background(), srv.URL, "job:succeeded", []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	if got.id != "job:succeeded" || got.body != `{"a":1}` || Verify([]byte(secret), got.sig, []byte(got.body), time.Now(), time.Minute) != nil {
		t.Fatalf("delivery %+v", got)
	}
	status.Store(500)
	if err := s.Deliver(context.Background(), srv.URL, "e", []byte(`{}`)); err == nil || errors.Is(err, ErrPermanent) {
		t.Fatalf("500 must be retried: %v", err)
	}
	status.Store(410)
	if err := s.Deliver(context.Background(), srv.URL, "e", []byte(`{}`)); !errors.Is(err, ErrPermanent) {
		t.Fatalf("410 must stop: %v", err)
	}
	status.Store(302)
	if err := s.Deliver(context.Background(), srv.URL, "e", []byte(`{}`)); err == nil {
		t.Fatal("redirects are not followed and not success")
	}
}
