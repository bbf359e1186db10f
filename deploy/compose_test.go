package deploy

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose loads docker-compose.gpu.yml the way `docker compose` does after an operator ran
// `cp .env.production.example .env`: in a copy of the files, with .env for interpolation and as
// the env_file, with the given profiles active.
func loadCompose(t testing.TB, profiles ...string) *types.Project {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []struct{ from, to string }{
		{"docker-compose.gpu.yml", "docker-compose.gpu.yml"},
		{".env.production.example", ".env"},
	} {
		if err := os.WriteFile(filepath.Join(dir, f.to), []byte(readRepoFile(t, f.from)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(dir, "docker-compose.gpu.yml")},
		cli.WithWorkingDirectory(dir),
		cli.WithEnvFiles(filepath.Join(dir, ".env")),
		cli.WithDotEnv,
		cli.WithProfiles(profiles),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose-go cannot load docker-compose.gpu.yml: %v", err)
	}
	return p
}

func service(t testing.TB, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("service %s: %v", name, err)
	}
	return s
}

func env(s types.ServiceConfig, name string) string {
	if v, ok := s.Environment[name]; ok && v != nil {
		return *v
	}
	return ""
}

// oneShots run once per `up` and exit; everything else runs for good.
var oneShots = []string{"minio-init", "migrate", "backup-db", "backup-audio"}

func TestComposeServicesAndProfiles(t *testing.T) {
	all := loadCompose(t, "nginx", "backup")
	want := []string{"api", "backup-audio", "backup-db", "migrate", "minio", "minio-init", "nginx", "redis", "worker"}
	if got := all.ServiceNames(); !slices.Equal(sorted(got), want) {
		t.Fatalf("services %v, want %v", sorted(got), want)
	}
	// Without profiles, nginx and the backups stay off.
	def := loadCompose(t)
	if got := sorted(def.ServiceNames()); !slices.Equal(got, []string{"api", "migrate", "minio", "minio-init", "redis", "worker"}) {
		t.Errorf("default services %v", got)
	}
	if all.Name != "kokoro-tts" {
		t.Errorf("project name %q, want kokoro-tts (volume and network names depend on it)", all.Name)
	}
}

func TestComposeRedisKeepsTasks(t *testing.T) {
	r := service(t, loadCompose(t), "redis")
	args := []string(r.Command)
	for _, kv := range [][2]string{{"--appendonly", "yes"}, {"--appendfsync", "everysec"}, {"--maxmemory-policy", "noeviction"}} {
		i := slices.Index(args, kv[0])
		if i < 0 || i+1 >= len(args) || args[i+1] != kv[1] {
			t.Errorf("redis command %v lacks %s %s", args, kv[0], kv[1])
		}
	}
	if r.HealthCheck == nil || r.HealthCheck.Disable || len(r.HealthCheck.Test) == 0 {
		t.Errorf("redis has no health check")
	}
	if !mountsVolume(r, "redis", "/data") {
		t.Errorf("redis does not keep /data on the named volume redis: %+v", r.Volumes)
	}
}

func TestComposeMinIOAndBucket(t *testing.T) {
	p := loadCompose(t)
	m := service(t, p, "minio")
	if m.HealthCheck == nil || m.HealthCheck.Disable || !slices.Contains([]string(m.HealthCheck.Test), "ready") {
		t.Errorf("minio health check %v, want mc ready local (the image has no curl)", m.HealthCheck)
	}
	if !mountsVolume(m, "audio", "/data") {
		t.Errorf("minio does not keep /data on the named volume audio: %+v", m.Volumes)
	}
	if !strings.HasPrefix(m.Image, "quay.io/minio/minio:RELEASE.") {
		t.Errorf("minio image %s: Docker Hub no longer serves minio/minio; pin a quay.io release", m.Image)
	}
	init := service(t, p, "minio-init")
	if d, ok := init.DependsOn["minio"]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Errorf("minio-init must wait for minio to be healthy: %+v", init.DependsOn)
	}
	script := strings.Join(init.Command, "\n")
	for _, s := range []string{`mc mb --ignore-existing "root/$S3_BUCKET"`, "mc admin user add", "mc admin policy attach", "CHANGE-ME"} {
		if !strings.Contains(script, s) {
			t.Errorf("minio-init script lacks %q:\n%s", s, script)
		}
	}
	if init.Restart != types.RestartPolicyNo {
		t.Errorf("minio-init restart %q, want no", init.Restart)
	}
}

