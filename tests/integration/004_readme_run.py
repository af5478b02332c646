"""The README's run command (scripts/run.sh --once) starts argon-pageserver on
local storage, shows it healthy through argonctl and psql, and stops it cleanly.
It runs against the build under test (ARGON_SKIP_SETUP=1; CI runs the setup
half through the test command itself) on free ports."""

import os
import subprocess

from harness.pageserver import REPO, build_dir


def test_run_command_shows_a_healthy_pageserver(tmp_dir):
    env = dict(os.environ, ARGON_SKIP_SETUP="1", ARGON_BUILD_DIR=build_dir(),
               ARGON_DEMO_DIR=tmp_dir, ARGON_PG_LISTEN="127.0.0.1:0",
               ARGON_HTTP_LISTEN="127.0.0.1:0")
    r = subprocess.run([os.path.join(REPO, "scripts", "run.sh"), "--once"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "status:               ok" in r.stdout          # argonctl over the API
    assert " ok     | 0.1.0" in r.stdout                   # psql over the PostgreSQL port
    assert "shut down cleanly" in r.stdout
    assert os.path.isfile(os.path.join(tmp_dir, "data", "argon.lock"))
