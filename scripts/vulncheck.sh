#!/usr/bin/env bash
# vulncheck.sh: run govulncheck on the whole module (./...) against an
# offline copy of the Go vulnerability database, and exit with its verdict:
# 0 when the code calls no known vulnerability, 3 when it calls one (the
# list is printed), 1 when the check itself could not run.
#
# vuln.go.dev is not reachable from CI, so the database is built from the
# golang.org/x/vulndb module, which the Go module proxy serves: its
# data/osv/*.json are the entries vuln.go.dev serves. scripts/vulndb (a
# separate Go module, so the repo's go.mod gains nothing) turns them into the
# layout `govulncheck -db file:///...` reads. The database is a snapshot:
# its date is printed on every run. Refresh it by bumping VULNDB_VERSION to
# the newest pseudo-version (`go list -m golang.org/x/vulndb@latest`, run
# outside this module), or try the newest once with VULNDB_VERSION=latest.
#
# Cached under $KOKORO_CACHE (default $HOME/.cache/kokoro-tts):
#   bin/govulncheck                   golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION
#   vulndb/<vulndb version>/          the database, built once per version
#
# The standard library is checked at the version of the `go` command that
# runs here (`go env GOVERSION` in the repo root, so a toolchain line in
# go.mod counts).
#
# Allowlist: if $VULNCHECK_ALLOW_FILE (default scripts/vulncheck.allow)
# exists, each line names a vulnerability ID and the reason it is accepted
# ("GO-2026-6875 no fixed v4 release; ..."; '#' starts a comment). Then the
# check fails only for called vulnerabilities not in that list, and prints
# one summary line per called vulnerability instead of govulncheck's traces.
#
# Usage: scripts/vulncheck.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# Check the standard library of go.mod's toolchain (what the binaries are built with), even where
# the environment says GOTOOLCHAIN=local.
export GOTOOLCHAIN=auto

GOVULNCHECK_VERSION="${GOVULNCHECK_VERSION:-v1.9.0}"
VULNDB_VERSION="${VULNDB_VERSION:-v0.0.0-20261105234957-e22db6528018}"
CACHE_ROOT="${KOKORO_CACHE:-$HOME/.cache/kokoro-tts}"
ALLOW_FILE="${VULNCHECK_ALLOW_FILE:-scripts/vulncheck.allow}"

log() { echo "vulncheck: $*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}

command -v go >/dev/null 2>&1 || die "go is not on PATH; install Go $(sed -n 's/^go //p' go.mod)+"
mkdir -p "$CACHE_ROOT/bin" "$CACHE_ROOT/vulndb"
tmp="$(mktemp -d "$CACHE_ROOT/.vulncheck.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# Module queries below run outside this module, so they never touch its
# go.mod or go.sum.
outside() { (cd "$tmp" && "$@"); }

# 1. govulncheck, pinned.
GOVULNCHECK="$CACHE_ROOT/bin/govulncheck"
installed=""
[[ -x "$GOVULNCHECK" ]] && installed="$("$GOVULNCHECK" -version 2>/dev/null || true)"
if [[ "$installed" != *"Scanner: govulncheck@$GOVULNCHECK_VERSION"* ]]; then
	log "installing golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION into $CACHE_ROOT/bin"
	outside env GOBIN="$tmp/bin" go install "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION" ||
		die "could not install govulncheck@$GOVULNCHECK_VERSION (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))"
	mv -f "$tmp/bin/govulncheck" "$GOVULNCHECK"
fi

# scripts/vulndb builds the database and reads the scan against the allowlist.
go build -C scripts/vulndb -o "$tmp/vulndb" . || die "could not build scripts/vulndb"
VULNDB="$tmp/vulndb"

# 2. The database.
if [[ "$VULNDB_VERSION" == latest ]]; then
	VULNDB_VERSION="$(outside go list -m -f '{{.Version}}' golang.org/x/vulndb@latest)" ||
		die "could not resolve golang.org/x/vulndb@latest through the module proxy"
	log "golang.org/x/vulndb@latest is $VULNDB_VERSION"
fi
DB="$CACHE_ROOT/vulndb/$VULNDB_VERSION"
if [[ ! -f "$DB/index/db.json" ]]; then
	log "building the vulnerability database from golang.org/x/vulndb@$VULNDB_VERSION into $DB"
	outside go mod download "golang.org/x/vulndb@$VULNDB_VERSION" ||
		die "could not download golang.org/x/vulndb@$VULNDB_VERSION through the module proxy (GOPROXY=$(go env GOPROXY))"
	IFS='|' read -r src snapshot < <(outside go list -m -f '{{.Dir}}|{{.Time.UTC.Format "2006-01-02T15:04:05Z07:00"}}' "golang.org/x/vulndb@$VULNDB_VERSION")
	[[ -d "${src:-}/data/osv" ]] || die "golang.org/x/vulndb@$VULNDB_VERSION has no data/osv directory (in ${src:-the module cache}); this script expects one"
	"$VULNDB" build -src "$src/data/osv" -out "$tmp/db" -modified "$snapshot" >&2 ||
		die "could not build the database (scripts/vulndb build)"
	# Rename into place, so an interrupted build never leaves a partial
	# database; if a concurrent run got there first, keep its copy.
	mv -T "$tmp/db" "$DB" 2>/dev/null || [[ -f "$DB/index/db.json" ]] || die "could not move the database to $DB"
fi
db_date="$(sed -n 's/.*"modified":"\([^"]*\)".*/\1/p' "$DB/index/db.json")"
entries="$(find "$DB/ID" -name '*.json' | wc -l)"

echo "vulncheck: govulncheck $GOVULNCHECK_VERSION; Go standard library $(go env GOVERSION)"
echo "vulncheck: vulnerability DB golang.org/x/vulndb@$VULNDB_VERSION, snapshot of $db_date ($entries entries; newer advisories are not checked)"

# 3. The scan.
if [[ ! -f "$ALLOW_FILE" ]]; then
	status=0
	"$GOVULNCHECK" -db "file://$DB" ./... || status=$?
	case "$status" in
	0) echo "vulncheck: passed: the code calls no vulnerability known to the $db_date snapshot" ;;
	3) echo "vulncheck: FAILED: the code calls the vulnerabilities above (upgrade to the 'Fixed in' versions)" ;;
	*) echo "vulncheck: FAILED: govulncheck could not run (exit status $status)" ;;
	esac
	exit "$status"
fi

allow="$(readlink -f "$ALLOW_FILE")"
echo "vulncheck: allowlist $allow"
"$GOVULNCHECK" -db "file://$DB" -format json ./... >"$tmp/scan.json" ||
	die "govulncheck could not run (exit status $?); its output is above"
status=0
"$VULNDB" check -allow "$allow" <"$tmp/scan.json" || status=$?
case "$status" in
0) echo "vulncheck: passed: every called vulnerability known to the $db_date snapshot is allowlisted" ;;
3) echo "vulncheck: FAILED: the code calls the vulnerabilities marked NOT ALLOWED (details: $GOVULNCHECK -db file://$DB ./...)" ;;
*) die "scripts/vulndb check failed (exit status $status; its error is above: a bad allowlist line, or unreadable govulncheck output)" ;;
esac
exit "$status"