func TestComposeStartOrder(t *testing.T) {
	p := loadCompose(t)
	for _, name := range []string{"api", "worker"} {
		s := service(t, p, name)
		for dep, cond := range map[string]string{
			"migrate":    types.ServiceConditionCompletedSuccessfully,
			"redis":      types.ServiceConditionHealthy,
			"minio-init": types.ServiceConditionCompletedSuccessfully,
		} {
			if d, ok := s.DependsOn[dep]; !ok || d.Condition != cond {
				t.Errorf("%s must depend on %s with condition %s, has %+v", name, dep, cond, s.DependsOn[dep])
			}
		}
	}
}

// TestComposeMigrateRunsTheMigrationTool: the earlier compose file built migrate from a stage without
// the migration tool. Here every service built from the Dockerfile runs a binary its target holds.
func TestComposeMigrateRunsTheMigrationTool(t *testing.T) {
	p := loadCompose(t, "nginx", "backup")
	d := parseDockerfile(t)
	m := service(t, p, "migrate")
	if m.Build == nil || m.Build.Target != "runtime" {
		t.Fatalf("migrate build %+v, want target runtime", m.Build)
	}
	if w := service(t, p, "worker"); m.Image != w.Image || w.Build == nil || w.Build.Target != "runtime" {
		t.Errorf("migrate image %s and worker image %s (target %+v) should be the one runtime image", m.Image, w.Image, w.Build)
	}
	if !slices.Equal([]string(m.Command), []string{"migrate"}) {
		t.Errorf("migrate command %v, want [migrate]", m.Command)
	}
	if m.Restart != types.RestartPolicyNo {
		t.Errorf("migrate restart %q, want no: it runs once and exits", m.Restart)
	}
	// Images by name: which target made them.
	targets := map[string]string{}
	for _, s := range p.Services {
		if s.Build != nil {
			if s.Build.Context != repoDirIn(p) {
				t.Errorf("%s: build context %s, want the repository (the Dockerfile's directory)", s.Name, s.Build.Context)
			}
			if prev, ok := targets[s.Image]; ok && prev != s.Build.Target {
				t.Errorf("image %s is built from targets %s and %s", s.Image, prev, s.Build.Target)
			}
			targets[s.Image] = s.Build.Target
		}
	}
	for _, s := range p.Services {
		target, ok := targets[s.Image]
		if !ok {
			continue // a public image
		}
		bins := d.binaries(t, target)
		if len(s.Command) > 0 && s.Command[0] != "sh" && !slices.Contains(bins, s.Command[0]) {
			t.Errorf("%s runs %q, which the %s target does not have (it has %v)", s.Name, s.Command[0], target, bins)
		}
		if hc := s.HealthCheck; hc != nil && !hc.Disable && len(hc.Test) > 1 && hc.Test[0] == "CMD" && !slices.Contains(bins, hc.Test[1]) {
			t.Errorf("%s health check runs %q, which the %s target does not have", s.Name, hc.Test[1], target)
		}
		if slices.Contains(oneShots, s.Name) && (s.HealthCheck == nil || !s.HealthCheck.Disable) {
			t.Errorf("%s runs once: disable the image's HEALTHCHECK (it would run `worker health`)", s.Name)
		}
	}
}

