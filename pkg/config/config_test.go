package config

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

type testConfig struct {
	Base
	Redis
	Worker Worker
}

func TestDefaults(t *testing.T) {
	var c testConfig
	if err := Parse(&c); err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "./data" || c.Database() != "sqlite:data/kokoro-tts.db" || !c.Embedded() ||
		c.Worker.Concurrency != 2 || c.Worker.TaskCheckInterval.String() != "100ms" || c.EvictionCheck != "warn" {
		t.Fatalf("defaults: %+v", c)
	}
	if err := c.Base.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := c.Worker.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateNamesTheVariable(t *testing.T) {
	cases := []struct{ env, value, want string }{
		{"LOG_LEVEL", "loud", "LOG_LEVEL"},
		{"LOG_FORMAT", "xml", "LOG_FORMAT"},
		{"REDIS_URL", "http://x", "REDIS_URL"},
		{"S3_ENDPOINT", "https://minio:9000", "S3_ENDPOINT"},
		{"S3_PRESIGN_TTL", "400h", "S3_PRESIGN_TTL"},
		{"KOKORO_TTS_MAX_CONCURRENCY", "0", "KOKORO_TTS_MAX_CONCURRENCY"},
		{"WORKER_TASK_CHECK_INTERVAL", "1ms", "WORKER_TASK_CHECK_INTERVAL"},
		{"TTS_ENGINE", "festival", "TTS_ENGINE"},
		{"REDIS_EVICTION_CHECK", "ignore", "REDIS_EVICTION_CHECK"},
		{"RECONCILE_STALE_AFTER", "10ms", "RECONCILE_STALE_AFTER"},
	}
	for _, c := range cases {
		t.Run(c.env, func(t *testing.T) {
			t.Setenv(c.env, c.value)
			if c.env == "S3_ENDPOINT" {
				t.Setenv("S3_ACCESS_KEY", "a")
				t.Setenv("S3_SECRET_KEY", "b")
			}
			var cfg testConfig
			err := Parse(&cfg)
			if err == nil {
				err = cfg.Base.Validate()
			}
			if err == nil {
				err = cfg.Worker.Validate()
			}
			if err == nil {
				err = cfg.Redis.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%s=%s: error %v does not name %s", c.env, c.value, err, c.want)
			}
		})
	}
}

func TestS3NeedsCredentials(t *testing.T) {
	t.Setenv("S3_ENDPOINT", "127.0.0.1:9000")
	var c testConfig
	if err := Parse(&c); err != nil {
		t.Fatal(err)
	}
	if err := c.Base.Validate(); err == nil || !strings.Contains(err.Error(), "S3_ACCESS_KEY") {
		t.Fatalf("missing credentials: %v", err)
	}
}

// TestRedisClientHonoursDeadlines: against a Redis that accepts connections
// and never answers, a command with a short context deadline ends with the
// context's error, not after go-redis's read timeout and retries.
func TestRedisClientHonoursDeadlines(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	rdb := RedisClient("redis://" + l.Addr().String() + "/0")
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	began := time.Now()
	err = rdb.Ping(ctx).Err()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping against a hanging server = %v, want the context's deadline", err)
	}
	// Which timer ended the call: without ContextTimeoutEnabled go-redis
	// waits out its read timeout (asynq's default, 3 s) before it looks at
	// the context, whose deadline here is 100 ms.
	if readTimeout := 3 * time.Second; time.Since(began) >= readTimeout {
		t.Fatalf("Ping returned after %s: the read timeout, not the context's deadline, ended it", time.Since(began))
	}
}
