package worker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
	"github.com/kokorotts/kokoro-tts/pkg/fleet"
	"github.com/kokorotts/kokoro-tts/pkg/tone"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

func toneEngine(gate <-chan struct{}) *engine {
	return &engine{fn: func(ctx context.Context, req tts.SynthesisRequest) (tts.PCM, error) {
		if gate != nil {
			<-gate
		}
		return tone.New(tone.Config{}).Synthesize(ctx, req)
	}}
}

func TestCacheReusesAudio(t *testing.T) {
	e := toneEngine(nil)
	r := newRig(t, e)
	r.h.Cache = true
	a := r.newJob(t, "The same sentence.")
	b := r.newJob(t, "  The same   sentence. ") // whitespace does not change the audio
	for _, j := range []*tts.Job{a, b} {
		if err := r.process(t, context.Background(), j, 0); err != nil {
			t.Fatal(err)
		}
	}
	ja, jb := r.job(t, a.ID), r.job(t, b.ID)
	if e.calls.Load() != 1 {
		t.Fatalf("engine ran %d times for identical requests", e.calls.Load())
	}
	if ja.Audio.CacheHit || !jb.Audio.CacheHit || ja.Audio.Key != jb.Audio.Key || jb.Status != tts.StatusSucceeded {
		t.Fatalf("first %+v, second %+v", ja.Audio, jb.Audio)
	}
	// Anything that changes the audio misses the cache.
	c := *a
	c.ID, c.Speed, c.Status, c.Attempts = "", 1.5, tts.StatusQueued, 0
	stored, _, err := r.db.CreateJob(context.Background(), &c)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.process(t, context.Background(), stored, 0); err != nil {
		t.Fatal(err)
	}
	if e.calls.Load() != 2 || r.job(t, stored.ID).Audio.CacheHit {
		t.Fatalf("another speed reused the audio (calls %d)", e.calls.Load())
	}
	// The switch off: synthesis every time.
	r.h.Cache = false
	d := r.newJob(t, "The same sentence.")
	if err := r.process(t, context.Background(), d, 0); err != nil {
		t.Fatal(err)
	}
	if e.calls.Load() != 3 || r.job(t, d.ID).Audio.CacheHit {
		t.Fatalf("cache off still reused audio")
	}
}

func TestConcurrentIdenticalJobsSynthesiseOnce(t *testing.T) {
	gate := make(chan struct{})
	e := toneEngine(gate)
	r := newRig(t, e)
	srv := testsvc.Redis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	r.h.Cache, r.h.Locks = true, fleet.NewLocks(rdb)
	jobs := []*tts.Job{r.newJob(t, "Everyone asks for this."), r.newJob(t, "Everyone asks for this."), r.newJob(t, "Everyone asks for this.")}
	var wg sync.WaitGroup
	errs := make(chan error, len(jobs))
	for _, j := range jobs {
		wg.Add(1)
		go func(j *tts.Job) { defer wg.Done(); errs <- r.process(t, context.Background(), j, 0) }(j)
	}
	// Let all three reach the engine or the lock, then let the one holder finish.
	deadline := time.Now().Add(10 * time.Second)
	for e.calls.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if e.calls.Load() != 1 {
		t.Fatalf("engine ran %d times for three concurrent identical jobs", e.calls.Load())
	}
	hits := 0
	for _, j := range jobs {
		got := r.job(t, j.ID)
		if got.Status != tts.StatusSucceeded {
			t.Fatalf("job %s", got.Status)
		}
		if got.Audio.CacheHit {
			hits++
		}
	}
	if hits != 2 {
		t.Fatalf("%d cache hits, want 2", hits)
	}
}
