package faults

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// A 6,000-character text read at half speed keeps an espeak-ng worker busy
// for about 4 s (WAV) or 10 s (MP3) on a 2-core machine: the window the
// faults are injected in.
const longChars = 6000

// TestCancelInEachState cancels over HTTP a job that is queued (no worker
// yet), one that is running and one that has finished.
func TestCancelInEachState(t *testing.T) {
	s := newStack(t, stackOptions{})

	queued := s.mustSubmit(map[string]any{"text": "Cancel me while I wait in the queue."})
	if r := s.do("DELETE", "/api/jobs/"+queued, ""); r.status != 202 || r.body["status"] != "canceled" {
		t.Fatalf("cancel of a queued job: %d %v", r.status, r.body)
	}

	s.startWorker(nil)
	running := s.mustSubmit(map[string]any{"text": longText("cancel-running", longChars), "format": "wav", "speed": 0.5})
	s.waitStatus(running, 30*time.Second, "running")
	asked := time.Now()
	if r := s.do("DELETE", "/api/jobs/"+running, ""); r.status != 202 {
		t.Fatalf("cancel of a running job: %d %v", r.status, r.body)
	}
	s.waitStatus(running, 30*time.Second, "canceled", "succeeded", "failed")
	t.Logf("running job canceled %s after the DELETE", time.Since(asked).Round(10*time.Millisecond))

	done := s.mustSubmit(map[string]any{"text": "I finish before anyone cancels me."})
	s.waitStatus(done, 30*time.Second, "succeeded")
	if r := s.do("DELETE", "/api/jobs/"+done, ""); r.status != 409 {
		t.Fatalf("cancel of a finished job: %d %v", r.status, r.body)
	}

	final := checkInvariants(t, s, 30*time.Second)
	for id, want := range map[string]string{queued: "canceled", running: "canceled", done: "succeeded"} {
		if final[id]["status"] != want {
			t.Errorf("job %s: %v, want %s", id, final[id]["status"], want)
		}
	}
}

// TestRedisRestartedEmptyWhileQueued loses every queued task (Redis killed
// and restarted without persistence) before any worker runs: the
// reconciler rebuilds them from the database.
func TestRedisRestartedEmptyWhileQueued(t *testing.T) {
	s := newStack(t, stackOptions{})
	for i := range 3 {
		s.mustSubmit(map[string]any{"text": longText("redis-lost-"+string(rune('a'+i)), 200)})
	}
	s.redis.Restart(t)
	began := time.Now()
	w := s.startWorker(nil)
	checkInvariants(t, s, 60*time.Second)
	t.Logf("3 lost tasks rebuilt and done %s after the worker started", time.Since(began).Round(10*time.Millisecond))
	if strings.Count(w.Output(), "re-enqueued a live job whose task was missing") < 3 {
		t.Errorf("the reconciler did not report re-enqueueing the 3 jobs")
	}
	for id, j := range checkInvariants(t, s, time.Second) {
		if j["status"] != "succeeded" {
			t.Errorf("job %s: %v", id, j)
		}
	}
}

// TestRedisDownWhileRunning kills Redis while a job runs and brings it back
// empty a few seconds later: the running job still succeeds, submissions
// while Redis is down get 503 with Retry-After (and leave no job behind),
// and submissions after it is back work.
func TestRedisDownWhileRunning(t *testing.T) {
	s := newStack(t, stackOptions{env: map[string]string{"KOKORO_TTS_MAX_CONCURRENCY": "2"}})
	s.startWorker(nil)
	id := s.mustSubmit(map[string]any{"text": longText("redis-down", longChars), "format": "wav", "speed": 0.5})
	s.waitStatus(id, 30*time.Second, "running")
	s.redis.Stop()
	down := time.Now()
	for range 3 {
		asked := time.Now()
		if got, r := s.submit(map[string]any{"text": "Submitted while Redis is down."}); got != "" || r.status != 503 || r.header.Get("Retry-After") == "" {
			t.Fatalf("submit with Redis down: %d (Retry-After %q) %v", r.status, r.header.Get("Retry-After"), r.body)
		}
		t.Logf("503 with Retry-After after %s", time.Since(asked).Round(time.Millisecond))
	}
	t.Logf("three 503s within %s of Redis going down", time.Since(down).Round(time.Millisecond))
	time.Sleep(3 * time.Second)
	s.redis.Restart(t)
	after := s.mustSubmit(map[string]any{"text": "Submitted after Redis came back."})
	final := checkInvariants(t, s, 60*time.Second)
	for _, id := range []string{id, after} {
		if final[id]["status"] != "succeeded" {
			t.Errorf("job %s: %v", id, final[id])
		}
	}
	t.Logf("running job: %v attempts", final[id]["attempts"])
}

