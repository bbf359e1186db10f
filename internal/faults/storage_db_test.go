//go:build linux

package faults

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // the test takes the database's write lock itself
)

// privileged skips a test that needs root (or CAP_SYS_ADMIN) for a mount,
// except in CI, where the tests run as root and a skip would hide a
// scenario.
func privileged(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why + " (run as root, as CI does)")
}

// mountTmpfs mounts a tmpfs of the given size ("1m") at dir and unmounts it
// in cleanup. Call it before starting anything that uses dir, so that the
// processes are gone (their cleanups run first) when it is unmounted.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		privileged(t, "mounting a tmpfs needs root")
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0750"); err != nil {
		privileged(t, "mounting a tmpfs at "+dir+": "+err.Error())
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
}

// freeBytes is the space left for files on the file system holding dir.
func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// fill writes a file of zeros at name until only leave bytes are free.
func fill(t *testing.T, name string, leave int64) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := freeBytes(t, filepath.Dir(name)) - leave
	if n <= 0 {
		return
	}
	if _, err := io.CopyN(f, zeros{}, n); err != nil {
		t.Fatalf("filling %s with %d bytes: %v", name, n, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// download returns a job's audio as served by the API.
func (s *stack) download(id string) []byte {
	s.t.Helper()
	res, err := s.http.Get(s.base + "/api/jobs/" + id + "/audio")
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 {
		s.t.Fatalf("audio of %s: %d, %v", id, res.StatusCode, err)
	}
	return b
}

// TestDiskStoreFull runs the disk store on a 1 MiB tmpfs (DATA_DIR; the
// database stays elsewhere) and fills it: jobs whose audio does not fit
// fail with a readable reason after their retries, leave no partial or
// temporary file, the audio already stored stays intact, and once space is
// freed the service stores audio again.
func TestDiskStoreFull(t *testing.T) {
	dataDir := t.TempDir()
	mountTmpfs(t, dataDir, "1m")
	s := newStack(t, stackOptions{env: map[string]string{"DATA_DIR": dataDir}})
	// DATABASE_URL still points into the harness's own directory; only the
	// audio (DATA_DIR/audio) is on the tmpfs. objects() lists DATA_DIR/audio.
	s.data = dataDir
	w := s.startWorker(nil)

	kept := s.mustSubmit(map[string]any{"text": "I was stored before the disk filled up.", "format": "wav"})
	s.waitStatus(kept, 30*time.Second, "succeeded")
	keptAudio := s.download(kept)

	// Leave 64 KiB: a long WAV then fails in the middle of writing its
	// temporary file, the case that could leave a partial file behind.
	filler := filepath.Join(dataDir, "filler")
	fill(t, filler, 64<<10)
	t.Logf("%d bytes free on the store's file system after filling", freeBytes(t, dataDir))

	// About a minute of speech each: ~3 MB of WAV, more than the whole tmpfs.
	began := time.Now()
	var big []string
	for _, tag := range []string{"disk-full-a", "disk-full-b"} {
		big = append(big, s.mustSubmit(map[string]any{"text": longText(tag, 1000), "format": "wav"}))
	}
	for _, id := range big {
		j := s.waitStatus(id, 180*time.Second, "failed", "succeeded", "canceled")
		reason, _ := j["error"].(string)
		if j["status"] != "failed" || j["attempts"].(float64) != 4 || !strings.Contains(reason, "storing the audio failed: the audio storage is full") || j["audio"] != nil {
			t.Fatalf("job %s whose audio does not fit: %v", id, j)
		}
		t.Logf("job %s failed after %v attempts: %q", id, j["attempts"], reason)
	}
	t.Logf("both jobs failed %s after submission", time.Since(began).Round(10*time.Millisecond))
	if !strings.Contains(w.Output(), "no space left on device") {
		t.Errorf("the worker never logged the cause (ENOSPC)")
	}
	if objs := s.objects(); len(objs) != 1 || objs[0] != "jobs/"+kept+"/audio.wav" {
		t.Fatalf("store while full: %v; want only the audio stored before", objs)
	}
	if again := s.download(kept); !bytes.Equal(again, keptAudio) {
		t.Fatalf("audio stored before the disk filled changed: %d bytes, was %d", len(again), len(keptAudio))
	}
	onDisk, err := os.ReadFile(filepath.Join(dataDir, "audio", "jobs", kept, "audio.wav"))
	if err != nil || !bytes.Equal(onDisk, keptAudio) {
		t.Fatalf("the file on disk differs from the audio served before (%v)", err)
	}
	// The failed Puts left nothing, not even their jobs' directories.
	for _, id := range big {
		dir := filepath.Join(dataDir, "audio", "jobs", id)
		if entries, err := os.ReadDir(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still there after its job failed (%v, %v)", dir, entries, err)
		}
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	fits := s.mustSubmit(map[string]any{"text": "There is room again.", "format": "wav"})
	final := checkInvariants(t, s, 60*time.Second)
	for _, id := range []string{kept, fits} {
		if final[id]["status"] != "succeeded" {
			t.Errorf("job %s: %v", id, final[id])
		}
	}
	if again := s.download(kept); !bytes.Equal(again, keptAudio) {
		t.Errorf("audio stored before the disk filled changed after space was freed")
	}
}

// lockDatabase opens the SQLite file as another process would and holds its
// write lock (BEGIN IMMEDIATE; in WAL mode readers go on) until the
// returned release is called, or the test ends.
func lockDatabase(t *testing.T, path string) (release func()) {
	t.Helper()
	ctx := context.Background()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=60000")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatalf("taking the write lock: %v", err)
	}
	released := false
	release = func() {
		if released {
			return
		}
		released = true
		if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
			t.Errorf("releasing the write lock: %v", err)
		}
		conn.Close()
		db.Close()
	}
	t.Cleanup(release)
	return release
}

// TestDatabaseLocked holds the database's write lock for longer than the
// store's busy timeout (5 s) while a job runs: a submission is refused with
// 503 and Retry-After and leaves no job, reads go on, the running job
// stores its audio and keeps trying to record its success, and once the
// lock is released that attempt records it (no new attempt, no audio
// thrown away) and every accepted job succeeds.
func TestDatabaseLocked(t *testing.T) {
	s := newStack(t, stackOptions{})
	w := s.startWorker(nil)
	dbPath := strings.TrimPrefix(s.env["DATABASE_URL"], "sqlite:")

	done := s.mustSubmit(map[string]any{"text": "I finished before the database was locked."})
	s.waitStatus(done, 30*time.Second, "succeeded")
	running := s.mustSubmit(map[string]any{"text": longText("db-locked", longChars), "format": "wav", "speed": 0.5})
	s.waitStatus(running, 30*time.Second, "running")

	release := lockDatabase(t, dbPath)
	locked := time.Now()

	asked := time.Now()
	if id, r := s.submit(map[string]any{"text": "Submitted while the database is locked."}); id != "" || r.status != 503 ||
		r.header.Get("Retry-After") == "" || r.body["error"] == nil {
		t.Fatalf("submit with the database locked: %d (Retry-After %q) %v", r.status, r.header.Get("Retry-After"), r.body)
	} else {
		t.Logf("submission: 503 %v, Retry-After %s, after %s", r.body["error"], r.header.Get("Retry-After"), time.Since(asked).Round(time.Millisecond))
	}

	// Readers are not blocked by a writer in WAL mode.
	for id, want := range map[string]string{done: "succeeded", running: "running"} {
		asked := time.Now()
		r := s.do("GET", "/api/jobs/"+id, "")
		t.Logf("GET of a %s job with the database locked: %d %v, after %s", want, r.status, r.body["status"], time.Since(asked).Round(time.Millisecond))
		if r.status != 200 || r.body["status"] != want {
			t.Errorf("GET job %s with the database locked: %d %v; want 200 %s", id, r.status, r.body, want)
		}
	}

	// The running attempt finishes its audio and cannot record it yet.
	waitLog(t, w, `"msg":"recording success failed; retrying while the audio waits"`, 90*time.Second)
	if j := s.job(running); terminal(j["status"]) {
		t.Fatalf("the job ended while the database was locked: %v", j)
	}
	release()
	t.Logf("write lock held %s", time.Since(locked).Round(10*time.Millisecond))

	after := s.mustSubmit(map[string]any{"text": "Submitted after the lock was released."})
	final := checkInvariants(t, s, 90*time.Second)
	for _, id := range []string{done, running, after} {
		if final[id]["status"] != "succeeded" {
			t.Errorf("job %s: %v", id, final[id])
		}
	}
	// Recorded by the attempt that made the audio, once the lock went.
	if final[running]["attempts"].(float64) != 1 || strings.Contains(w.Output(), `"msg":"attempt failed; will retry"`) {
		t.Errorf("the job whose success waited for the database shows %v attempts (want 1, no retry)", final[running]["attempts"])
	}
}

// TestDatabaseLockedPastRetries keeps the write lock for a minute while a
// job runs, longer than its retry budget used to last (about 35 s): attempt
// 1 stores its audio, tries to record it for 30 s and gives up; neither
// that delivery nor the ones after it, which cannot start an attempt,
// spend the job's retries (worker.IsFailure). Once the lock is released
// the job succeeds on attempt 2, with one object.
func TestDatabaseLockedPastRetries(t *testing.T) {
	slow(t)
	s := newStack(t, stackOptions{})
	w := s.startWorker(nil)
	dbPath := strings.TrimPrefix(s.env["DATABASE_URL"], "sqlite:")
	id := s.mustSubmit(map[string]any{"text": longText("db-locked-long", longChars), "format": "wav", "speed": 0.5})
	s.waitStatus(id, 30*time.Second, "running")
	release := lockDatabase(t, dbPath)
	locked := time.Now()
	waitLog(t, w, "audio stored but its success could not be recorded", 90*time.Second)
	// The outage goes on past the old budget: deliveries keep failing to start.
	time.Sleep(time.Until(locked.Add(60 * time.Second)))
	release()
	t.Logf("write lock held %s", time.Since(locked).Round(10*time.Millisecond))
	if strings.Contains(w.Output(), "Retry exhausted") {
		t.Errorf("asynq archived the task during the outage")
	}
	final := checkInvariants(t, s, 120*time.Second)
	if j := final[id]; j["status"] != "succeeded" || j["attempts"].(float64) != 2 {
		t.Fatalf("job after the outage: %v", j)
	}
}

// TestWorkerKilledAfterUpload kills the worker between storing the audio
// and recording the success: the database is locked, so the attempt has
// stored its object and waits to record it, and then its process group is
// SIGKILLed. Once asynq recovers the task (its lease, 60–120 s) a second
// worker runs the job again: it succeeds on attempt 2 with one object (the
// retry writes the same key), and nothing else is left.
func TestWorkerKilledAfterUpload(t *testing.T) {
	slow(t)
	s := newStack(t, stackOptions{})
	w := s.startWorker(nil)
	dbPath := strings.TrimPrefix(s.env["DATABASE_URL"], "sqlite:")
	id := s.mustSubmit(map[string]any{"text": longText("killed-after-upload", 1500), "format": "wav"})
	s.waitStatus(id, 30*time.Second, "running")
	release := lockDatabase(t, dbPath)
	waitLog(t, w, `"msg":"recording success failed; retrying while the audio waits"`, 90*time.Second)
	w.Kill()
	killed := time.Now()
	w.Exited(t, 10*time.Second)
	release()
	w2 := s.startWorker(nil)
	final := checkInvariants(t, s, 150*time.Second)
	t.Logf("job finished %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	if j := final[id]; j["status"] != "succeeded" || j["attempts"].(float64) != 2 {
		t.Fatalf("job after the kill: %v\n%s", j, w2.Output())
	}
}

// TestPostgresDownWhileRunning keeps the jobs in PostgreSQL and cuts the
// way to it (a proxy drops every connection and refuses new ones) for 8 s
// while a job runs: a submission meanwhile gets 503 with Retry-After and
// leaves nothing behind, the running job stores its audio and records its
// success once the database answers again (the worker retries the record
// for 30 s), and a job submitted afterwards succeeds.
func TestPostgresDownWhileRunning(t *testing.T) {
	s := newStack(t, stackOptions{postgres: true})
	s.startWorker(nil)
	id := s.mustSubmit(map[string]any{"text": longText("postgres-down", longChars), "format": "wav", "speed": 0.5})
	s.waitStatus(id, 30*time.Second, "running")
	s.dbProxy.Down()
	down := time.Now()
	asked := time.Now()
	if got, r := s.submit(map[string]any{"text": "Submitted while PostgreSQL is unreachable."}); got != "" || r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("submit with PostgreSQL down: %d (Retry-After %q) %v", r.status, r.header.Get("Retry-After"), r.body)
	}
	t.Logf("503 with Retry-After after %s", time.Since(asked).Round(time.Millisecond))
	time.Sleep(time.Until(down.Add(8 * time.Second)))
	if err := s.dbProxy.Up(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	after := s.mustSubmit(map[string]any{"text": "Submitted after PostgreSQL came back."})
	final := checkInvariants(t, s, 90*time.Second)
	t.Logf("all done %s after PostgreSQL came back", time.Since(back).Round(100*time.Millisecond))
	for _, id := range []string{id, after} {
		if final[id]["status"] != "succeeded" {
			t.Errorf("job %s: %v", id, final[id])
		}
	}
	t.Logf("running job: %v attempts", final[id]["attempts"])
}
