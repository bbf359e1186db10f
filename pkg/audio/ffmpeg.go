package audio

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// DefaultFFprobePath is the ffprobe binary used when none is given.
const DefaultFFprobePath = "ffprobe"

// ffmpegEncoders are the ffmpeg encoders the formats need. libopus, not
// ffmpeg's own "opus" encoder, which is experimental and has no VBR.
var ffmpegEncoders = [...]string{"libmp3lame", "libopus", "aac", "flac"}

// CheckFFmpeg verifies that the ffmpeg at path runs and has every encoder
// the formats need (libmp3lame, libopus, aac, flac), and returns its
// version, e.g. "5.1.6-0+deb12u1". An empty path means "ffmpeg". Errors are
// EUNAVAILABLE and say which Debian package to install.
func CheckFFmpeg(ctx context.Context, path string) (string, error) {
	if path == "" {
		path = DefaultFFmpegPath
	}
	out, err := runTool(ctx, "ffmpeg", path, nil, "-hide_banner", "-version")
	if err != nil {
		return "", tts.Wrap(tts.EUNAVAILABLE, err, "ffmpeg is not usable")
	}
	version := "unknown"
	if f := strings.Fields(firstLine(out)); len(f) >= 3 && f[1] == "version" {
		version = f[2]
	}
	enc, err := runTool(ctx, "ffmpeg", path, nil, "-hide_banner", "-encoders")
	if err != nil {
		return version, tts.Wrap(tts.EUNAVAILABLE, err, "ffmpeg is not usable")
	}
	var missing []string
	for _, name := range ffmpegEncoders {
		if !hasEncoder(enc, name) {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return version, tts.Errorf(tts.EUNAVAILABLE, "ffmpeg %s at %q has no %s encoder (install Debian's ffmpeg package)", version, path, strings.Join(missing, ", "))
	}
	return version, nil
}

// hasEncoder reports whether `ffmpeg -encoders` output lists name, as in
// " A....D libmp3lame           libmp3lame MP3 (MPEG audio layer 3) (codec mp3)".
func hasEncoder(list []byte, name string) bool {
	for _, line := range strings.Split(string(list), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[1] == name {
			return true
		}
	}
	return false
}

// ProbeResult describes decoded audio as ffprobe sees it.
type ProbeResult struct {
	Format          string  // container, e.g. "mp3", "wav"
	Codec           string  // e.g. "mp3", "pcm_s16le"
	SampleRate      int     // Hz
	Channels        int     // 1 for mono
	DurationSeconds float64 // from the container, or the sum of the packet durations when the container has none (a pipe)
}

// Probe runs ffprobe on the file at path and describes its first audio
// stream. An empty ffprobePath means "ffprobe".
func Probe(ctx context.Context, ffprobePath, path string) (ProbeResult, error) {
	// "file:" keeps ffprobe from treating path as a URL or another protocol.
	return probe(ctx, ffprobePath, "file:"+path, nil, nil)
}

// ProbeBytes runs ffprobe on data, given on its stdin. Raw PCM has no
// header to probe: use ProbeRaw or ProbeFormat for it.
func ProbeBytes(ctx context.Context, ffprobePath string, data []byte) (ProbeResult, error) {
	return probe(ctx, ffprobePath, "pipe:0", data, nil)
}

// ProbeRaw runs ffprobe on headerless signed 16-bit little-endian PCM
// (the "pcm" format) at the given rate and channel count. The duration is
// the byte count's: from a pipe ffprobe can only add up its packets, whose
// durations it rounds down to a 1/44100 s time base (0.7 ms short on 2.3 s).
func ProbeRaw(ctx context.Context, ffprobePath string, data []byte, sampleRate, channels int) (ProbeResult, error) {
	if sampleRate <= 0 || channels <= 0 {
		return ProbeResult{}, fmt.Errorf("ffprobe: raw PCM needs a rate and a channel count, got %d Hz and %d", sampleRate, channels)
	}
	r, err := probe(ctx, ffprobePath, "pipe:0", data, []string{"-f", "s16le", "-ar", strconv.Itoa(sampleRate), "-ac", strconv.Itoa(channels)})
	if err != nil {
		return r, err
	}
	r.DurationSeconds = float64(len(data)/(2*channels)) / float64(sampleRate)
	return r, nil
}

// ProbeFormat runs ffprobe on data encoded in format f: ProbeRaw at 24 kHz
// mono for tts.FormatPCM, ProbeBytes for the others. Note that ffprobe
// reports Opus at 48 kHz, the rate Opus always decodes at, whatever the
// input rate.
func ProbeFormat(ctx context.Context, ffprobePath string, f tts.Format, data []byte) (ProbeResult, error) {
	if f == tts.FormatPCM {
		return ProbeRaw(ctx, ffprobePath, data, tts.SampleRate, 1)
	}
	return ProbeBytes(ctx, ffprobePath, data)
}

func probe(ctx context.Context, ffprobePath, input string, stdin []byte, inputArgs []string) (ProbeResult, error) {
	if ffprobePath == "" {
		ffprobePath = DefaultFFprobePath
	}
	args := []string{"-v", "error", "-of", "json", "-select_streams", "a:0",
		"-show_entries", "stream=codec_name,sample_rate,channels,time_base,duration:format=format_name,duration:packet=duration"}
	args = append(args, inputArgs...)
	out, err := runTool(ctx, "ffmpeg", ffprobePath, stdin, append(args, "-i", input)...)
	if err != nil {
		return ProbeResult{}, err
	}
	var doc struct {
		Streams []struct {
			CodecName  string `json:"codec_name"`
			SampleRate string `json:"sample_rate"`
			Channels   int    `json:"channels"`
			TimeBase   string `json:"time_base"`
			Duration   string `json:"duration"`
		} `json:"streams"`
		Format struct {
			FormatName string `json:"format_name"`
			Duration   string `json:"duration"`
		} `json:"format"`
		Packets []struct {
			Duration int64 `json:"duration"`
		} `json:"packets"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return ProbeResult{}, fmt.Errorf("ffprobe: unexpected output: %w", err)
	}
	if len(doc.Streams) == 0 {
		return ProbeResult{}, fmt.Errorf("ffprobe: no audio stream")
	}
	s := doc.Streams[0]
	r := ProbeResult{Format: doc.Format.FormatName, Codec: s.CodecName, Channels: s.Channels}
	r.SampleRate, _ = strconv.Atoi(s.SampleRate)
	if d, err := strconv.ParseFloat(doc.Format.Duration, 64); err == nil {
		r.DurationSeconds = d
	} else if d, err := strconv.ParseFloat(s.Duration, 64); err == nil {
		r.DurationSeconds = d
	} else if tb, ok := new(big.Rat).SetString(s.TimeBase); ok {
		var ticks int64
		for _, p := range doc.Packets {
			ticks += p.Duration
		}
		r.DurationSeconds, _ = new(big.Rat).Mul(tb, new(big.Rat).SetInt64(ticks)).Float64()
	}
	return r, nil
}

// runTool runs a short-lived tool and returns its stdout; its errors name
// the Debian package pkg when the binary cannot be run, and carry the tail
// of stderr when it fails.
func runTool(ctx context.Context, pkg, path string, stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: 2048}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, startError(pkg, path, err)
	}
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return nil, canceled(ctx.Err())
		}
		return nil, runError(path, err, stderr)
	}
	return stdout.Bytes(), nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}
