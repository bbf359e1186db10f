package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// repoRoot is the module root: the tests run in deploy/.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("no go.mod in %s: the deploy tests must run from deploy/", dir)
	}
	return dir
}

// readRepoFile returns a file of the repository by its slash-separated path.
func readRepoFile(t testing.TB, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// goPackage is the part of `go list -json` the tests use.
type goPackage struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	CgoFiles   []string
	EmbedFiles []string
	Module     *struct{ Main bool }
}

// binaryPackages lists the packages of this module that the shipped binaries (./cmd/...) are built
// from, with their non-test files, as the go command resolves them (build tags included).
func binaryPackages(t testing.TB) []goPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Dir,GoFiles,CgoFiles,EmbedFiles,Module", "./cmd/...")
	cmd.Dir = repoRoot(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []goPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p goPackage
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		if p.Module != nil && p.Module.Main {
			pkgs = append(pkgs, p)
		}
	}
	if len(pkgs) < 4 {
		t.Fatalf("go list found only %d packages of this module behind ./cmd/...", len(pkgs))
	}
	return pkgs
}

// cleanEnv is a minimal environment for running the binaries: nothing from the test's own
// environment (REDIS_URL, DATA_DIR...) leaks into them.
func cleanEnv(extra ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}, extra...)
}

// requireTool fails (CI=true) or skips the test when a command is missing, naming the apt package.
func requireTool(t testing.TB, command, aptPackage string) string {
	t.Helper()
	if p, err := exec.LookPath(command); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		if p := filepath.Join(dir, command); isExecutable(p) {
			return p
		}
	}
	msg := command + " is not installed (run .ci/run, or: apt-get install " + aptPackage + ")"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// fields splits s on white space; a small helper for command lines.
func fields(s string) []string { return strings.Fields(s) }

// relPath is target relative to base, slash-separated.
func relPath(base, target string) (string, error) {
	r, err := filepath.Rel(base, target)
	return filepath.ToSlash(r), err
}
