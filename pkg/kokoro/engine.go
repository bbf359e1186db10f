// Package kokoro runs Kokoro-82M through ONNX Runtime (onnxruntime_go) and
// implements tts.Synthesizer.
//
// The engine reads the model's own input and output names and types, so it
// runs every public export (thewh1teagle v1.0 and v1.1, onnx-community,
// int32-speed v1.1-zh) and batch-capable re-exports that take
// `input_lengths`. It loads voice packs from a folder of raw <id>.bin files or
// a voices-v1.0.bin NumPy archive, blends voices by weight, splits text into
// chunks of at most 510 phoneme tokens through a FrontEnd, runs the chunks on
// a pool of ONNX Runtime sessions (CPU or CUDA), and joins the audio.
//
// The ONNX Runtime environment is process-wide: the engine's owner calls
// InitRuntime once before New and releases it after Close.
package kokoro

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/kokorotts/kokoro-tts/pkg/phonemize"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// MaxTokens is the most phoneme tokens one model call takes: positions are
// limited to 512, two of which hold the pads around the ids.
const MaxTokens = 510

// Default chunk sizes in phoneme tokens. On a CPU a chunk of about 10 s of
// audio (~150 tokens) is the sweet spot; on a GPU longer chunks cost little
// and give better prosody.
const (
	DefaultChunkTokensCPU  = 150
	DefaultChunkTokensCUDA = 250
	// DefaultMaxBatch bounds the chunks one run of a batch-capable model takes.
	DefaultMaxBatch = 8
	// joinFade is the length of the linear fade at each join between chunks.
	joinFade = 5 * time.Millisecond
)

// Devices accepted in Config.Device.
const (
	DeviceCPU  = "cpu"
	DeviceCUDA = "cuda"
	DeviceAuto = "auto"
)

// FrontEnd turns text into phoneme chunks. *phonemize.FrontEnd implements
// it; tests drive exact tokens through their own.
type FrontEnd interface {
	// Chunks splits text into chunks of at most maxTokens tokens each, for
	// lang "en-us" or "en-gb".
	Chunks(ctx context.Context, text, lang string, maxTokens int) ([]phonemize.Chunk, error)
}

// Config configures an Engine. ModelPath, VoicesPath and FrontEnd are
// required.
//
// Batch-capable models: a model with an `input_lengths` input must follow
// this contract (what scripts/kokoro-fixtures/make_fixtures.py builds as
// echo_batch.onnx): inputs `input_ids` int64 [B,N] (each row [0, ids..., 0]
// padded with 0 to the longest), `input_lengths` int64 [B] (valid ids per
// row, pads included), `style` float32 [B,256], `speed` float32 [B]; outputs
// `waveform` float32 [B,S] (rows zero padded) and `output_lengths` int64 [B]
// (valid samples per row). The engine groups chunks of concurrent jobs into
// one run of such a model; stock exports run one chunk per call.
type Config struct {
	ModelPath  string // .onnx file
	VoicesPath string // folder of <id>.bin packs, or voices-v1.0.bin (.npz)
	// Device is "cpu" (the default), "cuda" (fail unless the CUDA provider
	// works) or "auto" (CUDA, else CPU with the reason in Info().Detail).
	Device string
	// MaxConcurrency is the number of sessions, i.e. model runs in flight.
	// Default 1.
	MaxConcurrency int
	// IntraOpThreads is the thread count of each session. Default: the CPU
	// count divided by MaxConcurrency (at least 1), so that sessions x
	// threads ~= cores.
	IntraOpThreads    int
	CUDADeviceID      int
	CUDAMemLimitBytes int64 // gpu_mem_limit of each session's arena; 0: no limit
	// ChunkTokens is the target phoneme tokens per chunk (at most 510).
	// Default 150 on CPU, 250 on CUDA.
	ChunkTokens int
	// MaxBatch bounds the chunks per run of a batch-capable model. Default 8.
	MaxBatch int
	// BatchWindow is how long a free session of a batch-capable model waits
	// for more chunks before it runs. Default 0: it takes what is queued.
	BatchWindow time.Duration
	FrontEnd    FrontEnd
	Logger      *slog.Logger
}

// Stats counts the engine's model runs.
type Stats struct {
	Runs       int64 // model calls
	Chunks     int64 // chunks those calls synthesised
	Terminated int64 // calls stopped by cancelation
	MaxBatch   int64 // largest number of chunks in one call
}

