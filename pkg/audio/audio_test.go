package audio_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kokorotts/kokoro-tts/pkg/audio"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

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

// sine returns seconds of a tone at rate Hz.
func sine(rate int, seconds, freq, amp float64) tts.PCM {
	n := int(math.Round(seconds * float64(rate)))
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(amp * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)))
	}
	return tts.PCM{SampleRate: rate, Samples: s}
}

func newEncoder(t testing.TB) *audio.Encoder {
	t.Helper()
	e, err := audio.NewEncoder(audio.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestEncodeWAV(t *testing.T) {
	requireTool(t, "ffprobe", "ffmpeg")
	ctx := context.Background()
	pcm := sine(tts.SampleRate, 1.5, 440, 0.5)
	b, res, err := newEncoder(t).EncodeBytes(ctx, pcm, tts.FormatWAV)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(44 + 2*len(pcm.Samples)); res.Bytes != want || int64(len(b)) != want {
		t.Errorf("Bytes = %d, len = %d, want %d", res.Bytes, len(b), want)
	}
	if res.ContentType != "audio/wav" || res.DurationSeconds != 1.5 {
		t.Errorf("result = %+v", res)
	}
	// The RIFF and data sizes must be exact for players that trust them.
	if got := binary.LittleEndian.Uint32(b[4:]); got != uint32(len(b)-8) {
		t.Errorf("RIFF size = %d, want %d", got, len(b)-8)
	}
	if string(b[36:40]) != "data" || binary.LittleEndian.Uint32(b[40:]) != uint32(2*len(pcm.Samples)) {
		t.Errorf("data chunk header = %q %d", b[36:40], binary.LittleEndian.Uint32(b[40:]))
	}
	path := filepath.Join(t.TempDir(), "a.wav")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := audio.Probe(ctx, "", path)
	if err != nil {
		t.Fatal(err)
	}
	if p.Codec != "pcm_s16le" || p.SampleRate != 24000 || p.Channels != 1 || math.Abs(p.DurationSeconds-1.5) > 0.001 {
		t.Errorf("probe = %+v", p)
	}
	// Round trip through our own decoder keeps the samples to int16 precision.
	back, err := audio.DecodeWAV(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.SampleRate != 24000 || len(back.Samples) != len(pcm.Samples) {
		t.Fatalf("decoded %d samples at %d Hz", len(back.Samples), back.SampleRate)
	}
	for i := range back.Samples {
		if d := math.Abs(float64(back.Samples[i] - pcm.Samples[i])); d > 1.0/32000 {
			t.Fatalf("sample %d: %v != %v", i, back.Samples[i], pcm.Samples[i])
		}
	}
}

func TestEncodeMP3(t *testing.T) {
	requireTool(t, "ffmpeg", "ffmpeg")
	requireTool(t, "ffprobe", "ffmpeg")
	ctx := context.Background()
	pcm := sine(tts.SampleRate, 1.5, 440, 0.5)
	b, res, err := newEncoder(t).EncodeBytes(ctx, pcm, tts.FormatMP3)
	if err != nil {
		t.Fatal(err)
	}
	if res.ContentType != "audio/mpeg" || res.DurationSeconds != 1.5 || res.Bytes != int64(len(b)) {
		t.Errorf("result = %+v, len %d", res, len(b))
	}
	// 64 kbps for 1.5 s is about 12 KB.
	if len(b) < 8000 || len(b) > 20000 {
		t.Errorf("mp3 is %d bytes, want about 12000", len(b))
	}
	check := func(name string, p audio.ProbeResult) {
		t.Helper()
		// MP3 adds encoder delay and padding: allow 0.1 s.
		if p.Codec != "mp3" || p.SampleRate != 24000 || p.Channels != 1 || math.Abs(p.DurationSeconds-1.5) > 0.1 {
			t.Errorf("%s: probe = %+v", name, p)
		}
	}
	p, err := audio.ProbeBytes(ctx, "", b)
	if err != nil {
		t.Fatal(err)
	}
	check("bytes", p)
	path := filepath.Join(t.TempDir(), "a.mp3")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err = audio.Probe(ctx, "", path); err != nil {
		t.Fatal(err)
	}
	check("file", p)
}

// PCM at another rate comes out at 24 kHz with the same duration.
func TestEncodeResamplesToNativeRate(t *testing.T) {
	requireTool(t, "ffmpeg", "ffmpeg")
	requireTool(t, "ffprobe", "ffmpeg")
	ctx := context.Background()
	e := newEncoder(t)
	pcm := sine(22050, 1.0, 300, 0.5)
	for _, f := range tts.Formats() {
		b, res, err := e.EncodeBytes(ctx, pcm, f)
		if err != nil {
			t.Fatal(err)
		}
		if res.DurationSeconds != 1.0 {
			t.Errorf("%s: duration %v", f, res.DurationSeconds)
		}
		p, err := audio.ProbeFormat(ctx, "", f, b)
		if err != nil {
			t.Fatal(err)
		}
		rate := 24000
		if f == tts.FormatOpus {
			rate = 48000 // what Opus decodes at; its header says 24 kHz in
		}
		if p.SampleRate != rate || math.Abs(p.DurationSeconds-1.0) > 0.1 {
			t.Errorf("%s: probe = %+v", f, p)
		}
	}
}

func TestWAVClipping(t *testing.T) {
	inf := float32(math.Inf(1))
	nan := float32(math.NaN())
	in := []float32{2, -2, 1, -1, 0.5, -0.5, 0, nan, inf, -inf, 1.0000001}
	want := []int16{32767, -32767, 32767, -32767, 16384, -16384, 0, 0, 32767, -32767, 32767}
	var buf bytes.Buffer
	if _, err := audio.WriteWAV(&buf, tts.PCM{SampleRate: 24000, Samples: in}); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()[44:]
	for i, w := range want {
		if got := int16(binary.LittleEndian.Uint16(b[2*i:])); got != w {
			t.Errorf("sample %d (%v): got %d, want %d", i, in[i], got, w)
		}
	}
}

// espeak-ng --stdout cannot seek back, so its header carries placeholder
// sizes; the decoder must read to the end of the input instead.
func TestDecodeWAVStreamingHeader(t *testing.T) {
	var buf bytes.Buffer
	if _, err := audio.WriteWAV(&buf, tts.PCM{SampleRate: 22050, Samples: []float32{0.25, -0.25, 0.5}}); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	binary.LittleEndian.PutUint32(b[4:], 0x7ffff024)
	binary.LittleEndian.PutUint32(b[40:], 0x7ffff000)
	p, err := audio.DecodeWAV(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.SampleRate != 22050 || len(p.Samples) != 3 || math.Abs(float64(p.Samples[2])-0.5) > 1e-4 {
		t.Errorf("decoded %+v", p)
	}
	for _, bad := range [][]byte{nil, []byte("RIFF"), []byte("RIFF\x00\x00\x00\x00WAVEdata\x00\x00\x00\x00"), b[:40]} {
		if _, err := audio.DecodeWAV(bad); err == nil {
			t.Errorf("DecodeWAV(%q) succeeded", bad)
		}
	}
}

func TestEncodeInvalid(t *testing.T) {
	ctx := context.Background()
	e := newEncoder(t)
	for _, tc := range []struct {
		name string
		pcm  tts.PCM
		f    tts.Format
	}{
		{"unknown format", sine(24000, 0.1, 440, 0.5), "ogg"},
		{"empty format", sine(24000, 0.1, 440, 0.5), ""},
		{"no samples", tts.PCM{SampleRate: 24000}, tts.FormatWAV},
		{"no sample rate", tts.PCM{Samples: []float32{0}}, tts.FormatMP3},
	} {
		_, err := e.Encode(ctx, tc.pcm, tc.f, io.Discard)
		if tts.ErrorCode(err) != tts.EINVALID {
			t.Errorf("%s: err = %v, want %s", tc.name, err, tts.EINVALID)
		}
	}
	if _, err := audio.NewEncoder(audio.Config{MP3BitrateKbps: 65}); err == nil {
		t.Error("NewEncoder accepted a 65 kbps MP3 bitrate")
	}
}

func TestContentTypesMatchDomain(t *testing.T) {
	requireTool(t, "ffmpeg", "ffmpeg")
	e := newEncoder(t)
	want := map[tts.Format][2]string{ // content type, extension
		tts.FormatMP3:  {"audio/mpeg", "mp3"},
		tts.FormatWAV:  {"audio/wav", "wav"},
		tts.FormatOpus: {"audio/ogg; codecs=opus", "opus"},
		tts.FormatAAC:  {"audio/aac", "aac"},
		tts.FormatFLAC: {"audio/flac", "flac"},
		tts.FormatPCM:  {"application/octet-stream", "pcm"},
	}
	if len(want) != len(tts.Formats()) {
		t.Errorf("%d formats, %d expected here", len(tts.Formats()), len(want))
	}
	for _, f := range tts.Formats() {
		if !e.Supports(f) {
			t.Errorf("encoder does not support %s", f)
			continue
		}
		_, res, err := e.EncodeBytes(context.Background(), sine(24000, 0.1, 440, 0.5), f)
		if err != nil {
			t.Fatal(err)
		}
		if w := want[f]; res.ContentType != w[0] || f.ContentType() != w[0] || f.Extension() != w[1] {
			t.Errorf("%s: content type %q (domain %q), extension %q; want %q, %q", f, res.ContentType, f.ContentType(), f.Extension(), w[0], w[1])
		}
	}
}

func TestEncodeCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, f := range tts.Formats() {
		_, err := newEncoder(t).Encode(ctx, sine(24000, 0.1, 440, 0.5), f, io.Discard)
		if tts.ErrorCode(err) != tts.ECANCELED || !errors.Is(err, context.Canceled) {
			t.Errorf("%s: err = %v, want %s wrapping context.Canceled", f, err, tts.ECANCELED)
		}
	}
}

// cancelingWriter cancels its context on the first write, while ffmpeg is
// still encoding.
type cancelingWriter struct {
	cancel context.CancelFunc
	n      int
}

func (w *cancelingWriter) Write(p []byte) (int, error) {
	w.cancel()
	w.n += len(p)
	return len(p), nil
}

func TestEncodeCancelStopsFFmpeg(t *testing.T) {
	requireTool(t, "ffmpeg", "ffmpeg")
	e := newEncoder(t)
	pcm := sine(24000, 120, 440, 0.5)
	for _, f := range ffmpegFormats() {
		ctx, cancel := context.WithCancel(context.Background())
		w := &cancelingWriter{cancel: cancel}
		_, err := e.Encode(ctx, pcm, f, w)
		cancel()
		if tts.ErrorCode(err) != tts.ECANCELED || !errors.Is(err, context.Canceled) {
			t.Errorf("%s: err = %v, want %s", f, err, tts.ECANCELED)
		}
		if w.n == 0 {
			t.Errorf("%s: ffmpeg wrote nothing before the cancel", f)
		}
	}
}

func TestBrokenFFmpegPath(t *testing.T) {
	ctx := context.Background()
	bad := filepath.Join(t.TempDir(), "no-such-ffmpeg")
	e, err := audio.NewEncoder(audio.Config{FFmpegPath: bad})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Encode(ctx, sine(24000, 0.1, 440, 0.5), tts.FormatMP3, io.Discard)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "Debian package ffmpeg") {
		t.Errorf("Encode err = %v, want one naming %s and the ffmpeg package", err, bad)
	}
	// WAV and PCM do not need ffmpeg at all.
	for _, f := range []tts.Format{tts.FormatWAV, tts.FormatPCM} {
		if _, err := e.Encode(ctx, sine(24000, 0.1, 440, 0.5), f, io.Discard); err != nil {
			t.Errorf("%s without ffmpeg: %v", f, err)
		}
	}
	if _, err := audio.CheckFFmpeg(ctx, bad); tts.ErrorCode(err) != tts.EUNAVAILABLE || !strings.Contains(err.Error(), "Debian package ffmpeg") {
		t.Errorf("CheckFFmpeg err = %v", err)
	}
	if _, err := audio.Probe(ctx, bad, "x.wav"); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("Probe err = %v", err)
	}
}

// A failing ffmpeg's stderr reaches the error, so an operator can see why.
func TestFFmpegFailureCarriesStderr(t *testing.T) {
	script := filepath.Join(t.TempDir(), "ffmpeg")
	body := "#!/bin/sh\ncat >/dev/null\necho 'Unknown encoder libmp3lame' >&2\nexit 1\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	e, err := audio.NewEncoder(audio.Config{FFmpegPath: script})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Encode(context.Background(), sine(24000, 0.1, 440, 0.5), tts.FormatMP3, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "Unknown encoder libmp3lame") {
		t.Errorf("err = %v, want the script's stderr", err)
	}
	if tts.ErrorCode(err) != tts.EINTERNAL {
		t.Errorf("code = %s, want %s", tts.ErrorCode(err), tts.EINTERNAL)
	}
}

