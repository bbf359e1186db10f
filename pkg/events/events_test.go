package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
	"github.com/kokorotts/kokoro-tts/pkg/events"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

func TestPublishReadResume(t *testing.T) {
	srv := testsvc.Redis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	bus := events.NewRedis(rdb)
	ctx := context.Background()
	job := "0192d6a4-0000-7000-8000-00000000000a"
	for _, e := range []events.Event{{Type: events.Queued, JobID: job}, events.Progress(job, 1, 2),
		{Type: events.Succeeded, JobID: job, Audio: &events.Audio{URL: "/x", Bytes: 3}}} {
		if err := bus.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	all, err := bus.Read(ctx, job, "", -1)
	if err != nil || len(all) != 3 || all[0].Type != "queued" || *all[1].Progress != 0.5 || all[2].Audio.Bytes != 3 {
		t.Fatalf("read %+v %v", all, err)
	}
	rest, _ := bus.Read(ctx, job, all[0].ID, -1)
	if len(rest) != 2 || rest[0].ID != all[1].ID {
		t.Fatalf("resume after the first: %+v", rest)
	}
	// Nothing newer: a blocking read returns empty after its wait.
	start := time.Now()
	none, err := bus.Read(ctx, job, all[2].ID, 200*time.Millisecond)
	if err != nil || len(none) != 0 || time.Since(start) < 150*time.Millisecond {
		t.Fatalf("blocking read: %v %v after %v", none, err, time.Since(start))
	}
	// A blocked reader wakes up for a new event.
	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = bus.Publish(context.Background(), events.Event{Type: events.Canceled, JobID: job})
	}()
	got, err := bus.Read(ctx, job, all[2].ID, 5*time.Second)
	if err != nil || len(got) != 1 || got[0].Type != "canceled" {
		t.Fatalf("woken read: %+v %v", got, err)
	}
	if ttl := rdb.TTL(ctx, "kokoro-tts:events:"+job).Val(); ttl <= 0 || ttl > events.TTL {
		t.Fatalf("stream TTL %v", ttl)
	}
	srv.Stop()
	if err := bus.Publish(ctx, events.Event{Type: events.Queued, JobID: job}); tts.ErrorCode(err) != tts.EUNAVAILABLE {
		t.Fatalf("publish with Redis down: %v", err)
	}
}

func TestFromJob(t *testing.T) {
	j := &tts.Job{ID: "j", Status: tts.StatusSucceeded, Audio: &tts.Audio{ContentType: "audio/wav", Bytes: 10, DurationSeconds: 1}}
	e := events.FromJob(j)
	if e.Type != "succeeded" || e.Audio.URL != "/api/jobs/j/audio" || !events.Terminal(e.Type) {
		t.Fatalf("%+v", e)
	}
	if events.Terminal(events.Running) || events.FromJob(&tts.Job{ID: "j", Status: tts.StatusFailed, Error: "x"}).Error != "x" {
		t.Fatal("terminal/failed mapping")
	}
}
