package fleet_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
	"github.com/kokorotts/kokoro-tts/pkg/fleet"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

func TestRegistryAndLocks(t *testing.T) {
	srv := testsvc.Redis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	ctx := context.Background()
	reg := fleet.NewRegistry(rdb)
	if ws, err := reg.List(ctx); err != nil || len(ws) != 0 {
		t.Fatalf("empty registry: %v %v", ws, err)
	}
	for _, id := range []string{"b:2", "a:1"} {
		if err := reg.Announce(ctx, fleet.Worker{ID: id, Engine: tts.EngineInfo{Name: "tone", Device: "cpu"}, Concurrency: 2}); err != nil {
			t.Fatal(err)
		}
	}
	ws, err := reg.List(ctx)
	if err != nil || len(ws) != 2 || ws[0].ID != "a:1" || ws[1].Engine.Name != "tone" || time.Since(ws[0].LastSeen) > time.Minute {
		t.Fatalf("list %+v %v", ws, err)
	}
	if ttl := rdb.TTL(ctx, "kokoro-tts:workers:a:1").Val(); ttl <= 0 || ttl > fleet.TTL {
		t.Fatalf("announcement TTL %v", ttl)
	}
	if err := reg.Withdraw(ctx, "a:1"); err != nil {
		t.Fatal(err)
	}
	if ws, _ := reg.List(ctx); len(ws) != 1 {
		t.Fatalf("after withdraw: %+v", ws)
	}

	locks := fleet.NewLocks(rdb)
	release, ok, err := locks.TryLock(ctx, "k", time.Minute)
	if err != nil || !ok {
		t.Fatalf("first lock: %v %v", ok, err)
	}
	if _, ok, _ := locks.TryLock(ctx, "k", time.Minute); ok {
		t.Fatal("a held lock was taken again")
	}
	release()
	release2, ok, _ := locks.TryLock(ctx, "k", 200*time.Millisecond)
	if !ok {
		t.Fatal("a released lock could not be taken")
	}
	time.Sleep(300 * time.Millisecond) // expired: another holder may take it
	if _, ok, _ := locks.TryLock(ctx, "k", time.Minute); !ok {
		t.Fatal("an expired lock could not be taken")
	}
	release2() // the old holder's release must not free the new holder's lock
	if _, ok, _ := locks.TryLock(ctx, "k", time.Minute); ok {
		t.Fatal("a stale release freed someone else's lock")
	}
}
