// Package espeak is a tts.Synthesizer backed by the espeak-ng command line
// (Debian package espeak-ng). Its formant speech is robotic next to Kokoro,
// but it needs no model and runs anywhere, so the whole pipeline works and
// can be tested on any machine. Every Kokoro voice id (and blend) is
// accepted and mapped to an espeak-ng language and voice variant.
package espeak

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kokorotts/kokoro-tts/pkg/audio"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// Defaults for Config's zero fields.
const (
	DefaultPath = "espeak-ng"
	// DefaultMaxChunkChars bounds the text of one espeak-ng run: about a
	// minute of speech, so progress is reported and cancelation checked at
	// least that often.
	DefaultMaxChunkChars = 1000
)

// chunkPause is the silence put between the audio of two chunks.
const chunkPause = 100 * time.Millisecond

// Config configures an Engine. Zero fields take the defaults.
type Config struct {
	Path           string // espeak-ng binary; default "espeak-ng" from PATH
	MaxConcurrency int    // espeak-ng processes running at once across all calls; default the number of CPUs
	MaxChunkChars  int    // characters of text per espeak-ng run; default 1000
}

// Engine synthesizes speech by running espeak-ng, one process per chunk of
// text. It is safe for concurrent use.
type Engine struct {
	path      string
	version   string
	maxChunk  int
	voices    tts.VoiceSet
	espeakIDs map[string]string // Kokoro voice id -> espeak-ng voice, e.g. "en-us+f3"
	sem       chan struct{}
	closed    atomic.Bool
}

// New checks that espeak-ng runs and has the languages and voice variants
// the catalogue needs, and returns an Engine. A missing binary gives an
// error naming the Debian package espeak-ng.
func New(cfg Config) (*Engine, error) {
	if cfg.Path == "" {
		cfg.Path = DefaultPath
	}
	if cfg.MaxConcurrency <= 0 {
		cfg.MaxConcurrency = runtime.NumCPU()
	}
	if cfg.MaxChunkChars <= 0 {
		cfg.MaxChunkChars = DefaultMaxChunkChars
	}
	catalogue := tts.Catalogue()
	ids, err := voiceMap(catalogue)
	if err != nil {
		return nil, err
	}
	e := &Engine{
		path:      cfg.Path,
		maxChunk:  cfg.MaxChunkChars,
		voices:    tts.NewVoiceSet(catalogue),
		espeakIDs: ids,
		sem:       make(chan struct{}, cfg.MaxConcurrency),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := e.run(ctx, "", "--version")
	if err != nil {
		return nil, err
	}
	// "eSpeak NG text-to-speech: 1.51  Data at: /usr/lib/..."
	e.version = "unknown"
	if _, after, ok := strings.Cut(string(out), "text-to-speech:"); ok {
		if f := strings.Fields(after); len(f) > 0 {
			e.version = f[0]
		}
	}
	if err := e.checkVoices(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// checkVoices fails when espeak-ng lacks a language or variant of the voice
// map, so that a partial espeak-ng-data install is found at startup rather
// than by a failed job.
func (e *Engine) checkVoices(ctx context.Context) error {
	langs, err := e.run(ctx, "", "--voices")
	if err != nil {
		return err
	}
	vars, err := e.run(ctx, "", "--voices=variant")
	if err != nil {
		return err
	}
	// Columns: Pty Language Age/Gender VoiceName File Other-languages; a
	// voice is named by its file's base name, e.g. "gmw/en-US" -> "en-us".
	have := map[string]bool{}
	for _, line := range strings.Split(string(langs), "\n") {
		if f := strings.Fields(line); len(f) >= 5 {
			have[strings.ToLower(path.Base(f[4]))] = true
		}
	}
	for _, line := range strings.Split(string(vars), "\n") {
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "!v/"); ok {
				have["+"+v] = true
			}
		}
	}
	missing := map[string]bool{}
	for _, id := range e.espeakIDs {
		lang, variant, _ := strings.Cut(id, "+")
		if !have[lang] {
			missing[lang] = true
		}
		if !have["+"+variant] {
			missing["variant "+variant] = true
		}
	}
	if len(missing) > 0 {
		list := make([]string, 0, len(missing))
		for m := range missing {
			list = append(list, m)
		}
		sort.Strings(list)
		return fmt.Errorf("espeak: espeak-ng at %q lacks %s (install the Debian package espeak-ng-data)", e.path, strings.Join(list, ", "))
	}
	return nil
}

// Synthesize speaks req.Text with the espeak-ng voice mapped from req.Voice
// (for a blend, its heaviest voice) and returns 24 kHz mono PCM. Long text
// is spoken chunk by chunk; req.Progress is called after each. Errors:
// EINVALID for text with nothing to speak, an unknown voice or a bad speed;
// ECANCELED (wrapping ctx.Err()) when ctx ends, in which case the running
// espeak-ng is killed; EUNAVAILABLE after Close.
func (e *Engine) Synthesize(ctx context.Context, req tts.SynthesisRequest) (tts.PCM, error) {
	if e.closed.Load() {
		return tts.PCM{}, tts.Errorf(tts.EUNAVAILABLE, "the espeak-ng engine is closed")
	}
	voice, err := e.espeakVoice(req.Voice)
	if err != nil {
		return tts.PCM{}, err
	}
	wpm, err := wordsPerMinute(req.Speed)
	if err != nil {
		return tts.PCM{}, err
	}
	text := clean(req.Text)
	if !speakable(text) {
		return tts.PCM{}, tts.Errorf(tts.EINVALID, "text: must contain at least one visible character")
	}
	chunks := chunk(text, e.maxChunk)
	pause := make([]float32, int(chunkPause.Seconds()*tts.SampleRate))
	var samples []float32
	for i, c := range chunks {
		if err := ctx.Err(); err != nil {
			return tts.PCM{}, canceled(err)
		}
		pcm, err := e.speak(ctx, c, voice, wpm)
		if err != nil {
			if ctx.Err() != nil {
				return tts.PCM{}, canceled(ctx.Err())
			}
			return tts.PCM{}, err
		}
		if len(samples) > 0 && len(pcm.Samples) > 0 {
			samples = append(samples, pause...)
		}
		samples = append(samples, pcm.Samples...)
		if req.Progress != nil {
			req.Progress(i+1, len(chunks))
		}
	}
	if len(samples) == 0 {
		return tts.PCM{}, tts.Errorf(tts.EINVALID, "text: nothing espeak-ng can speak")
	}
	return tts.PCM{SampleRate: tts.SampleRate, Samples: samples}, nil
}

// espeakVoice maps a voice id or blend to an espeak-ng voice.
func (e *Engine) espeakVoice(spec string) (string, error) {
	if strings.TrimSpace(spec) == "" {
		spec = tts.DefaultVoice
	}
	ws, err := e.voices.ParseVoice(spec)
	if err != nil {
		return "", err
	}
	best := ws[0]
	for _, w := range ws[1:] {
		if w.Weight > best.Weight {
			best = w
		}
	}
	return e.espeakIDs[best.ID], nil
}

// speak runs espeak-ng on one chunk, once a process slot is free. The text
// goes in on stdin, never on the command line, and without -m so markup is
// read out rather than obeyed.
func (e *Engine) speak(ctx context.Context, text, voice, wpm string) (tts.PCM, error) {
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return tts.PCM{}, ctx.Err()
	}
	defer func() { <-e.sem }()
	wav, err := e.run(ctx, text, "--stdout", "-b", "1", "-v", voice, "-s", wpm)
	if err != nil {
		return tts.PCM{}, err
	}
	pcm, err := audio.DecodeWAV(wav)
	if err != nil {
		return tts.PCM{}, fmt.Errorf("espeak: reading espeak-ng output: %w", err)
	}
	return audio.Resample(pcm, tts.SampleRate)
}

