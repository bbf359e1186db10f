package deploy

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/dotenv"
)

// deploymentOnly are documented in .env.production.example although no binary reads them: docker
// compose, the NVIDIA Container Toolkit or the CUDA runtime does. Each says who.
var deploymentOnly = map[string]string{
	"NVIDIA_VISIBLE_DEVICES": "read by the NVIDIA Container Toolkit when it starts a GPU container",
	"CUDA_VISIBLE_DEVICES":   "read by the CUDA runtime inside the worker process (under ONNX Runtime), not by Go code",
	"MINIO_ROOT_USER":        "MinIO's root user: compose passes it to minio, minio-init and backup-audio",
	"MINIO_ROOT_PASSWORD":    "MinIO's root password: compose passes it to minio, minio-init and backup-audio",
	"DEPLOY_DIR":             "compose interpolation: the host directory behind the named volumes",
	"API_BIND":               "compose interpolation: the host address the API port is published on",
	"API_PORT":               "compose interpolation: the host port the API is published on",
	"HTTP_PORT":              "compose interpolation: nginx's published HTTP port",
	"HTTPS_PORT":             "compose interpolation: nginx's published HTTPS port",
	"REDIS_MAXMEMORY":        "compose interpolation: redis-server --maxmemory",
	"COMPOSE_FILE":           "read by docker compose itself: the compose file to use without -f",
	"COMPOSE_PROFILES":       "read by docker compose itself: profiles started without --profile",
}

// reserved are documented for a feature that is not in the code yet. When the code starts reading
// one, this test fails until it is moved out of here.
var reserved = map[string]string{}

const reservedNote = "(reserved: read once authentication lands, issue 5)"

// sourceFiles lists the non-test Go files the variables are collected from: every file the binaries
// (./cmd/...) are built from, as the go command resolves them, plus every file under cmd/ and pkg/
// that the current build constraints select (a pkg/ package no binary links yet still counts).
func sourceFiles(t testing.TB) []string {
	t.Helper()
	root := repoRoot(t)
	seen := map[string]bool{}
	for _, p := range binaryPackages(t) {
		for _, name := range slices.Concat(p.GoFiles, p.CgoFiles) {
			seen[filepath.Join(p.Dir, name)] = true
		}
	}
	for _, top := range []string{"cmd", "pkg"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_") {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			if ok, err := build.Default.MatchFile(filepath.Dir(path), d.Name()); err != nil || !ok {
				return err
			}
			seen[path] = true
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for path := range seen {
		for _, dir := range clientTools {
			if strings.HasPrefix(path, filepath.Join(root, dir)+string(filepath.Separator)) {
				delete(seen, path)
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// clientTools are commands that run on a user's machine, not in the deployment: their variables
// (KOKORO_TTS_URL, KOKORO_TTS_API_KEY for ttsctl and the load generator) are documented in README.md, not in the
// deployment's env file.
var clientTools = []string{"cmd/ttsctl", "cmd/ttsload"}

// codeVars returns every environment variable the binaries read, with where: the env:"NAME" struct
// tags (caarlos0/env) and the os.Getenv / os.LookupEnv("NAME") calls in the non-test Go files.
func codeVars(t testing.TB) map[string][]string {
	t.Helper()
	vars := map[string][]string{}
	fset := token.NewFileSet()
	root := repoRoot(t)
	for _, file := range sourceFiles(t) {
		f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		osName := ""
		for _, imp := range f.Imports {
			if imp.Path.Value == `"os"` {
				osName = "os"
				if imp.Name != nil {
					osName = imp.Name.Name
				}
			}
		}
		where := func(n ast.Node) string {
			pos := fset.Position(n.Pos())
			rel, _ := relPath(root, pos.Filename)
			return fmt.Sprintf("%s:%d", rel, pos.Line)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.Field:
				if n.Tag == nil {
					return true
				}
				tag, err := strconv.Unquote(n.Tag.Value)
				if err != nil {
					t.Fatalf("%s: struct tag %s: %v", where(n), n.Tag.Value, err)
				}
				st := reflect.StructTag(tag)
				if _, ok := st.Lookup("envPrefix"); ok {
					t.Fatalf("%s: envPrefix is not understood by this test: teach codeVars to prefix the nested names", where(n))
				}
				if v, ok := st.Lookup("env"); ok {
					if name, _, _ := strings.Cut(v, ","); name != "" {
						vars[name] = append(vars[name], where(n))
					}
				}
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok || osName == "" {
					return true
				}
				if x, ok := sel.X.(*ast.Ident); !ok || x.Name != osName || (sel.Sel.Name != "Getenv" && sel.Sel.Name != "LookupEnv") {
					return true
				}
				lit, ok := n.Args[0].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("%s: os.%s with a computed name: use a string literal so that the documented variables can be checked", where(n), sel.Sel.Name)
				}
				name, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				vars[name] = append(vars[name], where(n))
			}
			return true
		})
	}
	return vars
}

// exampleVar is one NAME=value line of .env.production.example (or "# NAME=value").
type exampleVar struct {
	name, value string
	line        int
	commented   bool
	doc         string // the comment block above it
}

var exampleLine = regexp.MustCompile(`^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$`)

func parseExample(t testing.TB) map[string]exampleVar {
	t.Helper()
	out := map[string]exampleVar{}
	var doc []string
	sc := bufio.NewScanner(strings.NewReader(readRepoFile(t, ".env.production.example")))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), " \t")
		if line == "" {
			doc = nil
			continue
		}
		if m := exampleLine.FindStringSubmatch(line); m != nil {
			if prev, dup := out[m[2]]; dup {
				t.Errorf(".env.production.example:%d: %s again (first on line %d)", n, m[2], prev.line)
			}
			out[m[2]] = exampleVar{name: m[2], value: m[3], line: n, commented: m[1] != "", doc: strings.Join(doc, " ")}
			continue
		}
		if !strings.HasPrefix(line, "#") {
			t.Errorf(".env.production.example:%d: neither a comment nor NAME=value: %q", n, line)
			continue
		}
		doc = append(doc, strings.TrimSpace(strings.TrimLeft(line, "#")))
	}
	return out
}

