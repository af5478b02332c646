"""001: the integration harness itself.

Proves that the PostgreSQL and S3 the other tests run against are real, and
that nothing the harness starts outlives a test: not after a normal stop,
not after SIGTERM (meson's timeout), not after SIGKILL.
"""

import json
import os
import select
import signal
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

from harness import procs
from harness.pg import PgCluster
from harness.swift import SwiftS3

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"


def test_postgres_is_real(pg):
    print("PostgreSQL startup (initdb + start): %.2f s" % pg.startup_seconds)
    version = pg.sql("SELECT version()")[0][0]
    assert "PostgreSQL 15" in version
    assert pg.sql("SHOW server_version_num")[0][0].startswith("15")

    pg.sql("CREATE TABLE smoke (id int PRIMARY KEY, note text)")
    pg.sql("INSERT INTO smoke SELECT g, 'row ' || g "
           "FROM generate_series(1, 100) g")
    assert pg.sql("SELECT count(*), sum(id) FROM smoke") == [(100, 5050)]
    assert pg.sql("SELECT note FROM smoke WHERE id = %s", (42,)) == \
        [("row 42",)]
    pg.sql("DROP TABLE smoke")

    # The server runs from our directories and as the expected user.
    assert os.path.isdir(pg.data_dir)
    assert os.path.exists(os.path.join(pg.socket_dir, ".s.PGSQL.%d"
                                       % pg.port))
    assert procs.pid_alive(pg.pid)


def test_s3_is_real(s3):
    print("Swift+s3api startup: %.2f s" % s3.startup_seconds)
    client = s3.boto3_client()
    bucket = "argon-smoke"
    body = os.urandom(256 * 1024) + b"tail"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="dir/obj", Body=body)

    got = client.get_object(Bucket=bucket, Key="dir/obj")
    assert got["Body"].read() == body
    assert got["ContentLength"] == len(body)

    ranged = client.get_object(Bucket=bucket, Key="dir/obj",
                               Range="bytes=100-199")
    assert ranged["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert ranged["Body"].read() == body[100:200]
    suffix = client.get_object(Bucket=bucket, Key="dir/obj",
                               Range="bytes=-4")
    assert suffix["Body"].read() == b"tail"

    listing = client.list_objects_v2(Bucket=bucket, Prefix="dir/")
    assert [o["Key"] for o in listing["Contents"]] == ["dir/obj"]
    assert listing["Contents"][0]["Size"] == len(body)

    client.delete_object(Bucket=bucket, Key="dir/obj")
    with pytest.raises(ClientError) as err:
        client.head_object(Bucket=bucket, Key="dir/obj")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0

    # Signatures are checked: the right key with the wrong secret is
    # refused.
    intruder = s3.boto3_client(retries={"max_attempts": 1})
    intruder._request_signer._credentials.secret_key = "not-the-secret"
    with pytest.raises(ClientError) as err:
        intruder.put_object(Bucket=bucket, Key="forged", Body=b"x")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert err.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    with pytest.raises(ClientError):
        client.head_object(Bucket=bucket, Key="forged")

    client.delete_bucket(Bucket=bucket)


def _all_gone(pids, timeout):
    """Wait for pids to disappear; return the ones still alive."""
    return procs.wait_pids_gone(pids, timeout)


def test_stop_leaves_nothing():
    began = time.monotonic()
    cluster = PgCluster("pg-extra")
    server = SwiftS3("swift-extra")
    print("second PostgreSQL + Swift, both up in %.2f s"
          % (time.monotonic() - began))
    cluster.sql("SELECT 1")
    server.boto3_client().list_buckets()

    daemons = [cluster.pid] + list(server.pids.values())
    pids = list(daemons)
    for pid in daemons:
        pids += procs.children_of(pid)
    dirs = [cluster.dir, server.dir]
    assert all(procs.pid_alive(pid) for pid in daemons)
    assert all(os.path.isdir(d) for d in dirs)

    cluster.stop()
    server.stop()
    assert _all_gone(pids, 5.0) == []
    for pid in daemons:
        # Our own children, so already reaped: the PID is free.
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    for pid in pids:
        # Grandchildren: absent, or at most a zombie init has yet to reap.
        assert not procs.pid_alive(pid)
    assert not any(os.path.exists(d) for d in dirs)
    registered = {d.pid for d in procs.daemons()}
    assert registered.isdisjoint(pids)
    assert not set(dirs) & set(procs.temp_dirs())


# Run by a child interpreter: start a cluster, report it, then wait to be
# killed.
_CHILD = """
import json, os, sys, time
sys.path.insert(0, %r)
from harness import procs
from harness.pg import PgCluster
cluster = PgCluster("pg-child")
print(json.dumps({"pids": [cluster.pid] + procs.children_of(cluster.pid),
                  "dir": cluster.dir}), flush=True)
time.sleep(600)
""" % HERE


def _start_child():
    """Start the child; return (Popen, its report) once its cluster is
    up.  The child dies with us (death signal) if this test is killed."""
    child = subprocess.Popen(
        [PYTHON, "-c", _CHILD], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
        preexec_fn=procs.death_signal_preexec(signal.SIGKILL))
    try:
        ready, _, _ = select.select([child.stdout], [], [], 60.0)
        line = child.stdout.readline() if ready else b""
        if not line:
            child.terminate()
            _, err = child.communicate(timeout=10)
            pytest.fail("child did not start its cluster:\n"
                        + err.decode("utf-8", "replace"))
        report = json.loads(line)
        # Only the postmaster is sure to be alive: the snapshot of its
        # children may include a backend that was just exiting.
        assert procs.pid_alive(report["pids"][0])
        assert os.path.isdir(report["dir"])
        assert procs.PIDFILE_NAME in os.listdir(report["dir"])
    except BaseException:
        _end_child(child)
        raise
    return child, report


def _end_child(child):
    """Make sure the child is gone (SIGTERM lets it clean up)."""
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)
    child.stdout.close()
    child.stderr.close()


def _wait_path_gone(path, timeout):
    deadline = time.monotonic() + timeout
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not os.path.exists(path)


def test_sigterm_cleans_up(pg):
    child, report = _start_child()
    try:
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=10) == -signal.SIGTERM
    finally:
        _end_child(child)
    assert _all_gone(report["pids"], 5.0) == []
    assert _wait_path_gone(report["dir"], 5.0)


def test_sigkill_cleans_up(pg):
    child, report = _start_child()
    try:
        child.kill()
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        _end_child(child)
    # The death signal stops the server; nothing could remove the
    # directory, so the next sweep does.
    assert _all_gone(report["pids"], 10.0) == []
    assert report["dir"] in procs.sweep_stale()
    assert not os.path.exists(report["dir"])
    # The sweep spares directories whose owner is alive (ours).
    assert os.path.isdir(pg.data_dir)
    assert pg.sql("SELECT 1") == [(1,)]
