package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"
)

// wantsKokoro reports whether embedded mode must run Kokoro, which lives in
// cmd/worker: TTS_ENGINE=kokoro, or auto with a model configured.
func (m *Main) wantsKokoro() bool {
	w := m.Config.Worker
	return w.Engine == "kokoro" || (w.Engine == "auto" && m.Config.KokoroModelPath != "")
}

// childWorker is cmd/worker run by the API in embedded mode.
type childWorker struct {
	cmd      *exec.Cmd
	done     chan struct{}
	stopping atomic.Bool
}

// startChildWorker starts cmd/worker against the embedded Redis, with the
// same database and storage; it inherits the environment (KOKORO_*,
// ONNXRUNTIME_LIB...). If the child cannot start, the API does not start:
// a configured model never falls back silently.
func (m *Main) startChildWorker(ctx context.Context, redisURL string) error {
	bin, err := m.workerBinary()
	if err != nil {
		return err
	}
	cmd := exec.Command(bin)
	env := os.Environ()
	if _, set := os.LookupEnv("METRICS_ADDR"); !set {
		// The API serves /metrics itself; a second fixed port could clash.
		env = append(env, "METRICS_ADDR=")
	}
	cmd.Env = append(env,
		"REDIS_URL="+redisURL,
		"DATABASE_URL="+m.Config.Database(),
		"DATA_DIR="+m.Config.DataDir,
		// The embedded queue starts empty: hand the worker every live job
		// the database holds at once.
		"RECONCILE_STALE_AFTER=10s",
		"RECONCILE_INTERVAL=5s",
		"REDIS_EVICTION_CHECK=warn",
	)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("WORKER_BIN %s: %w", bin, err)
	}
	c := &childWorker{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }()
	m.child = c
	// A worker that fails its start-up (missing model, bad ONNX Runtime)
	// exits at once: report it instead of serving without an engine.
	select {
	case <-c.done:
		m.child = nil
		return fmt.Errorf("the Kokoro worker (%s) exited during start-up with code %d; see its log above", bin, cmd.ProcessState.ExitCode())
	case <-time.After(3 * time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	m.Logger.Info("embedded mode runs Kokoro in a child worker process", "worker_bin", bin, "pid", cmd.Process.Pid,
		"model", m.Config.KokoroModelPath)
	go func() {
		<-c.done
		if !c.stopping.Load() {
			m.Logger.Error("the Kokoro worker process exited: jobs wait until the API is restarted", "exit_code", cmd.ProcessState.ExitCode())
		}
	}()
	return nil
}

// workerBinary finds cmd/worker: WORKER_BIN, "worker" beside this binary,
// then "worker" on PATH.
func (m *Main) workerBinary() (string, error) {
	if b := m.Config.WorkerBin; b != "" {
		return b, nil
	}
	if self, err := os.Executable(); err == nil {
		b := filepath.Join(filepath.Dir(self), "worker")
		if st, err := os.Stat(b); err == nil && !st.IsDir() {
			return b, nil
		}
	}
	if b, err := exec.LookPath("worker"); err == nil {
		return b, nil
	}
	return "", fmt.Errorf("KOKORO_MODEL_PATH is set, so embedded mode runs Kokoro in cmd/worker, but no worker binary was found: build it beside the api binary (make build), or set WORKER_BIN")
}

// stop asks the child to finish its jobs (SIGTERM), then kills it.
func (c *childWorker) stop(grace time.Duration) {
	c.stopping.Store(true)
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}
