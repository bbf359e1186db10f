#!/usr/bin/env bash
# run.sh: start the whole service on embedded defaults (what `make run`
# runs): API, in-memory queue, in-process worker, SQLite and audio under
# DATA_DIR (./data). It installs ffmpeg and espeak-ng if missing, tries to
# fetch the Kokoro model (failing soft), and serves on HTTP_ADDR (:8080).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/fetch-model.sh --soft || true
exec go run ./cmd/api
