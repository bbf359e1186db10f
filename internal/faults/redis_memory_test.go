package faults

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRedisOutOfMemory: Redis at its memory limit with noeviction refuses
// writes (OOM). The API then answers 503 with Retry-After and keeps no job
// it could not queue; once Redis has room again, submissions work and every
// accepted job succeeds (invariant 5 counts the rows: no 503 left one).
func TestRedisOutOfMemory(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.startWorker(nil)
	rdb := redis.NewClient(&redis.Options{Addr: s.redis.Addr})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()

	before := s.mustSubmit(map[string]any{"text": "Queued while Redis had room."})
	s.waitStatus(before, 30*time.Second, "succeeded")

	if err := rdb.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil { // below what it already holds
		t.Fatal(err)
	}
	for i := range 5 {
		id, r := s.submit(map[string]any{"text": "Refused: Redis is full."})
		e, _ := r.body["error"].(map[string]any)
		if id != "" || r.status != 503 || r.header.Get("Retry-After") == "" || e == nil || e["code"] != "unavailable" {
			t.Fatalf("submit %d with Redis out of memory: %d %v (Retry-After %q)", i, r.status, r.body, r.header.Get("Retry-After"))
		}
		if i == 0 {
			t.Logf("503: %v", e["message"])
		}
	}
	if err := rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	after := s.mustSubmit(map[string]any{"text": "Queued once Redis had room again."})
	final := checkInvariants(t, s, 60*time.Second)
	for _, id := range []string{before, after} {
		if final[id]["status"] != "succeeded" {
			t.Errorf("job %s: %v", id, final[id])
		}
	}
}