// ChunkOutput is the raw output of one model call for one chunk: samples as
// the model produced them (not clipped) and, when the model has a duration
// output, the frames per input token (pads included).
type ChunkOutput struct {
	Samples   []float32
	Durations []int64
}

// Engine synthesises speech with Kokoro-82M. It is safe for concurrent use.
type Engine struct {
	log         *slog.Logger
	fe          FrontEnd
	sig         signature
	info        tts.EngineInfo
	bank        *voiceBank
	vocab       map[rune]int64 // the model's own vocab, when it differs from the front end's
	spaceID     int64
	chunkTokens int
	maxBatch    int
	window      time.Duration
	inflight    int // chunks of one job in flight at once

	queue     chan *item
	workers   []*worker
	quit      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	runs, chunks, terminated, maxSeen atomic.Int64

	// beforeRun, when set (tests only), is called by a worker just before
	// each model call with the number of chunks in it.
	beforeRun func(n int)
}

// New loads the model and the voices and starts the sessions. It fails when
// a file is missing or malformed, the model is not a Kokoro export it knows,
// or the device asked for cannot be used.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	if !ort.IsInitialized() {
		return nil, errors.New("kokoro: ONNX Runtime is not initialised (call kokoro.InitRuntime first)")
	}
	if cfg.FrontEnd == nil {
		return nil, errors.New("kokoro: Config.FrontEnd is required")
	}
	if cfg.ModelPath == "" {
		return nil, errors.New("kokoro: Config.ModelPath is required")
	}
	device := strings.ToLower(strings.TrimSpace(cfg.Device))
	if device == "" {
		device = DeviceCPU
	}
	if device != DeviceCPU && device != DeviceCUDA && device != DeviceAuto {
		return nil, fmt.Errorf("kokoro: device %q: must be cpu, cuda or auto", cfg.Device)
	}
	if cfg.MaxConcurrency < 0 || cfg.IntraOpThreads < 0 || cfg.ChunkTokens < 0 || cfg.ChunkTokens > MaxTokens || cfg.MaxBatch < 0 {
		return nil, fmt.Errorf("kokoro: invalid config: MaxConcurrency %d, IntraOpThreads %d, ChunkTokens %d (at most %d), MaxBatch %d",
			cfg.MaxConcurrency, cfg.IntraOpThreads, cfg.ChunkTokens, MaxTokens, cfg.MaxBatch)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("engine", "kokoro")
	if fi, err := os.Stat(cfg.ModelPath); err != nil {
		return nil, fmt.Errorf("kokoro: model: %w", err)
	} else if fi.IsDir() {
		return nil, fmt.Errorf("kokoro: model %s is a directory, want an .onnx file", cfg.ModelPath)
	}
	packs, err := loadVoices(cfg.VoicesPath)
	if err != nil {
		return nil, fmt.Errorf("kokoro: voices: %w", err)
	}
	bank := newVoiceBank(packs)
	if len(bank.set) == 0 {
		return nil, fmt.Errorf("kokoro: voices: none of the %d packs in %s is a Kokoro v1.0 voice", len(packs), cfg.VoicesPath)
	}
	if extra := bank.unknown(); len(extra) > 0 {
		log.Warn("voice packs not in the catalogue are ignored", "ids", extra)
	}
	sig, err := readSignature(cfg.ModelPath)
	if err != nil {
		return nil, fmt.Errorf("kokoro: model %s: %w", cfg.ModelPath, err)
	}
	name, err := modelName(cfg.ModelPath)
	if err != nil {
		return nil, fmt.Errorf("kokoro: model: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	e := &Engine{
		log:   log,
		fe:    cfg.FrontEnd,
		sig:   sig,
		bank:  bank,
		quit:  make(chan struct{}),
		queue: make(chan *item, 4096),
		info: tts.EngineInfo{
			Name:    "kokoro",
			Model:   name,
			Version: "onnxruntime " + ort.GetVersion(),
		},
		window: cfg.BatchWindow,
	}
	n := max(cfg.MaxConcurrency, 1)
	e.maxBatch = 1
	if sig.batch() {
		e.maxBatch = cfg.MaxBatch
		if e.maxBatch == 0 {
			e.maxBatch = DefaultMaxBatch
		}
	}
	e.inflight = n * e.maxBatch
	threads := cfg.IntraOpThreads
	if threads == 0 {
		threads = max(runtime.NumCPU()/n, 1)
	}
	spec := sessionSpec{path: cfg.ModelPath, sig: sig, deviceID: cfg.CUDADeviceID, memLimit: cfg.CUDAMemLimitBytes, threads: threads}

	switch device {
	case DeviceCPU:
		err = e.open(spec, n)
	case DeviceCUDA:
		spec.cuda = true
		if err = e.open(spec, n); err != nil {
			err = fmt.Errorf("kokoro: device cuda requested but the CUDA execution provider cannot be used "+
				"(ONNX Runtime %s needs a CUDA 12 + cuDNN 9 build with kernels for this GPU; set KOKORO_DEVICE=cpu or auto to run on the CPU): %w",
				ort.GetVersion(), err)
		}
	case DeviceAuto:
		spec.cuda = true
		if cerr := e.open(spec, n); cerr != nil {
			log.Warn("CUDA unavailable, falling back to CPU", "err", cerr)
			e.info.Detail = "cuda unavailable, using cpu: " + firstLine(cerr.Error())
			spec.cuda = false
			err = e.open(spec, n)
		}
	}
	if err != nil {
		return nil, err
	}
	e.info.Device = DeviceCPU
	if spec.cuda {
		e.info.Device = DeviceCUDA
	}
	e.chunkTokens = cfg.ChunkTokens
	if e.chunkTokens == 0 {
		e.chunkTokens = DefaultChunkTokensCPU
		if spec.cuda {
			e.chunkTokens = DefaultChunkTokensCUDA
		}
	}

	// Prefer the model's own vocab. When it differs from the front end's,
	// chunks are re-tokenised from their phonemes.
	mv, err := modelVocab(e.workers[0].sess)
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("kokoro: model %s: %w", cfg.ModelPath, err)
	}
	fv := phonemize.Vocab()
	vocab := fv
	if mv != nil && !sameVocab(mv, fv) {
		e.vocab, vocab = mv, mv
		log.Info("model carries its own vocab; chunks are re-tokenised with it", "symbols", len(mv))
	}
	e.spaceID = vocab[' ']

	if sig.speedInt32 {
		log.Warn("model takes an int32 speed: speeds are rounded to whole numbers")
	}
	for _, w := range e.workers {
		e.wg.Add(1)
		go e.work(w)
	}
	log.Info("kokoro engine ready", "model", name, "signature", sig.String(), "device", e.info.Device,
		"sessions", n, "intra_op_threads", threads, "batch", e.maxBatch, "chunk_tokens", e.chunkTokens,
		"voices", len(bank.set), "onnxruntime", ort.GetVersion(), "detail", e.info.Detail)
	return e, nil
}

