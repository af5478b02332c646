#!/usr/bin/env bash
# Sum meson's results over build directories: prints "N passed, N failed, N skipped".
# Reads each directory's meson-logs/testlog*.json (one JSON object per test run;
# a stage that reruns tests in a build writes its own, e.g. testlog-lsan.json).
set -euo pipefail
/usr/bin/python3 - "$@" <<'PY'
import glob, json, os, sys
passed = failed = skipped = 0
for path in [p for d in sys.argv[1:]
             for p in sorted(glob.glob(os.path.join(d, "meson-logs", "testlog*.json")))]:
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            result = json.loads(line).get("result", "")
            if result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif result == "SKIP":
                skipped += 1
            else:
                failed += 1
print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
PY
