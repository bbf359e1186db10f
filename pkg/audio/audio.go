// Package audio encodes the engines' PCM into the service's output formats.
// WAV and raw PCM are written natively; compressed formats (MP3, Ogg Opus,
// ADTS AAC, FLAC) are produced by piping s16le PCM through an ffmpeg
// process, with no temporary files: what ffmpeg cannot write to a pipe (the
// FLAC header's sample count and MD5) is filled in on the way out. It also
// offers the WAV decoder and resampler the engines need, and ffprobe helpers
// that tests across the repository use to prove their output decodes.
//
// Every format decodes to exactly the PCM's samples except MP3 and ADTS AAC,
// which play their encoder delay and padding (see NewEncoder).
package audio

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"time"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// Defaults for Config's zero fields.
const (
	DefaultFFmpegPath = "ffmpeg"
	// DefaultMP3BitrateKbps suits 24 kHz mono speech: transparent enough for
	// a voice, about 480 KB a minute.
	DefaultMP3BitrateKbps = 64
	// DefaultOpusBitrateKbps is a speech bitrate at which libopus keeps the
	// whole 12 kHz band of 24 kHz input: about 240 KB a minute, half of
	// MP3's.
	DefaultOpusBitrateKbps = 32
	// DefaultAACBitrateKbps matches MP3's default; ffmpeg's AAC encoder
	// needs about that for clean speech.
	DefaultAACBitrateKbps = 64
)

// Bitrate bounds for 24 kHz mono. libopus accepts 6 to 256 kbit/s for one
// channel and fails above; ffmpeg's AAC encoder cannot put more than 6144
// bits in a 1024-sample frame, 144 kbit/s at 24 kHz, and clamps silently.
const (
	minOpusKbps, maxOpusKbps = 6, 256
	minAACKbps, maxAACKbps   = 8, 144
)

// mp3Bitrates are the bitrates MPEG-2 Layer III (the MP3 flavour used at
// 24 kHz) can carry; libmp3lame rejects others.
var mp3Bitrates = [...]int{8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160}

// Config configures an Encoder. Zero fields take the defaults.
type Config struct {
	FFmpegPath      string // ffmpeg binary, looked up in PATH when it has no slash; default "ffmpeg"
	MP3BitrateKbps  int    // constant MP3 bitrate; default 64, one of 8..160 (MPEG-2 steps)
	OpusBitrateKbps int    // Opus target (VBR) bitrate; default 32, 6..256
	AACBitrateKbps  int    // AAC-LC bitrate; default 64, 8..144
}

// Result describes encoded audio.
type Result struct {
	Bytes           int64   // bytes written
	DurationSeconds float64 // length of the audio, from its sample count
	ContentType     string  // MIME type of the format
}

// codec is one output format. Exactly one of native and ffmpegArgs is set:
// adding a format is adding an entry in NewEncoder.
type codec struct {
	native     func(w io.Writer, p tts.PCM) (int64, error)
	ffmpegArgs []string // output options placed between the input and "pipe:1"
	// fixup, when set, wraps ffmpeg's output on its way to w to complete
	// what ffmpeg could not write to a pipe.
	fixup func(w io.Writer, p tts.PCM) fixupWriter
}

// fixupWriter edits an ffmpeg output stream as it passes through.
type fixupWriter interface {
	io.Writer
	// Malformed returns the error that made a Write fail because the
	// stream was not what the fixup expected, if any (errors of the writer
	// underneath are returned by Write as they are, and not kept here).
	Malformed() error
	// Finish is called once ffmpeg succeeded; it reports a stream that
	// ended before the fixup could do its work.
	Finish() error
}

// Encoder turns 24 kHz mono PCM into an output format. It is safe for
// concurrent use: every call runs its own ffmpeg process.
type Encoder struct {
	ffmpeg string
	codecs map[tts.Format]codec
}

