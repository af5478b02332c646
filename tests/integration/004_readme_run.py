"""The README's run command (scripts/run.sh --once): a local PostgreSQL 15
primary with Argon as its synchronous standby, a short pgbench, a branch at the
LSN before it, and one page of pgbench_branches read from Argon at two LSNs and
on the branch, decoded by PostgreSQL's heap_page_items; then both are stopped.
It runs against the build under test (ARGON_SKIP_SETUP=1; CI runs the setup
half through the test command itself) on free ports."""

import json
import os
import re
import subprocess

from harness.argonctl import walredo_binary
from harness.pageserver import REPO, build_dir
from harness.ports import free_port

# "row_versions | newest_bbalance" rows of the three page reads, then the
# primary's "bid | bbalance".
_ROW = re.compile(r"^\s+(\d+) \|\s+(-?\d+)\s*$", re.M)


def test_run_command_streams_into_argon(tmp_dir):
    env = dict(os.environ, ARGON_SKIP_SETUP="1", ARGON_BUILD_DIR=build_dir(),
               ARGON_DEMO_DIR=os.path.join(tmp_dir, "demo"), ARGON_PG_LISTEN="127.0.0.1:0",
               ARGON_HTTP_LISTEN="127.0.0.1:0", ARGON_DEMO_PG_PORT=str(free_port()),
               ARGON_DEMO_SECONDS="3")
    if walredo_binary():   # a sanitizer build has none of its own: the gcc build's
        env["ARGON_WALREDO"] = walredo_binary()
    r = subprocess.run([os.path.join(REPO, "scripts", "run.sh"), "--once"], env=env,
                       capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert re.search(r"argon\s+\| streaming \| sync", out), out   # pg_stat_replication
    assert '"new_timeline": "00000000000000000000000000000002"' in out, out
    rows = [(int(a), int(b)) for a, b in _ROW.findall(r.stdout)]
    assert len(rows) == 5, out
    before, latest, branch, primary, wire = rows
    assert before == (1, 0), out        # after pgbench -i: one row version, balance 0
    assert branch == before, out        # the branch sees the page as of its LSN
    assert latest[0] > 1 and latest[1] == primary[1], out   # history, and the newest
    assert wire == latest, out          # the same page over the page-read protocol
    got = json.loads(re.search(r'^\{"relations": 2.*$', r.stdout, re.M).group(0))
    assert got["errors"] == 0 and got["blocks"] > 1000, out   # all of pgbench_accounts
    bench = re.search(r"GetPage/s\s+(\d+) .*, (\d+) pages, (\d+) errors", r.stdout)
    assert bench and int(bench.group(2)) > 0 and bench.group(3) == "0", out
    assert "shut down cleanly" in out