// open creates n sessions on spec's device and proves the first with a tiny
// run. On failure it releases whatever it created.
func (e *Engine) open(spec sessionSpec, n int) (err error) {
	defer func() {
		if err != nil {
			e.destroyWorkers()
		}
	}()
	for i := range n {
		sp := spec
		var tmp string
		if spec.cuda && i == 0 {
			// Save the optimised graph once to count host<->GPU copies.
			dir, derr := os.MkdirTemp("", "kokoro-ort-")
			if derr == nil {
				defer os.RemoveAll(dir)
				tmp = filepath.Join(dir, "optimized.onnx")
				sp.optimizedTo = tmp
			}
		}
		s, err := newSession(sp)
		if err != nil {
			return err
		}
		ro, err := ort.NewRunOptions()
		if err != nil {
			s.Destroy()
			return err
		}
		e.workers = append(e.workers, &worker{sess: s, ro: ro})
		if tmp != "" {
			if c, cerr := countMemcpy(tmp); cerr == nil {
				e.log.Info("CUDA node placement", "memcpy_nodes", c)
				if c > 0 {
					e.info.Detail = fmt.Sprintf("%d host/GPU copy nodes in the optimised graph", c)
				}
			} else {
				e.log.Warn("could not inspect the optimised graph", "err", cerr)
			}
		}
	}
	// Prove the device with one tiny run: a session can be created with the
	// CUDA provider appended and still fail at its first kernel launch.
	var anyPack pack
	for _, v := range e.bank.packs {
		anyPack = v
		break
	}
	probe := e.newItem(context.Background(), []int64{e.anyID()}, anyPack, 1)
	start := time.Now()
	e.runBatch(e.workers[0], []*item{probe})
	r := <-probe.reply
	if r.err != nil {
		return fmt.Errorf("probe run: %w", r.err)
	}
	if len(r.out.Samples) == 0 {
		return fmt.Errorf("probe run: %w", errNoAudio)
	}
	e.log.Info("probe run ok", "cuda", spec.cuda, "samples", len(r.out.Samples), "took", time.Since(start).Round(time.Millisecond))
	e.runs.Store(0)
	e.chunks.Store(0)
	e.maxSeen.Store(0)
	return nil
}