// run runs espeak-ng with stdin and returns its stdout; the process is
// killed when ctx ends.
func (e *Engine) run(ctx context.Context, stdin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, e.path, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &limitedBuffer{buf: &stderr, max: 2048}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, tts.Wrap(tts.EUNAVAILABLE, fmt.Errorf("cannot run espeak-ng at %q (install the Debian package espeak-ng): %w", e.path, err), "espeak-ng is not installed")
	}
	if err := cmd.Wait(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, fmt.Errorf("espeak: %s %s: %w: %s", e.path, strings.Join(args, " "), err, msg)
		}
		return nil, fmt.Errorf("espeak: %s %s: %w", e.path, strings.Join(args, " "), err)
	}
	return stdout.Bytes(), nil
}

// Voices returns the Kokoro catalogue: every voice is accepted.
func (e *Engine) Voices() []tts.Voice { return tts.Catalogue() }

// Info describes the engine.
func (e *Engine) Info() tts.EngineInfo {
	return tts.EngineInfo{Name: "espeak-ng", Device: "cpu", Version: e.version}
}

// Close makes later Synthesize calls fail with EUNAVAILABLE. Calls in
// flight finish; there is nothing else to release.
func (e *Engine) Close() error {
	e.closed.Store(true)
	return nil
}

func canceled(err error) error {
	return tts.Wrap(tts.ECANCELED, err, "synthesis canceled")
}

// limitedBuffer keeps the first max bytes written to it: espeak-ng's
// messages come first, and a runaway stderr must not grow without bound.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
