"""The setup half of the README's commands is idempotent and quick once done:
a second run installs nothing and builds no PostgreSQL.  (Issue 2 acceptance:
"a second run does no installation or PostgreSQL build".)  By the time this
runs, scripts/test.sh has already run both steps once."""

import os
import subprocess
import time

from harness.pageserver import REPO


def run(script):
    started = time.monotonic()
    r = subprocess.run([os.path.join(REPO, "scripts", script)], capture_output=True, text=True,
                       timeout=600)
    return r, time.monotonic() - started


def test_bootstrap_installs_nothing_the_second_time():
    r, seconds = run("bootstrap.sh")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "packages present" in r.stdout, r.stdout
    assert "installing" not in r.stdout
    print("bootstrap.sh with everything present: %.2f s" % seconds)


def test_postgresql_is_not_rebuilt():
    located = subprocess.run([os.path.join(REPO, "scripts", "pg-build.sh"), "--locate"],
                             capture_output=True, text=True, timeout=60)
    assert located.returncode == 0
    cached = located.stdout.strip()
    assert cached, "no cached PostgreSQL build: scripts/pg-build.sh has not run"
    stamp = os.path.join(cached, "argon-build.stamp")
    before = os.stat(stamp).st_mtime_ns
    r, seconds = run("pg-build.sh")
    assert r.returncode == 0, r.stderr
    assert "already built" in r.stderr or "using the cached build" in r.stderr, r.stderr
    assert "building PostgreSQL" not in r.stderr
    assert r.stdout.strip() == cached
    assert os.stat(stamp).st_mtime_ns == before
    with open(os.path.join(cached, "argon-debian-version")) as f:
        version = f.read().strip()
    assert version.startswith("15.")
    print("pg-build.sh with PostgreSQL %s cached: %.2f s" % (version, seconds))
