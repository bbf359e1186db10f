package worker

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

func TestReadable(t *testing.T) {
	full := stageError("storing the audio", fmt.Errorf("disk: put %q: %w", "jobs/x/audio.wav",
		&os.PathError{Op: "write", Path: "/srv/data/audio/jobs/x/.tmp-1", Err: syscall.ENOSPC}))
	for err, want := range map[error]string{
		full: "storing the audio failed: the audio storage is full",
		stageError("synthesis", tts.Errorf(tts.EINVALID, "voice: unknown")):                "synthesis failed: voice: unknown",
		stageError("synthesis", fmt.Errorf("onnxruntime: CUDA error 700 at /src/k.cu:42")): "synthesis failed after all retries (internal error; see the worker log)",
	} {
		if got := readable(err); got != want {
			t.Errorf("readable(%v) = %q, want %q", err, got, want)
		}
	}
}
