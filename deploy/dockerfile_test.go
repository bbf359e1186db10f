package deploy

import (
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// dockerfile is the repository's Dockerfile as BuildKit reads it.
type dockerfile struct {
	stages  []instructions.Stage
	metaArg map[string]string // global ARG defaults
}

func parseDockerfile(t testing.TB) *dockerfile {
	t.Helper()
	res, err := parser.Parse(strings.NewReader(readRepoFile(t, "Dockerfile")))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile: parser warning: %s", w.Short)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	d := &dockerfile{stages: stages, metaArg: map[string]string{}}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				d.metaArg[kv.Key] = *kv.Value
			}
		}
	}
	return d
}

func (d *dockerfile) stage(t testing.TB, name string) *instructions.Stage {
	t.Helper()
	for i := range d.stages {
		if d.stages[i].Name == name {
			return &d.stages[i]
		}
	}
	t.Fatalf("Dockerfile: no stage %q", name)
	return nil
}

// expand replaces ${ARG} with the global ARG defaults, as `docker build` without --build-arg does.
func (d *dockerfile) expand(t testing.TB, word string) string {
	t.Helper()
	var env []string
	for k, v := range d.metaArg {
		env = append(env, k+"="+v)
	}
	res, err := shell.NewLex('\\').ProcessWordWithMatches(word, shell.EnvsFromSlice(env))
	if err != nil {
		t.Fatalf("expanding %q: %v", word, err)
	}
	return res.Result
}

// stageArg is the default of an ARG declared in a stage, expanded with the global ARGs and the
// stage's earlier ARGs.
func (d *dockerfile) stageArg(t testing.TB, st *instructions.Stage, name string) string {
	t.Helper()
	env := map[string]string{}
	for k, v := range d.metaArg {
		env[k] = v
	}
	for _, c := range st.Commands {
		a, ok := c.(*instructions.ArgCommand)
		if !ok {
			continue
		}
		for _, kv := range a.Args {
			if kv.Value == nil {
				continue // ARG NAME: takes the global default, already in env
			}
			var list []string
			for k, v := range env {
				list = append(list, k+"="+v)
			}
			res, err := shell.NewLex('\\').ProcessWordWithMatches(*kv.Value, shell.EnvsFromSlice(list))
			if err != nil {
				t.Fatalf("stage %s: ARG %s: %v", st.Name, kv.Key, err)
			}
			env[kv.Key] = res.Result
		}
	}
	v, ok := env[name]
	if !ok {
		t.Fatalf("stage %s: no ARG %s", st.Name, name)
	}
	return v
}

// runs returns the shell text of each RUN of a stage.
func runs(st *instructions.Stage) []string {
	var out []string
	for _, c := range st.Commands {
		if r, ok := c.(*instructions.RunCommand); ok {
			out = append(out, strings.Join(r.CmdLine, " "))
		}
	}
	return out
}

// envOf returns the value the stage's ENV instructions give a variable ("" when none does).
func envOf(st *instructions.Stage, name string) string {
	v := ""
	for _, c := range st.Commands {
		if e, ok := c.(*instructions.EnvCommand); ok {
			for _, kv := range e.Env {
				if kv.Key == name {
					v = kv.Value
				}
			}
		}
	}
	return v
}

// last returns the last command of type T in a stage.
func last[T instructions.Command](st *instructions.Stage) (T, bool) {
	var found T
	ok := false
	for _, c := range st.Commands {
		if v, is := c.(T); is {
			found, ok = v, true
		}
	}
	return found, ok
}

