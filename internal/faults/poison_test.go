package faults

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPoisonJob: a job that crashes a stage on every attempt fails with a
// readable reason after its bounded attempts, while the jobs around it keep
// flowing and the worker stays up. The stage crashed is the encoder: the
// worker's ffmpeg is a wrapper that dies of SIGSEGV whenever it is asked
// for FLAC, and runs the real ffmpeg otherwise.
func TestPoisonJob(t *testing.T) {
	s := newStack(t, stackOptions{})
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(t.TempDir(), "ffmpeg")
	script := "#!/bin/sh\ncase \" $* \" in *\" -c:a flac \"*) kill -SEGV $$ ;; esac\nexec " + ffmpeg + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	w := s.startWorker(map[string]string{"FFMPEG_PATH": wrapper, "KOKORO_TTS_MAX_CONCURRENCY": "2"})

	poison := s.mustSubmit(map[string]any{"text": "I crash the encoder every time.", "format": "flac"})
	var good []string
	for i := range 8 {
		good = append(good, s.mustSubmit(map[string]any{"text": fmt.Sprintf("Sentence %d flows past the poison.", i), "format": "mp3"}))
	}
	final := checkInvariants(t, s, 120*time.Second)
	p := final[poison]
	reason, _ := p["error"].(string)
	if p["status"] != "failed" || p["attempts"].(float64) != 4 || !strings.HasPrefix(reason, "encoding failed") || p["audio"] != nil {
		t.Fatalf("poison job: %v", p)
	}
	if strings.Contains(reason, "SIGSEGV") || strings.Contains(reason, "signal") || strings.Contains(reason, wrapper) {
		t.Errorf("the reason leaks internals: %q", reason)
	}
	for _, id := range good {
		if final[id]["status"] != "succeeded" {
			t.Errorf("job %s next to the poison: %v", id, final[id])
		}
	}
	select {
	case <-w.Done:
		t.Fatalf("the worker exited:\n%s", w.Output())
	default:
	}
	if !strings.Contains(w.Output(), "signal: segmentation fault") {
		t.Logf("worker log does not show the encoder's crash; it says:\n%s", w.Output())
	}
	t.Logf("poison job failed after %v attempts: %q", p["attempts"], reason)
}
