package testsvc

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// RedisServer is a private redis-server process started for a test.
type RedisServer struct {
	Addr string // 127.0.0.1:port
	URL  string // redis://127.0.0.1:port/0
	cmd  *exec.Cmd
	dir  string
	args []string
}

// missing fails the test under CI (where everything must be installed) and
// skips it elsewhere, naming what to install.
func missing(t testing.TB, what string) {
	t.Helper()
	msg := what + " is not installed (run .ci/run, or: " + installHint(what) + ")"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func installHint(what string) string {
	switch what {
	case "redis-server":
		return "apt-get install redis-server"
	case "minio":
		return "scripts/ensure-minio.sh"
	}
	return "apt-get install " + what
}

// Redis starts a private redis-server on a free loopback port, without
// persistence, and stops it when the test ends. Every test gets its own, so
// queues never mix between tests or packages.
func Redis(t testing.TB, extraArgs ...string) *RedisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		missing(t, "redis-server")
	}
	port := FreePort(t)
	r := &RedisServer{Addr: "127.0.0.1:" + strconv.Itoa(port), dir: t.TempDir()}
	r.URL = "redis://" + r.Addr + "/0"
	r.args = append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--maxmemory-policy", "noeviction"}, extraArgs...)
	r.start(t, bin)
	t.Cleanup(r.Stop)
	return r
}

func (r *RedisServer) start(t testing.TB, bin string) {
	t.Helper()
	r.cmd = exec.Command(bin, r.args...)
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	if err := waitTCP(r.Addr, 10*time.Second); err != nil {
		r.Stop()
		t.Fatalf("redis-server did not start: %v", err)
	}
}

// Stop kills the server (SIGKILL: its data is gone, as after a crash).
func (r *RedisServer) Stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// Restart starts the server again, empty, on the same port.
func (r *RedisServer) Restart(t testing.TB) {
	t.Helper()
	r.Stop()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		missing(t, "redis-server")
	}
	r.start(t, bin)
}

// FreePort returns a TCP port that was free on loopback a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitTCP(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not reachable after %s: %w", addr, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Require fails (under CI) or skips the test when a command is missing.
func Require(t testing.TB, command, aptPackage string) string {
	t.Helper()
	p, err := exec.LookPath(command)
	if err != nil {
		missing(t, aptPackage)
	}
	return p
}
