#!/usr/bin/env bash
# The whole test suite from a fresh Debian 12 machine (the README's test command):
#   1. install what is missing (scripts/bootstrap.sh; quick when all is there)
#   2. build PostgreSQL 15 from Debian's source package once (cached by version)
#   3. build Argon (gcc) and run the unit, integration and tidy suites
#   4. build Argon with clang, ASan+UBSan and libFuzzer; run the unit, fuzz and
#      integration suites again (the servers under the sanitizers)
# Prints each stage's duration and ends with "N passed, N failed, N skipped".
# Environment: ARGON_FUZZ_SECONDS (per fuzz target, default 30).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
fuzz_seconds=${ARGON_FUZZ_SECONDS:-30}
failed_stages=()

stage() {
	local name=$1
	shift
	local start=$SECONDS
	echo "==> $name"
	"$@"
	local rc=$?
	echo "==> $name: $((SECONDS - start)) s$([[ $rc -ne 0 ]] && echo ", FAILED (exit $rc)")"
	[[ $rc -eq 0 ]] || failed_stages+=("$name")
	return $rc
}

# Configure a build directory once; later runs only apply the given options.
setup() {
	local dir=$1
	shift
	if [[ -f "$dir/build.ninja" ]]; then
		meson configure "$dir" "$@" >/dev/null
	else
		meson setup "$dir" "$@" >/dev/null
	fi && ninja -C "$dir"
}

stage bootstrap ./scripts/bootstrap.sh || exit 1
stage postgresql-build ./scripts/pg-build.sh || exit 1
stage build setup build || exit 1
stage tests meson test -C build --suite unit --suite integration --suite tidy \
	--print-errorlogs --num-processes 2
stage asan-fuzz-build env CC=clang bash -c "$(declare -f setup); setup build-asan \
	-Dfuzz=true -Dfuzz_seconds=$fuzz_seconds -Db_sanitize=address,undefined -Db_lundef=false" \
	|| exit 1
stage asan-tests meson test -C build-asan --suite unit --suite fuzz --suite integration \
	--print-errorlogs --num-processes 2

summary=$(./scripts/test-summary.sh build build-asan)
echo "test.sh: $summary"
if [[ ${#failed_stages[@]} -gt 0 ]]; then
	echo "test.sh: failed stages: ${failed_stages[*]}"
	echo "$summary"
	exit 1
fi
echo "$summary"
