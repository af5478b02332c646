#!/usr/bin/env bash
# The README's run command: set up, build, and run Argon's main job on an embedded
# default — a local PostgreSQL 15 primary with Argon as its synchronous standby:
#   1. a primary (initdb, wal_level = replica)
#   2. its base backup imported into Argon (argonctl -D ... import base)
#   3. argon-pageserver started and attached to the primary (argonctl attach),
#      then named in synchronous_standby_names: every commit now returns only
#      once Argon holds its WAL durably
#   4. pgbench -i, then a short pgbench run through the synchronous standby
#   5. a branch at the LSN before the pgbench run, and one page of
#      pgbench_branches read from Argon at that LSN and at the latest, decoded by
#      PostgreSQL's heap_page_items: its history.
#   6. the same over Neon's page-read protocol on Argon's PostgreSQL port
#      (pagestream_v3, as a compute reads pages): pgbench_branches and all of
#      pgbench_accounts with argon-pageget (compute/'s client library), then a
#      3-second argon-pagebench summary.
#
#   scripts/run.sh          run until Ctrl-C (primary on port 5499, Argon's API on 9898)
#   scripts/run.sh --once   show it all, then stop both (exit 0 if all went well)
#
# Environment: ARGON_DEMO_DIR (default /tmp/argon-demo, recreated), ARGON_PG_LISTEN
# (127.0.0.1:6400), ARGON_HTTP_LISTEN (127.0.0.1:9898), ARGON_DEMO_PG_PORT (5499),
# ARGON_DEMO_SECONDS (pgbench's run, 5), ARGON_BUILD_DIR (build), ARGON_SKIP_SETUP=1
# to use an existing build as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
once=false
[[ "${1:-}" == "--once" ]] && once=true
build=$root/${ARGON_BUILD_DIR:-build}
[[ "${ARGON_BUILD_DIR:-}" == /* ]] && build=$ARGON_BUILD_DIR
demo=${ARGON_DEMO_DIR:-/tmp/argon-demo}
pg_port=${ARGON_DEMO_PG_PORT:-5499}
seconds=${ARGON_DEMO_SECONDS:-5}
pgbin=/usr/lib/postgresql/15/bin
ctl=$build/tools/argonctl

if [[ "${ARGON_SKIP_SETUP:-0}" != 1 ]]; then
	./scripts/bootstrap.sh
	# PostgreSQL's build (cached): argon-walredo and the page checksum need it.
	./scripts/pg-build.sh >/dev/null
	[[ -f "$build/build.ninja" ]] || meson setup "$build" >/dev/null
	ninja -C "$build" >/dev/null
fi

# PostgreSQL refuses to run as root: as root, the primary runs as postgres.
as_pg=()
[[ $EUID -eq 0 ]] && as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups)
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
pg() { "${as_pg[@]}" "$pgbin/$1" "${@:2}"; }
sql() { "${as_pg[@]}" psql -X -q -h "$demo/pg" -p "$pg_port" -d postgres -v ON_ERROR_STOP=1 "$@"; }

rm -rf "$demo"
mkdir -p "$demo"
chmod 755 "$demo"
[[ $EUID -eq 0 ]] && chown postgres: "$demo"
log="$demo/pageserver.log"
pid=
cleanup() {
	[[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	pg pg_ctl -D "$demo/pg" -m fast stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

say "initdb and start a PostgreSQL 15 primary on port $pg_port"
pg initdb -D "$demo/pg" -U postgres -A trust >/dev/null
cat >>"$demo/pg/postgresql.conf" <<EOF
port = $pg_port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$demo/pg'
wal_level = replica
max_wal_senders = 4
EOF
pg pg_ctl -D "$demo/pg" -l "$demo/pg/log" -w start >/dev/null
sql -c "select pg_create_physical_replication_slot('argon', true)" >/dev/null
sql -c "create extension pageinspect"

say "pg_basebackup, then argonctl -D $demo/data import base"
"${as_pg[@]}" "$pgbin/pg_basebackup" -h 127.0.0.1 -p "$pg_port" -U postgres \
	-D "$demo/backup" -Fp -X none -c fast --no-sync
"$ctl" -D "$demo/data" import base "$demo/backup"
rm -rf "$demo/backup"

say "argon-pageserver -D $demo/data"
"$build/server/argon-pageserver" -D "$demo/data" \
	-c "pg_listen_address=${ARGON_PG_LISTEN:-127.0.0.1:6400}" \
	-c "http_listen_address=${ARGON_HTTP_LISTEN:-127.0.0.1:9898}" \
	-c "wal_status_interval_ms=1s" 2>>"$log" &
pid=$!
for _ in $(seq 1 200); do
	grep -q "ready to accept connections" "$log" && break
	kill -0 $pid 2>/dev/null || { cat "$log"; echo "run.sh: argon-pageserver did not start"; exit 1; }
	sleep 0.05
done
grep -q "ready to accept connections" "$log" || { cat "$log"; exit 1; }
http=$(sed -n 's|.*management API listening on \(http://[^ ]*\)$|\1|p' "$log")
api=(--api "$http")

say "argonctl attach 'host=127.0.0.1 port=$pg_port user=postgres' --slot argon --application-name argon"
"$ctl" "${api[@]}" attach "host=127.0.0.1 port=$pg_port user=postgres dbname=postgres" \
	--slot argon --application-name argon
say "alter system set synchronous_standby_names = 'argon'; select pg_reload_conf()"
sql -c "alter system set synchronous_standby_names = 'argon'" -c "select pg_reload_conf()" >/dev/null
for _ in $(seq 1 100); do
	[[ $(sql -tA -c "select sync_state from pg_stat_replication where application_name = 'argon'") == sync ]] && break
	sleep 0.05
done
say "select application_name, state, sync_state from pg_stat_replication"
sql -c "select application_name, state, sync_state, flush_lsn, replay_lsn from pg_stat_replication"

say "pgbench -i -s 1 (every commit waits for Argon)"
pg pgbench -h 127.0.0.1 -p "$pg_port" -U postgres -i -q -s 1 postgres 2>&1 | tail -1
before=$(sql -tA -c "select pg_current_wal_lsn()")
echo "LSN after pgbench -i: $before"
say "pgbench -c 2 -T $seconds"
pg pgbench -h 127.0.0.1 -p "$pg_port" -U postgres -n -c 2 -T "$seconds" postgres 2>&1 |
	grep -E "^(number of transactions actually processed|latency average|tps)"
after=$(sql -tA -c "select pg_current_wal_lsn()")
for _ in $(seq 1 200); do
	[[ $("$ctl" "${api[@]}" --json wal | sed -n 's/.*"ingested_lsn": "\(.*\)".*/\1/p') == "$after" ]] && break
	sleep 0.05
done
say "argonctl wal   # the primary at $after"
"$ctl" "${api[@]}" wal

say "argonctl branch --lsn $before --new 00000000000000000000000000000002"
"$ctl" "${api[@]}" branch --lsn "$before" --new 00000000000000000000000000000002

rel=$(sql -tA -c "select '1663 ' || (select oid from pg_database where datname = 'postgres') || ' ' || pg_relation_filenode('pgbench_branches')")
read -r spc db node <<<"$rel"
"$ctl" "${api[@]}" getpage --lsn "$before" "$spc" "$db" "$node" 0 0 "$demo/page-before.bin"
"$ctl" "${api[@]}" getpage --lsn latest "$spc" "$db" "$node" 0 0 "$demo/page-latest.bin"
"$ctl" "${api[@]}" --timeline 00000000000000000000000000000002 getpage --lsn latest \
	"$spc" "$db" "$node" 0 0 "$demo/page-branch.bin"
chmod 644 "$demo"/page-*.bin
decode() {
	sql -c "select count(*) as row_versions,
	               max((get_byte(t_data, 4) | (get_byte(t_data, 5) << 8) |
	                    (get_byte(t_data, 6) << 16) | (get_byte(t_data, 7) << 24)))
	                 filter (where t_ctid = format('(0,%s)', lp)::tid) as newest_bbalance
	          from heap_page_items(pg_read_binary_file('$1', 0, 8192)) where lp_flags = 1"
}
say "pgbench_branches block 0 from Argon at $before (before the run), decoded by heap_page_items"
decode "$demo/page-before.bin"
say "the same block at the latest LSN: the row versions pgbench's updates left"
decode "$demo/page-latest.bin"
say "the same block on the branch made at $before"
decode "$demo/page-branch.bin"
say "select bbalance from pgbench_branches   # on the primary"
sql -c "select bid, bbalance from pgbench_branches"

ps_port=$(sed -n 's|.*PostgreSQL connections on [^ ]*:\([0-9]*\)$|\1|p' "$log")
tenant=00000000000000000000000000000001
accounts=$(sql -tA -c "select pg_relation_filenode('pgbench_accounts')")
say "argon-pageget: pgbench_branches and pgbench_accounts at $after over pagestream_v3 (port $ps_port)"
mkdir -p "$demo/wire"
"$build/compute/argon-pageget" --conn "host=127.0.0.1 port=$ps_port user=argon" \
	--tenant $tenant --timeline $tenant --lsn "$after" --prefetch --out "$demo/wire" \
	--rel "$spc/$db/$node/0" --rel "$spc/$db/$accounts/0"
chmod -R a+rX "$demo/wire"
say "pgbench_branches block 0 as read over the protocol, decoded by heap_page_items"
decode "$demo/wire/${spc}_${db}_${node}_0"
say "argon-pagebench: 3 s of random GetPages of pgbench_accounts, 4 connections x depth 8"
"$build/perf/argon-pagebench" --port "$ps_port" --tenant $tenant --timeline $tenant \
	--rel "$spc/$db/$accounts/0" --clients 4 --depth 8 --seconds 3 --lsn "$after" \
	--server-pid "$pid" --summary

if $once; then
	kill -TERM $pid
	wait $pid
	rc=$?
	pid=
	tail -2 "$log"
	exit $rc
fi
echo
echo "Argon is streaming from the primary (port $pg_port); argonctl ${api[*]} wal shows it."
echo "Data in $demo/data, log in $log; Ctrl-C stops both."
trap 'cleanup; exit 0' INT TERM
wait $pid
