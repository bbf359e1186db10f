#!/usr/bin/env bash
# ensure-onnxruntime.sh: find or provision the ONNX Runtime shared library
# (libonnxruntime.so) that pkg/kokoro loads through onnxruntime_go, and print
# its absolute path on the LAST line of stdout. Progress goes to stderr.
#
# Order tried:
#   1. $ONNXRUNTIME_LIB, if it names an existing file;
#   2. the cache ($HOME/.cache/kokoro-tts/onnxruntime/libonnxruntime.so*);
#   3. system locations: /usr/lib, /usr/local/lib (and their multiarch dirs),
#      then `ldconfig -p`;
#   4. the official GitHub release tarball (CPU build, linux-x64), with a short
#      timeout: it fails soft where GitHub is unreachable;
#   5. the npm package onnxruntime-node@$ORT_NPM_VERSION (a reused cached .tgz
#      under $HOME/.cache/kokoro-tts/npm/ or `npm pack`), from which
#      bin/napi-v6/linux/x64/libonnxruntime.so.1 is extracted.
#
# Usage: scripts/ensure-onnxruntime.sh            # prints the path
#        export ONNXRUNTIME_LIB=$(scripts/ensure-onnxruntime.sh | tail -n1)
#
# onnxruntime_go v1.27.0 needs a library that implements ORT C API version 24
# or later (ONNX Runtime >= 1.24). Both sources above are newer.
set -euo pipefail

ORT_VERSION="${ORT_VERSION:-1.24.1}"          # GitHub release tried in step 4
ORT_NPM_VERSION="${ORT_NPM_VERSION:-1.30.0}"  # npm package used in step 5
CACHE_ROOT="${KOKORO_CACHE:-$HOME/.cache/kokoro-tts}"
DEST="$CACHE_ROOT/onnxruntime"
NPM_CACHE="$CACHE_ROOT/npm"

log() { echo "ensure-onnxruntime: $*" >&2; }
found() { log "using $1"; echo "$1"; exit 0; }

# 1. explicit path
if [[ -n "${ONNXRUNTIME_LIB:-}" ]]; then
	if [[ -f "$ONNXRUNTIME_LIB" ]]; then
		found "$(readlink -f "$ONNXRUNTIME_LIB")"
	fi
	log "ONNXRUNTIME_LIB=$ONNXRUNTIME_LIB does not exist; searching elsewhere"
fi

# 2. cache from an earlier run
for f in "$DEST/libonnxruntime.so" "$DEST"/libonnxruntime.so.*; do
	[[ -f "$f" ]] && found "$f"
done

# 3. system locations
arch_dir="$(uname -m)-linux-gnu"
for d in /usr/local/lib /usr/lib "/usr/lib/$arch_dir" "/usr/local/lib/$arch_dir"; do
	for f in "$d/libonnxruntime.so" "$d"/libonnxruntime.so.*; do
		[[ -f "$f" ]] && found "$f"
	done
done
if command -v ldconfig >/dev/null 2>&1; then
	f="$(ldconfig -p 2>/dev/null | awk '/libonnxruntime\.so/ {print $NF; exit}')"
	[[ -n "$f" && -f "$f" ]] && found "$f"
fi

if [[ "$(uname -s)" != Linux || "$(uname -m)" != x86_64 ]]; then
	log "no libonnxruntime found and automatic download only covers linux x86_64; set ONNXRUNTIME_LIB"
	exit 1
fi

mkdir -p "$DEST" "$NPM_CACHE"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# 4. official release (fails soft and fast when GitHub cannot be reached)
url="https://github.com/microsoft/onnxruntime/releases/download/v$ORT_VERSION/onnxruntime-linux-x64-$ORT_VERSION.tgz"
log "trying $url"
if curl -fsSL --connect-timeout 5 --max-time 120 -o "$tmp/ort.tgz" "$url" 2>/dev/null; then
	if tar -xzf "$tmp/ort.tgz" -C "$tmp" 2>/dev/null; then
		lib="$(find "$tmp" -name 'libonnxruntime.so.*' -type f | head -n1)"
		if [[ -n "$lib" ]]; then
			cp "$lib" "$DEST/libonnxruntime.so.$ORT_VERSION"
			ln -sf "libonnxruntime.so.$ORT_VERSION" "$DEST/libonnxruntime.so"
			found "$DEST/libonnxruntime.so"
		fi
	fi
	log "the release tarball did not contain libonnxruntime.so.*"
else
	log "GitHub release not reachable; falling back to npm"
fi

# 5. npm package onnxruntime-node (ships the CPU library for linux x64)
tgz="$NPM_CACHE/onnxruntime-node-$ORT_NPM_VERSION.tgz"
if [[ ! -f "$tgz" ]]; then
	if ! command -v npm >/dev/null 2>&1; then
		log "npm is not installed (apt-get install npm) and no cached $tgz"
		exit 1
	fi
	log "npm pack onnxruntime-node@$ORT_NPM_VERSION"
	(cd "$NPM_CACHE" && npm pack --silent "onnxruntime-node@$ORT_NPM_VERSION" >&2)
fi
member="package/bin/napi-v6/linux/x64/libonnxruntime.so.1"
tar -xzf "$tgz" -C "$tmp" "$member"
cp "$tmp/$member" "$DEST/libonnxruntime.so.$ORT_NPM_VERSION"
ln -sf "libonnxruntime.so.$ORT_NPM_VERSION" "$DEST/libonnxruntime.so"
found "$DEST/libonnxruntime.so"
