package main

import (
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// TestExpireKeys: keys with a TTL leave the embedded Redis as time passes.
func TestExpireKeys(t *testing.T) {
	mr := miniredis.RunT(t)
	mr.Set("short", "x")
	mr.SetTTL("short", 30*time.Millisecond)
	mr.Set("long", "x")
	mr.SetTTL("long", time.Hour)
	stop := expireKeys(mr, 10*time.Millisecond)
	defer stop()
	for deadline := time.Now().Add(10 * time.Second); mr.Exists("short"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a key whose TTL passed is still there")
		}
	}
	if !mr.Exists("long") {
		t.Fatal("a key with an hour to live was dropped")
	}
}