// aptPackages returns the packages of the stage's `apt-get install` commands.
func aptPackages(t testing.TB, st *instructions.Stage) []string {
	t.Helper()
	var pkgs []string
	for _, r := range runs(st) {
		for _, cmd := range strings.Split(r, "&&") {
			f := fields(cmd)
			i := slices.Index(f, "install")
			if i < 1 || f[i-1] != "apt-get" {
				continue
			}
			if !slices.Contains(f, "--no-install-recommends") {
				t.Errorf("stage %s: apt-get install without --no-install-recommends: %s", st.Name, strings.TrimSpace(cmd))
			}
			for _, w := range f[i+1:] {
				if !strings.HasPrefix(w, "-") {
					pkgs = append(pkgs, w)
				}
			}
		}
	}
	return pkgs
}

// goBuild is the `go build` command of the build stage, split the way the shell splits it.
type goBuild struct {
	env      []string // NAME=value words before "go"
	flags    []string // build flags, without -o and its value
	output   string
	packages []string
}

func parseGoBuild(t testing.TB, words []string) goBuild {
	t.Helper()
	var b goBuild
	i := 0
	for i < len(words) && strings.Contains(words[i], "=") && !strings.HasPrefix(words[i], "-") {
		b.env = append(b.env, words[i])
		i++
	}
	if i+1 >= len(words) || words[i] != "go" || words[i+1] != "build" {
		t.Fatalf("not a go build command line: %q", words)
	}
	for i += 2; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "-o":
			i++
			b.output = words[i]
		case strings.HasPrefix(w, "-"):
			b.flags = append(b.flags, w)
		default:
			b.packages = append(b.packages, w)
		}
	}
	return b
}

// dockerGoBuild finds the build stage's `go build` RUN.
func (d *dockerfile) goBuild(t testing.TB) goBuild {
	t.Helper()
	var found []goBuild
	for _, c := range d.stage(t, "build").Commands {
		r, ok := c.(*instructions.RunCommand)
		if !ok || len(r.CmdLine) != 1 || !strings.Contains(r.CmdLine[0], "go build") {
			continue
		}
		words, err := shell.NewLex('\\').ProcessWords(r.CmdLine[0], shell.EnvsFromSlice(nil))
		if err != nil {
			t.Fatalf("splitting %q: %v", r.CmdLine[0], err)
		}
		found = append(found, parseGoBuild(t, words))
	}
	if len(found) != 1 {
		t.Fatalf("build stage: want exactly one RUN with go build, found %d", len(found))
	}
	return found[0]
}

// binaries returns the executables a stage has in /usr/local/bin, copied from the build stage.
func (d *dockerfile) binaries(t testing.TB, stage string) []string {
	t.Helper()
	b := d.goBuild(t)
	built := map[string]bool{}
	for _, p := range b.packages {
		built[path.Base(p)] = true
	}
	var out []string
	for _, c := range d.stage(t, stage).Commands {
		cp, ok := c.(*instructions.CopyCommand)
		if !ok || cp.From != "build" {
			continue
		}
		if !strings.HasPrefix(cp.DestPath, "/usr/local/bin") {
			continue
		}
		for _, src := range cp.SourcePaths {
			src = strings.TrimSuffix(src, "/")
			if src == strings.TrimSuffix(b.output, "/") {
				for name := range built {
					out = append(out, name)
				}
				continue
			}
			if path.Dir(src) == strings.TrimSuffix(b.output, "/") && built[path.Base(src)] {
				out = append(out, path.Base(src))
				continue
			}
			t.Errorf("stage %s: COPY --from=build %s is not a binary the build stage makes (%v in %s)", stage, src, b.packages, b.output)
		}
	}
	slices.Sort(out)
	return out
}

