#!/usr/bin/env bash
# ensure-minio.sh: make sure the MinIO server binary that the S3 storage tests
# start (internal/testsvc) exists, and print its absolute path on the LAST
# line of stdout. Progress goes to stderr. Idempotent: an existing binary is
# used as is.
#
# Where: $MINIO_BIN if set, else $HOME/.cache/kokoro-tts/minio/bin/minio
# (internal/testsvc looks in the same places, then on $PATH).
#
# How: `go install` of a pinned MinIO commit (there is no apt package, and
# building from source keeps it reproducible and offline-cacheable). This
# takes about 10 minutes on 2 cores. If another `go install` of MinIO is
# already running (e.g. started by provisioning), wait for it instead of
# building twice.
#
# Usage: scripts/ensure-minio.sh
#        export MINIO_BIN=$(scripts/ensure-minio.sh | tail -n1)
set -euo pipefail

MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
MINIO_BIN="${MINIO_BIN:-$HOME/.cache/kokoro-tts/minio/bin/minio}"

log() { echo "ensure-minio: $*" >&2; }
found() { log "using $1"; echo "$1"; exit 0; }

[[ -x "$MINIO_BIN" ]] && found "$MINIO_BIN"

if pgrep -f "go install github.com/minio/minio" >/dev/null 2>&1; then
	log "a MinIO build is already running; waiting for it to finish"
	while pgrep -f "go install github.com/minio/minio" >/dev/null 2>&1; do
		sleep 10
	done
	[[ -x "$MINIO_BIN" ]] && found "$MINIO_BIN"
	log "that build did not produce $MINIO_BIN; building it here"
fi

if ! command -v go >/dev/null 2>&1; then
	log "go is not on PATH; install Go 1.26+ (or set MINIO_BIN to an existing minio binary)"
	exit 1
fi

bin_dir="$(dirname "$MINIO_BIN")"
mkdir -p "$bin_dir"
# Build into a private directory and rename into place, so an interrupted
# build never leaves a half-written binary at $MINIO_BIN.
tmp="$(mktemp -d "$bin_dir/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
log "building github.com/minio/minio@$MINIO_VERSION (about 10 minutes on 2 cores)"
GOBIN="$tmp" go install "github.com/minio/minio@$MINIO_VERSION"
mv "$tmp/minio" "$MINIO_BIN"
found "$MINIO_BIN"