// NewEncoder returns an Encoder for every format in tts.Formats, with these
// choices:
//
//   - wav: native, a 44-byte header whose RIFF and data sizes are exact.
//   - pcm: native, the bare s16le samples (2 bytes a sample, no header).
//   - mp3: libmp3lame at a constant bitrate (MPEG-2 Layer III at 24 kHz).
//     ffmpeg writes no Xing/LAME frame to a pipe (it would seek back to
//     fill it), so players cannot trim the encoder delay and padding: about
//     55 ms more than the PCM.
//   - opus: libopus at its native 24 kHz input (no resampling; Opus always
//     decodes at 48 kHz), VBR, 20 ms frames, in Ogg. The "audio"
//     application, not "voip": the synthetic voice is clean, and voip's
//     intelligibility shaping is for noisy microphones. ffmpeg writes the
//     pre-skip and the final page's granule position from the exact sample
//     count, so players trim the encoder delay and the last frame's
//     padding: decoded length equals the PCM's to the sample.
//   - aac: AAC-LC in ADTS, which streams through a pipe. MP4 (m4a) was
//     rejected: +faststart needs a seekable output, and fragmented MP4
//     written to a pipe has no edit list either, so it gains nothing over
//     ADTS (measured: both decode 1,024 priming samples plus padding to a
//     whole frame; only a seekable m4a with an edit list is exact). ADTS
//     stores no duration: players estimate it from the bitrate.
//   - flac: ffmpeg's FLAC encoder (default compression level 5). On a pipe
//     ffmpeg cannot seek back to write STREAMINFO's total sample count and
//     MD5, so the encoder fills them in as the header passes (they are
//     known before encoding) and drops the 8 KiB padding block ffmpeg
//     reserves for tag editors.
//
// It does not run ffmpeg: call Check at startup to find a missing or
// incomplete ffmpeg early.
func NewEncoder(cfg Config) (*Encoder, error) {
	if cfg.FFmpegPath == "" {
		cfg.FFmpegPath = DefaultFFmpegPath
	}
	if cfg.MP3BitrateKbps == 0 {
		cfg.MP3BitrateKbps = DefaultMP3BitrateKbps
	}
	if cfg.OpusBitrateKbps == 0 {
		cfg.OpusBitrateKbps = DefaultOpusBitrateKbps
	}
	if cfg.AACBitrateKbps == 0 {
		cfg.AACBitrateKbps = DefaultAACBitrateKbps
	}
	ok := false
	for _, b := range mp3Bitrates {
		ok = ok || b == cfg.MP3BitrateKbps
	}
	if !ok {
		return nil, fmt.Errorf("audio: MP3 bitrate %d kbps is not one of %v", cfg.MP3BitrateKbps, mp3Bitrates)
	}
	if cfg.OpusBitrateKbps < minOpusKbps || cfg.OpusBitrateKbps > maxOpusKbps {
		return nil, fmt.Errorf("audio: Opus bitrate %d kbps is not in %d..%d", cfg.OpusBitrateKbps, minOpusKbps, maxOpusKbps)
	}
	if cfg.AACBitrateKbps < minAACKbps || cfg.AACBitrateKbps > maxAACKbps {
		return nil, fmt.Errorf("audio: AAC bitrate %d kbps is not in %d..%d", cfg.AACBitrateKbps, minAACKbps, maxAACKbps)
	}
	kbps := func(n int) string { return strconv.Itoa(n) + "k" }
	return &Encoder{
		ffmpeg: cfg.FFmpegPath,
		codecs: map[tts.Format]codec{
			tts.FormatWAV: {native: WriteWAV},
			tts.FormatPCM: {native: WritePCM},
			tts.FormatMP3: {ffmpegArgs: []string{
				"-c:a", "libmp3lame", "-b:a", kbps(cfg.MP3BitrateKbps), "-f", "mp3",
			}},
			tts.FormatOpus: {ffmpegArgs: []string{
				"-c:a", "libopus", "-b:a", kbps(cfg.OpusBitrateKbps), "-vbr", "on",
				"-application", "audio", "-frame_duration", "20", "-f", "ogg",
			}},
			tts.FormatAAC: {ffmpegArgs: []string{
				"-c:a", "aac", "-b:a", kbps(cfg.AACBitrateKbps), "-f", "adts",
			}},
			tts.FormatFLAC: {ffmpegArgs: []string{
				"-c:a", "flac", "-f", "flac",
			}, fixup: newFLACFixup},
		},
	}, nil
}

// Supports reports whether the encoder can produce f.
func (e *Encoder) Supports(f tts.Format) bool {
	_, ok := e.codecs[f]
	return ok
}

// Check verifies that the encoder's ffmpeg runs and has the encoders it
// needs, and returns its version (see CheckFFmpeg).
func (e *Encoder) Check(ctx context.Context) (string, error) {
	return CheckFFmpeg(ctx, e.ffmpeg)
}

// Encode writes p to w in format f at 24 kHz with the configured bitrate
// (EncodeWith with no options).
func (e *Encoder) Encode(ctx context.Context, p tts.PCM, f tts.Format, w io.Writer) (Result, error) {
	return e.EncodeWith(ctx, p, f, tts.EncodeOptions{}, w)
}

