#!/usr/bin/env bash
# test.sh: the full test suite (what `make test` and .ci/run run). It
# installs or fetches what the tests need, starts nothing globally but the
# local PostgreSQL server when it is stopped (each test starts its own Redis
# and MinIO on free loopback ports, and uses a schema of its own on
# PostgreSQL), then runs vet, the
# format check, the dependency rule for cmd/api, every test with the race
# detector, and each fuzz target for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:-}"
# Build and test with go.mod's toolchain (fetched from the module proxy once), even where the
# environment says GOTOOLCHAIN=local.
export GOTOOLCHAIN=auto

scripts/install-deps.sh --test
export MINIO_BIN="${MINIO_BIN:-$(scripts/ensure-minio.sh | tail -n1)}"
export ONNXRUNTIME_LIB="${ONNXRUNTIME_LIB:-$(scripts/ensure-onnxruntime.sh | tail -n1)}"
export KOKORO_TEST_VOICES="${KOKORO_TEST_VOICES:-$(scripts/kokoro-fixtures/ensure-voices.sh | tail -n1)}"
export KOKORO_TEST_POSTGRES="${KOKORO_TEST_POSTGRES:-$(scripts/ensure-postgres.sh | tail -n1)}"
echo "test: minio=$MINIO_BIN onnxruntime=$ONNXRUNTIME_LIB voices=$KOKORO_TEST_VOICES postgres=$(sed 's#//[^/@]*@#//#; s#?.*##' <<<"$KOKORO_TEST_POSTGRES")"

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

echo "== govulncheck (offline: a snapshot of the Go vulnerability database from the module proxy)"
scripts/vulncheck.sh
go test -C scripts/vulndb -count=1 ./...

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

echo "== the job store's, the services' and the API's tests again, on PostgreSQL"
KOKORO_TEST_DATABASE=postgres go test -race -count=1 ./pkg/sqlstore ./pkg/jobs ./pkg/auth ./pkg/worker ./pkg/httpapi

echo "== the slow fault scenarios (worker SIGKILLed mid-synthesis, mid-upload and after its upload: asynq recovers its lease in 60-120 s; database locked past every retry; Redis down past the task lease)"
FAULTS_SLOW=1 go test -count=1 -timeout 15m -run 'TestWorkerKilledMidSynthesis|TestWorkerKilledMidUpload|TestWorkerKilledAfterUpload|TestDatabaseLockedPastRetries|TestRedisDownPastLease' ./internal/faults

echo "== fuzz (${FUZZTIME:=10s} each)"
for target in $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do
	for fn in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$target"/*_test.go | sed 's/^func //'); do
		echo "-- $target $fn"
		# A loaded machine sometimes makes the fuzzing engine itself time out
		# ("context deadline exceeded" with no failing input): that is not a
		# finding, so such a run is repeated (up to five tries).
		for try in 1 2 3 4 5; do
			if out=$(go test -run '^$' -fuzz "^$fn\$" -fuzztime "$FUZZTIME" -parallel 1 "$target" 2>&1); then
				echo "$out" | tail -n 2
				break
			fi
			echo "$out"
			if grep -q "Failing input\|panic:" <<<"$out" || ! grep -q "context deadline exceeded" <<<"$out" || [[ $try == 5 ]]; then
				exit 1
			fi
			echo "(fuzzing engine timeout, not a finding: try $((try + 1)))"
		done
	done
done
echo "test: all passed"
