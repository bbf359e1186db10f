#!/usr/bin/env bash
# test.sh: the full test suite (what `make test` and .ci/run run). It
# installs or fetches what the tests need, starts nothing globally (each test
# starts its own Redis and MinIO on free loopback ports), then runs vet, the
# format check, the dependency rule for cmd/api, every test with the race
# detector, and each fuzz target for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:-}"

scripts/install-deps.sh --test
export MINIO_BIN="${MINIO_BIN:-$(scripts/ensure-minio.sh | tail -n1)}"
export ONNXRUNTIME_LIB="${ONNXRUNTIME_LIB:-$(scripts/ensure-onnxruntime.sh | tail -n1)}"
export KOKORO_TEST_VOICES="${KOKORO_TEST_VOICES:-$(scripts/kokoro-fixtures/ensure-voices.sh | tail -n1)}"
echo "test: minio=$MINIO_BIN onnxruntime=$ONNXRUNTIME_LIB voices=$KOKORO_TEST_VOICES"

echo "== go vet"
go vet ./...
echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [[ -n "$unformatted" ]]; then
	echo "gofmt would change: $unformatted"
	exit 1
fi
echo "== cmd/api must not link ONNX Runtime"
if go list -deps ./cmd/api | grep -q onnxruntime_go; then
	echo "cmd/api depends on onnxruntime_go: keep the Kokoro engine in cmd/worker"
	exit 1
fi

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

echo "== fuzz (${FUZZTIME:=10s} each)"
for target in $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do
	for fn in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$target"/*_test.go | sed 's/^func //'); do
		echo "-- $target $fn"
		go test -run '^$' -fuzz "^$fn\$" -fuzztime "$FUZZTIME" "$target"
	done
done
echo "test: all passed"
