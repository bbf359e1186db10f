// Package pipelinebench measures the pipeline around the engine on real
// Redis and SQLite with the zero-cost tone engine: raw asynq enqueue
// throughput, POST /api/tts throughput, end-to-end overhead per job and the
// pickup latency an idle worker adds for each TaskCheckInterval.
//
//	go test -run XXX -bench . -benchtime 3s ./internal/pipelinebench
package pipelinebench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
	"github.com/kokorotts/kokoro-tts/pkg/audio"
	"github.com/kokorotts/kokoro-tts/pkg/httpapi"
	"github.com/kokorotts/kokoro-tts/pkg/jobs"
	"github.com/kokorotts/kokoro-tts/pkg/sqlstore"
	"github.com/kokorotts/kokoro-tts/pkg/tone"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
	"github.com/kokorotts/kokoro-tts/pkg/worker"
	"github.com/kokorotts/kokoro-tts/queue"
	"github.com/kokorotts/kokoro-tts/storage/disk"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type env struct {
	db      *sqlstore.DB
	opt     asynq.RedisConnOpt
	rdb     redis.UniversalClient
	q       *queue.Client
	srv     *httptest.Server
	handler *worker.Handler
}

func setup(b *testing.B) *env {
	b.Helper()
	db := testsvc.Store(b)
	objects, err := disk.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	r := testsvc.Redis(b)
	opt, _ := asynq.ParseRedisURI(r.URL)
	q := queue.NewClient(opt)
	b.Cleanup(func() { q.Close() })
	svc := jobs.New(jobs.Config{Store: db, Queue: q, Objects: objects, Logger: quiet})
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Jobs: svc, Logger: quiet}))
	b.Cleanup(srv.Close)
	enc, err := audio.NewEncoder(audio.Config{})
	if err != nil {
		b.Fatal(err)
	}
	rdb := opt.MakeRedisClient().(redis.UniversalClient)
	b.Cleanup(func() { rdb.Close() })
	return &env{db: db, opt: opt, rdb: rdb, q: q, srv: srv,
		handler: &worker.Handler{Store: db, Engine: tone.New(tone.Config{}), Encoder: enc, Objects: objects, Logger: quiet}}
}

// BenchmarkAsynqEnqueue is the raw cost of one asynq enqueue (the task the
// API writes), with no database or HTTP.
func BenchmarkAsynqEnqueue(b *testing.B) {
	e := setup(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		job := &tts.Job{ID: uuid.NewString(), Text: "Hello world", Queue: tts.QueueInteractive}
		if err := e.q.Enqueue(context.Background(), job); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "enqueues/s")
}

// BenchmarkSubmitHTTP is POST /api/tts through the API: decode, validate,
// insert into SQLite, enqueue, answer 202. Clients run in parallel.
func BenchmarkSubmitHTTP(b *testing.B) {
	e := setup(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := client.Post(e.srv.URL+"/api/tts", "application/json", strings.NewReader(`{"text":"Hello world","format":"wav"}`))
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 202 {
				b.Fatalf("status %d", res.StatusCode)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkEndToEnd measures, per job, the time from POST /api/tts to the
// job's row reading succeeded, with the zero-cost engine and WAV output, so
// what remains is the pipeline's own overhead: HTTP, SQLite writes, Redis
// round trips, worker pickup, storage write. Jobs are submitted one at a
// time (latency, not throughput).
func BenchmarkEndToEnd(b *testing.B) {
	for _, interval := range []time.Duration{100 * time.Millisecond, 20 * time.Millisecond} {
		b.Run("check="+interval.String(), func(b *testing.B) {
			e := setup(b)
			w := worker.NewServer(worker.Config{Redis: e.opt, Concurrency: 2, TaskCheckInterval: interval,
				ShutdownTimeout: 5 * time.Second, Logger: quiet}, e.handler, e.q, nil)
			if err := w.Start(); err != nil {
				b.Fatal(err)
			}
			defer w.Shutdown()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				res, err := http.Post(e.srv.URL+"/api/tts", "application/json", strings.NewReader(`{"text":"Hello world","format":"wav"}`))
				if err != nil {
					b.Fatal(err)
				}
				loc := res.Header.Get("Location")
				res.Body.Close()
				id := loc[strings.LastIndex(loc, "/")+1:]
				for {
					j, err := e.db.FindJob(context.Background(), id)
					if err != nil {
						b.Fatal(err)
					}
					if j.Status.Terminal() {
						if j.Status != tts.StatusSucceeded {
							b.Fatalf("job %s", j.Status)
						}
						break
					}
					time.Sleep(time.Millisecond)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			reportPercentiles(b, lat)
		})
	}
}

// BenchmarkPickupLatency measures how long a task waits in an empty queue
// before an idle worker takes it, for several TaskCheckInterval values, and
// how many Redis commands per second the idle worker costs.
func BenchmarkPickupLatency(b *testing.B) {
	for _, interval := range []time.Duration{time.Second, 250 * time.Millisecond, 100 * time.Millisecond, 20 * time.Millisecond} {
		b.Run("check="+interval.String(), func(b *testing.B) {
			e := setup(b)
			var (
				mu      sync.Mutex
				pickups = map[string]time.Time{}
			)
			mux := asynq.NewServeMux()
			mux.HandleFunc(queue.TypeSynthesize, func(ctx context.Context, t *asynq.Task) error {
				id, _ := asynq.GetTaskID(ctx)
				mu.Lock()
				pickups[id] = time.Now()
				mu.Unlock()
				return nil
			})
			srv := asynq.NewServer(e.opt, asynq.Config{Concurrency: 2, Queues: queue.Priorities(), StrictPriority: true,
				TaskCheckInterval: interval, Logger: nil, LogLevel: asynq.FatalLevel})
			if err := srv.Start(mux); err != nil {
				b.Fatal(err)
			}
			defer srv.Shutdown()
			// Idle cost: Redis commands per second with nothing queued.
			before := commands(b, e.rdb)
			time.Sleep(2 * time.Second)
			idle := float64(commands(b, e.rdb)-before) / 2
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				id := uuid.NewString()
				start := time.Now()
				if err := e.q.Enqueue(context.Background(), &tts.Job{ID: id, Text: "x", Queue: tts.QueueInteractive}); err != nil {
					b.Fatal(err)
				}
				for {
					mu.Lock()
					at, ok := pickups[id]
					mu.Unlock()
					if ok {
						lat = append(lat, at.Sub(start))
						break
					}
					time.Sleep(500 * time.Microsecond)
				}
				// Let the worker go idle again, as between user requests.
				time.Sleep(interval + interval/2)
			}
			b.StopTimer()
			reportPercentiles(b, lat)
			b.ReportMetric(idle, "idle-redis-cmds/s")
		})
	}
}

func commands(b *testing.B, rdb redis.UniversalClient) int64 {
	info, err := rdb.Info(context.Background(), "stats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
			var n int64
			fmt.Sscan(v, &n)
			return n
		}
	}
	b.Fatal("no total_commands_processed in INFO")
	return 0
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(p(0.5), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}
