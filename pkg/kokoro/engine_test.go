package kokoro

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kokorotts/kokoro-tts/pkg/phonemize"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// Every export flavour loads, and exactly the padded ids, the style row n-1
// of the voice and the speed reach the model.
func TestExportFlavours(t *testing.T) {
	requireORT(t)
	heart := readPack(t, "af_heart")
	for _, tc := range []struct {
		model     string
		int32     bool
		durations bool
		batch     bool
	}{
		{model: "echo_v10.onnx"},
		{model: "echo_community.onnx"},
		{model: "echo_v11.onnx", durations: true},
		{model: "echo_v11_int32.onnx", int32: true, durations: true},
		{model: "echo_batch.onnx", batch: true},
	} {
		t.Run(tc.model, func(t *testing.T) {
			e := newEngine(t, Config{ModelPath: fixture(tc.model)})
			if got := e.sig.batch(); got != tc.batch {
				t.Fatalf("batch-capable = %v, want %v (%s)", got, tc.batch, e.sig)
			}
			if e.sig.speedInt32 != tc.int32 {
				t.Fatalf("int32 speed = %v, want %v", e.sig.speedInt32, tc.int32)
			}
			ids := []int64{50, 83, 156, 43, 16, 102, 177, 1}
			for _, speed := range []float64{1, 1.25, 0.5, 2} {
				out, err := e.RunChunk(context.Background(), ids, "af_heart", speed)
				if err != nil {
					t.Fatal(err)
				}
				got := decodeOne(t, out.Samples)
				if !equalIDs(got.ids, padded(ids)) {
					t.Fatalf("ids reaching the model = %v, want %v", got.ids, padded(ids))
				}
				want := float32(speed)
				if tc.int32 {
					want = float32(math.Round(speed))
				}
				if got.speed != want {
					t.Fatalf("speed reaching the model = %v, want %v", got.speed, want)
				}
				if row := styleRow(heart, len(ids)); !equalFloats(got.style, row) {
					t.Fatalf("style is not row %d of af_heart", len(ids)-1)
				}
				if tc.durations {
					if len(out.Durations) != len(ids)+2 || out.Durations[1] != ids[0]+1 {
						t.Fatalf("durations = %v, want ids+1 per padded token", out.Durations)
					}
				}
			}
			info := e.Info()
			if info.Name != "kokoro" || info.Device != "cpu" || !strings.HasPrefix(info.Model, tc.model+"@") || len(info.Model) != len(tc.model)+13 {
				t.Fatalf("Info = %+v", info)
			}
		})
	}
}