func TestDockerfileStages(t *testing.T) {
	d := parseDockerfile(t)
	var names []string
	for _, s := range d.stages {
		names = append(names, s.Name)
	}
	want := []string{"modules", "build", "onnxruntime", "api", "runtime"}
	if !slices.Equal(names, want) {
		t.Fatalf("stages %v, want %v", names, want)
	}
	// A plain `docker build .` builds the last stage: it must be the full runtime image.
	if names[len(names)-1] != "runtime" {
		t.Errorf("the last stage (default target) is %s, want runtime", names[len(names)-1])
	}
	if got := d.stage(t, "build").BaseName; got != "modules" {
		t.Errorf("build stage is FROM %s, want modules (module download cached apart from the sources)", got)
	}
	// The Go image must be at least the go.mod's Go version.
	goImage := d.expand(t, d.stage(t, "modules").BaseName)
	m := regexp.MustCompile(`^golang:(\d+\.\d+(?:\.\d+)?)-(\w+)$`).FindStringSubmatch(goImage)
	if m == nil {
		t.Fatalf("modules stage FROM %s, want golang:<version>-<debian release>", goImage)
	}
	modGo := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(readRepoFile(t, "go.mod"))
	if modGo == nil {
		t.Fatal("go.mod has no go line")
	}
	if compareVersions(m[1], modGo[1]) < 0 {
		t.Errorf("Go image %s is older than go.mod's go %s", goImage, modGo[1])
	}
	// And at least its toolchain line: the release the code is tested and vulnerability-checked with.
	if tc := regexp.MustCompile(`(?m)^toolchain go(\S+)$`).FindStringSubmatch(readRepoFile(t, "go.mod")); tc != nil && compareVersions(m[1], tc[1]) < 0 {
		t.Errorf("Go image %s is older than go.mod's toolchain go%s", goImage, tc[1])
	}
	// Built on an older glibc than the runtime's (Ubuntu 24.04 has 2.39; bookworm 2.36).
	if m[2] != "bookworm" {
		t.Errorf("Go image %s: build on bookworm (glibc 2.36) so the binaries run on Ubuntu 24.04 (glibc 2.39)", goImage)
	}
	// The build copies the whole context, so the module download must come from go.mod/go.sum only.
	mod := d.stage(t, "modules")
	cp, ok := last[*instructions.CopyCommand](mod)
	if !ok || !slices.Equal(cp.SourcePaths, []string{"go.mod", "go.sum"}) {
		t.Errorf("modules stage must COPY go.mod go.sum only before go mod download")
	}
	if !slices.ContainsFunc(runs(mod), func(r string) bool { return strings.Contains(r, "go mod download") }) {
		t.Errorf("modules stage has no go mod download")
	}
}

func TestDockerfileRuntimeBaseIsCUDA12WithCuDNN(t *testing.T) {
	d := parseDockerfile(t)
	base := d.expand(t, d.stage(t, "runtime").BaseName)
	m := regexp.MustCompile(`^nvidia/cuda:(\d+)\.(\d+)\.(\d+)-(cudnn\d*)-runtime-ubuntu(\d+\.\d+)$`).FindStringSubmatch(base)
	if m == nil {
		t.Fatalf("runtime stage FROM %s, want nvidia/cuda:<12.x.y>-cudnn-runtime-ubuntu<version>", base)
	}
	// CUDA 13 dropped Pascal (the Tesla P40 is compute capability 6.1).
	if m[1] != "12" {
		t.Errorf("runtime base %s: CUDA major %s, want 12", base, m[1])
	}
	// nvidia/cuda 12.x tags without a number carry cuDNN 9, which ONNX Runtime 1.2x+ CUDA 12 builds need.
	if m[4] != "cudnn" {
		t.Errorf("runtime base %s: %s, want cudnn (cuDNN 9)", base, m[4])
	}
	// The slim api image has no CUDA.
	if api := d.expand(t, d.stage(t, "api").BaseName); strings.Contains(api, "cuda") {
		t.Errorf("api stage FROM %s: the API needs no CUDA", api)
	}
}

