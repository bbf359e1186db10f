package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/kokorotts/kokoro-tts/pkg/espeak"
	"github.com/kokorotts/kokoro-tts/pkg/kokoro"
	"github.com/kokorotts/kokoro-tts/pkg/phonemize"
	"github.com/kokorotts/kokoro-tts/pkg/tone"
	"github.com/kokorotts/kokoro-tts/pkg/tts"
)

// KokoroConfig names the Kokoro model files and runtime.
type KokoroConfig struct {
	ModelPath  string `env:"KOKORO_MODEL_PATH"`
	VoicesPath string `env:"KOKORO_VOICES_PATH"`
	LibPath    string `env:"ONNXRUNTIME_LIB"`
	Device     string `env:"KOKORO_DEVICE" envDefault:"auto"`
	// CUDAMemLimit bounds each session's CUDA arena in bytes (0: no limit).
	CUDAMemLimit int64 `env:"KOKORO_CUDA_MEM_LIMIT" envDefault:"0"`
	// IntraOpThreads per session (0: cores / sessions).
	IntraOpThreads int `env:"KOKORO_INTRA_OP_THREADS" envDefault:"0"`
	// ChunkTokens is the target phoneme tokens per chunk (0: 150 on CPU,
	// 250 on CUDA; at most 510).
	ChunkTokens int `env:"KOKORO_CHUNK_TOKENS" envDefault:"0"`
}

// Validate checks the Kokoro settings.
func (k *KokoroConfig) Validate() error {
	switch k.Device {
	case "auto", "cpu", "cuda":
	default:
		return fmt.Errorf("KOKORO_DEVICE: %q is not one of auto, cpu, cuda", k.Device)
	}
	if k.CUDAMemLimit < 0 {
		return fmt.Errorf("KOKORO_CUDA_MEM_LIMIT: must be 0 (no limit) or a number of bytes")
	}
	if k.IntraOpThreads < 0 || k.IntraOpThreads > 256 {
		return fmt.Errorf("KOKORO_INTRA_OP_THREADS: must be from 0 (automatic) to 256")
	}
	if k.ChunkTokens < 0 || k.ChunkTokens > kokoro.MaxTokens {
		return fmt.Errorf("KOKORO_CHUNK_TOKENS: must be from 0 (automatic) to %d", kokoro.MaxTokens)
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
		return m.newKokoro(ctx)
	}
	e, err := espeak.New(espeak.Config{Path: c.Worker.ESpeakPath, MaxConcurrency: c.Worker.Concurrency})
	if err != nil {
		return nil, fmt.Errorf("ESPEAK_NG_PATH: %w", err)
	}
	m.Logger.Info("engine: espeak-ng (set KOKORO_MODEL_PATH to use Kokoro)", "info", e.Info())
	return e, nil
}

// newKokoro loads ONNX Runtime, the front end and the model. Any failure is
// a startup error: a worker asked to run Kokoro never falls back silently.
func (m *Main) newKokoro(ctx context.Context) (tts.Synthesizer, error) {
	k := m.Config.Kokoro
	if k.ModelPath == "" {
		return nil, fmt.Errorf("KOKORO_MODEL_PATH: required for the Kokoro engine (run `make model`)")
	}
	if _, err := os.Stat(k.ModelPath); err != nil {
		return nil, fmt.Errorf("KOKORO_MODEL_PATH: %w (run `make model`)", err)
	}
	if k.VoicesPath == "" {
		return nil, fmt.Errorf("KOKORO_VOICES_PATH: required with KOKORO_MODEL_PATH (a folder of <id>.bin packs or voices-v1.0.bin)")
	}
	if k.LibPath == "" {
		return nil, fmt.Errorf("ONNXRUNTIME_LIB: required for the Kokoro engine (path to libonnxruntime.so; scripts/ensure-onnxruntime.sh finds or fetches one)")
	}
	release, err := kokoro.InitRuntime(k.LibPath)
	if err != nil {
		return nil, fmt.Errorf("ONNXRUNTIME_LIB %s: %w", k.LibPath, err)
	}
	fe, err := phonemize.New(phonemize.Config{ESpeakPath: m.Config.Worker.ESpeakPath})
	if err != nil {
		release()
		return nil, fmt.Errorf("ESPEAK_NG_PATH: %w", err)
	}
	eng, err := kokoro.New(ctx, kokoro.Config{
		ModelPath: k.ModelPath, VoicesPath: k.VoicesPath, Device: k.Device,
		MaxConcurrency: m.Config.Worker.Concurrency, IntraOpThreads: k.IntraOpThreads,
		CUDAMemLimitBytes: k.CUDAMemLimit, ChunkTokens: k.ChunkTokens, FrontEnd: fe, Logger: m.Logger,
	})
	if err != nil {
		fe.Close()
		release()
		return nil, fmt.Errorf("KOKORO_MODEL_PATH %s: %w", k.ModelPath, err)
	}
	info := eng.Info()
	m.Logger.Info("engine: kokoro", "onnxruntime", kokoro.RuntimeVersion(), "device", info.Device,
		"model", info.Model, "detail", info.Detail, "voices", len(eng.Voices()))
	return &ownedEngine{Engine: eng, close: func() error {
		return errors.Join(eng.Close(), fe.Close(), release())
	}}, nil
}

// ownedEngine closes what the Kokoro engine was built from with it.
type ownedEngine struct {
	*kokoro.Engine
	close func() error
}

// Close releases the engine, the front end and the runtime.
func (o *ownedEngine) Close() error { return o.close() }
