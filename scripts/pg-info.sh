#!/usr/bin/env bash
# Print what meson needs to link PostgreSQL's own code from a build made by
# scripts/pg-build.sh:
#   line 1: PostgreSQL's CFLAGS (from src/Makefile.global)
#   line 2: the libraries of the postgres link
#   line 3: the backend objects, the union of the top-level backend directories'
#           objfiles.txt plus the timezone code, minus main/main.o (an executable
#           linking them brings its own main and progname).
set -euo pipefail
dir=$1
global="$dir/src/Makefile.global"
sed -n 's/^CFLAGS = //p' "$global" | head -1
sed -n 's/^LIBS = //p' "$global" | head -1
cd "$dir"
for f in src/backend/*/objfiles.txt src/timezone/objfiles.txt; do
	tr ' ' '\n' <"$f"
done | grep -v '^$' | grep -v '^src/backend/main/main\.o$' | sed "s|^|$dir/|" | sort -u | tr '\n' ' '
echo
