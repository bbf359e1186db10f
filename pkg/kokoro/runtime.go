package kokoro

import (
	"errors"
	"fmt"
	"os"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// InitRuntime loads the ONNX Runtime shared library at libPath and creates
// ONNX Runtime's process-wide environment, which every Engine needs. The
// environment belongs to the caller (cmd/worker): call InitRuntime once
// before New and call release after the last Engine is closed. Calling it
// again while an environment exists is an error. onnxruntime_go v1.27 needs a
// library implementing C API version 24 (ONNX Runtime 1.24 or newer);
// scripts/ensure-onnxruntime.sh provides one.
func InitRuntime(libPath string) (release func() error, err error) {
	if libPath == "" {
		return nil, errors.New("kokoro: ONNX Runtime library path is empty (scripts/ensure-onnxruntime.sh finds or fetches one)")
	}
	if _, err := os.Stat(libPath); err != nil {
		return nil, fmt.Errorf("kokoro: ONNX Runtime library: %w", err)
	}
	if ort.IsInitialized() {
		return nil, errors.New("kokoro: the ONNX Runtime environment is already initialised")
	}
	ort.SetSharedLibraryPath(libPath)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return nil, fmt.Errorf("kokoro: initialise ONNX Runtime from %s: %w", libPath, err)
	}
	var once sync.Once
	return func() error {
		err := errors.New("kokoro: ONNX Runtime environment already released")
		once.Do(func() { err = ort.DestroyEnvironment() })
		return err
	}, nil
}

// RuntimeVersion returns the version of the loaded ONNX Runtime library, or
// "" before InitRuntime. The worker logs it at startup.
func RuntimeVersion() string {
	if !ort.IsInitialized() {
		return ""
	}
	return ort.GetVersion()
}