// TestSIGTERMFinishesJob: a deploy's SIGTERM with a shutdown timeout longer
// than the job lets the job finish before the worker exits.
func TestSIGTERMFinishesJob(t *testing.T) {
	s := newStack(t, stackOptions{})
	w := s.startWorker(map[string]string{"WORKER_SHUTDOWN_TIMEOUT": "60s"})
	id := s.mustSubmit(map[string]any{"text": longText("sigterm-long", longChars), "speed": 0.5})
	s.waitStatus(id, 30*time.Second, "running")
	w.Signal(syscall.SIGTERM)
	if code := w.Exited(t, 60*time.Second); code != 0 {
		t.Fatalf("worker exit code %d", code)
	}
	if j := s.job(id); j["status"] != "succeeded" || j["attempts"].(float64) != 1 {
		t.Fatalf("after the worker drained: %v", j)
	}
	checkInvariants(t, s, 10*time.Second)
}

// TestSIGTERMRequeuesJob: with a 1 s shutdown timeout the job is put back
// on the queue, nothing is uploaded by the stopping worker, and the next
// worker finishes it.
func TestSIGTERMRequeuesJob(t *testing.T) {
	s := newStack(t, stackOptions{})
	w := s.startWorker(map[string]string{"WORKER_SHUTDOWN_TIMEOUT": "1s"})
	id := s.mustSubmit(map[string]any{"text": longText("sigterm-short", longChars), "speed": 0.5})
	s.waitStatus(id, 30*time.Second, "running")
	time.Sleep(500 * time.Millisecond)
	w.Signal(syscall.SIGTERM)
	stopped := time.Now()
	if code := w.Exited(t, 30*time.Second); code != 0 {
		t.Fatalf("worker exit code %d", code)
	}
	t.Logf("worker exited %s after SIGTERM", time.Since(stopped).Round(10*time.Millisecond))
	if objs := s.objects(); len(objs) != 0 {
		t.Fatalf("the stopping worker stored %v", objs)
	}
	if j := s.job(id); terminal(j["status"]) {
		t.Fatalf("the stopping worker ended the job: %v", j)
	}
	if strings.Contains(w.Output(), `"msg":"job succeeded"`) {
		t.Fatalf("the stopping worker reported success")
	}
	t.Logf("handler saw the shutdown (\"attempt interrupted\" logged): %v", strings.Contains(w.Output(), "attempt interrupted"))
	began := time.Now()
	s.startWorker(nil)
	final := checkInvariants(t, s, 60*time.Second)
	t.Logf("next worker finished the job %s after it started", time.Since(began).Round(10*time.Millisecond))
	// The interrupted attempt is given back when the handler gets to it
	// before the process exits (attempts 1), otherwise it counts (2).
	if j := final[id]; j["status"] != "succeeded" || (j["attempts"].(float64) != 1 && j["attempts"].(float64) != 2) {
		t.Fatalf("requeued job: %v", j)
	}
}

// TestWorkerKilledMidSynthesis SIGKILLs a worker (and its espeak-ng and
// ffmpeg) during synthesis; a second worker finishes the job once asynq
// recovers the task's expired lease.
func TestWorkerKilledMidSynthesis(t *testing.T) {
	slow(t)
	s := newStack(t, stackOptions{})
	w := s.startWorker(nil)
	id := s.mustSubmit(map[string]any{"text": longText("sigkill", longChars), "format": "wav", "speed": 0.5})
	s.waitStatus(id, 30*time.Second, "running")
	time.Sleep(500 * time.Millisecond)
	w.Kill()
	killed := time.Now()
	w.Exited(t, 10*time.Second)
	w2 := s.startWorker(nil)
	final := checkInvariants(t, s, 150*time.Second)
	t.Logf("killed job finished %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	if j := final[id]; j["status"] != "succeeded" || j["attempts"].(float64) != 2 {
		t.Fatalf("job after the kill: %v\n%s", j, w2.Output())
	}
}