func TestDockerfileOnnxRuntimeGPU(t *testing.T) {
	d := parseDockerfile(t)
	ort := d.stage(t, "onnxruntime")
	version := d.stageArg(t, ort, "ORT_VERSION")
	// The first release with sm_60 code in the Linux x64 CUDA 12.8 package (microsoft/onnxruntime#31992,
	// merged 2026-08-11) is 1.30.0; earlier CUDA 12 builds fail on Pascal.
	if compareVersions(version, "1.30.0") < 0 {
		t.Errorf("ORT_VERSION %s: want 1.30.0 or later (Pascal kernels in the CUDA 12 package)", version)
	}
	url := d.stageArg(t, ort, "ORT_URL")
	want := "onnxruntime-linux-x64-gpu_cuda12-" + version + ".tgz"
	if !strings.HasSuffix(url, "/v"+version+"/"+want) {
		t.Errorf("ORT_URL %s: want the CUDA 12 GPU package .../v%s/%s", url, version, want)
	}
	script := strings.Join(runs(ort), "\n")
	for _, s := range []string{`"$ORT_URL"`, "VERSION_NUMBER", "libonnxruntime_providers_cuda.so", "sha256sum", "ORT_SHA256"} {
		if !strings.Contains(script, s) {
			t.Errorf("onnxruntime stage does not check %s", s)
		}
	}
	// The runtime prints the ONNX Runtime version in the build log and tells the worker where it is.
	rt := d.stage(t, "runtime")
	if !slices.ContainsFunc(runs(rt), func(r string) bool { return strings.Contains(r, "ONNX Runtime $(cat /opt/onnxruntime/VERSION_NUMBER)") }) {
		t.Errorf("runtime stage does not print the ONNX Runtime version")
	}
	if got := envOf(rt, "ONNXRUNTIME_LIB"); got != "/opt/onnxruntime/lib/libonnxruntime.so" {
		t.Errorf("runtime ENV ONNXRUNTIME_LIB=%q", got)
	}
	found := false
	for _, c := range rt.Commands {
		if cp, ok := c.(*instructions.CopyCommand); ok && cp.From == "onnxruntime" && cp.DestPath == "/opt/onnxruntime" {
			found = true
		}
	}
	if !found {
		t.Errorf("runtime stage does not COPY --from=onnxruntime /opt/onnxruntime")
	}
}

func TestDockerfileRuntimePackages(t *testing.T) {
	d := parseDockerfile(t)
	// The earlier image lacked espeak-ng, so synthesis could not work.
	rt := aptPackages(t, d.stage(t, "runtime"))
	for _, p := range []string{"espeak-ng", "espeak-ng-data", "ffmpeg", "ca-certificates", "tini"} {
		if !slices.Contains(rt, p) {
			t.Errorf("runtime stage does not install %s (installs %v)", p, rt)
		}
	}
	// The tools are where the ENV (and .env.production.example) say.
	st := d.stage(t, "runtime")
	if got := envOf(st, "ESPEAK_NG_PATH"); got != "/usr/bin/espeak-ng" {
		t.Errorf("runtime ENV ESPEAK_NG_PATH=%q, want /usr/bin/espeak-ng (Debian's espeak-ng package)", got)
	}
	if got := envOf(st, "FFMPEG_PATH"); got != "/usr/bin/ffmpeg" {
		t.Errorf("runtime ENV FFMPEG_PATH=%q, want /usr/bin/ffmpeg", got)
	}
	// The build fails if espeak-ng cannot phonemize.
	if !slices.ContainsFunc(runs(st), func(r string) bool { return strings.Contains(r, "espeak-ng -q -x --ipa") }) {
		t.Errorf("runtime stage does not try espeak-ng once at build time")
	}
	api := aptPackages(t, d.stage(t, "api"))
	for _, p := range []string{"ca-certificates", "tini"} {
		if !slices.Contains(api, p) {
			t.Errorf("api stage does not install %s (installs %v)", p, api)
		}
	}
}

