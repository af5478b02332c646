"""argonctl's offline commands (`argonctl -D DATADIR ...`) for the tests.

`argonctl(datadir, *args, check=True, timeout=1200)` runs the build's argonctl
and returns the CompletedProcess (raising with its stderr when check and it
failed); `last_json(proc)` is the JSON object a command prints last.
"""

import json
import subprocess

from harness.pageserver import binary


def argonctl(datadir, *args, check=True, timeout=1200):
    argv = [binary("tools/argonctl"), "-D", datadir] + [str(a) for a in args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(argv[1:]), proc.returncode,
                                                    proc.stderr[-3000:]))
    return proc


def last_json(proc):
    return json.loads(proc.stdout.strip().splitlines()[-1])
