#!/usr/bin/env bash
# Sum meson's results over build directories: prints "N passed, N failed, N skipped".
# Reads each directory's meson-logs/testlog.json (one JSON object per test run).
set -euo pipefail
/usr/bin/python3 - "$@" <<'PY'
import json, os, sys
passed = failed = skipped = 0
for d in sys.argv[1:]:
    path = os.path.join(d, "meson-logs", "testlog.json")
    if not os.path.exists(path):
        continue
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
