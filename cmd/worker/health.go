package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kokorotts/kokoro-tts/pkg/config"
	"github.com/kokorotts/kokoro-tts/pkg/fleet"
)

// healthCommand implements `worker health`: it exits 0 when a worker on this
// host has announced itself in Redis within the announcement TTL and, with
// KOKORO_DEVICE=cuda, runs on CUDA (the worker proves the CUDA provider with
// a real run at startup before it claims it).
func healthCommand(c *Config) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rdb := config.RedisOpt(c.RedisURL).MakeRedisClient().(redis.UniversalClient)
	defer rdb.Close()
	ws, err := fleet.NewRegistry(rdb).List(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker health: Redis:", err)
		return 1
	}
	host, _ := os.Hostname()
	for _, w := range ws {
		if !strings.HasPrefix(w.ID, host+":") || time.Since(w.LastSeen) > fleet.TTL {
			continue
		}
		if c.Kokoro.Device == "cuda" && w.Engine.Device != "cuda" {
			fmt.Fprintf(os.Stderr, "worker health: KOKORO_DEVICE=cuda but the worker runs on %q\n", w.Engine.Device)
			return 1
		}
		fmt.Printf("ok: %s engine=%s device=%s last_seen=%s\n", w.ID, w.Engine.Name, w.Engine.Device, w.LastSeen.Format(time.RFC3339))
		return 0
	}
	fmt.Fprintf(os.Stderr, "worker health: no live worker announced for host %q\n", host)
	return 1
}