// TestEnvExampleDocumentsExactlyWhatTheCodeReads is the promise of .env.production.example: every
// variable the binaries read is there, and nothing else is there except the listed deployment-only
// and reserved variables.
func TestEnvExampleDocumentsExactlyWhatTheCodeReads(t *testing.T) {
	code := codeVars(t)
	example := parseExample(t)

	// A sanity floor, so that a broken parser cannot pass by finding nothing.
	for _, v := range []string{"DATABASE_URL", "REDIS_URL", "HTTP_ADDR", "KOKORO_MODEL_PATH", "KOKORO_DEVICE"} {
		if _, ok := code[v]; !ok {
			t.Fatalf("the code scan did not find %s: the scan is broken", v)
		}
	}

	for _, name := range slices.Sorted(maps.Keys(code)) {
		if _, ok := example[name]; !ok {
			t.Errorf("%s is read by the code (%s) but not documented in .env.production.example", name, strings.Join(code[name], ", "))
		}
		if why, ok := deploymentOnly[name]; ok {
			t.Errorf("%s is listed as deployment-only (%s) but the code reads it (%s): remove it from deploymentOnly", name, why, strings.Join(code[name], ", "))
		}
		if _, ok := reserved[name]; ok {
			t.Errorf("%s is reserved but the code reads it now (%s): remove it from reserved and the note from the example", name, strings.Join(code[name], ", "))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(example)) {
		_, read := code[name]
		_, deploy := deploymentOnly[name]
		_, res := reserved[name]
		if !read && !deploy && !res {
			t.Errorf(".env.production.example:%d documents %s, which nothing reads (and which is not in the deployment-only or reserved lists)", example[name].line, name)
		}
	}
	for _, list := range []map[string]string{deploymentOnly, reserved} {
		for name := range list {
			if _, ok := example[name]; !ok {
				t.Errorf("%s is allow-listed in this test but not in .env.production.example: drop it from the list", name)
			}
		}
	}
}

func TestEnvExampleIsCommentedSafeAndParses(t *testing.T) {
	example := parseExample(t)
	for _, v := range example {
		if strings.TrimSpace(v.doc) == "" {
			t.Errorf(".env.production.example:%d: %s has no comment above it", v.line, v.name)
		}
		if _, ok := reserved[v.name]; ok && !strings.Contains(v.doc, reservedNote) {
			t.Errorf(".env.production.example:%d: reserved %s must say %q", v.line, v.name, reservedNote)
		}
		// Secrets ship as placeholders that minio-init refuses and that are shorter than the 32
		// bytes a JWT secret needs: a forgotten one stops the service rather than weakening it.
		if strings.Contains(v.name, "SECRET") || strings.Contains(v.name, "PASSWORD") {
			if v.value != "CHANGE-ME" {
				t.Errorf(".env.production.example:%d: %s=%q: secrets must ship as CHANGE-ME", v.line, v.name, v.value)
			}
		}
		if strings.ContainsAny(v.value, `"' `) || strings.Contains(v.value, "#") {
			t.Errorf(".env.production.example:%d: %s=%q: no quotes, spaces or trailing comments (compose and shells read them differently)", v.line, v.name, v.value)
		}
	}
	if !strings.Contains(example["JWT_SECRET"].doc, "openssl rand -hex 32") {
		t.Errorf("JWT_SECRET's comment must say how to generate it (openssl rand -hex 32)")
	}
	// What compose reads from the file (as .env) is exactly the uncommented lines.
	parsed, err := dotenv.GetEnvFromFile(nil, []string{filepath.Join(repoRoot(t), ".env.production.example")})
	if err != nil {
		t.Fatalf("compose cannot read .env.production.example: %v", err)
	}
	for name, v := range example {
		got, ok := parsed[name]
		switch {
		case v.commented && ok:
			t.Errorf("%s is commented out but compose reads it", name)
		case !v.commented && (!ok || got != v.value):
			t.Errorf("compose reads %s=%q, the file says %q", name, got, v.value)
		}
	}
	if len(parsed) != countUncommented(example) {
		t.Errorf("compose reads %d variables, the file has %d uncommented", len(parsed), countUncommented(example))
	}
	// Fixed facts the example must agree with.
	for name, want := range map[string]string{
		"KOKORO_DEVICE":              "cuda",
		"KOKORO_TTS_MAX_CONCURRENCY": "4",
		"NVIDIA_VISIBLE_DEVICES":     "all",
		"CUDA_VISIBLE_DEVICES":       "0",
		"REDIS_URL":                  "redis://redis:6379/0",
		"S3_ENDPOINT":                "minio:9000",
		"DATA_DIR":                   "/data",
		"DATABASE_URL":               "sqlite:/data/kokoro-tts.db",
		"LOG_FORMAT":                 "json",
	} {
		if got := example[name].value; got != want || example[name].commented {
			t.Errorf("%s=%q, want %s=%s", name, got, name, want)
		}
	}
	if example["S3_ACCESS_KEY"].value == example["MINIO_ROOT_USER"].value {
		t.Errorf("S3_ACCESS_KEY must differ from MINIO_ROOT_USER: the app gets its own S3 user")
	}
}

// TestComposeVariablesAreDocumented: every ${NAME} the compose file interpolates is in the example.
func TestComposeVariablesAreDocumented(t *testing.T) {
	example := parseExample(t)
	compose := readRepoFile(t, "docker-compose.gpu.yml")
	seen := 0
	for _, m := range regexp.MustCompile(`(\$*)\$\{([A-Za-z_][A-Za-z0-9_]*)`).FindAllStringSubmatch(compose, -1) {
		if len(m[1])%2 == 1 {
			continue // $${...} is a literal for the container's shell
		}
		seen++
		if _, ok := example[m[2]]; !ok {
			t.Errorf("docker-compose.gpu.yml uses ${%s}, which .env.production.example does not document", m[2])
		}
	}
	if seen < 10 {
		t.Fatalf("found only %d ${...} in docker-compose.gpu.yml: the scan is broken", seen)
	}
}

func countUncommented(m map[string]exampleVar) int {
	n := 0
	for _, v := range m {
		if !v.commented {
			n++
		}
	}
	return n
}