func TestComposeWorkerGPU(t *testing.T) {
	p := loadCompose(t)
	w := service(t, p, "worker")
	if w.Deploy == nil || w.Deploy.Resources.Reservations == nil {
		t.Fatal("worker has no deploy.resources.reservations")
	}
	gpu := false
	for _, dev := range w.Deploy.Resources.Reservations.Devices {
		if dev.Driver == "nvidia" && slices.Contains(dev.Capabilities, "gpu") && (dev.Count != 0 || len(dev.IDs) > 0) {
			gpu = true
		}
	}
	if !gpu {
		t.Errorf("worker reserves no NVIDIA GPU: %+v", w.Deploy.Resources.Reservations.Devices)
	}
	if got := env(w, "KOKORO_DEVICE"); got != "cuda" {
		t.Errorf("worker KOKORO_DEVICE=%q, want cuda", got)
	}
	if n, err := strconv.Atoi(env(w, "KOKORO_TTS_MAX_CONCURRENCY")); err != nil || n < 1 {
		t.Errorf("worker KOKORO_TTS_MAX_CONCURRENCY=%q", env(w, "KOKORO_TTS_MAX_CONCURRENCY"))
	}
	var models *types.ServiceVolumeConfig
	for i := range w.Volumes {
		if w.Volumes[i].Source == "models" {
			models = &w.Volumes[i]
		}
	}
	if models == nil || models.Type != types.VolumeTypeVolume || !models.ReadOnly {
		t.Fatalf("worker must mount the named volume models read-only: %+v", w.Volumes)
	}
	for _, v := range []string{"KOKORO_MODEL_PATH", "KOKORO_VOICES_PATH"} {
		if got := env(w, v); !strings.HasPrefix(got, models.Target+"/") {
			t.Errorf("worker %s=%q is not on the models volume (%s)", v, got, models.Target)
		}
	}
	// The environment points at what the runtime image has.
	rt := parseDockerfile(t).stage(t, "runtime")
	for _, v := range []string{"ONNXRUNTIME_LIB", "ESPEAK_NG_PATH", "FFMPEG_PATH"} {
		if got, img := env(w, v), envOf(rt, v); got != img {
			t.Errorf("worker %s=%q but the runtime image has %q", v, got, img)
		}
	}
	if env(w, "REDIS_EVICTION_CHECK") != "refuse" {
		t.Errorf("worker REDIS_EVICTION_CHECK=%q: production should refuse a Redis that evicts", env(w, "REDIS_EVICTION_CHECK"))
	}
}

func TestComposeRestartLimitsLogs(t *testing.T) {
	p := loadCompose(t, "nginx", "backup")
	for _, s := range p.Services {
		if s.Logging == nil || s.Logging.Driver != "json-file" || s.Logging.Options["max-size"] == "" || s.Logging.Options["max-file"] == "" {
			t.Errorf("%s: logging %+v, want json-file with max-size and max-file (rotation)", s.Name, s.Logging)
		}
		if slices.Contains(oneShots, s.Name) {
			if s.Restart != types.RestartPolicyNo {
				t.Errorf("%s runs once: restart %q, want no", s.Name, s.Restart)
			}
			continue
		}
		if s.Restart != types.RestartPolicyUnlessStopped && s.Restart != types.RestartPolicyAlways {
			t.Errorf("%s: restart %q, want unless-stopped", s.Name, s.Restart)
		}
		if s.Deploy == nil || s.Deploy.Resources.Limits == nil || s.Deploy.Resources.Limits.MemoryBytes <= 0 || s.Deploy.Resources.Limits.NanoCPUs.Value() <= 0 {
			t.Errorf("%s: no memory and CPU limits", s.Name)
		}
		if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0 {
			t.Errorf("%s: no health check", s.Name)
		}
	}
	// Shutdown grace periods outlast the binaries' own drain timeouts.
	example := parseExample(t)
	for svc, v := range map[string]string{"worker": "WORKER_SHUTDOWN_TIMEOUT", "api": "HTTP_SHUTDOWN_TIMEOUT"} {
		s := service(t, p, svc)
		drain, err := time.ParseDuration(example[v].value)
		if err != nil {
			t.Fatalf("%s=%q: %v", v, example[v].value, err)
		}
		if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= drain {
			t.Errorf("%s stop_grace_period %v must exceed %s=%s", svc, s.StopGracePeriod, v, drain)
		}
	}
}

