package espeak_test

import (
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/kokorotts/kokoro-tts/pkg/audio"
	"github.com/kokorotts/kokoro-tts/pkg/espeak"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

var _ tts.Synthesizer = (*espeak.Engine)(nil)

// requireTool skips (or, under CI=true, fails) a test whose external tool is
// missing, naming the Debian package that provides it.
func requireTool(tb testing.TB, name, pkg string) {
	tb.Helper()
	if _, err := exec.LookPath(name); err != nil {
		msg := name + " not found: install the Debian package " + pkg + " (apt-get install " + pkg + ")"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
}

func newEngine(tb testing.TB, cfg espeak.Config) *espeak.Engine {
	tb.Helper()
	requireTool(tb, "espeak-ng", "espeak-ng")
	e, err := espeak.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

func synth(t *testing.T, e *espeak.Engine, text, voice string, speed float64) tts.PCM {
	t.Helper()
	p, err := e.Synthesize(context.Background(), tts.SynthesisRequest{Text: text, Voice: voice, Speed: speed})
	if err != nil {
		t.Fatalf("Synthesize(%q, %s, %v): %v", text, voice, speed, err)
	}
	if p.SampleRate != tts.SampleRate {
		t.Fatalf("sample rate %d", p.SampleRate)
	}
	return p
}

func seconds(p tts.PCM) float64 { return p.Duration().Seconds() }

func rms(s []float32) float64 {
	var sum float64
	for _, x := range s {
		sum += float64(x) * float64(x)
	}
	return math.Sqrt(sum / float64(len(s)))
}

// pitch estimates the median fundamental frequency of the voiced frames by
// autocorrelation of the signal decimated to 12 kHz: enough to tell a
// female voice variant from a male one.
func pitch(p tts.PCM) float64 {
	rate := p.SampleRate / 2
	x := make([]float64, len(p.Samples)/2)
	for i := range x {
		x[i] = float64(p.Samples[2*i]+p.Samples[2*i+1]) / 2
	}
	const frame = 512
	lo, hi := rate/500, rate/60
	var f0s []float64
	for i := 0; i+frame+hi < len(x); i += frame / 2 {
		w := x[i : i+frame+hi]
		ac := func(lag int) float64 {
			var s float64
			for j := 0; j < frame; j++ {
				s += w[j] * w[j+lag]
			}
			return s
		}
		energy := ac(0)
		if math.Sqrt(energy/frame) < 0.02 {
			continue
		}
		best, bestLag := 0.0, 0
		for lag := lo; lag <= hi; lag++ {
			if v := ac(lag); v > best {
				best, bestLag = v, lag
			}
		}
		if bestLag > 0 && best > 0.3*energy {
			f0s = append(f0s, float64(rate)/float64(bestLag))
		}
	}
	if len(f0s) == 0 {
		return 0
	}
	sort.Float64s(f0s)
	return f0s[len(f0s)/2]
}

func TestHelloWorld(t *testing.T) {
	e := newEngine(t, espeak.Config{})
	p := synth(t, e, "Hello world", "af_heart", 1)
	if d := seconds(p); d < 0.5 || d > 3 {
		t.Errorf("duration %.2f s, want 0.5 to 3 s", d)
	}
	if r := rms(p.Samples); r < 0.01 {
		t.Errorf("RMS %.4f: silent", r)
	}
	for i, x := range p.Samples {
		if math.IsNaN(float64(x)) || x > 1.01 || x < -1.01 {
			t.Fatalf("sample %d = %v", i, x)
		}
	}
	info := e.Info()
	if info.Name != "espeak-ng" || info.Device != "cpu" || info.Version == "" || info.Version == "unknown" {
		t.Errorf("Info() = %+v", info)
	}
	if n := len(e.Voices()); n != len(tts.Catalogue()) {
		t.Errorf("%d voices, want the catalogue's %d", n, len(tts.Catalogue()))
	}
}

// The whole pipeline: espeak-ng speech encodes to an MP3 that decodes.
func TestEncodesToMP3(t *testing.T) {
	requireTool(t, "ffmpeg", "ffmpeg")
	requireTool(t, "ffprobe", "ffmpeg")
	e := newEngine(t, espeak.Config{})
	p := synth(t, e, "The pipeline works end to end.", "bm_george", 1)
	enc, err := audio.NewEncoder(audio.Config{})
	if err != nil {
		t.Fatal(err)
	}
	b, res, err := enc.EncodeBytes(context.Background(), p, tts.FormatMP3)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := audio.ProbeBytes(context.Background(), "", b)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Codec != "mp3" || pr.SampleRate != 24000 || pr.Channels != 1 || math.Abs(pr.DurationSeconds-res.DurationSeconds) > 0.1 {
		t.Errorf("probe %+v, encoded %+v", pr, res)
	}
}

func TestSpeed(t *testing.T) {
	e := newEngine(t, espeak.Config{})
	const text = "The quick brown fox jumps over the lazy dog."
	slow := seconds(synth(t, e, text, "am_adam", 0.5))
	normal := seconds(synth(t, e, text, "am_adam", 1))
	fast := seconds(synth(t, e, text, "am_adam", 2))
	if !(fast < normal && normal < slow) {
		t.Errorf("durations at speed 2, 1, 0.5: %.2f, %.2f, %.2f s; want increasing", fast, normal, slow)
	}
	if def := seconds(synth(t, e, text, "am_adam", 0)); def != normal {
		t.Errorf("speed 0 (default) gives %.2f s, speed 1 %.2f s", def, normal)
	}
}

// Every catalogue voice, the British ones included, produces speech in a
// voice of its gender: espeak-ng's female variants speak around 175-220 Hz,
// its male ones around 90-110 Hz.
func TestEveryVoice(t *testing.T) {
	e := newEngine(t, espeak.Config{})
	greeting := map[string]string{
		"a": "Hello, how are you?", "b": "Hello, how are you?", "e": "Hola, ¿cómo estás?",
		"f": "Bonjour, comment ça va ?", "h": "नमस्ते, आप कैसे हैं?", "i": "Ciao, come stai?",
		"j": "こんにちは、お元気ですか。", "p": "Olá, como vai você?", "z": "你好，你好吗？",
	}
	for _, v := range tts.Catalogue() {
		t.Run(v.ID, func(t *testing.T) {
			t.Parallel()
			p := synth(t, e, greeting[v.LanguageCode], v.ID, 1)
			if d := seconds(p); d < 0.3 || rms(p.Samples) < 0.01 {
				t.Errorf("%s (%s): %.2f s, RMS %.4f", v.ID, v.Language, d, rms(p.Samples))
			}
			f0 := pitch(p)
			if female := v.Gender == "female"; female != (f0 > 140) || f0 == 0 {
				t.Errorf("%s (%s, %s): pitch %.0f Hz", v.ID, v.Language, v.Gender, f0)
			}
		})
	}
}

// A blend is spoken with its heaviest voice.
func TestBlendUsesHeaviestVoice(t *testing.T) {
	e := newEngine(t, espeak.Config{})
	const text = "Blending two voices."
	alone := synth(t, e, text, "af_heart", 1)
	for _, tc := range []struct {
		blend  string
		female bool
	}{
		{"am_adam(1)+af_heart(3)", true},
		{"am_adam(3)+af_heart(1)", false},
		{"af_heart+am_adam(0.5)", true},
	} {
		p := synth(t, e, text, tc.blend, 1)
		if f0 := pitch(p); (f0 > 140) != tc.female {
			t.Errorf("%s: pitch %.0f Hz, want a female voice: %v", tc.blend, f0, tc.female)
		}
		// espeak-ng is deterministic: the same voice gives the same audio.
		if tc.female && len(p.Samples) != len(alone.Samples) {
			t.Errorf("%s: %d samples, af_heart alone %d", tc.blend, len(p.Samples), len(alone.Samples))
		}
	}
}

func longText() string {
	sentences := []string{
		"The committee met on Tuesday to review the annual budget.",
		"Several members raised concerns about rising maintenance costs, especially for the older buildings.",
		"After a long discussion, they agreed to postpone the final vote until next month.",
		"In the meantime, a working group will gather quotes from at least three contractors.",
	}
	var b strings.Builder
	for i := 0; b.Len() < 2300; i++ {
		b.WriteString(sentences[i%len(sentences)])
		b.WriteByte(' ')
	}
	return b.String()
}

func TestLongTextProgress(t *testing.T) {
	e := newEngine(t, espeak.Config{})
	text := longText()
	var calls [][2]int
	p, err := e.Synthesize(context.Background(), tts.SynthesisRequest{
		Text: text, Voice: "af_sky", Speed: 2,
		Progress: func(done, total int) { calls = append(calls, [2]int{done, total}) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) < 3 {
		t.Fatalf("progress called %d times for %d characters, want one call per chunk of at most %d", len(calls), len(text), espeak.DefaultMaxChunkChars)
	}
	total := calls[0][1]
	for i, c := range calls {
		if c[0] != i+1 || c[1] != total {
			t.Errorf("progress call %d = %v, want (%d, %d)", i, c, i+1, total)
		}
	}
	if total != len(calls) {
		t.Errorf("total %d, calls %d", total, len(calls))
	}
	// About 350 words at 350 words per minute: about a minute.
	if d := seconds(p); d < 30 {
		t.Errorf("%d characters gave %.1f s of audio", len(text), d)
	}
}

func isCanceled(err error) bool {
	return tts.ErrorCode(err) == tts.ECANCELED && errors.Is(err, context.Canceled)
}

func TestCancel(t *testing.T) {
	e := newEngine(t, espeak.Config{})
	text := longText()

	t.Run("before start", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		calls := 0
		_, err := e.Synthesize(ctx, tts.SynthesisRequest{Text: text, Voice: "af_heart", Progress: func(int, int) { calls++ }})
		if !isCanceled(err) || calls != 0 {
			t.Errorf("err = %v after %d chunks, want %s before any", err, calls, tts.ECANCELED)
		}
	})

	t.Run("between chunks", func(t *testing.T) {
		small := newEngine(t, espeak.Config{MaxChunkChars: 200})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		calls := 0
		_, err := small.Synthesize(ctx, tts.SynthesisRequest{Text: text, Voice: "af_heart", Progress: func(int, int) {
			calls++
			cancel()
		}})
		if !isCanceled(err) || calls != 1 {
			t.Errorf("err = %v after %d chunks, want %s after 1", err, calls, tts.ECANCELED)
		}
	})

	// One huge chunk: the cancel lands while espeak-ng runs, and the
	// process is killed rather than waited for.
	t.Run("while running", func(t *testing.T) {
		big := newEngine(t, espeak.Config{MaxChunkChars: 100000})
		ctx, cancel := context.WithCancel(context.Background())
		started := make(chan struct{})
		go func() { <-started; cancel() }()
		close(started)
		_, err := big.Synthesize(ctx, tts.SynthesisRequest{Text: strings.Repeat(text, 8), Voice: "af_heart"})
		if !isCanceled(err) {
			t.Errorf("err = %v, want %s", err, tts.ECANCELED)
		}
	})
}

// Markup is read out, not obeyed: no -m, and "[[" raw phoneme input is
// defused.
func TestMarkupIsSpoken(t *testing.T) {
	e := newEngine(t, espeak.Config{})
	hi := seconds(synth(t, e, "hi", "af_heart", 1))
	ssml := seconds(synth(t, e, `<speak><break time="10s"/>hi</speak>`, "af_heart", 1))
	if ssml >= 10 || ssml < 2*hi {
		t.Errorf("SSML text: %.2f s (\"hi\" alone %.2f s): want the tags spoken, no 10 s break", ssml, hi)
	}
	hello := seconds(synth(t, e, "hello", "af_heart", 1))
	phonemes := seconds(synth(t, e, "[[h@l'oU]]", "af_heart", 1))
	if phonemes < 1.5*hello {
		t.Errorf("[[h@l'oU]]: %.2f s, \"hello\" %.2f s: want the characters spoken, not the phonemes", phonemes, hello)
	}
}

// Control characters, emoji and right-to-left text do not break synthesis;
// a NUL does not end the text early.
func TestOddText(t *testing.T) {
	e := newEngine(t, espeak.Config{})
	hello := seconds(synth(t, e, "Hello", "af_heart", 1))
	for _, text := range []string{
		"Hello\x00 world, this goes on after a NUL.",
		"Hello 😀👩‍👩‍👧 world",
		"Hello \u202eشكرا\u202c world שלום",
		"Hello\x1b[31m red \x07 world",
		"-v xx --stdout Hello",
		"Hello " + strings.Repeat("\u0301", 50) + " world",
		"Hello \xff\xfe world",
	} {
		p := synth(t, e, text, "af_heart", 1)
		if d := seconds(p); d <= hello {
			t.Errorf("%q: %.2f s, no longer than \"Hello\" alone (%.2f s)", text, d, hello)
		}
	}
}

func TestInvalid(t *testing.T) {
	e := newEngine(t, espeak.Config{})
	for _, tc := range []struct {
		name string
		req  tts.SynthesisRequest
	}{
		{"empty", tts.SynthesisRequest{Text: "", Voice: "af_heart"}},
		{"spaces", tts.SynthesisRequest{Text: " \n\t\u00a0 ", Voice: "af_heart"}},
		{"control only", tts.SynthesisRequest{Text: "\x00\x01\u200b\u202e", Voice: "af_heart"}},
		{"unknown voice", tts.SynthesisRequest{Text: "hi", Voice: "xx_nobody"}},
		{"mixed-language blend", tts.SynthesisRequest{Text: "hi", Voice: "af_heart+bf_emma"}},
		{"NaN speed", tts.SynthesisRequest{Text: "hi", Voice: "af_heart", Speed: math.NaN()}},
		{"negative speed", tts.SynthesisRequest{Text: "hi", Voice: "af_heart", Speed: -1}},
	} {
		if _, err := e.Synthesize(context.Background(), tc.req); tts.ErrorCode(err) != tts.EINVALID {
			t.Errorf("%s: err = %v, want %s", tc.name, err, tts.EINVALID)
		}
	}
}

func TestConcurrent(t *testing.T) {
	e := newEngine(t, espeak.Config{MaxConcurrency: 2})
	const n = 6
	lens := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := e.Synthesize(context.Background(), tts.SynthesisRequest{Text: "Several requests at once. Each gets its own process.", Voice: "bf_alice"})
			lens[i], errs[i] = len(p.Samples), err
		}()
	}
	wg.Wait()
	for i := range lens {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		// espeak-ng is deterministic: the same request gives the same audio.
		if lens[i] != lens[0] || lens[i] == 0 {
			t.Errorf("call %d: %d samples, call 0: %d", i, lens[i], lens[0])
		}
	}
}

func TestMissingBinary(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "espeak-ng")
	_, err := espeak.New(espeak.Config{Path: bad})
	if err == nil || !strings.Contains(err.Error(), "Debian package espeak-ng") || !strings.Contains(err.Error(), bad) {
		t.Errorf("err = %v, want one naming %s and the espeak-ng package", err, bad)
	}
	if tts.ErrorCode(err) != tts.EUNAVAILABLE {
		t.Errorf("code %s, want %s", tts.ErrorCode(err), tts.EUNAVAILABLE)
	}
}

func TestClose(t *testing.T) {
	e := newEngine(t, espeak.Config{})
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Synthesize(context.Background(), tts.SynthesisRequest{Text: "hi", Voice: "af_heart"}); tts.ErrorCode(err) != tts.EUNAVAILABLE {
		t.Errorf("after Close: err = %v, want %s", err, tts.EUNAVAILABLE)
	}
}

// BenchmarkSynthesizeSentence speaks one sentence; x_realtime is audio
// seconds per wall second.
func BenchmarkSynthesizeSentence(b *testing.B) {
	e := newEngine(b, espeak.Config{})
	req := tts.SynthesisRequest{Text: "The quick brown fox jumps over the lazy dog, and then it rests in the shade.", Voice: "af_heart", Speed: 1}
	var audioSeconds float64
	for i := 0; i < b.N; i++ {
		p, err := e.Synthesize(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		audioSeconds += p.Duration().Seconds()
	}
	b.ReportMetric(audioSeconds/b.Elapsed().Seconds(), "x_realtime")
}
