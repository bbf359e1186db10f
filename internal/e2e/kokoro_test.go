package e2e

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
	"github.com/kokorotts/kokoro-tts/pkg/audio"
	"github.com/kokorotts/kokoro-tts/pkg/phonemize"
)

// The Kokoro tests run the real worker with ONNX Runtime on the echo
// fixture: a model with the exact signature of the thewh1teagle v1.0 export
// whose audio encodes what reached it (see scripts/kokoro-fixtures):
//
//	[0 x 240 | 79/128 | n/1024 | ids/1024 ... | speed/2 | style/8 ... | 0 x 240]
//
// so the downloaded WAV proves which token ids, style row and speed the
// service fed the model.

const greeting = "Hello, world! This is Kokoro speaking."

type kokoroAssets struct{ model, voices, lib string }

func kokoroSetup(t *testing.T) kokoroAssets {
	t.Helper()
	requireTools(t)
	model, err := filepath.Abs("../../pkg/kokoro/testdata/echo_v10.onnx")
	if err != nil {
		t.Fatal(err)
	}
	return kokoroAssets{model: model,
		lib:    locateAsset(t, "ONNXRUNTIME_LIB", "../../scripts/ensure-onnxruntime.sh"),
		voices: locateAsset(t, "KOKORO_TEST_VOICES", "../../scripts/kokoro-fixtures/ensure-voices.sh")}
}

