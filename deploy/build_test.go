package deploy

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"github.com/kokorotts/kokoro-tts/internal/testsvc"
)

// TestMain removes the binaries built for the package's tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// built holds the binaries, built once for all the tests of the package with the Dockerfile's command.
var built struct {
	once sync.Once
	dir  string
	cmd  goBuild
	err  error
	out  []byte
}

// buildBinaries builds ./cmd/... exactly as the Dockerfile's build stage does (its environment
// assignments, flags and packages, parsed from the RUN line) and returns the output directory.
func buildBinaries(t testing.TB) (dir string, cmd goBuild) {
	t.Helper()
	b := parseDockerfile(t).goBuild(t)
	root := repoRoot(t)
	built.once.Do(func() {
		built.cmd = b
		built.dir, built.err = os.MkdirTemp("", "kokoro-deploy-bin-")
		if built.err != nil {
			return
		}
		args := slices.Concat([]string{"build"}, b.flags, []string{"-o", built.dir + "/"}, b.packages)
		c := exec.Command("go", args...)
		c.Dir = root
		c.Env = append(os.Environ(), b.env...)
		built.out, built.err = c.CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("go build as the Dockerfile does (%v %v): %v\n%s", built.cmd.env, built.cmd.flags, built.err, built.out)
	}
	return built.dir, built.cmd
}

// makeGoBuild parses the `go build` line of the Makefile's build target.
func makeGoBuild(t testing.TB) goBuild {
	t.Helper()
	lines := strings.Split(readRepoFile(t, "Makefile"), "\n")
	in := false
	for _, line := range lines {
		switch {
		case strings.HasPrefix(line, "build:"):
			in = true
		case in && strings.HasPrefix(line, "\t"):
			if strings.Contains(line, "go build") {
				text := strings.ReplaceAll(strings.TrimSpace(line), "$(BIN)", "bin")
				words, err := shell.NewLex('\\').ProcessWords(text, shell.EnvsFromSlice(nil))
				if err != nil {
					t.Fatal(err)
				}
				return parseGoBuild(t, words)
			}
		case in:
			in = false
		}
	}
	t.Fatal("Makefile: no go build in the build target")
	return goBuild{}
}

// TestBuildFlagsMatchMakeBuild: the image and `make build` make the same binaries.
func TestBuildFlagsMatchMakeBuild(t *testing.T) {
	d := parseDockerfile(t).goBuild(t)
	m := makeGoBuild(t)
	if !slices.Equal(d.env, m.env) || !slices.Equal(d.flags, m.flags) {
		t.Errorf("Dockerfile builds with %v %v, make build with %v %v", d.env, d.flags, m.env, m.flags)
	}
	if !slices.Contains(d.env, "CGO_ENABLED=1") {
		t.Errorf("Dockerfile build env %v: SQLite (mattn/go-sqlite3) needs CGO_ENABLED=1", d.env)
	}
	for _, want := range []string{"./cmd/api", "./cmd/worker", "./cmd/migrate"} {
		if !slices.Contains(d.packages, want) {
			t.Errorf("Dockerfile does not build %s (builds %v)", want, d.packages)
		}
	}
	if !slices.Equal(m.packages, []string{"./cmd/..."}) {
		t.Errorf("make build builds %v; this test expects ./cmd/...", m.packages)
	}
	for _, p := range d.packages {
		if !strings.HasPrefix(p, "./cmd/") {
			t.Errorf("Dockerfile builds %s, which make build (./cmd/...) does not", p)
		}
	}
}

// TestBuiltBinaries builds the binaries with the Dockerfile's flags and runs them.
func TestBuiltBinaries(t *testing.T) {
	dir, b := buildBinaries(t)
	// The build flags are recorded in the binaries.
	for _, p := range b.packages {
		name := filepath.Base(p)
		bin := filepath.Join(dir, name)
		info, err := buildinfo.ReadFile(bin)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		settings := map[string]string{}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		// (With -trimpath the go command does not record -ldflags: the ELF checks below prove it.)
		if settings["CGO_ENABLED"] != "1" || settings["-trimpath"] != "true" {
			t.Errorf("%s built with CGO_ENABLED=%s -trimpath=%s", name, settings["CGO_ENABLED"], settings["-trimpath"])
		}
		// Dynamically linked against glibc only: the runtime image provides these; ONNX Runtime is
		// loaded with dlopen at run time, never linked.
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		libs, err := f.ImportedLibraries()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range libs {
			if !strings.HasPrefix(l, "libc.so") && !strings.HasPrefix(l, "libm.so") && !strings.HasPrefix(l, "libpthread.so") &&
				!strings.HasPrefix(l, "libdl.so") && !strings.HasPrefix(l, "libresolv.so") {
				t.Errorf("%s links %s, which the runtime image may not have", name, l)
			}
		}
		if f.Section(".symtab") != nil {
			t.Errorf("%s has a symbol table: -ldflags=-s did not apply", name)
		}
		if f.Section(".debug_info") != nil || f.Section(".zdebug_info") != nil {
			t.Errorf("%s has DWARF: -ldflags=-w did not apply", name)
		}
		f.Close()
	}

	run := func(name string, env []string, args ...string) (code int, stdout, stderr string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(dir, name), args...)
		cmd.Env = cleanEnv(env...)
		cmd.Dir = t.TempDir()
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &exit):
			code = exit.ExitCode()
		default:
			t.Fatalf("%s %v: %v", name, args, err)
		}
		return code, o.String(), e.String()
	}

	if code, out, errOut := run("migrate", nil, "-version"); code != 0 || !strings.HasPrefix(out, "migrate ") {
		t.Errorf("migrate -version: exit %d, %q %q", code, out, errOut)
	}
	// A bad configuration is a clean configuration error (exit 2) naming the variable, not a crash
	// (a missing shared library would exit 127, a panic 2 with a goroutine dump).
	if code, _, errOut := run("api", []string{"LOG_LEVEL=loud"}); code != 2 || !strings.Contains(errOut, "api: configuration: LOG_LEVEL") || strings.Contains(errOut, "goroutine") {
		t.Errorf("api with LOG_LEVEL=loud: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := run("worker", nil); code != 2 || !strings.Contains(errOut, "worker: configuration: REDIS_URL") || strings.Contains(errOut, "goroutine") {
		t.Errorf("worker without REDIS_URL: exit %d, stderr %q", code, errOut)
	}
	// The HEALTHCHECK subcommands exist: with nothing to ask they fail with their own message
	// (exit 1), not as an unknown command (exit 2).
	closed := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	if code, _, errOut := run("worker", []string{"REDIS_URL=redis://" + closed + "/0", "DATA_DIR=" + t.TempDir()}, "health"); code != 1 || !strings.Contains(errOut, "worker health:") {
		t.Errorf("worker health with Redis down: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := run("api", []string{"HTTP_ADDR=" + closed, "DATA_DIR=" + t.TempDir()}, "health"); code != 1 || !strings.Contains(errOut, "api health:") {
		t.Errorf("api health with no API: exit %d, stderr %q", code, errOut)
	}
}
