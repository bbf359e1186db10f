package audio_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kokorotts/kokoro-tts/pkg/audio"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// speechLike returns seconds of a voiced, syllabic signal at 24 kHz: a
// gliding 110-190 Hz fundamental with eight falling harmonics under a
// 4 Hz syllable envelope, with a short pause, so that the codecs switch
// modes as they do on speech.
func speechLike(seconds float64) tts.PCM {
	const rate = tts.SampleRate
	n := int(math.Round(seconds * rate))
	s := make([]float32, n)
	phase := 0.0
	for i := range s {
		t := float64(i) / rate
		f0 := 150 + 40*math.Sin(2*math.Pi*0.7*t)
		phase += 2 * math.Pi * f0 / rate
		var v float64
		for k := 1; k <= 8; k++ {
			v += math.Sin(float64(k)*phase) / float64(k)
		}
		env := 0.5 - 0.5*math.Cos(2*math.Pi*4*t)
		if t > 1.0 && t < 1.25 {
			env = 0 // a pause between phrases
		}
		s[i] = float32(0.3 * env * v)
	}
	return tts.PCM{SampleRate: rate, Samples: s}
}

// AAC in ADTS cannot signal its encoder delay: ffmpeg's AAC encoder primes
// with one frame, decoders play it, and the stream is padded to whole
// 1024-sample frames.
const aacFrame = 1024

// formatCase says what ffprobe and ffmpeg must find in a format's output.
type formatCase struct {
	format      tts.Format
	probeFormat string // ffprobe's format_name
	codec       string
	probeRate   int // the rate ffprobe reports and ffmpeg decodes at
}

var formatCases = []formatCase{
	{tts.FormatWAV, "wav", "pcm_s16le", 24000},
	{tts.FormatPCM, "s16le", "pcm_s16le", 24000},
	{tts.FormatMP3, "mp3", "mp3", 24000},
	{tts.FormatOpus, "ogg", "opus", 48000}, // Opus always decodes at 48 kHz
	{tts.FormatAAC, "aac", "aac", 24000},   // ffprobe's name for ADTS
	{tts.FormatFLAC, "flac", "flac", 24000},
}

// Every format decodes to 24 kHz mono (Opus: 48 kHz out of a 24 kHz input)
// of the PCM's length: to the sample where the format can say so, within
// its documented delay where it cannot (MP3, ADTS AAC).
func TestEncodeFormats(t *testing.T) {
	requireTool(t, "ffmpeg", "ffmpeg")
	requireTool(t, "ffprobe", "ffmpeg")
	if len(formatCases) != len(tts.Formats()) {
		t.Fatalf("%d format cases for %d formats", len(formatCases), len(tts.Formats()))
	}
	ctx := context.Background()
	e := newEncoder(t)
	pcm := speechLike(2.345)
	n := len(pcm.Samples)
	seconds := float64(n) / tts.SampleRate
	// The s16le the encoder feeds ffmpeg, for the lossless formats.
	raw, _, err := e.EncodeBytes(ctx, pcm, tts.FormatPCM)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range formatCases {
		t.Run(string(c.format), func(t *testing.T) {
			b, res, err := e.EncodeBytes(ctx, pcm, c.format)
			if err != nil {
				t.Fatal(err)
			}
			if res.ContentType != c.format.ContentType() || res.Bytes != int64(len(b)) || res.DurationSeconds != seconds {
				t.Errorf("result = %+v for %d bytes, want %s of %v s", res, len(b), c.format.ContentType(), seconds)
			}
			path := filepath.Join(t.TempDir(), "a."+c.format.Extension())
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			probes := map[string]audio.ProbeResult{}
			if probes["pipe"], err = audio.ProbeFormat(ctx, "", c.format, b); err != nil {
				t.Fatal(err)
			}
			if c.format != tts.FormatPCM { // a raw file says nothing about itself
				if probes["file"], err = audio.Probe(ctx, "", path); err != nil {
					t.Fatal(err)
				}
			}
			for how, p := range probes {
				if p.Format != c.probeFormat || p.Codec != c.codec || p.SampleRate != c.probeRate || p.Channels != 1 {
					t.Errorf("%s probe = %+v, want %s/%s at %d Hz mono", how, p, c.probeFormat, c.codec, c.probeRate)
				}
				want, tol := seconds, 0.020
				switch c.format {
				case tts.FormatAAC:
					// No duration in ADTS: from a pipe ffprobe adds up the
					// frames, from a file it estimates from the bitrate.
					want, tol = float64(n+aacFrame)/tts.SampleRate, float64(aacFrame)/tts.SampleRate
				case tts.FormatMP3:
					tol = 0.1 // encoder delay and padding; no gapless tag on a pipe
				}
				if math.Abs(p.DurationSeconds-want) > tol {
					t.Errorf("%s probe: duration %.4f s, want %.4f ± %.3f", how, p.DurationSeconds, want, tol)
				}
			}

			dec := decodeS16(t, c.format, path)
			got, want := len(dec)/2, n*c.probeRate/tts.SampleRate
			t.Logf("%d bytes; ffprobe %.4f s (pipe), %.4f s (file, 0 for pcm); decodes to %d samples at %d Hz (input %d at 24 kHz)",
				len(b), probes["pipe"].DurationSeconds, probes["file"].DurationSeconds, got, c.probeRate, n)
			switch c.format {
			case tts.FormatAAC:
				if lo := want + aacFrame; got < lo || got >= lo+aacFrame {
					t.Errorf("decoded %d samples, want %d (%d + %d priming) up to a whole frame", got, lo, n, aacFrame)
				}
			case tts.FormatMP3:
				if got < want || got > want+3*576 {
					t.Errorf("decoded %d samples, want %d plus at most three 576-sample granules", got, want)
				}
			default:
				// Exact: WAV's sizes, FLAC's total samples, Ogg Opus's
				// pre-skip and final granule position.
				if got != want {
					t.Errorf("decoded %d samples at %d Hz, want %d", got, c.probeRate, want)
				}
			}
			switch c.format {
			case tts.FormatPCM:
				if len(b) != 2*n || !bytes.Equal(b, raw) {
					t.Errorf("pcm is %d bytes, want %d", len(b), 2*n)
				}
				wav, _, err := e.EncodeBytes(ctx, pcm, tts.FormatWAV)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(wav[44:], b) {
					t.Error("pcm differs from the WAV's data chunk")
				}
			case tts.FormatWAV, tts.FormatFLAC:
				if !bytes.Equal(dec, raw) {
					t.Errorf("%s does not decode to the exact input samples", c.format)
				}
			case tts.FormatOpus:
				checkOpusHead(t, b)
			}
		})
	}
}