func locateAsset(t *testing.T, env, script string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	out, err := exec.Command("bash", script).Output()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	p := strings.TrimSpace(lines[len(lines)-1])
	if _, serr := os.Stat(p); err != nil || serr != nil {
		msg := env + " is not set and " + script + " could not provide it (it needs npm: apt-get install npm)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// expectedIDs are the reference ids: kokoro-js 1.2.1's phonemes for the
// sentence (committed golden file) mapped through the v1.0 vocab, padded.
func expectedIDs(t *testing.T, text, lang string) []int64 {
	t.Helper()
	b, err := os.ReadFile("../../pkg/phonemize/testdata/golden/" + lang + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []struct{ Text, Phonemes string }
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	for _, c := range g.Cases {
		if c.Text == text {
			return append(append([]int64{0}, phonemize.Tokenize(c.Phonemes)...), 0)
		}
	}
	t.Fatalf("no golden case for %q", text)
	return nil
}

func readPack(t *testing.T, dir, id string) []float32 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, id+".bin"))
	if err != nil {
		t.Fatal(err)
	}
	p := make([]float32, len(b)/4)
	for i := range p {
		p[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return p
}

// echoed is what the fixture model received.
type echoed struct {
	ids   []int64
	speed float64
	style []float64
}

func decodeEcho(t *testing.T, wav []byte) echoed {
	t.Helper()
	pcm, err := audio.DecodeWAV(wav)
	if err != nil {
		t.Fatal(err)
	}
	s := pcm.Samples
	for i := 1; i < len(s); i++ {
		if math.Abs(float64(s[i])-79.0/128) > 2e-3 || math.Abs(float64(s[i-1])) > 1e-3 {
			continue
		}
		n := int(math.Round(float64(s[i+1]) * 1024))
		if n < 2 || i+2+n+1+256 > len(s) {
			t.Fatalf("implausible sequence length %d", n)
		}
		e := echoed{speed: float64(s[i+2+n]) * 2}
		for _, v := range s[i+2 : i+2+n] {
			e.ids = append(e.ids, int64(math.Round(float64(v)*1024)))
		}
		for _, v := range s[i+3+n : i+3+n+256] {
			e.style = append(e.style, float64(v)*8)
		}
		return e
	}
	t.Fatal("no echo marker in the audio: the model output did not reach the file")
	return echoed{}
}

func checkEcho(t *testing.T, e echoed, want []int64, speed float64, style func(row int) []float64) {
	t.Helper()
	if len(e.ids) != len(want) {
		t.Fatalf("model got %d ids %v, want %d %v", len(e.ids), e.ids, len(want), want)
	}
	for i := range want {
		if e.ids[i] != want[i] {
			t.Fatalf("model got ids %v, want the reference %v", e.ids, want)
		}
	}
	if math.Abs(e.speed-speed) > 2e-3 {
		t.Fatalf("model got speed %v, want %v", e.speed, speed)
	}
	row := len(want) - 2 - 1 // n - 1 for n tokens without the pads
	ref := style(row)
	for i := range ref {
		if math.Abs(e.style[i]-ref[i]) > 2e-3 {
			t.Fatalf("style value %d = %v, want row %d's %v", i, e.style[i], row, ref[i])
		}
	}
	// And not the neighbouring row (kokoro-js and sherpa-onnx use row n),
	// where the pack's two rows differ at all.
	next := style(row + 1)
	differ, matchesNext := false, true
	for i := range next {
		if math.Abs(next[i]-ref[i]) > 2e-3 {
			differ = true
		}
		if math.Abs(e.style[i]-next[i]) > 2e-3 {
			matchesNext = false
		}
	}
	if differ && matchesNext {
		t.Fatal("the model got style row n, not n - 1")
	}
}

func packRow(p []float32) func(int) []float64 {
	return func(row int) []float64 {
		out := make([]float64, 256)
		for i := range out {
			out[i] = float64(p[row*256+i])
		}
		return out
	}
}

// TestKokoroEmbedded is `make run` with a model: the API runs Kokoro in a
// child worker process and the audio is computed by ONNX Runtime.
func TestKokoroEmbedded(t *testing.T) {
	k := kokoroSetup(t)
	port := strconv.Itoa(testsvc.FreePort(t))
	env := map[string]string{"DATA_DIR": t.TempDir(), "HTTP_ADDR": "127.0.0.1:" + port,
		"KOKORO_MODEL_PATH": k.model, "KOKORO_VOICES_PATH": k.voices, "ONNXRUNTIME_LIB": k.lib,
		"KOKORO_DEVICE": "cpu", "WORKER_BIN": filepath.Join(binDir, "worker"), "METRICS_ADDR": "127.0.0.1:0"}
	api := start(t, "api", env)
	c := waitHealthy(t, api, "http://127.0.0.1:"+port)
	_, h := c.getJSON(t, "/api/health")
	if !strings.Contains(mustJSON(h), `"name":"kokoro"`) {
		t.Fatalf("health does not show the Kokoro worker: %v", h)
	}
	id := c.submit(t, `{"text":"`+greeting+`","voice":"af_heart","format":"wav","speed":1.25}`)
	job := c.wait(t, id, 60*time.Second)
	if job["status"] != "succeeded" || job["engine"] != "kokoro" || job["device"] != "cpu" {
		t.Fatalf("job: %v", job)
	}
	wav, _ := c.fetchAudio(t, job, "wav", 0.01, 5)
	checkEcho(t, decodeEcho(t, wav), expectedIDs(t, greeting, "en-us"), 1.25, packRow(readPack(t, k.voices, "af_heart")))

	// A model that cannot be loaded stops the start: no silent fallback.
	env["KOKORO_MODEL_PATH"] = filepath.Join(t.TempDir(), "missing.onnx")
	env["HTTP_ADDR"] = "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	env["DATA_DIR"] = t.TempDir()
	code, out := run(t, "api", env)
	if code == 0 || !strings.Contains(out, "KOKORO_MODEL_PATH") {
		t.Fatalf("api with a missing model: exit %d\n%s", code, out)
	}
}

// TestKokoroServiceMode runs migrate, api and a Kokoro worker as separate
// processes on Redis.
func TestKokoroServiceMode(t *testing.T) {
	k := kokoroSetup(t)
	redis := testsvc.Redis(t)
	data := t.TempDir()
	port := strconv.Itoa(testsvc.FreePort(t))
	env := map[string]string{"DATA_DIR": data, "REDIS_URL": redis.URL, "HTTP_ADDR": "127.0.0.1:" + port,
		"KOKORO_MODEL_PATH": k.model, "KOKORO_VOICES_PATH": k.voices, "ONNXRUNTIME_LIB": k.lib,
		"KOKORO_DEVICE": "auto", "WORKER_TASK_CHECK_INTERVAL": "50ms", "METRICS_ADDR": "127.0.0.1:0", "AUTH_ALLOW_OPEN": "true"}
	if code, out := run(t, "migrate", env); code != 0 {
		t.Fatalf("migrate: %s", out)
	}
	worker := start(t, "worker", env)
	api := start(t, "api", env)
	c := waitHealthy(t, api, "http://127.0.0.1:"+port)
	// auto on a machine without CUDA: CPU, and the log says why.
	if out := worker.Output(); !strings.Contains(out, `"device":"cpu"`) && !strings.Contains(out, "device=cpu") {
		t.Fatalf("worker log does not show the CPU fallback:\n%s", out)
	}
	_, v := c.getJSON(t, "/api/voices")
	if n := len(v["voices"].([]any)); n != 28 {
		t.Fatalf("%d voices offered, want the 28 English Kokoro voices", n)
	}
	if st, m := c.postJSON(t, "/api/tts", `{"text":"こんにちは","voice":"jf_alpha"}`); st != 422 {
		t.Fatalf("a voice the Kokoro worker cannot speak: %d %v", st, m)
	}

	id := c.submit(t, `{"text":"`+greeting+`","voice":"af_heart(3)+af_bella","format":"wav"}`)
	job := c.wait(t, id, 60*time.Second)
	if job["status"] != "succeeded" || job["engine"] != "kokoro" {
		t.Fatalf("job: %v", job)
	}
	wav, _ := c.fetchAudio(t, job, "wav", 0.01, 5)
	heart, bella := readPack(t, k.voices, "af_heart"), readPack(t, k.voices, "af_bella")
	blend := make([]float32, len(heart))
	for i := range blend {
		blend[i] = 0.75*heart[i] + 0.25*bella[i]
	}
	checkEcho(t, decodeEcho(t, wav), expectedIDs(t, greeting, "en-us"), 1.0, packRow(blend))

	// British English goes through espeak-ng's "en" voice, with the
	// normaliser's times and titles.
	const british = "Dr. Smith met Mr. Jones and Mrs. Brown at 7:45 on Tuesday."
	id = c.submit(t, `{"text":"`+british+`","voice":"bf_emma","format":"wav","speed":0.8}`)
	job = c.wait(t, id, 60*time.Second)
	wav, _ = c.fetchAudio(t, job, "wav", 0.01, 5)
	checkEcho(t, decodeEcho(t, wav), expectedIDs(t, british, "en-gb"), 0.8, packRow(readPack(t, k.voices, "bf_emma")))
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
