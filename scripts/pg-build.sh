#!/usr/bin/env bash
# Fetch Debian's current bookworm-main postgresql-15 source package, build the
# backend and the regression suite's pieces (pg_regress, regress.so) once, and
# cache the build by version outside Argon's tree.  Later executables (the redo
# helper, the oracle's masking tool, the compute) link PostgreSQL's own objects
# from this build; nothing of PostgreSQL is ever committed to Argon.
#
#   scripts/pg-build.sh            build if needed, print the build directory
#   scripts/pg-build.sh --locate   print the cached build directory, build nothing
#
# The machine's apt configuration is left as it was: the deb-src entry lives in a
# private sources directory and list cache under the build cache.
set -euo pipefail

# Cached per machine: /var/cache for root, the user's cache directory otherwise.
if [[ $(id -u) -eq 0 ]]; then
	default_cache=/var/cache/argon/postgresql
else
	default_cache=${XDG_CACHE_HOME:-$HOME/.cache}/argon/postgresql
fi
cache=${ARGON_PG_CACHE:-$default_cache}
configure_flags=(--without-icu --without-readline --with-zstd --with-lz4 --enable-debug)
log() { echo "pg-build: $*" >&2; }

locate() {
	# Newest completed build; a build is complete once its stamp exists.
	local d best=""
	for d in "$cache"/15.*/; do
		[[ -f "$d/argon-build.stamp" ]] && best=${d%/}
	done
	[[ -n "$best" ]] && echo "$best"
	return 0
}

if [[ "${1:-}" == "--locate" ]]; then
	locate
	exit 0
fi

mkdir -p "$cache"
apt_dir="$cache/apt"
mkdir -p "$apt_dir/sources.list.d" "$apt_dir/lists/partial" "$apt_dir/archives/partial"

# Copy the machine's own bookworm-main stanza as deb-src, so the mirror is
# whatever this machine is configured with.
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
uri=""
for f in /etc/apt/sources.list.d/*.sources; do
	[[ -f "$f" ]] || continue
	uri=$(awk -v cn="$codename" '
		BEGIN { RS=""; FS="\n" }
		{ u=""; s=0
		  for (i = 1; i <= NF; i++) {
			if ($i ~ /^URIs:/) { u=$i; sub(/^URIs:[ \t]*/, "", u); sub(/[ \t].*/, "", u) }
			if ($i ~ /^Suites:/) { n=split($i, w, /[ \t]+/); for (j = 2; j <= n; j++) if (w[j] == cn) s=1 }
		  }
		  if (s && u != "") { print u; exit } }' "$f")
	[[ -n "$uri" ]] && break
done
if [[ -z "$uri" && -f /etc/apt/sources.list ]]; then
	uri=$(awk -v cn="$codename" '$1 == "deb" && $3 == cn { print $2; exit }' /etc/apt/sources.list)
fi
if [[ -z "$uri" ]]; then
	log "could not find a $codename main entry in the apt sources"
	exit 1
fi
cat >"$apt_dir/sources.list.d/argon-pg-src.sources" <<SRC
Types: deb-src
URIs: $uri
Suites: $codename
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
apt_opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
	-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives"
	-o "APT::Get::List-Cleanup=0" -o "Debug::NoLocking=1")

# Refresh the source list at most once a day; the version found decides the cache key.
lists_stamp="$apt_dir/lists/argon-updated"
if [[ ! -f "$lists_stamp" || -n $(find "$lists_stamp" -mmin +1440 2>/dev/null) ]]; then
	if apt-get "${apt_opts[@]}" update -qq >/dev/null 2>"$apt_dir/update.err"; then
		touch "$lists_stamp"
	else
		log "could not refresh the source list: $(tail -1 "$apt_dir/update.err")"
		existing=$(locate)
		if [[ -n "$existing" ]]; then
			log "using the cached build $existing"
			echo "$existing"
			exit 0
		fi
		exit 1
	fi
fi
full_version=$(apt-cache "${apt_opts[@]}" showsrc postgresql-15 2>/dev/null |
	awk '/^Version:/ { print $2 }' | sort -V | tail -1)
if [[ -z "$full_version" ]]; then
	log "postgresql-15 source package not found in $codename main"
	exit 1
fi
upstream=${full_version%%-*}
build="$cache/$upstream"
if [[ -f "$build/argon-build.stamp" ]]; then
	log "PostgreSQL $full_version already built in $build"
	echo "$build"
	exit 0
fi

log "building PostgreSQL $full_version (Debian source package) in $build"
start=$(date +%s)
# Build in place: PostgreSQL's Makefiles record absolute paths, so the tree is
# never moved.  Only the stamp, written last, marks the build as complete.
rm -rf "$build" "$build.tmp"
mkdir -p "$build.tmp"
(cd "$build.tmp" && apt-get "${apt_opts[@]}" source --download-only -qq "postgresql-15=$full_version" \
	>/dev/null 2>"$build.tmp/download.err") || { cat "$build.tmp/download.err" >&2; exit 1; }
tarball=$(ls "$build.tmp"/postgresql-15_"$upstream".orig.tar.*)
tar -C "$build.tmp" -xf "$tarball"
mv "$build.tmp/postgresql-$upstream" "$build"
rm -rf "$build.tmp"
(
	cd "$build"
	./configure --prefix="$build/install" "${configure_flags[@]}" >configure.log 2>&1 ||
		{ tail -20 configure.log >&2; exit 1; }
	jobs=$(nproc)
	# Generated headers first: a parallel make of src/backend alone races on them.
	make -s -C src/backend generated-headers >make-headers.log 2>&1 ||
		{ tail -30 make-headers.log >&2; exit 1; }
	make -s -j"$jobs" -C src/backend >make-backend.log 2>&1 || { tail -30 make-backend.log >&2; exit 1; }
	make -s -j"$jobs" -C src/test/regress >make-regress.log 2>&1 || { tail -30 make-regress.log >&2; exit 1; }
)
echo "$full_version" >"$build/argon-debian-version"
touch "$build/argon-build.stamp"
log "built PostgreSQL $full_version in $(( $(date +%s) - start )) s"
echo "$build"