// anyID returns a token id every Kokoro vocab has ('a' is 43 in v1.0).
func (e *Engine) anyID() int64 {
	if id, ok := phonemize.Vocab()['a']; ok && id > 0 {
		return id
	}
	return 1
}

func (e *Engine) destroyWorkers() {
	for _, w := range e.workers {
		w.ro.Destroy()
		w.sess.Destroy()
	}
	e.workers = nil
}

// Synthesize implements tts.Synthesizer: text to 24 kHz mono PCM in [-1, 1].
// Errors: EINVALID for a voice or text that can never work (non-English
// voices included), ECANCELED when ctx is canceled (a model call in progress
// is terminated), anything else is transient.
func (e *Engine) Synthesize(ctx context.Context, req tts.SynthesisRequest) (tts.PCM, error) {
	if err := ctx.Err(); err != nil {
		return tts.PCM{}, canceled(err)
	}
	ws, err := e.bank.set.ParseVoice(req.Voice)
	if err != nil {
		return tts.PCM{}, err
	}
	lang, err := phonemize.LangForVoice(ws[0].ID)
	if err != nil {
		return tts.PCM{}, tts.Wrap(tts.EINVALID, err, fmt.Sprintf(
			"voice: %q is not an English voice; the kokoro engine speaks American (a*) and British (b*) English voices only", ws[0].ID))
	}
	p, err := e.bank.resolve(ws)
	if err != nil {
		return tts.PCM{}, err
	}
	speed, err := checkSpeed(req.Speed)
	if err != nil {
		return tts.PCM{}, err
	}
	chunks, err := e.fe.Chunks(ctx, req.Text, lang, e.chunkTokens)
	if err != nil {
		if ctx.Err() != nil {
			return tts.PCM{}, canceled(ctx.Err())
		}
		return tts.PCM{}, err
	}
	pieces := e.plan(chunks)
	if len(pieces) == 0 {
		return tts.PCM{}, tts.Errorf(tts.EINVALID, "text: nothing to speak (no phonemes)")
	}
	audio, err := e.runAll(ctx, pieces, p, speed, req.Progress)
	if err != nil {
		return tts.PCM{}, err
	}
	pauses := make([]time.Duration, len(pieces))
	for i, pc := range pieces {
		pauses[i] = pc.pause
	}
	return tts.PCM{SampleRate: tts.SampleRate, Samples: join(audio, pauses, tts.SampleRate)}, nil
}

// RunChunk runs the model once on ids (phoneme token ids without the pads,
// at most 510) with the style row the reference rule picks from voice (an id
// or a blend) and speed, and returns the model's raw output, unclipped. It is
// the lower-level path Synthesize uses for every chunk.
func (e *Engine) RunChunk(ctx context.Context, ids []int64, voice string, speed float64) (ChunkOutput, error) {
	if len(ids) == 0 || len(ids) > MaxTokens {
		return ChunkOutput{}, tts.Errorf(tts.EINVALID, "ids: need 1 to %d token ids, got %d", MaxTokens, len(ids))
	}
	ws, err := e.bank.set.ParseVoice(voice)
	if err != nil {
		return ChunkOutput{}, err
	}
	p, err := e.bank.resolve(ws)
	if err != nil {
		return ChunkOutput{}, err
	}
	sp, err := checkSpeed(speed)
	if err != nil {
		return ChunkOutput{}, err
	}
	it := e.newItem(ctx, ids, p, sp)
	if err := e.submit(ctx, it); err != nil {
		return ChunkOutput{}, err
	}
	select {
	case r := <-it.reply:
		return r.out, r.err
	case <-ctx.Done():
		return ChunkOutput{}, canceled(ctx.Err())
	case <-e.quit:
		return ChunkOutput{}, errClosed
	}
}