// EncodeWith writes p to w in format f, at opts.SampleRate (default 24 kHz)
// and opts.BitrateKbps (default the configured one; mp3, opus and aac only),
// both checked by tts.EncodeOptions.Check. PCM at another rate than the
// output's is resampled first. Errors: EINVALID
// for an unknown format, an invalid sample rate or no samples; ECANCELED
// (wrapping ctx.Err()) when ctx ends first; anything else (ffmpeg failed, w
// failed) is an internal error. On error w may have received part of the
// output.
func (e *Encoder) EncodeWith(ctx context.Context, p tts.PCM, f tts.Format, opts tts.EncodeOptions, w io.Writer) (Result, error) {
	c, ok := e.codecs[f]
	if !ok {
		return Result{}, tts.Errorf(tts.EINVALID, "format: %q is not supported", string(f))
	}
	if err := opts.Check(f); err != nil {
		return Result{}, err
	}
	rate := tts.SampleRate
	if opts.SampleRate != 0 {
		rate = opts.SampleRate
	}
	if opts.BitrateKbps != 0 && c.ffmpegArgs != nil {
		c.ffmpegArgs = withBitrate(c.ffmpegArgs, opts.BitrateKbps)
	}
	if p.SampleRate <= 0 {
		return Result{}, tts.Errorf(tts.EINVALID, "audio: invalid sample rate %d", p.SampleRate)
	}
	if len(p.Samples) == 0 {
		return Result{}, tts.Errorf(tts.EINVALID, "audio: no samples to encode")
	}
	if err := ctx.Err(); err != nil {
		return Result{}, canceled(err)
	}
	if p.SampleRate != rate {
		var err error
		if p, err = Resample(p, rate); err != nil {
			return Result{}, err
		}
	}
	res := Result{ContentType: f.ContentType(), DurationSeconds: float64(len(p.Samples)) / float64(p.SampleRate)}
	cw := &countingWriter{w: w}
	var err error
	if c.native != nil {
		_, err = c.native(cw, p)
		if err == nil {
			err = ctx.Err() // a native encoder is fast and does not watch ctx
		}
	} else if c.fixup == nil {
		err = e.runFFmpeg(ctx, p, c.ffmpegArgs, cw)
	} else {
		fx := c.fixup(cw, p)
		err = e.runFFmpeg(ctx, p, c.ffmpegArgs, fx)
		if m := fx.Malformed(); m != nil {
			err = m // ffmpeg's own error is only the broken pipe that followed
		} else if err == nil {
			err = fx.Finish()
		}
	}
	res.Bytes = cw.n
	if err != nil {
		if ctx.Err() != nil {
			return res, canceled(ctx.Err())
		}
		if cw.err != nil {
			return res, fmt.Errorf("audio: writing %s: %w", f, cw.err)
		}
		return res, fmt.Errorf("audio: encode %s: %w", f, err)
	}
	return res, nil
}

// withBitrate returns args with the value after "-b:a" replaced.
func withBitrate(args []string, kbps int) []string {
	out := append([]string(nil), args...)
	for i := 0; i+1 < len(out); i++ {
		if out[i] == "-b:a" {
			out[i+1] = strconv.Itoa(kbps) + "k"
		}
	}
	return out
}

// EncodeBytes is Encode into memory.
func (e *Encoder) EncodeBytes(ctx context.Context, p tts.PCM, f tts.Format) ([]byte, Result, error) {
	var buf bytes.Buffer
	// A guess between MP3 at 64 kbps (8 KB a second) and WAV (48 KB).
	buf.Grow(len(p.Samples)/2 + 1024)
	res, err := e.Encode(ctx, p, f, &buf)
	if err != nil {
		return nil, res, err
	}
	return buf.Bytes(), res, nil
}

// runFFmpeg pipes p as s16le into ffmpeg and its output into w. os/exec
// copies stdin and stdout in goroutines of its own, so a full pipe on either
// side cannot deadlock us; the process is killed when ctx ends.
func (e *Encoder) runFFmpeg(ctx context.Context, p tts.PCM, outArgs []string, w io.Writer) error {
	args := []string{
		"-hide_banner", "-nostats", "-loglevel", "error",
		"-f", "s16le", "-ar", strconv.Itoa(p.SampleRate), "-ac", "1", "-i", "pipe:0",
		"-map_metadata", "-1",
	}
	args = append(args, outArgs...)
	args = append(args, "pipe:1")
	cmd := exec.CommandContext(ctx, e.ffmpeg, args...)
	cmd.Stdin = newS16Reader(p.Samples)
	cmd.Stdout = w
	stderr := &tailBuffer{max: 2048}
	cmd.Stderr = stderr
	// Should ffmpeg leave a child holding the pipes, do not wait forever.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return startError("ffmpeg", e.ffmpeg, err)
	}
	if err := cmd.Wait(); err != nil {
		return runError(e.ffmpeg, err, stderr)
	}
	return nil
}

// canceled is the error for work stopped because its context ended.
func canceled(err error) error {
	return tts.Wrap(tts.ECANCELED, err, "canceled")
}

// startError describes a tool that could not be started, naming the Debian
// package to install.
func startError(pkg, path string, err error) error {
	return fmt.Errorf("cannot run %s at %q (install the Debian package %s): %w", pkg, path, pkg, err)
}

// runError describes a tool that ran and failed, with the tail of its
// stderr.
func runError(path string, err error, stderr *tailBuffer) error {
	if s := bytes.TrimSpace(stderr.Bytes()); len(s) > 0 {
		return fmt.Errorf("%s failed: %w: %s", path, err, s)
	}
	return fmt.Errorf("%s failed: %w", path, err)
}

// countingWriter counts the bytes written through it and remembers the
// first write error, which explains a failure better than the broken pipe
// ffmpeg then reports.
type countingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

// tailBuffer keeps the last max bytes written to it: enough of a tool's
// stderr to explain a failure without unbounded memory.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// Bytes returns the kept tail.
func (t *tailBuffer) Bytes() []byte { return t.buf }