func TestComposeVolumes(t *testing.T) {
	p := loadCompose(t, "nginx", "backup")
	example := parseExample(t)
	for _, name := range []string{"data", "models", "audio", "redis", "backups"} {
		v, ok := p.Volumes[name]
		if !ok {
			t.Errorf("no named volume %s", name)
			continue
		}
		want := example["DEPLOY_DIR"].value + "/" + name
		if v.DriverOpts["device"] != want || v.DriverOpts["o"] != "bind" {
			t.Errorf("volume %s: driver_opts %v, want a bind of %s", name, v.DriverOpts, want)
		}
	}
	for _, name := range []string{"api", "worker", "migrate", "backup-db"} {
		if !mountsVolume(service(t, p, name), "data", "/data") {
			t.Errorf("%s does not mount the data volume on /data", name)
		}
	}
	if !mountsVolume(service(t, p, "backup-db"), "backups", "/backups") || !mountsVolume(service(t, p, "backup-audio"), "backups", "/backups") {
		t.Errorf("the backup services must write to the backups volume")
	}
	// backup-db copies the database DATABASE_URL names.
	db := strings.TrimPrefix(example["DATABASE_URL"].value, "sqlite:")
	if script := strings.Join(service(t, p, "backup-db").Command, " "); !strings.Contains(script, "sqlite3 "+db+" \".backup") {
		t.Errorf("backup-db does not .backup %s:\n%s", db, script)
	}
}

// TestComposeExposure: nothing listens publicly but nginx, and the API port (loopback by default).
func TestComposeExposure(t *testing.T) {
	p := loadCompose(t, "nginx", "backup")
	for _, s := range p.Services {
		switch s.Name {
		case "api":
			if len(s.Ports) != 1 || s.Ports[0].Target != 8080 || s.Ports[0].HostIP != "127.0.0.1" {
				t.Errorf("api ports %+v, want 127.0.0.1:<port>:8080", s.Ports)
			}
		case "nginx":
			var targets []uint32
			for _, port := range s.Ports {
				targets = append(targets, port.Target)
			}
			if !slices.Equal(targets, []uint32{80, 443}) {
				t.Errorf("nginx ports %+v, want 80 and 443", s.Ports)
			}
		default:
			if len(s.Ports) > 0 {
				t.Errorf("%s publishes %+v: only nginx and the API may listen on the host", s.Name, s.Ports)
			}
		}
	}
	if n, ok := p.Networks["backend"]; !ok || !n.Internal {
		t.Errorf("the backend network must be internal: %+v", p.Networks["backend"])
	}
	for _, name := range []string{"redis", "minio", "worker", "migrate", "minio-init"} {
		s := service(t, p, name)
		if _, front := s.Networks["frontend"]; front || len(s.Networks) != 1 {
			t.Errorf("%s is on networks %v, want backend only", name, keys(s.Networks))
		}
	}
	// The app containers never see MinIO's root credentials.
	for _, name := range []string{"api", "worker", "migrate"} {
		if v := env(service(t, p, name), "MINIO_ROOT_PASSWORD"); v != "" {
			t.Errorf("%s gets MINIO_ROOT_PASSWORD", name)
		}
	}
	// nginx runs the repository's example (copied to nginx/nginx.conf) and the HTTP_ADDR the api uses.
	n := service(t, p, "nginx")
	conf := false
	for _, v := range n.Volumes {
		if v.Target == "/etc/nginx/nginx.conf" && filepath.Base(v.Source) == "nginx.conf" && filepath.Base(filepath.Dir(v.Source)) == "nginx" && v.ReadOnly {
			conf = true
		}
	}
	if !conf {
		t.Errorf("nginx must mount ./nginx/nginx.conf read-only on /etc/nginx/nginx.conf: %+v", n.Volumes)
	}
	// Its health check asks an endpoint the example serves (nginx_test.go requests it).
	if hc := strings.Join(n.HealthCheck.Test, " "); !strings.Contains(hc, "http://127.0.0.1/nginx-health") ||
		!strings.Contains(readRepoFile(t, "nginx/nginx.conf.example"), "location = /nginx-health {") {
		t.Errorf("nginx health check %q must request /nginx-health, which nginx.conf.example must serve", hc)
	}
	if d, ok := n.DependsOn["api"]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Errorf("nginx must wait for a healthy api")
	}
	if got := env(service(t, p, "api"), "HTTP_ADDR"); got != ":8080" || !strings.Contains(readRepoFile(t, "nginx/nginx.conf.example"), "server api:8080;") {
		t.Errorf("api HTTP_ADDR=%q and nginx's upstream must both be port 8080", got)
	}
}

// repoDirIn is the directory compose resolved the build context "." against.
func repoDirIn(p *types.Project) string { return p.WorkingDir }

func mountsVolume(s types.ServiceConfig, volume, target string) bool {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Source == volume && v.Target == target {
			return true
		}
	}
	return false
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return sorted(out)
}
