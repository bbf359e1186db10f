// Command kokoro-bench measures the Kokoro engine on the machine it runs on,
// typically a GPU host with the real model:
//
//	ONNXRUNTIME_LIB=/opt/onnxruntime/lib/libonnxruntime.so \
//	go run ./cmd/kokoro-bench -model data/models/kokoro-v1.0.onnx \
//	    -voices data/models/voices-v1.0.bin -device cuda -jobs 1,2,4,8
//
// For each number of jobs in flight it starts an engine (MaxConcurrency =
// -sessions, or the number of jobs in flight when 0), warms it up, then runs
// -rounds x jobs synthesis jobs of the same text with that many in flight,
// and prints: audio seconds produced per wall second (throughput), the
// real-time factor of a job (its wall time / its audio length; below 1 is
// faster than real time), and the latency to the first finished chunk
// (p50/p95). It uses the engine directly; no Redis, database or HTTP.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kokorotts/kokoro-tts/pkg/kokoro"
	"github.com/kokorotts/kokoro-tts/pkg/phonemize"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

const defaultText = `The old lighthouse keeper climbed the spiral stairs every evening at dusk. ` +
	`He trimmed the wick, polished the great lens, and watched the ships slip past the rocks; ` +
	`some were fishing boats coming home, others were freighters bound for distant ports. ` +
	`In forty years he had never missed a night, not even during the storm of 1987, ` +
	`when the waves rose higher than the gallery and the wind tore the door from its hinges. ` +
	`People in the village asked him why he stayed. He would smile and say that someone had to ` +
	`keep the light burning, and that the sea was better company than most. ` +
	`When the coast guard finally automated the tower, they gave him a small brass plaque. ` +
	`He hung it by the door of his cottage, where he could still see the beam sweep across the water.`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "kokoro-bench:", err)
		os.Exit(1)
	}
}

type options struct {
	model, voices, lib, device, voice, textFile string
	jobs                                        []int
	sessions, threads, rounds, chunkTokens      int
	speed                                       float64
	verbose                                     bool
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("kokoro-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.model, "model", "", "Kokoro .onnx model (required)")
	fs.StringVar(&o.voices, "voices", "", "voices-v1.0.bin or a folder of <id>.bin packs (required)")
	fs.StringVar(&o.lib, "ort-lib", os.Getenv("ONNXRUNTIME_LIB"), "libonnxruntime.so (default $ONNXRUNTIME_LIB)")
	fs.StringVar(&o.device, "device", "cuda", "cpu, cuda or auto")
	fs.StringVar(&o.voice, "voice", "af_heart", "voice or blend")
	fs.StringVar(&o.textFile, "text", "", "file with the text of every job (default: a built-in ~900-character paragraph)")
	jobs := fs.String("jobs", "1,2,4,8", "comma-separated numbers of jobs in flight")
	fs.IntVar(&o.sessions, "sessions", 0, "ONNX Runtime sessions (0: as many as jobs in flight)")
	fs.IntVar(&o.threads, "threads", 0, "intra-op threads per session (0: cores / sessions)")
	fs.IntVar(&o.rounds, "rounds", 3, "jobs per level = rounds x jobs in flight")
	fs.IntVar(&o.chunkTokens, "chunk-tokens", 0, "target tokens per chunk (0: engine default, 250 on CUDA)")
	fs.Float64Var(&o.speed, "speed", 1, "speech speed")
	fs.BoolVar(&o.verbose, "v", false, "log the engine's startup (device, node placement)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.model == "" || o.voices == "" || o.lib == "" {
		return o, errors.New("-model, -voices and -ort-lib (or $ONNXRUNTIME_LIB) are required")
	}
	for _, f := range strings.Split(*jobs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return o, fmt.Errorf("-jobs: %q is not a positive number", f)
		}
		o.jobs = append(o.jobs, n)
	}
	if o.rounds < 1 {
		return o, errors.New("-rounds must be at least 1")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	text := defaultText
	if o.textFile != "" {
		b, err := os.ReadFile(o.textFile)
		if err != nil {
			return err
		}
		text = string(b)
	}
	release, err := kokoro.InitRuntime(o.lib)
	if err != nil {
		return err
	}
	defer release()
	fe, err := phonemize.New(phonemize.Config{})
	if err != nil {
		return err
	}
	defer fe.Close()
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	fmt.Fprintf(stdout, "onnxruntime %s, model %s, voice %s, %d characters per job\n", kokoro.RuntimeVersion(), o.model, o.voice, len([]rune(text)))
	const row = "%9v %8v %5v %8v %8v %9v %8v %15v %8v\n"
	header := func() {
		fmt.Fprintf(stdout, row, "in flight", "sessions", "jobs", "audio s", "wall s", "audio-s/s", "RTF/job", "1st chunk p50", "p95")
	}
	for _, n := range o.jobs {
		sessions := o.sessions
		if sessions == 0 {
			sessions = n
		}
		eng, err := kokoro.New(ctx, kokoro.Config{
			ModelPath: o.model, VoicesPath: o.voices, Device: o.device,
			MaxConcurrency: sessions, IntraOpThreads: o.threads, ChunkTokens: o.chunkTokens,
			FrontEnd: fe, Logger: log,
		})
		if err != nil {
			return err
		}
		if n == o.jobs[0] {
			i := eng.Info()
			fmt.Fprintf(stdout, "device %s %s\n", i.Device, i.Detail)
			header()
		}
		r, err := measure(ctx, eng, text, o, n)
		eng.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, row, n, sessions, r.jobs, fmt.Sprintf("%.1f", r.audio.Seconds()), fmt.Sprintf("%.1f", r.wall.Seconds()),
			fmt.Sprintf("%.2f", r.audio.Seconds()/r.wall.Seconds()), fmt.Sprintf("%.3f", r.rtf), r.p50.Round(time.Millisecond), r.p95.Round(time.Millisecond))
	}
	return nil
}

type levelResult struct {
	jobs        int
	audio, wall time.Duration
	rtf         float64 // mean over jobs of wall / audio
	p50, p95    time.Duration
}

// measure runs rounds x n jobs with n in flight, after one warm-up job.
func measure(ctx context.Context, eng *kokoro.Engine, text string, o options, n int) (levelResult, error) {
	req := tts.SynthesisRequest{Text: text, Voice: o.voice, Speed: o.speed}
	if _, err := eng.Synthesize(ctx, req); err != nil {
		return levelResult{}, fmt.Errorf("warm-up: %w", err)
	}
	total := o.rounds * n
	var (
		mu     sync.Mutex
		firsts []time.Duration
		rtfSum float64
		audio  time.Duration
		errs   []error
		next   = make(chan struct{}, total)
	)
	for range total {
		next <- struct{}{}
	}
	close(next)
	start := time.Now()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				t0 := time.Now()
				var first time.Duration
				r := req
				r.Progress = func(done, _ int) {
					if done == 1 {
						first = time.Since(t0)
					}
				}
				pcm, err := eng.Synthesize(ctx, r)
				took := time.Since(t0)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					firsts = append(firsts, first)
					audio += pcm.Duration()
					rtfSum += took.Seconds() / pcm.Duration().Seconds()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	if len(errs) > 0 {
		return levelResult{}, errors.Join(errs...)
	}
	slices.Sort(firsts)
	pct := func(p float64) time.Duration { return firsts[min(int(p*float64(len(firsts))), len(firsts)-1)] }
	return levelResult{jobs: total, audio: audio, wall: wall, rtf: rtfSum / float64(total), p50: pct(0.5), p95: pct(0.95)}, nil
}
