"""pytest fixtures for Argon's integration tests.

    pg        session-wide PgCluster (PostgreSQL 15 on a free loopback port)
    s3        session-wide SwiftS3, started only if a test asks for it
    tmp_root  the root of the harness temporary directories
    tmp_dir   a fresh temporary directory for one test, removed after it

Stale directories of dead earlier runs are swept when the session starts;
everything this session started is stopped when it ends, and also on
SIGTERM/SIGINT or at exit (see harness/procs.py).
"""

import os
import re
import sys

# Keep the source tree free of __pycache__ directories.
sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import pytest  # noqa: E402

from harness import procs  # noqa: E402
from harness.pg import PgCluster  # noqa: E402
from harness.swift import SwiftS3  # noqa: E402


def pytest_sessionstart(session):
    procs.install()
    procs.sweep_stale()


_outcomes = {"passed": 0, "failed": 0, "skipped": 0}


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        _outcomes[report.outcome] = _outcomes.get(report.outcome, 0) + 1


def pytest_sessionfinish(session, exitstatus):
    procs.cleanup_all()
    # A file whose every test skipped is a skip for meson too (exit 77), not a pass.
    if exitstatus == 0 and _outcomes["skipped"] and not _outcomes["passed"] \
            and not _outcomes["failed"]:
        session.exitstatus = 77


@pytest.fixture(scope="session")
def tmp_root():
    return procs.tmp_root()


@pytest.fixture
def tmp_dir(request):
    name = re.sub(r"[^A-Za-z0-9_.]+", "_", request.node.name)[:40]
    path = procs.make_temp_dir(name)
    yield path
    procs.remove_temp_dir(path)


@pytest.fixture(scope="session")
def pg():
    cluster = PgCluster("pg")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def s3():
    server = SwiftS3("swift")
    yield server
    server.stop()
