# The README's commands. `make help` lists them.
.DEFAULT_GOAL := help
BIN ?= bin
# go.mod's toolchain line (a Go patch release with security fixes) decides the Go version; the go command
# fetches it from the module proxy once. Machines that set GOTOOLCHAIN=local would otherwise ignore it.
export GOTOOLCHAIN := auto

.PHONY: help run test test-short test-faults vuln bench bench-gpu lint build model fixtures clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

run: ## start the whole service on embedded defaults (http://localhost:8080)
	scripts/run.sh

test: ## the full test suite: installs what it needs, vet, gofmt, go test -race, fuzzing
	scripts/test.sh

test-short: ## go test without the race detector or fuzzing (quick local loop)
	go test -count=1 ./...

test-faults: ## the fault scenarios with real processes, including the slow ones (RELIABILITY.md)
	FAULTS_SLOW=1 go test -count=1 -v ./internal/faults

vuln: ## govulncheck against an offline snapshot of the Go vulnerability database (part of make test)
	scripts/vulncheck.sh

bench: ## the pipeline and component benchmarks recorded in BENCHMARKS.md
	go test -run '^$$' -bench . -benchtime 3s ./internal/pipelinebench
	go test -run '^$$' -bench . -benchtime 20x ./pkg/audio ./pkg/espeak ./storage/disk
	go test -run '^$$' -bench . -benchtime 2s ./pkg/sqlstore ./pkg/phonemize ./pkg/auth
	KOKORO_TEST_DATABASE=postgres KOKORO_TEST_POSTGRES=$$(scripts/ensure-postgres.sh | tail -n1) go test -run '^$$' -bench . -benchtime 2s ./pkg/sqlstore
	go test -run '^$$' -bench 'RawRun|RunChunk|SynthesizeOverhead' -benchtime 2s ./pkg/kokoro
	go test -run '^$$' -bench 'StandinThroughput|MemoryLoaded' -benchtime 2x ./pkg/kokoro

bench-gpu: ## on a GPU host with the real model: RTF, first-chunk latency, throughput at 1/2/4/8 jobs
	go run ./cmd/kokoro-bench -model $${DATA_DIR:-data}/models/kokoro-v1.0.onnx -voices $${DATA_DIR:-data}/models/voices-v1.0.bin -device cuda -jobs 1,2,4,8

lint: ## go vet and gofmt
	go vet ./...
	@test -z "$$(gofmt -l .)" || (gofmt -l .; exit 1)

build: ## build the binaries into ./bin with the Dockerfile's flags
	CGO_ENABLED=1 go build -trimpath -ldflags='-s -w' -o $(BIN)/ ./cmd/...

model: ## download the Kokoro model and voices into $$DATA_DIR/models (verifies checksums)
	scripts/fetch-model.sh

fixtures: ## regenerate the tiny Kokoro-signature ONNX test models (needs python3-onnx)
	/usr/bin/python3 scripts/kokoro-fixtures/make_fixtures.py

clean: ## remove build output
	rm -rf $(BIN)
