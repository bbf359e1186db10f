package s3_test

import (
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
	"github.com/kokorotts/kokoro-tts/storage"
	"github.com/kokorotts/kokoro-tts/storage/s3"
	"github.com/kokorotts/kokoro-tts/storage/storagetest"
)

// bucketName returns a fresh, valid bucket name.
func bucketName() string {
	return "test-" + strings.ToLower(rand.Text())
}

func config(srv testsvc.MinIOServer, bucket string) s3.Config {
	return s3.Config{
		Endpoint:     srv.Endpoint,
		Bucket:       bucket,
		AccessKey:    srv.AccessKey,
		SecretKey:    srv.SecretKey,
		CreateBucket: true,
	}
}

func newStore(t *testing.T, cfg s3.Config) *s3.Store {
	t.Helper()
	s, err := s3.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("s3.New: %v", err)
	}
	return s
}

// TestS3 runs everything that needs a server against one MinIO.
func TestS3(t *testing.T) {
	srv := testsvc.MinIO(t)
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, testsvc.MinIOServer)
	}{
		{"Conformance", testConformance},
		{"BucketCreation", testBucketCreation},
		{"WrongCredentials", testWrongCredentials},
		{"PresignExpires", testPresignExpires},
		{"PresignPublicEndpoint", testPresignPublicEndpoint},
		{"LongBodyMultipart", testLongBodyMultipart},
		{"AbandonedMultipartRemoved", testAbandonedMultipartRemoved},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, srv) })
	}
}

func testConformance(t *testing.T, srv testsvc.MinIOServer) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return newStore(t, config(srv, bucketName()))
	})
}

func testBucketCreation(t *testing.T, srv testsvc.MinIOServer) {
	ctx := t.Context()
	bucket := bucketName()

	cfg := config(srv, bucket)
	cfg.CreateBucket = false
	s := newStore(t, cfg)
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping succeeded on a missing bucket")
	}
	// A missing bucket is a configuration error, not a missing object.
	if _, err := s.Stat(ctx, "k"); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat in a missing bucket: error = %v; want an error that is not storage.ErrNotFound", err)
	}
	if _, err := s.Put(ctx, "k", strings.NewReader("x"), 1, ""); err == nil {
		t.Error("Put into a missing bucket succeeded")
	}

	// API and worker start together: concurrent creators must all succeed.
	cfg.CreateBucket = true
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := s3.New(ctx, cfg); err != nil {
				t.Errorf("s3.New with CreateBucket: %v", err)
			}
		})
	}
	wg.Wait()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after creation: %v", err)
	}
	if _, err := s.Put(ctx, "k", strings.NewReader("x"), 1, ""); err != nil {
		t.Fatalf("Put after creation: %v", err)
	}
	// Creating again leaves the bucket and its objects alone.
	newStore(t, cfg)
	if info, err := s.Stat(ctx, "k"); err != nil || info.Size != 1 {
		t.Errorf("Stat after re-creating = %+v, %v", info, err)
	}
}

func testWrongCredentials(t *testing.T, srv testsvc.MinIOServer) {
	bucket := bucketName()
	newStore(t, config(srv, bucket))
	cfg := config(srv, bucket)
	cfg.CreateBucket = false
	cfg.SecretKey = "wrong-secret"
	s := newStore(t, cfg)
	if err := s.Ping(t.Context()); err == nil {
		t.Error("Ping with a wrong secret key succeeded")
	}
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return resp.StatusCode, string(b)
}

func testPresignExpires(t *testing.T, srv testsvc.MinIOServer) {
	s := newStore(t, config(srv, bucketName()))
	if _, err := s.Put(t.Context(), "short.txt", strings.NewReader("short-lived"), -1, "text/plain"); err != nil {
		t.Fatal(err)
	}
	u, err := s.PresignGet(t.Context(), "short.txt", time.Second)
	if err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
	time.Sleep(2 * time.Second)
	code, body := get(t, u)
	if code != http.StatusForbidden || !strings.Contains(body, "expired") {
		t.Errorf("GET of an expired URL = %d %.200q; want 403 with an expiry error", code, body)
	}
	for _, expiry := range []time.Duration{0, 500 * time.Millisecond, 8 * 24 * time.Hour} {
		if _, err := s.PresignGet(t.Context(), "short.txt", expiry); err == nil {
			t.Errorf("PresignGet with expiry %v succeeded", expiry)
		}
	}
}

func testPresignPublicEndpoint(t *testing.T, srv testsvc.MinIOServer) {
	bucket := bucketName()
	newStore(t, config(srv, bucket))
	_, port, _ := strings.Cut(srv.Endpoint, ":")

	// The same server under another name, as a client outside would see it;
	// without Region the store looks the region up.
	cfg := config(srv, bucket)
	cfg.PublicEndpoint = "http://localhost:" + port
	s := newStore(t, cfg)
	if _, err := s.Put(t.Context(), "pub/file.mp3", strings.NewReader("public bytes"), 12, "audio/mpeg"); err != nil {
		t.Fatal(err)
	}
	u, err := s.PresignGet(t.Context(), "pub/file.mp3", time.Minute)
	if err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
	if pu, err := url.Parse(u); err != nil || pu.Host != "localhost:"+port || pu.Scheme != "http" {
		t.Fatalf("presigned URL %q; want it on http://localhost:%s", u, port)
	}
	if code, body := get(t, u); code != http.StatusOK || body != "public bytes" {
		t.Errorf("GET presigned public URL = %d %.200q", code, body)
	}

	// With Region set nothing is dialled: a host that cannot resolve works,
	// and the scheme comes from the URL.
	cfg.PublicEndpoint = "https://files.invalid"
	cfg.Region = "us-east-1"
	s = newStore(t, cfg)
	u, err = s.PresignGet(t.Context(), "pub/file.mp3", time.Minute)
	if err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
	if !strings.HasPrefix(u, "https://files.invalid/"+bucket+"/pub/file.mp3?") {
		t.Errorf("presigned URL %q; want it on https://files.invalid", u)
	}
}

