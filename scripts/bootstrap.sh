#!/usr/bin/env bash
# Install everything Argon needs on a Debian 12 machine: build tools, the -dev
# libraries, PostgreSQL 15 (server and contrib, tests run real PostgreSQL),
# OpenStack Swift with s3api (the real S3 store for tests) and Debian's python3
# test modules.  Idempotent: when every package is present it only checks and
# returns in well under a second.  Runs as root, or through sudo otherwise.
set -euo pipefail

packages=(
	# build
	build-essential pkg-config meson ninja-build clang libclang-rt-14-dev llvm
	bpftool bzip2 e2fsprogs util-linux procps iproute2
	# libraries Argon links
	liburing-dev libnuma-dev libzstd-dev liblz4-dev zlib1g-dev libcurl4-openssl-dev
	libpq-dev libgoogle-perftools-dev libcmocka-dev libbpf-dev libseccomp-dev
	libinih-dev libmicrohttpd-dev libjansson-dev libisal-dev libarchive-dev
	# real servers for tests
	postgresql-15 postgresql-client-15 postgresql-contrib
	swift swift-proxy swift-object swift-container swift-account memcached
	# integration test runner (Debian's own python3)
	python3 python3-pytest python3-psycopg2 python3-boto3
)

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
	echo "bootstrap: all ${#packages[@]} packages present"
	exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
	sudo=(sudo)
fi

echo "bootstrap: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts these services on install; Argon's harness runs its own
# throwaway instances, so the packaged ones must not hold ports or CPU.
for svc in postgresql memcached; do
	if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
		"${sudo[@]}" systemctl stop "$svc" || true
	fi
done
echo "bootstrap: done"
