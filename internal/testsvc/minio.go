// Package testsvc starts the real services tests need.
package testsvc

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// MinIOServer is a running MinIO server on the loopback interface.
type MinIOServer struct {
	// Endpoint is "127.0.0.1:port" (plain HTTP).
	Endpoint string
	// AccessKey and SecretKey are the root credentials.
	AccessKey string
	SecretKey string
}

// minioStartTimeout bounds how long a server may take to become healthy; it
// is generous because the race detector and a busy 2-core machine slow
// MinIO's start a lot.
const minioStartTimeout = 60 * time.Second

// MinIO starts a MinIO server with an empty data directory for the test and
// stops it when the test ends. Each call starts its own server (about a
// second); share one across subtests by calling MinIO in the parent test.
//
// The binary is $MINIO_BIN, else ~/.cache/kokoro-tts/minio/bin/minio (for
// root and for $HOME), else minio on $PATH. If there is none the test is
// skipped, or fails when CI=true; scripts/ensure-minio.sh installs it.
func MinIO(t testing.TB) MinIOServer {
	t.Helper()
	bin, err := findMinIO()
	if err != nil {
		msg := fmt.Sprintf("MinIO server binary not found (%v); run scripts/ensure-minio.sh or set MINIO_BIN", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	srv := MinIOServer{AccessKey: "testsvc-" + rand.Text()[:8], SecretKey: rand.Text()}
	dir := t.TempDir()
	// A port picked by closing a listener can be taken by someone else
	// before MinIO binds it; try again with new ports if that happens.
	var lastErr error
	for attempt := range 3 {
		ok, err := startMinIO(t, bin, filepath.Join(dir, strconv.Itoa(attempt)), &srv)
		if ok {
			return srv
		}
		lastErr = err
	}
	t.Fatalf("starting MinIO (%s): %v", bin, lastErr)
	return srv
}

func findMinIO() (string, error) {
	if bin := os.Getenv("MINIO_BIN"); bin != "" {
		if isExecutable(bin) {
			return bin, nil
		}
		return "", fmt.Errorf("MINIO_BIN=%s is not an executable file", bin)
	}
	candidates := []string{"/root/.cache/kokoro-tts/minio/bin/minio"}
	if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, filepath.Join(home, ".cache", "kokoro-tts", "minio", "bin", "minio"))
	}
	for _, c := range candidates {
		if isExecutable(c) {
			return c, nil
		}
	}
	return exec.LookPath("minio")
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// startMinIO starts one server in dataDir. ok is false when the server
// exited before becoming healthy (e.g. its port was taken); other failures
// end the test.
func startMinIO(t testing.TB, bin, dataDir string, srv *MinIOServer) (ok bool, err error) {
	t.Helper()
	ports, err := freePorts(2)
	if err != nil {
		t.Fatalf("finding free ports: %v", err)
	}
	endpoint := "127.0.0.1:" + strconv.Itoa(ports[0])
	cmd := exec.Command(bin, "server", "--quiet",
		"--address", endpoint,
		"--console-address", "127.0.0.1:"+strconv.Itoa(ports[1]),
		dataDir)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+srv.AccessKey,
		"MINIO_ROOT_PASSWORD="+srv.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	var out LockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), minioStartTimeout)
	defer cancel()
	if err := waitHealthy(ctx, "http://"+endpoint, exited); err != nil {
		stop()
		if errors.Is(err, errExited) {
			return false, fmt.Errorf("%w (%v); output:\n%s", err, waitErr, out.String())
		}
		t.Fatalf("MinIO on %s: %v; output:\n%s", endpoint, err, out.String())
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("MinIO output:\n%s", out.String())
		}
	})
	srv.Endpoint = endpoint
	return true, nil
}

var errExited = errors.New("minio exited before becoming healthy")

// waitHealthy polls until the server is live and its object layer is
// ready: /minio/health/live alone answers 200 while S3 requests still get 503
// "server not initialized".
func waitHealthy(ctx context.Context, base string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: 2 * time.Second}
	ok := func(path string) bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return false
		}
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if ok("/minio/health/live") && ok("/minio/health/cluster") {
			return nil
		}
		select {
		case <-exited:
			return errExited
		case <-ctx.Done():
			return fmt.Errorf("not healthy after %v", minioStartTimeout)
		case <-tick.C:
		}
	}
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close() // held until all are picked, so they differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// LockedBuffer is a bytes.Buffer that may be written and read at the same
// time: a process's output, written from exec's copying goroutine, or a
// logger's, written from many goroutines, and read by the test.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
