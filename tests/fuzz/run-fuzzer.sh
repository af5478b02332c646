#!/usr/bin/env bash
# Run one libFuzzer target for a bounded time: run-fuzzer.sh EXE SECONDS SEED_DIR
# New inputs go to a scratch corpus in the build tree; the seeds in the source
# tree are only read.  A crash leaves its reproducer in the scratch directory and
# fails the test; turn it into a unit test.
set -euo pipefail
exe=$(readlink -f "$1") seconds=$2 seeds=$(readlink -f "$3")
work="$(dirname "$exe")/$(basename "$exe")-corpus"
mkdir -p "$work"
cd "$work"
# libFuzzer exits 77 on a crash by default, which meson reads as a skip: make it 1.
exec "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	-error_exitcode=1 -timeout_exitcode=1 \
	"$work" "$seeds"
