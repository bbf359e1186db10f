#!/usr/bin/env bash
# ensure-voices.sh: provide the 54 Kokoro v1.0 voice packs (raw float32
# [510,1,256] .bin files, 522,240 bytes each) that pkg/kokoro's tests load,
# and print their folder on the LAST line of stdout. Progress goes to stderr.
#
# The packs come from the npm package kokoro-js@1.2.1 (voices/*.bin): a cached
# $HOME/.cache/kokoro-tts/npm/kokoro-js-1.2.1.tgz is reused, otherwise
# `npm pack` fetches it. They are not committed (about 28 MB).
#
# Usage: export KOKORO_TEST_VOICES=$(scripts/kokoro-fixtures/ensure-voices.sh | tail -n1)
set -euo pipefail

VERSION="${KOKORO_JS_VERSION:-1.2.1}"
CACHE_ROOT="${KOKORO_CACHE:-$HOME/.cache/kokoro-tts}"
DEST="$CACHE_ROOT/voices/kokoro-js-$VERSION"
TGZ="$CACHE_ROOT/npm/kokoro-js-$VERSION.tgz"

log() { echo "ensure-voices: $*" >&2; }

count() { find "$DEST" -maxdepth 1 -name '*.bin' -size 522240c 2>/dev/null | wc -l; }

if [[ -d "$DEST" && "$(count)" -ge 54 ]]; then
	log "using $DEST"
	echo "$DEST"
	exit 0
fi
mkdir -p "$CACHE_ROOT/npm"
if [[ ! -f "$TGZ" ]]; then
	command -v npm >/dev/null 2>&1 || { log "npm is not installed (apt-get install npm)"; exit 1; }
	log "npm pack kokoro-js@$VERSION"
	(cd "$CACHE_ROOT/npm" && npm pack --silent "kokoro-js@$VERSION" >&2)
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$TGZ" -C "$tmp" --wildcards 'package/voices/*.bin'
mkdir -p "$DEST"
cp "$tmp"/package/voices/*.bin "$DEST"/
n="$(count)"
if [[ "$n" -lt 54 ]]; then
	log "expected 54 voice packs of 522240 bytes in $DEST, found $n"
	exit 1
fi
log "extracted $n voice packs into $DEST"
echo "$DEST"
