"""argonctl's offline commands (`argonctl -D DATADIR ...`) for the tests.

`argonctl(datadir, *args, check=True, timeout=1200, env=None)` runs the
build's argonctl and returns the CompletedProcess (raising with its stderr when
check and it failed); `last_json(proc)` is the JSON object a command prints
last.  `walredo_binary()` is the argon-walredo to use: the build's own, else the
sibling gcc build's (ASan builds cannot link PostgreSQL); argonctl() passes it
as ARGON_WALREDO unless env already names one.
"""

import json
import os
import subprocess

from harness.pageserver import binary, pg_linked_binary, pg_linked_candidates


def walredo_binary():
    """argon-walredo of ARGON_BUILD_DIR, else of the sibling gcc build; None if neither."""
    return pg_linked_binary("compute/argon-walredo")


def walredo_missing():
    return ("argon-walredo was not built (no PostgreSQL build, or a sanitizer build without "
            "a sibling gcc build); looked for "
            + " and ".join(pg_linked_candidates("compute/argon-walredo")))


def argonctl(datadir, *args, check=True, timeout=1200, env=None):
    argv = [binary("tools/argonctl"), "-D", datadir] + [str(a) for a in args]
    full_env = dict(os.environ)
    helper = walredo_binary()
    if helper:
        full_env["ARGON_WALREDO"] = helper
    full_env.update(env or {})
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(argv[1:]), proc.returncode,
                                                    proc.stderr[-3000:]))
    return proc


def last_json(proc):
    return json.loads(proc.stdout.strip().splitlines()[-1])
