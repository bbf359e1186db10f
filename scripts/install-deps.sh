#!/usr/bin/env bash
# install-deps.sh: make sure the system tools the service (and, with --test,
# the test suite) needs are present. As root on Debian/Ubuntu it installs
# missing packages with apt-get; otherwise it names what to install and fails.
#
#   scripts/install-deps.sh          # run:  ffmpeg, espeak-ng
#   scripts/install-deps.sh --test   # test: + redis-server, nginx, npm (ONNX Runtime and voices from npm), chromium (browser tests)
set -euo pipefail

want=(ffmpeg:ffmpeg ffprobe:ffmpeg espeak-ng:espeak-ng)
if [[ "${1:-}" == "--test" ]]; then
	want+=(redis-server:redis-server redis-cli:redis-tools nginx:nginx npm:npm openssl:openssl chromium:chromium)
fi

missing=()
for pair in "${want[@]}"; do
	cmd=${pair%%:*} pkg=${pair#*:}
	if ! command -v "$cmd" >/dev/null 2>&1 && [[ ! -x /usr/sbin/$cmd ]]; then
		[[ " ${missing[*]:-} " == *" $pkg "* ]] || missing+=("$pkg")
	fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: installing ${missing[*]} with apt-get" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
	exit 0
fi
echo "install-deps: missing system packages: ${missing[*]}" >&2
echo "install-deps: install them with: sudo apt-get install ${missing[*]}" >&2
exit 1
