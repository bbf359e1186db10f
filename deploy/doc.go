// Package deploy holds the tests of the deployment files at the repository root: Dockerfile,
// .dockerignore, docker-compose.gpu.yml, .env.production.example and nginx/nginx.conf.example.
//
// No Docker engine runs where the tests run, so they parse the files with the parsers Docker itself
// uses (BuildKit's Dockerfile parser, compose-go) and check the promises DEPLOYMENT.md makes: the
// stages and their contents, the CUDA 12 base, the services and the order they start in, that every
// variable the binaries read is documented; they build the binaries with the Dockerfile's flags and
// run them; they run nginx on the example configuration in front of a real API; and they check that
// the Grafana dashboard (deploy/grafana/kokoro-tts.json) queries only metrics the binaries export.
//
// The package has no code of its own.
package deploy
