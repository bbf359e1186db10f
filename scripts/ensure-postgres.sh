#!/usr/bin/env bash
# ensure-postgres.sh: make sure a PostgreSQL server answers for the tests of
# the PostgreSQL job store, and print a connection URL to a database of its
# own (kokoro_tts_test) on the LAST line of stdout. Progress goes to stderr.
# The tests make a schema per test in it and drop it afterwards.
#
# Where: $KOKORO_TEST_POSTGRES if set (used as is). Otherwise a local server:
# 127.0.0.1:5432 as user postgres without a password (trust), or the Unix
# socket as the current user (peer). As root on Debian/Ubuntu it starts a
# stopped cluster (pg_ctlcluster), installs the postgresql package when
# there is none, and gives root a role of its own; otherwise it names what to
# do and fails.
#
# Usage: export KOKORO_TEST_POSTGRES=$(scripts/ensure-postgres.sh | tail -n1)
set -euo pipefail

log() { echo "ensure-postgres: $*" >&2; }
if [[ -n "${KOKORO_TEST_POSTGRES:-}" ]]; then
	log "using \$KOKORO_TEST_POSTGRES"
	echo "$KOKORO_TEST_POSTGRES"
	exit 0
fi

DB=kokoro_tts_test
SOCKET_DIR=/var/run/postgresql
tcp_ok() { psql -X -q -h 127.0.0.1 -U postgres -d postgres -w -c 'SELECT 1' >/dev/null 2>&1; }
socket_ok() { psql -X -q -h "$SOCKET_DIR" -d postgres -w -c 'SELECT 1' >/dev/null 2>&1; }

if ! command -v psql >/dev/null 2>&1 || ! command -v pg_lsclusters >/dev/null 2>&1; then
	if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
		log "installing postgresql with apt-get"
		apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >&2
	else
		log "PostgreSQL is missing: install it with: sudo apt-get install postgresql (or set KOKORO_TEST_POSTGRES=postgres://...)"
		exit 1
	fi
fi

if ! tcp_ok && ! socket_ok && [[ $(id -u) -eq 0 ]]; then
	# A cluster that is installed but stopped (no systemd in containers).
	while read -r ver name _port status _rest; do
		if [[ "$status" != online* ]]; then
			log "starting the PostgreSQL $ver/$name cluster"
			pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >&2 || true
		fi
	done < <(pg_lsclusters --no-header 2>/dev/null)
	for _ in $(seq 1 30); do
		tcp_ok || socket_ok || pg_isready -q -h "$SOCKET_DIR" && break
		sleep 1
	done
	if ! tcp_ok && ! socket_ok; then
		# Stock Debian: peer authentication on the socket, and no role for root.
		log "creating a PostgreSQL role for $(id -un)"
		runuser -u postgres -- createuser --superuser "$(id -un)" >&2 || true
	fi
fi

if tcp_ok; then
	admin=(-h 127.0.0.1 -U postgres)
	url="postgres://postgres@127.0.0.1:5432/$DB?sslmode=disable"
elif socket_ok; then
	admin=(-h "$SOCKET_DIR")
	url="postgres://$(id -un)@/$DB?host=$SOCKET_DIR"
else
	log "no PostgreSQL server answers on 127.0.0.1:5432 (user postgres, no password) or on $SOCKET_DIR (user $(id -un)):"
	log "start one (sudo pg_ctlcluster <version> main start), or set KOKORO_TEST_POSTGRES=postgres://USER:PASSWORD@HOST:PORT/DB"
	exit 1
fi
if [[ -z "$(psql -X -qtA "${admin[@]}" -d postgres -w -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" ]]; then
	log "creating the database $DB"
	psql -X -q "${admin[@]}" -d postgres -w -c "CREATE DATABASE $DB" >&2
fi
log "using $url"
echo "$url"