// decodeS16 decodes the file at path with ffmpeg to mono s16le at the
// stream's own rate.
func decodeS16(t *testing.T, f tts.Format, path string) []byte {
	t.Helper()
	args := []string{"-v", "error"}
	if f == tts.FormatPCM {
		args = append(args, "-f", "s16le", "-ar", "24000", "-ac", "1")
	}
	args = append(args, "-i", "file:"+path, "-f", "s16le", "-ac", "1", "pipe:1")
	out, err := exec.Command("ffmpeg", args...).Output()
	if err != nil {
		t.Fatalf("decoding %s: %v", path, err)
	}
	return out
}

// checkOpusHead reads the Ogg Opus identification header (RFC 7845 5.1):
// one channel, an input rate of 24 kHz (libopus took the PCM as it is, no
// resampler in between), and a pre-skip that players trim.
func checkOpusHead(t *testing.T, b []byte) {
	t.Helper()
	i := bytes.Index(b, []byte("OpusHead"))
	if i < 0 || len(b) < i+19 || !bytes.HasPrefix(b, []byte("OggS")) {
		t.Fatal("no Ogg page with an OpusHead packet at the start")
	}
	h := b[i+8:]
	channels, preSkip, rate := h[1], binary.LittleEndian.Uint16(h[2:]), binary.LittleEndian.Uint32(h[4:])
	if channels != 1 || rate != 24000 || preSkip == 0 || preSkip > 48000/10 {
		t.Errorf("OpusHead: %d channels, input rate %d, pre-skip %d", channels, rate, preSkip)
	}
}

// flacStreamInfo returns the total samples and the MD5 of a FLAC file's
// STREAMINFO block, which must come first.
func flacStreamInfo(t *testing.T, b []byte) (uint64, []byte) {
	t.Helper()
	if len(b) < 42 || string(b[:4]) != "fLaC" || b[4]&0x7f != 0 {
		t.Fatalf("no STREAMINFO at the start: % x", b[:min(len(b), 8)])
	}
	return binary.BigEndian.Uint64(b[18:26]) & (1<<36 - 1), b[26:42]
}

