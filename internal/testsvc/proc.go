package testsvc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// BuildCommands builds the module's cmd/<name> binaries into a new
// temporary directory and returns it, for a package's TestMain (the caller
// removes it).
func BuildCommands(names ...string) (string, error) {
	dir, err := os.MkdirTemp("", "kokoro-tts-bin")
	if err != nil {
		return "", err
	}
	for _, name := range names {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), "github.com/kokorotts/kokoro-tts/cmd/"+name)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("building cmd/%s: %w", name, err)
		}
	}
	return dir, nil
}

// RunWithCommands is a package's TestMain body for tests of the binaries:
// it builds cmd/<name> for each name (BuildCommands), sets *dir to their
// folder, runs the tests, removes the folder and returns the exit code for
// os.Exit.
func RunWithCommands(m *testing.M, dir *string, names ...string) int {
	d, err := BuildCommands(names...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(d)
	*dir = d
	return m.Run()
}

// Proc is a binary a test started in its own process group. Its output is
// kept and shown when the test fails; the test's cleanup kills the group.
type Proc struct {
	Cmd  *exec.Cmd
	Name string        // the binary's base name, for messages
	Done chan struct{} // closed once the process has exited
	out  LockedBuffer
}

// Output returns what the process has written so far.
func (p *Proc) Output() string { return p.out.String() }

// StartProc runs bin with only PATH, HOME and env in its environment.
func StartProc(t testing.TB, bin string, env map[string]string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Cmd: exec.Command(bin, args...), Name: filepath.Base(bin), Done: make(chan struct{})}
	p.Cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		p.Cmd.Env = append(p.Cmd.Env, k+"="+v)
	}
	p.Cmd.Stdout, p.Cmd.Stderr = &p.out, &p.out
	// Its own process group, so that Kill also reaches its children (the
	// API's Kokoro worker, espeak-ng, ffmpeg), which hold the output pipe.
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.Cmd.Wait(); close(p.Done) }()
	t.Cleanup(func() {
		p.Kill()
		<-p.Done
		if t.Failed() {
			t.Logf("--- %s (pid %d) output ---\n%s", p.Name, p.Cmd.Process.Pid, p.Output())
		}
	})
	return p
}

// Signal sends s to the binary only (as an orchestrator does), not to its
// children.
func (p *Proc) Signal(s os.Signal) { _ = p.Cmd.Process.Signal(s) }

// Kill sends SIGKILL to the process group: the binary and its children die
// at once, as in a crash or an OOM kill.
func (p *Proc) Kill() { _ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL) }

// Exited waits up to within for the process to end and returns its exit
// code (-1 when a signal ended it), or fails the test.
func (p *Proc) Exited(t testing.TB, within time.Duration) int {
	t.Helper()
	select {
	case <-p.Done:
		return p.Cmd.ProcessState.ExitCode()
	case <-time.After(within):
		t.Fatalf("%s did not exit within %s", p.Name, within)
		return -1
	}
}
