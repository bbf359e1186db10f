// Package audio encodes the engines' PCM into the service's output formats.
// WAV is written natively; compressed formats are produced by piping s16le
// PCM through an ffmpeg process (no temporary files). It also offers the
// WAV decoder and resampler the engines need, and an ffprobe helper that
// tests across the repository use to prove their output decodes.
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
)

// mp3Bitrates are the bitrates MPEG-2 Layer III (the MP3 flavour used at
// 24 kHz) can carry; libmp3lame rejects others.
var mp3Bitrates = [...]int{8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160}

// Config configures an Encoder. Zero fields take the defaults.
type Config struct {
	FFmpegPath     string // ffmpeg binary, looked up in PATH when it has no slash; default "ffmpeg"
	MP3BitrateKbps int    // constant MP3 bitrate; default 64, one of 8..160 (MPEG-2 steps)
}

// Result describes encoded audio.
type Result struct {
	Bytes           int64   // bytes written
	DurationSeconds float64 // length of the audio, from its sample count
	ContentType     string  // MIME type of the format
}

// codec is one output format. Exactly one of native and ffmpegArgs is set:
// adding a format (opus, aac, flac, raw pcm) is adding an entry in
// NewEncoder, e.g. {contentType: "audio/ogg", ffmpegArgs: []string{"-c:a",
// "libopus", "-b:a", "32k", "-f", "ogg"}}.
type codec struct {
	contentType string
	native      func(w io.Writer, p tts.PCM) (int64, error)
	ffmpegArgs  []string // output options placed between the input and "pipe:1"
}

// Encoder turns 24 kHz mono PCM into an output format. It is safe for
// concurrent use: every call runs its own ffmpeg process.
type Encoder struct {
	ffmpeg string
	codecs map[tts.Format]codec
}

// NewEncoder returns an Encoder. It does not run ffmpeg: call Check at
// startup to find a missing or incomplete ffmpeg early.
func NewEncoder(cfg Config) (*Encoder, error) {
	if cfg.FFmpegPath == "" {
		cfg.FFmpegPath = DefaultFFmpegPath
	}
	if cfg.MP3BitrateKbps == 0 {
		cfg.MP3BitrateKbps = DefaultMP3BitrateKbps
	}
	ok := false
	for _, b := range mp3Bitrates {
		ok = ok || b == cfg.MP3BitrateKbps
	}
	if !ok {
		return nil, fmt.Errorf("audio: MP3 bitrate %d kbps is not one of %v", cfg.MP3BitrateKbps, mp3Bitrates)
	}
	return &Encoder{
		ffmpeg: cfg.FFmpegPath,
		codecs: map[tts.Format]codec{
			tts.FormatWAV: {contentType: "audio/wav", native: WriteWAV},
			tts.FormatMP3: {contentType: "audio/mpeg", ffmpegArgs: []string{
				"-c:a", "libmp3lame", "-b:a", strconv.Itoa(cfg.MP3BitrateKbps) + "k", "-f", "mp3",
			}},
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

// Encode writes p to w in format f. PCM at a rate other than tts.SampleRate
// is resampled first, so the output is always 24 kHz mono. Errors: EINVALID
// for an unknown format, an invalid sample rate or no samples; ECANCELED
// (wrapping ctx.Err()) when ctx ends first; anything else (ffmpeg failed, w
// failed) is an internal error. On error w may have received part of the
// output.
func (e *Encoder) Encode(ctx context.Context, p tts.PCM, f tts.Format, w io.Writer) (Result, error) {
	c, ok := e.codecs[f]
	if !ok {
		return Result{}, tts.Errorf(tts.EINVALID, "format: %q is not supported", string(f))
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
	if p.SampleRate != tts.SampleRate {
		var err error
		if p, err = Resample(p, tts.SampleRate); err != nil {
			return Result{}, err
		}
	}
	res := Result{ContentType: c.contentType, DurationSeconds: float64(len(p.Samples)) / float64(p.SampleRate)}
	cw := &countingWriter{w: w}
	var err error
	if c.native != nil {
		_, err = c.native(cw, p)
		if err == nil {
			err = ctx.Err() // a native encoder is fast and does not watch ctx
		}
	} else {
		err = e.runFFmpeg(ctx, p, c.ffmpegArgs, cw)
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
