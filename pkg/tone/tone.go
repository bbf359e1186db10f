// Package tone is a stand-in engine that costs (almost) nothing: it answers
// any request with a quiet sine tone whose length follows the text. It exists
// for benchmarks, load tests and fault tests of the pipeline around the
// engine; it is never chosen unless asked for (TTS_ENGINE=tone).
package tone

import (
	"context"
	"math"
	"time"
	"unicode/utf8"

	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// Config configures the engine.
type Config struct {
	// SecondsPerChar is the audio length per character of text; default
	// 0.01 (a 100-character sentence gives one second), at least 0.1 s.
	SecondsPerChar float64
	// Delay is slept per request, honouring ctx, to stand in for compute.
	Delay time.Duration
}

// Engine implements tts.Synthesizer.
type Engine struct {
	cfg    Config
	voices []tts.Voice
}

// New returns an Engine.
func New(cfg Config) *Engine {
	if cfg.SecondsPerChar <= 0 {
		cfg.SecondsPerChar = 0.01
	}
	return &Engine{cfg: cfg, voices: tts.Catalogue()}
}

// Synthesize returns a 440 Hz tone; its length is proportional to the text
// and inversely to the speed.
func (e *Engine) Synthesize(ctx context.Context, req tts.SynthesisRequest) (tts.PCM, error) {
	if e.cfg.Delay > 0 {
		t := time.NewTimer(e.cfg.Delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return tts.PCM{}, tts.Wrap(tts.ECANCELED, ctx.Err(), "synthesis canceled")
		case <-t.C:
		}
	} else if err := ctx.Err(); err != nil {
		return tts.PCM{}, tts.Wrap(tts.ECANCELED, err, "synthesis canceled")
	}
	speed := req.Speed
	if speed <= 0 {
		speed = 1
	}
	secs := math.Max(0.1, float64(utf8.RuneCountInString(req.Text))*e.cfg.SecondsPerChar/speed)
	n := int(secs * tts.SampleRate)
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(0.2 * math.Sin(2*math.Pi*440*float64(i)/tts.SampleRate))
	}
	if req.Progress != nil {
		req.Progress(1, 1)
	}
	return tts.PCM{SampleRate: tts.SampleRate, Samples: s}, nil
}

// Voices returns the Kokoro catalogue.
func (e *Engine) Voices() []tts.Voice { return e.voices }

// Info describes the engine.
func (e *Engine) Info() tts.EngineInfo { return tts.EngineInfo{Name: "tone", Device: "cpu"} }

// Close does nothing.
func (e *Engine) Close() error { return nil }
