package testsvc_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
)

func TestStartProc(t *testing.T) {
	p := testsvc.StartProc(t, "/bin/sh", map[string]string{"GREETING": "hello"}, "-c", `echo "$GREETING"; exit 3`)
	if code := p.Exited(t, 10*time.Second); code != 3 {
		t.Fatalf("exit code %d, want 3", code)
	}
	if p.Output() != "hello\n" || p.Name != "sh" {
		t.Fatalf("output %q, name %q", p.Output(), p.Name)
	}

	// Signal reaches the binary; a signal's end is exit code -1.
	p = testsvc.StartProc(t, "/bin/sh", nil, "-c", `trap 'echo stopping; exit 0' TERM; echo ready; while :; do sleep 0.05; done`)
	waitOutput(t, p, "ready\n")
	p.Signal(syscall.SIGTERM)
	if code := p.Exited(t, 10*time.Second); code != 0 || p.Output() != "ready\nstopping\n" {
		t.Fatalf("after SIGTERM: exit %d, output %q", code, p.Output())
	}
	p = testsvc.StartProc(t, "/bin/sh", nil, "-c", "sleep 60")
	p.Kill()
	if code := p.Exited(t, 10*time.Second); code != -1 {
		t.Fatalf("after Kill: exit code %d, want -1", code)
	}
}

func waitOutput(t *testing.T, p *testsvc.Proc, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.Output() != want {
		if time.Now().After(deadline) {
			t.Fatalf("output %q, want %q", p.Output(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
