#!/usr/bin/env bash
# run.sh: start the whole service on embedded defaults (what `make run`
# runs): API, in-memory queue, worker, SQLite and audio under DATA_DIR
# (./data), serving on HTTP_ADDR (:8080). It installs ffmpeg and espeak-ng if
# missing and tries to fetch the Kokoro model (failing soft). With the model
# present it runs Kokoro (in a cmd/worker child process, on ONNX Runtime from
# scripts/ensure-onnxruntime.sh); without it, espeak-ng, and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=auto # go.mod's toolchain line, fetched from the module proxy once
scripts/install-deps.sh
export DATA_DIR="${DATA_DIR:-./data}"
scripts/fetch-model.sh --soft || true
models="$DATA_DIR/models"
if [[ -z "${KOKORO_MODEL_PATH:-}" && -f "$models/kokoro-v1.0.onnx" && -f "$models/voices-v1.0.bin" ]]; then
	export KOKORO_MODEL_PATH="$models/kokoro-v1.0.onnx" KOKORO_VOICES_PATH="$models/voices-v1.0.bin"
fi
if [[ -n "${KOKORO_MODEL_PATH:-}" && -z "${ONNXRUNTIME_LIB:-}" ]]; then
	if lib=$(scripts/ensure-onnxruntime.sh | tail -n1) && [[ -n "$lib" ]]; then
		export ONNXRUNTIME_LIB="$lib"
	else
		echo "run: ONNX Runtime could not be provisioned; running espeak-ng instead of Kokoro" >&2
		unset KOKORO_MODEL_PATH KOKORO_VOICES_PATH
	fi
fi
mkdir -p bin
go build -o bin/ ./cmd/api ./cmd/worker ./cmd/migrate
exec bin/api