// The FLAC written through a pipe carries what ffmpeg writes when it can
// seek back in a file: the total sample count and the MD5 of the samples.
// Its frames are ffmpeg's, byte for byte.
func TestFLACHeaderMatchesSeekableOutput(t *testing.T) {
	requireTool(t, "ffmpeg", "ffmpeg")
	ctx := context.Background()
	e := newEncoder(t)
	pcm := speechLike(3.21)
	b, _, err := e.EncodeBytes(ctx, pcm, tts.FormatFLAC)
	if err != nil {
		t.Fatal(err)
	}
	raw, _, err := e.EncodeBytes(ctx, pcm, tts.FormatPCM)
	if err != nil {
		t.Fatal(err)
	}
	total, sum := flacStreamInfo(t, b)
	want := md5.Sum(raw)
	if total != uint64(len(pcm.Samples)) || !bytes.Equal(sum, want[:]) {
		t.Errorf("STREAMINFO: %d samples, MD5 %x; want %d, %x", total, sum, len(pcm.Samples), want)
	}

	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.raw"), filepath.Join(dir, "out.flac")
	if err := os.WriteFile(in, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ffmpeg", "-v", "error", "-f", "s16le", "-ar", "24000", "-ac", "1", "-i", "file:"+in,
		"-map_metadata", "-1", "-c:a", "flac", "-f", "flac", "file:"+out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, msg)
	}
	ref, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	refTotal, refSum := flacStreamInfo(t, ref)
	if refTotal != total || !bytes.Equal(refSum, sum) {
		t.Errorf("ffmpeg's seekable file says %d samples, MD5 %x; the pipe's %d, %x", refTotal, refSum, total, sum)
	}
	if f, r := flacFrames(t, b), flacFrames(t, ref); !bytes.Equal(f, r) {
		t.Errorf("frames differ: %d bytes through the pipe, %d in the file", len(f), len(r))
	}
	// The padding ffmpeg reserves for tag editors is gone.
	if len(b) >= len(ref) {
		t.Errorf("pipe FLAC is %d bytes, ffmpeg's file %d: padding kept?", len(b), len(ref))
	}
}

// flacFrames returns what follows the metadata blocks.
func flacFrames(t *testing.T, b []byte) []byte {
	t.Helper()
	for off := 4; off+4 <= len(b); {
		last := b[off]&0x80 != 0
		off += 4 + int(uint32(b[off+1])<<16|uint32(b[off+2])<<8|uint32(b[off+3]))
		if last {
			return b[off:]
		}
	}
	t.Fatal("FLAC metadata does not end")
	return nil
}

// A stream that is not the FLAC the fixup expects is an error, never
// passed on with a wrong header.
func TestFLACUnexpectedOutput(t *testing.T) {
	for _, tc := range []struct{ name, out, want string }{
		{"not flac", "ID3\x03garbage", "unexpected FLAC header"},
		{"streaminfo not first", "fLaC\x84\x00\x00\x04abcd", "not STREAMINFO"},
		{"truncated header", "fLaC\x00\x00\x00\x22\x09\x00", "ended inside its header"},
		{"nothing", "", "ended inside its header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := audio.NewEncoder(audio.Config{FFmpegPath: fakeFFmpeg(t, tc.out)})
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			_, err = e.Encode(context.Background(), speechLike(0.1), tts.FormatFLAC, &buf)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if tts.ErrorCode(err) != tts.EINTERNAL {
				t.Errorf("code %s, want %s", tts.ErrorCode(err), tts.EINTERNAL)
			}
			if buf.Len() != 0 {
				t.Errorf("%d bytes passed on", buf.Len())
			}
		})
	}
}

// fakeFFmpeg writes a script that reads its input and prints out.
func fakeFFmpeg(t *testing.T, out string) string {
	t.Helper()
	data := filepath.Join(t.TempDir(), "out")
	if err := os.WriteFile(data, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "ffmpeg")
	body := "#!/bin/sh\ncat >/dev/null\ncat '" + data + "'\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

func TestEncoderBitrates(t *testing.T) {
	for _, c := range []audio.Config{
		{OpusBitrateKbps: 5}, {OpusBitrateKbps: 257}, {AACBitrateKbps: 7}, {AACBitrateKbps: 145}, {MP3BitrateKbps: 65},
	} {
		if _, err := audio.NewEncoder(c); err == nil {
			t.Errorf("NewEncoder(%+v) accepted it", c)
		}
	}
	requireTool(t, "ffmpeg", "ffmpeg")
	// A higher bitrate gives a bigger file: the setting reaches ffmpeg.
	pcm := speechLike(2)
	size := func(c audio.Config, f tts.Format) int {
		e, err := audio.NewEncoder(c)
		if err != nil {
			t.Fatal(err)
		}
		b, _, err := e.EncodeBytes(context.Background(), pcm, f)
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	if lo, hi := size(audio.Config{OpusBitrateKbps: 16}, tts.FormatOpus), size(audio.Config{OpusBitrateKbps: 64}, tts.FormatOpus); lo >= hi {
		t.Errorf("opus: 16 kbps gives %d bytes, 64 kbps %d", lo, hi)
	}
	if lo, hi := size(audio.Config{AACBitrateKbps: 32}, tts.FormatAAC), size(audio.Config{AACBitrateKbps: 96}, tts.FormatAAC); lo >= hi {
		t.Errorf("aac: 32 kbps gives %d bytes, 96 kbps %d", lo, hi)
	}
}

func TestProbeRawInvalid(t *testing.T) {
	if _, err := audio.ProbeRaw(context.Background(), "", []byte{0, 0}, 0, 1); err == nil {
		t.Error("ProbeRaw accepted a zero rate")
	}
}

// ffmpegFormats are the formats that run ffmpeg.
func ffmpegFormats() []tts.Format {
	return []tts.Format{tts.FormatMP3, tts.FormatOpus, tts.FormatAAC, tts.FormatFLAC}
}