// TestStorageDownDuringUpload cuts the way to MinIO while a job
// synthesises, so its upload fails, and restores it a few seconds later:
// the attempt is retried with backoff and the job succeeds, one object.
func TestStorageDownDuringUpload(t *testing.T) {
	s := newStack(t, stackOptions{s3: true})
	w := s.startWorker(nil)
	id := s.mustSubmit(map[string]any{"text": longText("s3-down", longChars), "format": "wav", "speed": 0.5})
	s.waitStatus(id, 30*time.Second, "running")
	s.proxy.Down()
	cut := time.Now()
	waitLog(t, w, "attempt failed; will retry", 60*time.Second)
	t.Logf("first attempt failed %s after the cut", time.Since(cut).Round(10*time.Millisecond))
	if err := s.proxy.Up(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	final := checkInvariants(t, s, 60*time.Second)
	t.Logf("job ended %s after storage came back", time.Since(back).Round(10*time.Millisecond))
	if j := final[id]; j["status"] != "succeeded" || j["attempts"].(float64) < 2 {
		t.Fatalf("job: %v", j)
	}
}

// TestStorageDownForGood keeps MinIO unreachable: every attempt fails at
// the upload and the job fails cleanly, with a readable reason, after the
// retry budget; no object is left.
func TestStorageDownForGood(t *testing.T) {
	s := newStack(t, stackOptions{s3: true})
	s.startWorker(nil)
	s.proxy.Down()
	began := time.Now()
	id := s.mustSubmit(map[string]any{"text": "Storage is gone for good."})
	final := checkInvariants(t, s, 120*time.Second)
	t.Logf("job failed %s after submission", time.Since(began).Round(10*time.Millisecond))
	if err := s.proxy.Up(); err != nil {
		t.Fatal(err)
	}
	j := final[id]
	if j["status"] != "failed" || j["attempts"].(float64) != 4 || !strings.Contains(j["error"].(string), "storing the audio") {
		t.Fatalf("job: %v", j)
	}
	if objs := s.objects(); len(objs) != 0 {
		t.Fatalf("objects after a failed upload: %v", objs)
	}
}

// TestWorkerKilledMidUpload SIGKILLs a worker while its upload to MinIO is
// part-way: the proxy in front of MinIO lets the first 256 KiB of the
// upload through and holds the rest, the worker's process group is killed,
// and the held bytes are then let go (the connection ends short). A second
// worker finishes the job once asynq recovers the task's lease: one object,
// no partial object and no incomplete multipart upload left in the bucket
// (the dead writer's parts are removed by the next Put of the key).
func TestWorkerKilledMidUpload(t *testing.T) {
	slow(t)
	s := newStack(t, stackOptions{s3: true})
	w := s.startWorker(nil)
	id := s.mustSubmit(map[string]any{"text": longText("mid-upload", longChars), "format": "wav", "speed": 0.5})
	s.waitStatus(id, 30*time.Second, "running")
	s.proxy.StallAfter(256 << 10)
	deadline := time.Now().Add(60 * time.Second)
	for !s.proxy.Blocked() {
		if time.Now().After(deadline) {
			t.Fatalf("the upload never reached the stall:\n%s", w.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	w.Kill()
	killed := time.Now()
	w.Exited(t, 10*time.Second)
	s.proxy.Resume()
	// The audio (about 37 MB of WAV) goes up as a multipart upload: the
	// killed writer leaves its first parts, and never a whole object.
	after := s.objects()
	if len(after) != 1 || !strings.HasPrefix(after[0], "incomplete:jobs/"+id+"/") {
		t.Fatalf("after the kill the bucket holds %v, want only the unfinished upload of the job's audio", after)
	}
	s.startWorker(nil)
	final := checkInvariants(t, s, 150*time.Second)
	t.Logf("job finished %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	if j := final[id]; j["status"] != "succeeded" || j["attempts"].(float64) != 2 {
		t.Fatalf("job after the kill: %v", j)
	}
}

// TestRedisHangs makes Redis hang instead of die: a proxy in front of it
// stops forwarding requests (connections stay open, nothing answers), as a
// blackholed network or a stuck server would, for 20 s while a job runs.
// Submissions meanwhile answer 503 with Retry-After (never 202, and never
// hang), the running job still succeeds, and once Redis answers again new
// jobs flow.
func TestRedisHangs(t *testing.T) {
	s := newStack(t, stackOptions{redisProxy: true})
	s.http.Timeout = 60 * time.Second // the API's own bounds are what is under test
	s.startWorker(nil)
	running := s.mustSubmit(map[string]any{"text": longText("redis-hangs", longChars), "format": "wav", "speed": 0.5})
	s.waitStatus(running, 30*time.Second, "running")
	s.redisProxy.StallAfter(0)
	hung := time.Now()
	asked := time.Now()
	if got, r := s.submit(map[string]any{"text": "Submitted while Redis hangs."}); got != "" || r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("submit with Redis hanging: %d (Retry-After %q) %v", r.status, r.header.Get("Retry-After"), r.body)
	}
	t.Logf("503 with Retry-After after %s", time.Since(asked).Round(time.Millisecond))
	time.Sleep(time.Until(hung.Add(20 * time.Second)))
	s.redisProxy.Resume()
	after := s.mustSubmit(map[string]any{"text": "Submitted after Redis answered again."})
	final := checkInvariants(t, s, 120*time.Second)
	for _, id := range []string{running, after} {
		if final[id]["status"] != "succeeded" {
			t.Errorf("job %s: %v", id, final[id])
		}
	}
}
