"""Argon's tidy test (style.md, item 17): checks that keep the tree readable.

  1. C lines are at most 100 columns (a tab counts as 8).
  2. C functions are at most 80 lines, body included.
  3. No banned calls: strcpy, strcat, sprintf, vsprintf, gets, rand, srand, alloca.
  4. Every top-level folder has a README.md.
  5. Every header compiles on its own (except PostgreSQL-dialect ones, which
     include postgres.h and need the PostgreSQL build's headers).

Run by meson (suite 'tidy') with the source root as argument.  Prints each
violation as file:line: message and exits 1 if there is any.
"""

import os
import re
import subprocess
import sys

FOLDERS = ["server", "ingest", "engine", "cache", "s3tier", "compute", "common", "tools",
           "perf", "tests"]
COLUMNS_MAX = 100
FUNCTION_LINES_MAX = 80
BANNED = re.compile(r"(?<![\w.])(strcpy|strcat|sprintf|vsprintf|gets|rand|srand|alloca)\s*\(")


def c_files(root):
    for folder in FOLDERS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, folder)):
            dirnames[:] = [d for d in dirnames if d != "corpus"]
            for name in sorted(filenames):
                if name.endswith((".c", ".h")):
                    yield os.path.join(dirpath, name)


def check_file(path, rel, problems):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    start = None
    for number, line in enumerate(lines, 1):
        width = len(line.expandtabs(8))
        if width > COLUMNS_MAX:
            problems.append("%s:%d: line is %d columns (max %d)" % (rel, number, width,
                                                                     COLUMNS_MAX))
        code = line.split("//")[0]
        if BANNED.search(code) and not code.lstrip().startswith(("*", "/*")):
            problems.append("%s:%d: banned call: %s" % (rel, number, BANNED.search(code).group(1)))
        # Functions open with "{" and close with "}" in column 0.
        if line == "{":
            start = number
        elif line == "}" and start is not None:
            length = number - start + 1
            if length > FUNCTION_LINES_MAX:
                problems.append("%s:%d: function is %d lines (max %d)" % (
                    rel, start, length, FUNCTION_LINES_MAX))
            start = None


def check_headers(root, headers, problems):
    cc = os.environ.get("CC", "cc")
    for rel in headers:
        if rel.startswith("tools/") or rel.startswith("tests/"):
            continue
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            if '#include "postgres.h"' in f.read():
                continue  # PostgreSQL's dialect: compiles only with its build's headers
        r = subprocess.run([cc, "-std=c17", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
                            "-D_GNU_SOURCE", "-I", root, "-fsyntax-only", "-x", "c",
                            os.path.join(root, rel)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            first = (r.stderr.strip().splitlines() or ["?"])[0]
            problems.append("%s:1: does not compile on its own: %s" % (rel, first))


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
    problems = []
    for folder in FOLDERS:
        if not os.path.isfile(os.path.join(root, folder, "README.md")):
            problems.append("%s/: no README.md" % folder)
    headers = []
    count = 0
    for path in c_files(root):
        rel = os.path.relpath(path, root)
        check_file(path, rel, problems)
        count += 1
        if rel.endswith(".h"):
            headers.append(rel)
    check_headers(root, headers, problems)
    for p in problems:
        print(p)
    print("tidy: %d files, %d headers, %d problems" % (count, len(headers), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
