package kokoro

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/kokorotts/kokoro-tts/pkg/phonemize"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// BenchmarkRawRun is one bare session call on the echo fixture (150 tokens):
// the floor under BenchmarkRunChunk.
func BenchmarkRawRun(b *testing.B) {
	requireORT(b)
	sig, err := readSignature(fixture("echo_v10.onnx"))
	if err != nil {
		b.Fatal(err)
	}
	s, err := newSession(sessionSpec{path: fixture("echo_v10.onnx"), sig: sig, threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Destroy()
	e := &Engine{sig: sig}
	it := &item{ids: padded(seq(150, 0)), style: make([]float32, StyleDim), speed: 1}
	b.ReportAllocs()
	for b.Loop() {
		in, err := e.inputs([]*item{it})
		if err != nil {
			b.Fatal(err)
		}
		out := make([]ort.Value, 1)
		if err := s.Run(in, out); err != nil {
			b.Fatal(err)
		}
		destroyAll(in)
		destroyAll(out)
	}
}

// BenchmarkRunChunk is one chunk through the engine's queue and session
// pool on the echo fixture: the engine's overhead per model call is this
// minus BenchmarkRawRun.
func BenchmarkRunChunk(b *testing.B) {
	e := newEngine(b, Config{ModelPath: fixture("echo_v10.onnx"), MaxConcurrency: 1})
	ids := seq(150, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.RunChunk(context.Background(), ids, "af_heart", 1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSynthesizeOverhead is a 12-chunk job (1,800 tokens) on the echo
// fixture with exact tokens: planning, queueing, joining and clipping.
func BenchmarkSynthesizeOverhead(b *testing.B) {
	var chunks []phonemize.Chunk
	for i := range 12 {
		chunks = append(chunks, phonemize.Chunk{Tokens: seq(150, i), PauseAfter: 300 * time.Millisecond})
	}
	fe, _ := fixed(chunks...)
	e := newEngine(b, Config{ModelPath: fixture("echo_v10.onnx"), FrontEnd: fe, MaxConcurrency: 2})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Synthesize(context.Background(), tts.SynthesisRequest{Text: "x", Voice: "af_heart(2)+af_bella"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStandinThroughput runs jobs on standin.onnx, a model costing
// about 55 GFLOP per second of audio like Kokoro-82M, with the machine's
// cores split between MaxConcurrency sessions, and `jobs` jobs in flight.
// It reports audio seconds produced per wall second and the real-time
// factor of one job. Each job is one 30-token chunk (2 s of audio).
//
//	go test ./pkg/kokoro -run '^$' -bench StandinThroughput -benchtime 2x
func BenchmarkStandinThroughput(b *testing.B) {
	cores := runtime.NumCPU()
	for _, sessions := range []int{1, 2, 4} {
		for _, jobs := range []int{sessions, 2 * sessions} {
			if jobs > 8 {
				continue
			}
			b.Run("sessions="+strconv.Itoa(sessions)+"/jobs="+strconv.Itoa(jobs), func(b *testing.B) {
				fe, _ := fixed(phonemize.Chunk{Tokens: seq(30, 0)})
				e := newEngine(b, Config{ModelPath: fixture("standin.onnx"), FrontEnd: fe, MaxConcurrency: sessions})
				var audio time.Duration
				var busy time.Duration
				var mu sync.Mutex
				start := time.Now()
				for b.Loop() {
					var wg sync.WaitGroup
					for range jobs {
						wg.Add(1)
						go func() {
							defer wg.Done()
							t0 := time.Now()
							pcm, err := e.Synthesize(context.Background(), tts.SynthesisRequest{Text: "x", Voice: "af_heart"})
							if err != nil {
								b.Error(err)
								return
							}
							mu.Lock()
							audio += pcm.Duration()
							busy += time.Since(t0)
							mu.Unlock()
						}()
					}
					wg.Wait()
				}
				wall := time.Since(start)
				b.ReportMetric(audio.Seconds()/wall.Seconds(), "audio-s/s")
				b.ReportMetric(busy.Seconds()/audio.Seconds(), "RTF/job")
				b.ReportMetric(float64(max(cores/sessions, 1)), "threads/session")
			})
		}
	}
}

// BenchmarkMemoryLoaded reports the resident memory an engine adds: the
// stand-in model (no weights of its own, so this is ONNX Runtime's and the
// engine's share) with all 54 voice packs, after one chunk has run.
func BenchmarkMemoryLoaded(b *testing.B) {
	requireORT(b)
	before := rssBytes(b)
	fe, _ := fixed(phonemize.Chunk{Tokens: seq(30, 0)})
	var engines []*Engine
	for b.Loop() {
		e := newEngine(b, Config{ModelPath: fixture("standin.onnx"), VoicesPath: voicesDir, FrontEnd: fe})
		if _, err := e.Synthesize(context.Background(), tts.SynthesisRequest{Text: "x", Voice: "af_heart"}); err != nil {
			b.Fatal(err)
		}
		engines = append(engines, e)
	}
	b.ReportMetric(float64(rssBytes(b)-before)/float64(len(engines))/(1<<20), "MiB/engine")
}

func rssBytes(b *testing.B) int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	b.Skip("no VmRSS")
	return 0
}