func TestDockerfileUserEntrypointHealthcheck(t *testing.T) {
	d := parseDockerfile(t)
	for _, tc := range []struct{ stage, binary string }{{"runtime", "worker"}, {"api", "api"}} {
		st := d.stage(t, tc.stage)
		user, ok := last[*instructions.UserCommand](st)
		if !ok || (user.User != "1001:1001" && user.User != "1001") {
			t.Errorf("stage %s: USER %v, want 1001:1001", tc.stage, user)
		}
		script := strings.Join(runs(st), "\n")
		if !strings.Contains(script, "groupadd --system --gid 1001") || !strings.Contains(script, "useradd --system --uid 1001 --gid 1001") {
			t.Errorf("stage %s: no user and group with UID/GID 1001", tc.stage)
		}
		ep, ok := last[*instructions.EntrypointCommand](st)
		if !ok || len(ep.CmdLine) == 0 || ep.CmdLine[0] != "/usr/bin/tini" || ep.PrependShell {
			t.Errorf("stage %s: ENTRYPOINT %v, want [\"/usr/bin/tini\", \"--\"]", tc.stage, ep)
		}
		cmd, ok := last[*instructions.CmdCommand](st)
		if !ok || !slices.Equal(cmd.CmdLine, []string{tc.binary}) {
			t.Errorf("stage %s: CMD %v, want [%q]", tc.stage, cmd, tc.binary)
		}
		hc, ok := last[*instructions.HealthCheckCommand](st)
		if !ok {
			t.Fatalf("stage %s: no HEALTHCHECK", tc.stage)
		}
		// Exec form, the binary's own health subcommand: no shell, no curl.
		if want := []string{"CMD", tc.binary, "health"}; !slices.Equal(hc.Health.Test, want) {
			t.Errorf("stage %s: HEALTHCHECK %v, want %v", tc.stage, hc.Health.Test, want)
		}
		if hc.Health.Interval <= 0 || hc.Health.Timeout <= 0 || hc.Health.StartPeriod <= 0 || hc.Health.Retries <= 0 {
			t.Errorf("stage %s: HEALTHCHECK without interval, timeout, start period and retries: %+v", tc.stage, hc.Health)
		}
		bins := d.binaries(t, tc.stage)
		if !slices.Contains(bins, tc.binary) || !slices.Contains(bins, "migrate") {
			t.Errorf("stage %s has binaries %v, want %s and migrate", tc.stage, bins, tc.binary)
		}
	}
	if bins := d.binaries(t, "runtime"); !slices.Contains(bins, "api") {
		t.Errorf("runtime stage has %v: it must also hold api (embedded mode, one image for everything)", bins)
	}
}

// TestDockerignore checks that the build context has every file the binaries are built from and
// none of the secrets or bulk.
func TestDockerignore(t *testing.T) {
	patterns, err := ignorefile.ReadAll(strings.NewReader(readRepoFile(t, ".dockerignore")))
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	root := repoRoot(t)
	excluded := func(rel string) bool {
		t.Helper()
		ex, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			t.Fatal(err)
		}
		return ex
	}
	need := []string{"go.mod", "go.sum"}
	for _, p := range binaryPackages(t) {
		dir, err := relPath(root, p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range slices.Concat(p.GoFiles, p.CgoFiles, p.EmbedFiles) {
			need = append(need, path.Join(dir, f))
		}
	}
	for _, f := range need {
		if excluded(f) {
			t.Errorf(".dockerignore excludes %s, which the build needs", f)
		}
	}
	for _, f := range []string{
		".env", ".env.production", "data/kokoro-tts.db", "nginx/certs/privkey.pem", ".git/config",
		"scripts/golden-phonemes/node_modules/onnxruntime-web/package.json", "bin/worker", "phonemize.test",
		"pkg/kokoro/testdata/x.onnx", "pkg/audio/audio_test.go", "deploy/deploy_test.go", "README.md",
	} {
		if !excluded(f) {
			t.Errorf(".dockerignore sends %s to the builder", f)
		}
	}
}

// compareVersions compares dotted numeric versions ("1.26.8" < "1.30").
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
