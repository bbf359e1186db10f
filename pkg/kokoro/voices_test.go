package kokoro

import (
	"archive/zip"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

func TestAll54VoicesLoadFromFolder(t *testing.T) {
	e := newEngine(t, Config{ModelPath: fixture("echo_v10.onnx"), VoicesPath: voicesDir})
	cat := tts.Catalogue()
	for _, v := range cat {
		if p := e.bank.packs[v.ID]; len(p) != PackRows*StyleDim {
			t.Fatalf("%s: %d values", v.ID, len(p))
		}
	}
	// Offered are the English voices (the front end speaks a* and b*), in
	// catalogue order.
	var english []tts.Voice
	for _, v := range cat {
		if v.LanguageCode == "a" || v.LanguageCode == "b" {
			english = append(english, v)
		}
	}
	got := e.Voices()
	if len(got) != len(english) || len(english) != 28 {
		t.Fatalf("%d voices offered, want the %d English ones", len(got), len(english))
	}
	for i := range english {
		if got[i] != english[i] {
			t.Fatalf("voice %d = %+v, want %+v", i, got[i], english[i])
		}
	}
}

// npyBytes encodes p as a version-1 .npy file the way numpy.save does.
func npyBytes(p []float32, descr string, shape string) []byte {
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape)
	// magic(6) + version(2) + len(2) + header + '\n', padded to 64 bytes.
	total := 10 + len(header) + 1
	header += strings.Repeat(" ", (64-total%64)%64) + "\n"
	b := []byte("\x93NUMPY\x01\x00")
	b = binary.LittleEndian.AppendUint16(b, uint16(len(header)))
	b = append(b, header...)
	for _, v := range p {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// writeNPZ writes a voices-v1.0.bin style archive; the first entry is stored,
// the others deflated, as numpy.savez and savez_compressed produce.
func writeNPZ(t *testing.T, path string, entries map[string][]byte, order []string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for i, name := range order {
		method := zip.Deflate
		if i == 0 {
			method = zip.Store
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(entries[name])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestVoicesFromNPZ(t *testing.T) {
	requireORT(t)
	ids := []string{"af_heart", "am_adam", "bf_emma"}
	entries := map[string][]byte{}
	var order []string
	for i, id := range ids {
		shape := "(510, 1, 256)"
		if i == 2 {
			shape = "(510, 256)"
		}
		entries[id+".npy"] = npyBytes(readPack(t, id), "<f4", shape)
		order = append(order, id+".npy")
	}
	path := filepath.Join(t.TempDir(), "voices-v1.0.bin")
	writeNPZ(t, path, entries, order)

	e := newEngine(t, Config{ModelPath: fixture("echo_v10.onnx"), VoicesPath: path})
	if got := e.Voices(); len(got) != 3 || got[0].ID != "af_heart" || got[1].ID != "am_adam" || got[2].ID != "bf_emma" {
		t.Fatalf("Voices = %+v", got)
	}
	for _, id := range ids {
		if !equalFloats(e.bank.packs[id], readPack(t, id)) {
			t.Fatalf("%s from the npz differs from the raw pack", id)
		}
	}
	// The packs are what reaches the model.
	out, err := e.RunChunk(t.Context(), seq(77, 0), "am_adam", 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := decodeOne(t, out.Samples); !equalFloats(got.style, styleRow(readPack(t, "am_adam"), 77)) {
		t.Fatal("style from the npz pack is not row n-1")
	}
	if _, err := e.RunChunk(t.Context(), seq(3, 0), "af_sky", 1); tts.ErrorCode(err) != tts.EINVALID {
		t.Fatalf("voice missing from the npz: %v", err)
	}
}

func TestParseNPYRejects(t *testing.T) {
	good := make([]float32, PackRows*StyleDim)
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"float64", npyBytes(good, "<f8", "(510, 1, 256)"), "dtype"},
		{"big endian", npyBytes(good, ">f4", "(510, 1, 256)"), "dtype"},
		{"wrong shape", npyBytes(good[:511*256-256*2], "<f4", "(509, 1, 256)"), "shape"},
		{"short data", npyBytes(good[:100], "<f4", "(510, 1, 256)"), "bytes"},
		{"not npy", []byte("PK\x03\x04 nonsense"), "magic"},
		{"nan", npyBytes(append([]float32{float32(math.NaN())}, good[1:]...), "<f4", "(510, 1, 256)"), "finite"},
	} {
		if _, err := parseNPY(tc.b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
	if p, err := parseNPY(npyBytes(good, "<f4", "(510, 1, 256)")); err != nil || len(p) != len(good) {
		t.Fatalf("good pack: %v", err)
	}
}

func FuzzParseNPY(f *testing.F) {
	small := make([]float32, 4)
	f.Add(npyBytes(small, "<f4", "(510, 1, 256)"))
	f.Add([]byte("\x93NUMPY\x02\x00\xff\xff\xff\xff"))
	f.Add([]byte("\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseNPY(b)
		if err == nil && len(p) != PackRows*StyleDim {
			t.Fatalf("accepted a pack of %d values", len(p))
		}
	})
}

func TestJoinFadesPausesAndClips(t *testing.T) {
	ones := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = 1
		}
		return s
	}
	a, b := ones(1000), ones(1000)
	a[500], b[500] = 3, float32(math.NaN())
	out := join([][]float32{a, b}, []time.Duration{100 * time.Millisecond, 5 * time.Second}, 24000)
	fade := 120 // 5 ms at 24 kHz
	if len(out) != 1000+2400+1000 {
		t.Fatalf("%d samples, want 4400 (100 ms pause after the first chunk only)", len(out))
	}
	if out[0] != 1 || out[500] != 1 || out[1000-fade/2] >= 1 || out[999] != 0 {
		t.Fatalf("first chunk: start %v, clipped %v, fading %v, end %v", out[0], out[500], out[1000-fade/2], out[999])
	}
	for i := 1000; i < 3400; i++ {
		if out[i] != 0 {
			t.Fatalf("pause sample %d = %v", i, out[i])
		}
	}
	if out[3400] != 0 || out[3400+fade/2] >= 1 || out[3400+500] != 0 || out[len(out)-1] != 1 {
		t.Fatalf("second chunk: fade in %v..%v, NaN -> %v, end %v", out[3400], out[3400+fade/2], out[3900], out[len(out)-1])
	}
}
