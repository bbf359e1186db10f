package main

import (
	"context"
	"fmt"

	"github.com/kokorotts/kokoro-tts/pkg/espeak"
	"github.com/kokorotts/kokoro-tts/pkg/tone"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// KokoroConfig names the Kokoro model files and runtime.
type KokoroConfig struct {
	ModelPath  string `env:"KOKORO_MODEL_PATH"`
	VoicesPath string `env:"KOKORO_VOICES_PATH"`
	LibPath    string `env:"ONNXRUNTIME_LIB"`
	Device     string `env:"KOKORO_DEVICE" envDefault:"auto"`
}

// Validate checks the Kokoro settings.
func (k *KokoroConfig) Validate() error {
	switch k.Device {
	case "auto", "cpu", "cuda":
	default:
		return fmt.Errorf("KOKORO_DEVICE: %q is not one of auto, cpu, cuda", k.Device)
	}
	return nil
}

// newEngine builds the engine TTS_ENGINE asks for. With "auto", Kokoro runs
// when KOKORO_MODEL_PATH is set; a model that cannot be loaded is then a
// startup error, never a silent fallback.
func (m *Main) newEngine(ctx context.Context) (tts.Synthesizer, error) {
	c := &m.Config
	name := c.Worker.Engine
	if name == "auto" {
		name = "espeak"
		if c.Kokoro.ModelPath != "" {
			name = "kokoro"
		}
	}
	switch name {
	case "tone":
		m.Logger.Warn("TTS_ENGINE=tone: jobs get a test tone, not speech")
		return tone.New(tone.Config{}), nil
	case "kokoro":
		return nil, fmt.Errorf("KOKORO_MODEL_PATH: the Kokoro engine is not built into this worker yet")
	}
	e, err := espeak.New(espeak.Config{Path: c.Worker.ESpeakPath, MaxConcurrency: c.Worker.Concurrency})
	if err != nil {
		return nil, fmt.Errorf("ESPEAK_NG_PATH: %w", err)
	}
	m.Logger.Info("engine: espeak-ng (set KOKORO_MODEL_PATH to use Kokoro)", "info", e.Info())
	return e, nil
}