func TestConfigErrors(t *testing.T) {
	base := s3.Config{Endpoint: "127.0.0.1:1", Bucket: "audio", Region: "us-east-1"}
	for name, mutate := range map[string]func(*s3.Config){
		"no endpoint":         func(c *s3.Config) { c.Endpoint = "" },
		"endpoint scheme":     func(c *s3.Config) { c.Endpoint = "http://127.0.0.1:9000" },
		"endpoint path":       func(c *s3.Config) { c.Endpoint = "127.0.0.1:9000/x" },
		"no bucket":           func(c *s3.Config) { c.Bucket = "" },
		"bad bucket":          func(c *s3.Config) { c.Bucket = "Under_Score" },
		"public path":         func(c *s3.Config) { c.PublicEndpoint = "https://files.example.com/s3" },
		"public query":        func(c *s3.Config) { c.PublicEndpoint = "https://files.example.com?x=1" },
		"public scheme":       func(c *s3.Config) { c.PublicEndpoint = "ftp://files.example.com" },
		"public without host": func(c *s3.Config) { c.PublicEndpoint = "https://" },
	} {
		cfg := base
		mutate(&cfg)
		if _, err := s3.New(t.Context(), cfg); err == nil {
			t.Errorf("%s: New(%+v) succeeded", name, cfg)
		}
	}
	// Without CreateBucket, and with Region set, New does not dial.
	cfg := base
	cfg.PublicEndpoint = "files.example.com"
	if _, err := s3.New(t.Context(), cfg); err != nil {
		t.Errorf("New(%+v) = %v; want no error without contacting the server", cfg, err)
	}
}

// testLongBodyMultipart covers bodies above the single-PUT limit, which
// minio-go uploads in parts of exactly the declared size: without a check,
// the bytes beyond it would be dropped and a truncated object stored.
func testLongBodyMultipart(t *testing.T, srv testsvc.MinIOServer) {
	s := newStore(t, config(srv, bucketName()))
	const declared = 16<<20 + 1 // minio-go's default part size, plus one
	body := io.LimitReader(zeros{}, declared+1)
	if _, err := s.Put(t.Context(), "long.bin", body, declared, ""); err == nil {
		t.Error("Put of a body longer than its declared size succeeded")
	}
	if info, err := s.Stat(t.Context(), "long.bin"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat = %+v, %v; want storage.ErrNotFound", info, err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func BenchmarkS3(b *testing.B) {
	srv := testsvc.MinIO(b)
	s, err := s3.New(b.Context(), config(srv, bucketName()))
	if err != nil {
		b.Fatal(err)
	}
	storagetest.Benchmark(b, s)
}

// testAbandonedMultipartRemoved: a multipart upload that its writer never
// finished (a worker killed mid-upload) is removed by the next Put of the
// key and by Delete, so a dead writer's parts do not stay in the bucket.
func testAbandonedMultipartRemoved(t *testing.T, srv testsvc.MinIOServer) {
	ctx := t.Context()
	bucket := bucketName()
	s := newStore(t, config(srv, bucket))
	core, err := minio.NewCore(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	incomplete := func(key string) int {
		n := 0
		for u := range core.ListIncompleteUploads(ctx, bucket, key, true) {
			if u.Err != nil {
				t.Fatal(u.Err)
			}
			n++
		}
		return n
	}
	abandon := func(key string) {
		t.Helper()
		id, err := core.NewMultipartUpload(ctx, bucket, key, minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		part := strings.Repeat("p", 5<<20)
		if _, err := core.PutObjectPart(ctx, bucket, key, id, 1, strings.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{}); err != nil {
			t.Fatal(err)
		}
		if n := incomplete(key); n != 1 {
			t.Fatalf("%d incomplete uploads of %s after abandoning one", n, key)
		}
	}

	abandon("jobs/a/audio.wav")
	abandon("jobs/other/audio.wav")
	if _, err := s.Put(ctx, "jobs/a/audio.wav", strings.NewReader("RIFF"), 4, "audio/wav"); err != nil {
		t.Fatal(err)
	}
	if n := incomplete("jobs/a/audio.wav"); n != 0 {
		t.Errorf("Put left %d incomplete uploads of its key", n)
	}
	if n := incomplete("jobs/other/audio.wav"); n != 1 {
		t.Errorf("Put of another key touched this key's upload: %d left", n)
	}
	abandon("jobs/b/audio.wav")
	if err := s.Delete(ctx, "jobs/b/audio.wav"); err != nil {
		t.Fatal(err)
	}
	if n := incomplete("jobs/b/audio.wav"); n != 0 {
		t.Errorf("Delete left %d incomplete uploads of its key", n)
	}
}