// Voices lists the loaded voices the front end can speak (English, a* and
// b*): the others would only fail at synthesis, so they are not offered and
// a request for one is refused at submission.
func (e *Engine) Voices() []tts.Voice {
	var out []tts.Voice
	for _, v := range e.bank.voices() {
		if _, err := phonemize.LangForVoice(v.ID); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// Info describes the engine: device actually used, model file and hash, and
// why CUDA was not used when Device was "auto".
func (e *Engine) Info() tts.EngineInfo { return e.info }

// Stats returns counts of model calls since New.
func (e *Engine) Stats() Stats {
	return Stats{Runs: e.runs.Load(), Chunks: e.chunks.Load(), Terminated: e.terminated.Load(), MaxBatch: e.maxSeen.Load()}
}

// Close stops the sessions after their current call and releases them.
// Calls made after Close fail.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		close(e.quit)
		for _, w := range e.workers {
			// Stop calls in progress; their chunks fail as closed.
			w.ro.Terminate()
		}
		e.wg.Wait()
		var errs []error
		for _, w := range e.workers {
			errs = append(errs, w.ro.Destroy(), w.sess.Destroy())
		}
		e.workers = nil
		e.closeErr = errors.Join(errs...)
	})
	return e.closeErr
}

var errClosed = errors.New("kokoro: engine closed")

func canceled(err error) error { return tts.Wrap(tts.ECANCELED, err, "synthesis canceled") }

func checkSpeed(s float64) (float32, error) {
	if s == 0 {
		return tts.DefaultSpeed, nil
	}
	if math.IsNaN(s) || s < tts.MinSpeed || s > tts.MaxSpeed {
		return 0, tts.Errorf(tts.EINVALID, "speed: must be a number from %.1f to %.1f", tts.MinSpeed, tts.MaxSpeed)
	}
	return float32(s), nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// piece is one model call's worth of a job: ids without pads, and the
// silence that follows it.
type piece struct {
	ids   []int64
	pause time.Duration
}

// plan turns front-end chunks into model calls: re-tokenised with the
// model's vocab when it has its own, split further when a chunk is longer
// than the model takes, empty chunks dropped (their pause kept).
func (e *Engine) plan(chunks []phonemize.Chunk) []piece {
	var out []piece
	for _, c := range chunks {
		ids := c.Tokens
		if e.vocab != nil {
			ids = tokenize(c.Phonemes, e.vocab)
		}
		parts := splitTokens(ids, MaxTokens, e.spaceID)
		for i, p := range parts {
			pc := piece{ids: p}
			if i == len(parts)-1 {
				pc.pause = c.PauseAfter
			}
			out = append(out, pc)
		}
		if len(parts) == 0 && len(out) > 0 {
			out[len(out)-1].pause += c.PauseAfter
		}
	}
	return out
}

// tokenize maps phonemes to ids with vocab, dropping unknown symbols.
func tokenize(phonemes string, vocab map[rune]int64) []int64 {
	ids := make([]int64, 0, len(phonemes))
	for _, r := range phonemes {
		if id, ok := vocab[r]; ok {
			ids = append(ids, id)
		}
	}
	return ids
}

// splitTokens cuts ids into pieces of at most max, at the last space token
// of each window when there is one.
func splitTokens(ids []int64, max int, space int64) [][]int64 {
	var out [][]int64
	for len(ids) > max {
		cut := max
		for i := max; i > max/2; i-- {
			if ids[i] == space && space != 0 {
				cut = i
				break
			}
		}
		out = append(out, ids[:cut])
		ids = ids[cut:]
		if len(ids) > 0 && ids[0] == space && space != 0 {
			ids = ids[1:]
		}
	}
	if len(ids) > 0 {
		out = append(out, ids)
	}
	return out
}

// runAll runs a job's pieces with up to e.inflight of them in flight and
// returns their audio in order. Progress is called from this goroutine only,
// once per finished piece.
func (e *Engine) runAll(ctx context.Context, pieces []piece, p pack, speed float32, progress func(done, total int)) ([][]float32, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make([][]float32, len(pieces))
	type indexed struct {
		i int
		r result
	}
	done := make(chan indexed, len(pieces))
	next, inflight, finished := 0, 0, 0
	for finished < len(pieces) {
		for inflight < e.inflight && next < len(pieces) {
			it := e.newItem(ctx, pieces[next].ids, p, speed)
			i := next
			it.onDone = func(r result) { done <- indexed{i, r} }
			if err := e.submit(ctx, it); err != nil {
				return nil, err
			}
			next++
			inflight++
		}
		select {
		case d := <-done:
			inflight--
			if d.r.err != nil {
				return nil, d.r.err
			}
			out[d.i] = d.r.out.Samples
			finished++
			if progress != nil {
				progress(finished, len(pieces))
			}
		case <-ctx.Done():
			return nil, canceled(ctx.Err())
		case <-e.quit:
			return nil, errClosed
		}
	}
	return out, nil
}
