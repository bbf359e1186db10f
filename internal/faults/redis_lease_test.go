package faults

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// leaseOutage is how long Redis stays down in TestRedisDownPastLease: longer
// than asynq's 30 s task lease, so the running task's lease expires.
const leaseOutage = 40 * time.Second

// TestRedisDownPastLease takes Redis away for longer than asynq's task lease
// while a job runs, with a second job queued behind it, and brings it back
// with its data (persistence on) or empty (none).
//
// The running job's encoder is held for 60 s (an ffmpeg wrapper that
// sleeps before its first FLAC encode), so the job is still running when
// the lease expires: asynq then cancels the handler, which gives its attempt
// back (nothing is uploaded after the cancel), and the job waits in the
// database. Once Redis is back, asynq's recoverer (data kept) or the
// reconciler (Redis empty) queues it again; both jobs succeed, with one
// object each, and every invariant holds.
func TestRedisDownPastLease(t *testing.T) {
	slow(t)
	for _, tc := range []struct {
		name      string
		redisArgs []string
	}{
		{"redis back with its data", []string{"--appendonly", "yes", "--appendfsync", "always"}},
		{"redis back empty", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t, stackOptions{redisArgs: tc.redisArgs})
			ffmpeg, err := exec.LookPath("ffmpeg")
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			marker, wrapper := filepath.Join(dir, "hold-once"), filepath.Join(dir, "ffmpeg")
			if err := os.WriteFile(marker, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			// The sleep gets no pipes of ffmpeg's, so killing the shell
			// (the handler's cancel) ends the encode at once.
			script := "#!/bin/sh\ncase \" $* \" in *\" -c:a flac \"*) if rm " + marker + " 2>/dev/null; then sleep 60 </dev/null >/dev/null 2>&1; fi ;; esac\nexec " + ffmpeg + " \"$@\"\n"
			if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			w := s.startWorker(map[string]string{"FFMPEG_PATH": wrapper})
			held := s.mustSubmit(map[string]any{"text": "My encoder is held past the lease.", "format": "flac"})
			queued := s.mustSubmit(map[string]any{"text": "I wait in the queue behind it.", "format": "mp3"})
			s.waitStatus(held, 30*time.Second, "running")
			time.Sleep(time.Second)

			s.redis.Stop()
			down := time.Now()
			waitLog(t, w, "attempt interrupted", leaseOutage)
			t.Logf("handler canceled %s after Redis went down (the lease expired)", time.Since(down).Round(100*time.Millisecond))
			time.Sleep(time.Until(down.Add(leaseOutage)))
			if objs := s.objects(); len(objs) != 0 {
				t.Fatalf("audio stored during the outage: %v", objs)
			}
			if j := s.job(held); j["status"] != "queued" {
				t.Fatalf("the canceled job is %v, want it back to queued", j)
			}
			s.redis.Restart(t)
			back := time.Now()
			final := checkInvariants(t, s, 150*time.Second)
			t.Logf("both jobs done %s after Redis came back", time.Since(back).Round(100*time.Millisecond))
			for _, id := range []string{held, queued} {
				if final[id]["status"] != "succeeded" {
					t.Errorf("job %s: %v", id, final[id])
				}
			}
			if tc.redisArgs == nil && !strings.Contains(w.Output(), "re-enqueued a live job whose task was missing") {
				t.Errorf("Redis came back empty but the reconciler did not re-enqueue")
			}
			t.Logf("held job: %v attempts", final[held]["attempts"])
		})
	}
}
