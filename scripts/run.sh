#!/usr/bin/env bash
# The README's run command: set up, build, and run Argon's main job on an embedded
# default.  Today that is argon-pageserver on local storage, shown healthy through
# the management API (argonctl) and the PostgreSQL protocol (psql); later issues
# grow it into the full demo (a PostgreSQL primary streaming into Argon, branches).
#
#   scripts/run.sh          run until Ctrl-C
#   scripts/run.sh --once   show it healthy, then stop it (exit 0 if all went well)
#
# Environment: ARGON_DEMO_DIR (default /tmp/argon-demo), ARGON_PG_LISTEN
# (127.0.0.1:6400), ARGON_HTTP_LISTEN (127.0.0.1:9898), ARGON_BUILD_DIR (build),
# ARGON_SKIP_SETUP=1 to use an existing build as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
once=false
[[ "${1:-}" == "--once" ]] && once=true
build=${ARGON_BUILD_DIR:-build}
demo=${ARGON_DEMO_DIR:-/tmp/argon-demo}

if [[ "${ARGON_SKIP_SETUP:-0}" != 1 ]]; then
	./scripts/bootstrap.sh
	# PostgreSQL's build (cached): argon-walredo and the page checksum need it.
	./scripts/pg-build.sh >/dev/null
	[[ -f "$build/build.ninja" ]] || meson setup "$build" >/dev/null
	ninja -C "$build" >/dev/null
fi

mkdir -p "$demo"
log="$demo/pageserver.log"
: >"$log"
"$build/server/argon-pageserver" -D "$demo/data" \
	-c "pg_listen_address=${ARGON_PG_LISTEN:-127.0.0.1:6400}" \
	-c "http_listen_address=${ARGON_HTTP_LISTEN:-127.0.0.1:9898}" 2>>"$log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT

for _ in $(seq 1 200); do
	grep -q "ready to accept connections" "$log" && break
	kill -0 $pid 2>/dev/null || { cat "$log"; echo "run.sh: argon-pageserver did not start"; exit 1; }
	sleep 0.05
done
grep -q "ready to accept connections" "$log" || { cat "$log"; exit 1; }
cat "$log"
pg_port=$(sed -n 's/.*PostgreSQL connections on [^ ]*:\([0-9]*\)$/\1/p' "$log")
http=$(sed -n 's|.*management API listening on \(http://[^ ]*\)$|\1|p' "$log")

echo
echo "\$ argonctl --api $http status"
"$build/tools/argonctl" --api "$http" status
echo
echo "\$ psql -h 127.0.0.1 -p $pg_port -U argon -c 'status'"
psql -X -h 127.0.0.1 -p "$pg_port" -U argon -c 'status'

if $once; then
	kill -TERM $pid
	wait $pid
	rc=$?
	trap - EXIT
	tail -2 "$log"
	exit $rc
fi
echo "argon-pageserver is running (pid $pid, data in $demo/data, log in $log); Ctrl-C stops it."
trap 'kill -TERM $pid 2>/dev/null; wait $pid; tail -2 "$log"; exit 0' INT TERM
wait $pid