func TestCheckFFmpeg(t *testing.T) {
	requireTool(t, "ffmpeg", "ffmpeg")
	v, err := newEncoder(t).Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if v == "" || v == "unknown" {
		t.Errorf("version = %q", v)
	}
}

func benchmarkEncode(b *testing.B, f tts.Format) {
	requireTool(b, "ffmpeg", "ffmpeg")
	e := newEncoder(b)
	const seconds = 10
	pcm := sine(tts.SampleRate, seconds, 220, 0.5)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.Encode(ctx, pcm, f, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(seconds*float64(b.N)/b.Elapsed().Seconds(), "x_realtime")
}

// BenchmarkEncodeMP3 encodes 10 s of audio; x_realtime is audio seconds per
// wall second.
func BenchmarkEncodeMP3(b *testing.B) { benchmarkEncode(b, tts.FormatMP3) }

// BenchmarkEncodeWAV encodes 10 s of audio.
func BenchmarkEncodeWAV(b *testing.B) { benchmarkEncode(b, tts.FormatWAV) }

// BenchmarkEncodeOpus encodes 10 s of audio.
func BenchmarkEncodeOpus(b *testing.B) { benchmarkEncode(b, tts.FormatOpus) }

// BenchmarkEncodeAAC encodes 10 s of audio.
func BenchmarkEncodeAAC(b *testing.B) { benchmarkEncode(b, tts.FormatAAC) }

// BenchmarkEncodeFLAC encodes 10 s of audio.
func BenchmarkEncodeFLAC(b *testing.B) { benchmarkEncode(b, tts.FormatFLAC) }

// BenchmarkEncodePCM encodes 10 s of audio.
func BenchmarkEncodePCM(b *testing.B) { benchmarkEncode(b, tts.FormatPCM) }

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

// A failing destination (a client gone away) is reported as itself, for
// both kinds of encoder.
func TestEncodeWriterError(t *testing.T) {
	requireTool(t, "ffmpeg", "ffmpeg")
	boom := errors.New("connection reset")
	for _, f := range tts.Formats() {
		_, err := newEncoder(t).Encode(context.Background(), sine(24000, 2, 440, 0.5), f, failingWriter{boom})
		if !errors.Is(err, boom) {
			t.Errorf("%s: err = %v, want %v", f, err, boom)
		}
	}
}