func equalFloats(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestStyleRowAndBlend(t *testing.T) {
	e := newEngine(t, Config{ModelPath: fixture("echo_v10.onnx")})
	heart, bella := readPack(t, "af_heart"), readPack(t, "af_bella")
	ctx := context.Background()
	for _, n := range []int{1, 2, 150, 509, 510} {
		out, err := e.RunChunk(ctx, seq(n, 0), "af_bella", 1)
		if err != nil {
			t.Fatal(err)
		}
		got := decodeOne(t, out.Samples)
		if len(got.ids) != n+2 || !equalFloats(got.style, styleRow(bella, n)) {
			t.Fatalf("n=%d: style is not row %d of af_bella", n, n-1)
		}
	}
	// A blend is the weighted average of the packs, weights normalised.
	for _, spec := range []string{"af_heart(3)+af_bella", "af_bella(1)+af_heart(3)"} {
		out, err := e.RunChunk(ctx, seq(40, 3), spec, 1)
		if err != nil {
			t.Fatal(err)
		}
		got := decodeOne(t, out.Samples)
		hr, br := styleRow(heart, 40), styleRow(bella, 40)
		for i := range got.style {
			want := 0.75*float64(hr[i]) + 0.25*float64(br[i])
			if math.Abs(float64(got.style[i])-want) > 1e-6 {
				t.Fatalf("%s: style[%d] = %v, want %v", spec, i, got.style[i], want)
			}
		}
	}
	if n := len(e.bank.blends); n != 1 {
		t.Fatalf("blend cache holds %d entries, want 1 (both spellings are one blend)", n)
	}
	if _, err := e.RunChunk(ctx, seq(511, 0), "af_bella", 1); tts.ErrorCode(err) != tts.EINVALID {
		t.Fatalf("511 tokens: err = %v, want EINVALID", err)
	}
	if _, err := e.RunChunk(ctx, seq(3, 0), "af_nobody", 1); tts.ErrorCode(err) != tts.EINVALID {
		t.Fatalf("unknown voice: err = %v, want EINVALID", err)
	}
}

func TestBlendCacheIsBounded(t *testing.T) {
	requireORT(t)
	packs, err := loadVoices(someVoices)
	if err != nil {
		t.Fatal(err)
	}
	b := newVoiceBank(packs)
	b.limit = 5
	ids := []string{"af_heart", "af_bella", "af_sky", "af_nova"}
	for i := range b.limit + 10 {
		ws, err := b.set.ParseVoice(ids[(i/100)%4] + "(" + strconv.Itoa(i%100+1) + ")+" + ids[(i/100+1)%4])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.resolve(ws); err != nil {
			t.Fatal(err)
		}
	}
	if len(b.blends) != b.limit || len(b.order) != b.limit {
		t.Fatalf("cache holds %d/%d blends, want %d", len(b.blends), len(b.order), b.limit)
	}
	// The newest blend is still cached: resolving it again returns the same pack.
	ws, _ := b.set.ParseVoice(ids[(b.limit+9)/100%4] + "(" + strconv.Itoa((b.limit+9)%100+1) + ")+" + ids[((b.limit+9)/100+1)%4])
	p1, _ := b.resolve(ws)
	p2, _ := b.resolve(ws)
	if &p1[0] != &p2[0] || len(b.blends) != b.limit {
		t.Fatal("a cached blend was recomputed")
	}
}

// Synthesize joins chunks in order with their pauses, and the encoded ids,
// style and speed survive the joins, fades and clipping.
func TestSynthesizeJoinsChunksInOrder(t *testing.T) {
	var chunks []phonemize.Chunk
	var want [][]int64
	for i, n := range []int{12, 150, 7, 510, 1, 88} {
		ids := seq(n, i*7)
		chunks = append(chunks, phonemize.Chunk{Text: "chunk", Tokens: ids, PauseAfter: time.Duration(i) * 100 * time.Millisecond})
		want = append(want, ids)
	}
	// One chunk longer than the model takes is split at a space token.
	long := seq(700, 0)
	long[400] = 16 // ' '
	chunks = append(chunks, phonemize.Chunk{Tokens: long})
	want = append(want, long[:400], long[401:])

	fe, calls := fixed(chunks...)
	e := newEngine(t, Config{ModelPath: fixture("echo_community.onnx"), FrontEnd: fe, MaxConcurrency: 2})
	var progress []int
	pcm, err := e.Synthesize(context.Background(), tts.SynthesisRequest{
		Text: "ignored by the fake", Voice: "bf_emma", Speed: 1.5,
		Progress: func(done, total int) {
			if total != len(want) {
				t.Errorf("progress total = %d, want %d", total, len(want))
			}
			progress = append(progress, done)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if pcm.SampleRate != 24000 {
		t.Fatalf("sample rate %d", pcm.SampleRate)
	}
	if calls.langs[0] != "en-gb" || calls.maxTokens != DefaultChunkTokensCPU {
		t.Fatalf("front end asked for %q with %d tokens, want en-gb and %d", calls.langs[0], calls.maxTokens, DefaultChunkTokensCPU)
	}
	for i, d := range progress {
		if d != i+1 {
			t.Fatalf("progress = %v, want 1..%d", progress, len(want))
		}
	}
	if len(progress) != len(want) {
		t.Fatalf("progress called %d times, want %d", len(progress), len(want))
	}
	segs, err := decodeEcho(pcm.Samples)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != len(want) {
		t.Fatalf("decoded %d chunks, want %d", len(segs), len(want))
	}
	emma := readPack(t, "bf_emma")
	for i, s := range segs {
		if !equalIDs(s.ids, padded(want[i])) {
			t.Fatalf("chunk %d: ids %v..., want %v...", i, s.ids[:min(5, len(s.ids))], padded(want[i])[:min(5, len(want[i])+2)])
		}
		if s.speed != 1.5 || !equalFloats(s.style, styleRow(emma, len(want[i]))) {
			t.Fatalf("chunk %d: speed %v or style row wrong", i, s.speed)
		}
	}
	// Length: every chunk's 739+n samples plus the pauses between chunks.
	total := 0
	for i, w := range want {
		total += 739 + len(w) + 2
		if i < 6 && i < len(want)-1 {
			total += int(chunks[i].PauseAfter.Seconds() * 24000)
		}
	}
	if len(pcm.Samples) != total {
		t.Fatalf("%d samples, want %d", len(pcm.Samples), total)
	}
}

func TestModelVocabFromMetadata(t *testing.T) {
	// echo_v11.onnx carries config.json in its metadata with every id
	// shifted by 200: chunks are re-tokenised from their phonemes with it.
	fe, _ := fixed(phonemize.Chunk{Phonemes: "həlˈO wˈɜɹld", Tokens: []int64{1, 2, 3}})
	e := newEngine(t, Config{ModelPath: fixture("echo_v11.onnx"), FrontEnd: fe})
	pcm, err := e.Synthesize(context.Background(), tts.SynthesisRequest{Text: "hello world", Voice: "af_heart"})
	if err != nil {
		t.Fatal(err)
	}
	got := decodeOne(t, pcm.Samples)
	v := phonemize.Vocab()
	var want []int64
	for _, r := range "həlˈO wˈɜɹld" {
		want = append(want, v[r]+200)
	}
	if !equalIDs(got.ids, padded(want)) {
		t.Fatalf("ids = %v, want the model vocab's %v", got.ids, padded(want))
	}
	if e.vocab == nil {
		t.Fatal("engine did not take the model's vocab")
	}
	// A model without metadata uses the front end's tokens as they are.
	e2 := newEngine(t, Config{ModelPath: fixture("echo_v10.onnx"), FrontEnd: fe})
	pcm, err = e2.Synthesize(context.Background(), tts.SynthesisRequest{Text: "hello world", Voice: "af_heart"})
	if err != nil {
		t.Fatal(err)
	}
	if got := decodeOne(t, pcm.Samples); !equalIDs(got.ids, []int64{0, 1, 2, 3, 0}) {
		t.Fatalf("ids = %v, want the front end's tokens", got.ids)
	}
}

func TestSynthesizeErrors(t *testing.T) {
	fe, _ := fixed(phonemize.Chunk{Tokens: nil, PauseAfter: time.Second})
	e := newEngine(t, Config{ModelPath: fixture("echo_v10.onnx"), FrontEnd: fe})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		req  tts.SynthesisRequest
		code string
	}{
		{"non-English voice", tts.SynthesisRequest{Text: "hola", Voice: "ef_dora"}, tts.EINVALID},
		{"Japanese voice", tts.SynthesisRequest{Text: "x", Voice: "jf_alpha"}, tts.EINVALID},
		{"unknown voice", tts.SynthesisRequest{Text: "x", Voice: "af_nobody"}, tts.EINVALID},
		{"speed", tts.SynthesisRequest{Text: "x", Voice: "af_heart", Speed: 3}, tts.EINVALID},
		{"nothing to speak", tts.SynthesisRequest{Text: "...", Voice: "af_heart"}, tts.EINVALID},
	} {
		_, err := e.Synthesize(ctx, tc.req)
		if got := tts.ErrorCode(err); got != tc.code {
			t.Errorf("%s: err = %v, want code %s", tc.name, err, tc.code)
		}
	}
	canceledCtx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.Synthesize(canceledCtx, tts.SynthesisRequest{Text: "x", Voice: "af_heart"}); tts.ErrorCode(err) != tts.ECANCELED {
		t.Fatalf("canceled ctx: err = %v, want ECANCELED", err)
	}
}

// Canceling a job terminates the model call in progress.
func TestCancelTerminatesRun(t *testing.T) {
	fe, _ := fixed(phonemize.Chunk{Tokens: seq(60, 0)}, phonemize.Chunk{Tokens: seq(60, 1)})
	e := newEngine(t, Config{ModelPath: fixture("standin.onnx"), FrontEnd: fe})
	ctx, cancel := context.WithCancel(context.Background())
	e.beforeRun = func(int) { cancel() } // the call starts with its job already canceled
	_, err := e.Synthesize(ctx, tts.SynthesisRequest{Text: "long", Voice: "am_adam"})
	if tts.ErrorCode(err) != tts.ECANCELED || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want ECANCELED wrapping context.Canceled", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	st := e.Stats()
	if st.Runs != 1 || st.Terminated != 1 {
		t.Fatalf("stats %+v: want 1 run, terminated", st)
	}
}

// A chunk whose job is canceled while it waits in the queue never runs, and
// a terminated call leaves its session usable.
func TestCancelWhileQueued(t *testing.T) {
	fe, _ := fixed(phonemize.Chunk{Tokens: seq(8, 0)})
	e := newEngine(t, Config{ModelPath: fixture("echo_v10.onnx"), FrontEnd: fe})
	release := make(chan struct{})
	started := make(chan struct{}, 4)
	e.beforeRun = func(int) { started <- struct{}{}; <-release }
	errc := make(chan error, 2)
	go func() {
		_, err := e.Synthesize(context.Background(), tts.SynthesisRequest{Text: "a", Voice: "af_heart"})
		errc <- err
	}()
	<-started // the only session is busy
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, err := e.Synthesize(ctx, tts.SynthesisRequest{Text: "b", Voice: "af_heart"})
		errc <- err
	}()
	for len(e.queue) == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; tts.ErrorCode(err) != tts.ECANCELED {
		t.Fatalf("queued job: err = %v, want ECANCELED", err)
	}
	close(release)
	if err := <-errc; err != nil {
		t.Fatalf("running job: %v", err)
	}
	e.beforeRun = nil
	// The canceled chunk is dropped when a worker dequeues it, without a run.
	if _, err := e.Synthesize(context.Background(), tts.SynthesisRequest{Text: "c", Voice: "af_heart"}); err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.Runs != 2 {
		t.Fatalf("stats %+v: want 2 runs (the canceled chunk never ran)", st)
	}
}

// Concurrent jobs each get their own tokens and voice back (run with -race).
func TestConcurrentJobs(t *testing.T) {
	voices := []string{"af_heart", "am_adam", "bf_emma", "bm_george", "af_sky(2)+af_nova", "am_echo"}
	fe := frontEndFunc(func(ctx context.Context, text, lang string, maxTokens int) ([]phonemize.Chunk, error) {
		i := int(text[0] - 'a')
		return []phonemize.Chunk{{Tokens: seq(20+i, i)}, {Tokens: seq(30+i, 2*i), PauseAfter: 50 * time.Millisecond}, {Tokens: seq(5, i)}}, nil
	})
	for _, model := range []string{"echo_v10.onnx", "echo_batch.onnx"} {
		t.Run(model, func(t *testing.T) {
			e := newEngine(t, Config{ModelPath: fixture(model), FrontEnd: fe, MaxConcurrency: 2})
			var wg sync.WaitGroup
			for round := 0; round < 3; round++ {
				for i, v := range voices {
					wg.Add(1)
					go func() {
						defer wg.Done()
						pcm, err := e.Synthesize(context.Background(), tts.SynthesisRequest{Text: string(rune('a' + i)), Voice: v})
						if err != nil {
							t.Error(err)
							return
						}
						segs, err := decodeEcho(pcm.Samples)
						if err != nil || len(segs) != 3 {
							t.Errorf("job %d: %d segments, %v", i, len(segs), err)
							return
						}
						want := [][]int64{seq(20+i, i), seq(30+i, 2*i), seq(5, i)}
						ws, _ := e.bank.set.ParseVoice(v)
						p, _ := e.bank.resolve(ws)
						for k, s := range segs {
							if !equalIDs(s.ids, padded(want[k])) || !equalFloats(s.style, p.row(len(want[k]))) {
								t.Errorf("job %d chunk %d: got another job's tokens or style", i, k)
							}
						}
					}()
				}
			}
			wg.Wait()
		})
	}
}

// On a model with input_lengths, chunks of concurrent jobs queued while the
// session is busy go into one call, and each gets its own row back.
func TestBatcherGroupsChunks(t *testing.T) {
	fe := frontEndFunc(func(ctx context.Context, text, lang string, maxTokens int) ([]phonemize.Chunk, error) {
		i := int(text[0] - 'a')
		return []phonemize.Chunk{{Tokens: seq(3+17*i, i)}}, nil
	})
	e := newEngine(t, Config{ModelPath: fixture("echo_batch.onnx"), FrontEnd: fe, MaxConcurrency: 1, MaxBatch: 8})
	release := make(chan struct{})
	var once sync.Once
	e.beforeRun = func(int) { once.Do(func() { <-release }) }
	voices := []string{"af_heart", "am_adam", "bf_emma", "bm_george", "af_bella"}
	type res struct {
		i   int
		pcm tts.PCM
		err error
	}
	out := make(chan res, len(voices))
	run := func(i int) {
		pcm, err := e.Synthesize(context.Background(), tts.SynthesisRequest{Text: string(rune('a' + i)), Voice: voices[i]})
		out <- res{i, pcm, err}
	}
	go run(0)
	for e.Stats().Runs == 0 { // job 0 is in the (blocked) call
		time.Sleep(time.Millisecond)
	}
	for i := 1; i < len(voices); i++ {
		go run(i)
	}
	for len(e.queue) < len(voices)-1 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	for range voices {
		r := <-out
		if r.err != nil {
			t.Fatal(r.err)
		}
		got := decodeOne(t, r.pcm.Samples)
		want := seq(3+17*r.i, r.i)
		if !equalIDs(got.ids, padded(want)) || !equalFloats(got.style, styleRow(readPack(t, voices[r.i]), len(want))) {
			t.Fatalf("job %d: wrong row (ids %d, want %d)", r.i, len(got.ids), len(want)+2)
		}
		if len(r.pcm.Samples) != 739+len(want)+2 {
			t.Fatalf("job %d: %d samples, want %d: rows must be cut by output_lengths", r.i, len(r.pcm.Samples), 739+len(want)+2)
		}
	}
	if st := e.Stats(); st.Runs != 2 || st.Chunks != 5 || st.MaxBatch != 4 {
		t.Fatalf("stats %+v: want 2 runs for 5 chunks, 4 in one call", st)
	}
}

func TestDevices(t *testing.T) {
	requireORT(t)
	fe, _ := fixed(phonemize.Chunk{Tokens: []int64{50}})
	// This machine's ONNX Runtime has no CUDA provider: "cuda" must fail at
	// once with a readable reason, "auto" must fall back to the CPU.
	_, err := New(context.Background(), Config{ModelPath: fixture("echo_v10.onnx"), VoicesPath: someVoices, FrontEnd: fe, Device: "cuda"})
	if err == nil {
		t.Skip("the CUDA provider works here: nothing to fall back from")
	}
	if !strings.Contains(err.Error(), "device cuda requested") || !strings.Contains(err.Error(), "CUDA") {
		t.Fatalf("cuda error is not clear: %v", err)
	}
	t.Logf("cuda: %v", err)
	e := newEngine(t, Config{ModelPath: fixture("echo_v10.onnx"), FrontEnd: fe, Device: "auto"})
	info := e.Info()
	if info.Device != "cpu" || !strings.HasPrefix(info.Detail, "cuda unavailable") {
		t.Fatalf("auto: Info = %+v, want cpu with the reason", info)
	}
	if _, err := e.Synthesize(context.Background(), tts.SynthesisRequest{Text: "x", Voice: "af_heart"}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), Config{ModelPath: fixture("echo_v10.onnx"), VoicesPath: someVoices, FrontEnd: fe, Device: "tpu"}); err == nil {
		t.Fatal("device tpu accepted")
	}
}

func TestNewRejectsMissingOrBadFiles(t *testing.T) {
	requireORT(t)
	fe, _ := fixed()
	dir := t.TempDir()
	badPack := filepath.Join(dir, "badpacks")
	os.Mkdir(badPack, 0o755)
	os.WriteFile(filepath.Join(badPack, "af_heart.bin"), make([]byte, 1000), 0o644)
	notModel := filepath.Join(dir, "x.onnx")
	os.WriteFile(notModel, []byte("not a model"), 0o644)
	for _, tc := range []struct {
		name          string
		model, voices string
		want          string
	}{
		{"missing model", filepath.Join(dir, "nope.onnx"), someVoices, "no such file"},
		{"model is not ONNX", notModel, someVoices, "x.onnx"},
		{"missing voices", fixture("echo_v10.onnx"), filepath.Join(dir, "nope"), "no such file"},
		{"empty voices dir", fixture("echo_v10.onnx"), t.TempDir(), "no voice packs"},
		{"bad pack size", fixture("echo_v10.onnx"), badPack, "1000 bytes"},
		{"voices file is not npz", fixture("echo_v10.onnx"), notModel, "npz"},
	} {
		_, err := New(context.Background(), Config{ModelPath: tc.model, VoicesPath: tc.voices, FrontEnd: fe})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestCloseFailsLaterCalls(t *testing.T) {
	e := newEngine(t, Config{ModelPath: fixture("echo_v10.onnx")})
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Synthesize(context.Background(), tts.SynthesisRequest{Text: "x", Voice: "af_heart"}); !errors.Is(err, errClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestCountMemcpyOnCPU(t *testing.T) {
	requireORT(t)
	sig, err := readSignature(fixture("echo_v10.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "opt.onnx")
	s, err := newSession(sessionSpec{path: fixture("echo_v10.onnx"), sig: sig, threads: 1, optimizedTo: out})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	n, err := countMemcpy(out)
	if err != nil || n != 0 {
		t.Fatalf("countMemcpy = %d, %v; want 0 copies on the CPU", n, err)
	}
}
