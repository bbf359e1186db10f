package kokoro

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kokorotts/kokoro-tts/pkg/phonemize"
)

// The ONNX Runtime environment is process-wide, so TestMain sets it up once
// for every test. The library comes from $ONNXRUNTIME_LIB or from
// scripts/ensure-onnxruntime.sh (which reuses or fetches the onnxruntime-node
// npm package); the voice packs from $KOKORO_TEST_VOICES or
// scripts/kokoro-fixtures/ensure-voices.sh (kokoro-js npm package).
var (
	ortErr     error  // why ONNX Runtime is unavailable
	voicesDir  string // 54 raw packs
	someVoices string // testVoiceIDs only
	voicesErr  error
)

func TestMain(m *testing.M) {
	lib, err := locate("ONNXRUNTIME_LIB", "../../scripts/ensure-onnxruntime.sh")
	var release func() error
	if err != nil {
		ortErr = fmt.Errorf("ONNX Runtime library not found (set ONNXRUNTIME_LIB or run scripts/ensure-onnxruntime.sh; it needs npm: apt-get install npm): %w", err)
	} else if release, err = InitRuntime(lib); err != nil {
		ortErr = err
	}
	voicesDir, voicesErr = locate("KOKORO_TEST_VOICES", "../../scripts/kokoro-fixtures/ensure-voices.sh")
	if voicesErr != nil {
		voicesErr = fmt.Errorf("Kokoro voice packs not found (set KOKORO_TEST_VOICES or run scripts/kokoro-fixtures/ensure-voices.sh; it needs npm: apt-get install npm): %w", voicesErr)
	} else {
		someVoices, voicesErr = linkVoices(voicesDir)
	}
	code := m.Run()
	if release != nil {
		if err := release(); err != nil {
			fmt.Fprintln(os.Stderr, "release ONNX Runtime:", err)
		}
	}
	if someVoices != "" {
		os.RemoveAll(someVoices)
	}
	os.Exit(code)
}

// testVoiceIDs are the packs most tests load: loading all 54 costs about a
// second under the race detector, and only TestAll54VoicesLoadFromFolder
// needs them all.
var testVoiceIDs = []string{"af_heart", "af_bella", "af_sky", "af_nova", "am_adam", "am_echo", "bf_emma", "bm_george", "ef_dora", "jf_alpha"}

// linkVoices makes a temp folder of symlinks to testVoiceIDs' packs.
func linkVoices(full string) (string, error) {
	dir, err := os.MkdirTemp("", "kokoro-voices-")
	if err != nil {
		return "", err
	}
	for _, id := range testVoiceIDs {
		src, err := filepath.Abs(filepath.Join(full, id+".bin"))
		if err != nil {
			return dir, err
		}
		if err := os.Symlink(src, filepath.Join(dir, id+".bin")); err != nil {
			return dir, err
		}
	}
	return dir, nil
}

// locate returns $env when set, else the last stdout line of script.
func locate(env, script string) (string, error) {
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s: %w", env, err)
		}
		return p, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w", script, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	p := strings.TrimSpace(lines[len(lines)-1])
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s printed %q: %w", script, p, err)
	}
	return p, nil
}

// need fails the test under CI=true and skips it otherwise when a real
// dependency is missing.
func need(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(err)
	}
	t.Skip(err)
}

func requireORT(t testing.TB) {
	t.Helper()
	need(t, ortErr)
	need(t, voicesErr)
}

// frontEndFunc is a hand-written fake front end: it returns exact tokens.
type frontEndFunc func(ctx context.Context, text, lang string, maxTokens int) ([]phonemize.Chunk, error)

func (f frontEndFunc) Chunks(ctx context.Context, text, lang string, maxTokens int) ([]phonemize.Chunk, error) {
	return f(ctx, text, lang, maxTokens)
}

// fixed returns a front end that always answers chunks and records the
// language and chunk size it was asked for.
func fixed(chunks ...phonemize.Chunk) (frontEndFunc, *frontEndCalls) {
	calls := &frontEndCalls{}
	return func(ctx context.Context, text, lang string, maxTokens int) ([]phonemize.Chunk, error) {
		calls.mu.Lock()
		calls.langs = append(calls.langs, lang)
		calls.maxTokens = maxTokens
		calls.mu.Unlock()
		out := make([]phonemize.Chunk, len(chunks))
		for i, c := range chunks {
			c.Tokens = append([]int64(nil), c.Tokens...)
			out[i] = c
		}
		return out, nil
	}, calls
}

type frontEndCalls struct {
	mu        sync.Mutex
	langs     []string
	maxTokens int
}

func fixture(name string) string { return filepath.Join("testdata", name) }

func newEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	requireORT(t)
	if cfg.VoicesPath == "" {
		cfg.VoicesPath = someVoices
	}
	if cfg.FrontEnd == nil {
		fe, _ := fixed(phonemize.Chunk{Tokens: []int64{50}})
		cfg.FrontEnd = fe
	}
	e, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.ModelPath, err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// echo is what an echo fixture saw in one call (see make_fixtures.py).
type echo struct {
	ids        []int64 // including the pads
	speed      float32
	style      []float32
	start, end int // sample offsets of the segment's magic and one past its style
}

const (
	echoPad   = 240
	echoMagic = float32(79.0 / 128.0)
)

// decodeEcho reads every echo segment in samples, in order. Between
// segments there may only be zeros.
func decodeEcho(samples []float32) ([]echo, error) {
	var out []echo
	i := 0
	for i < len(samples) {
		if samples[i] == 0 {
			i++
			continue
		}
		if samples[i] != echoMagic {
			return out, fmt.Errorf("sample %d = %v, want the magic %v or silence", i, samples[i], echoMagic)
		}
		if i+2 > len(samples) {
			return out, fmt.Errorf("truncated segment at %d", i)
		}
		n := int(math.Round(float64(samples[i+1]) * 1024))
		end := i + 2 + n + 1 + StyleDim
		if n < 2 || end > len(samples) {
			return out, fmt.Errorf("segment at %d: bad length %d", i, n)
		}
		e := echo{start: i, end: end}
		for _, v := range samples[i+2 : i+2+n] {
			e.ids = append(e.ids, int64(math.Round(float64(v)*1024)))
		}
		e.speed = samples[i+2+n] * 2
		for _, v := range samples[i+3+n : end] {
			e.style = append(e.style, v*8)
		}
		out = append(out, e)
		i = end
	}
	return out, nil
}

func decodeOne(t *testing.T, samples []float32) echo {
	t.Helper()
	es, err := decodeEcho(samples)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 {
		t.Fatalf("decoded %d segments, want 1", len(es))
	}
	return es[0]
}

// readPack reads a raw pack from the test voices folder.
func readPack(t testing.TB, id string) []float32 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(voicesDir, id+".bin"))
	if err != nil {
		t.Fatal(err)
	}
	p := make([]float32, len(b)/4)
	for i := range p {
		p[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return p
}

func styleRow(p []float32, n int) []float32 {
	r := min(max(n-1, 0), PackRows-1)
	return p[r*StyleDim : (r+1)*StyleDim]
}

func padded(ids []int64) []int64 {
	return append(append([]int64{0}, ids...), 0)
}

func equalIDs(a, b []int64) bool {
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

// seq returns n token ids cycling through real vocab ids.
func seq(n, offset int) []int64 {
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(1 + (i+offset)%177)
	}
	return ids
}
