"""argon-pageserver as a process: help, startup log, psql and libpq over the
PostgreSQL protocol, argonctl over the management API, SIGTERM/SIGINT, the
data-directory lock, malformed protocol input, and bad configuration that must
end in one clear error line and a non-zero exit.  (Issue 2, Foundation.)"""

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time

import psycopg2
import pytest

from harness import procs
from harness.pageserver import PageServer, binary, run_pageserver_once

PSQL = shutil.which("psql") or "/usr/bin/psql"
KNOBS = ["data_dir", "pg_listen_address", "http_listen_address", "core_count",
         "io_uring_depth_entries", "core_ring_capacity_messages", "core_arena_bytes",
         "shutdown_timeout_ms", "log_min_level"]


@pytest.fixture(scope="module")
def server():
    with PageServer("ps-shared") as ps:
        yield ps


def psql(port, sql, *extra):
    return subprocess.run([PSQL, "-h", "127.0.0.1", "-p", str(port), "-U", "argon", "-X",
                           "-At", "-c", sql] + list(extra),
                          capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, PGCONNECT_TIMEOUT="10"))


def test_help_lists_every_knob_with_default():
    r = run_pageserver_once(["--help"])
    assert r.returncode == 0
    assert "Usage:" in r.stdout
    for knob in KNOBS:
        assert knob in r.stdout, knob
    assert "64MiB" in r.stdout  # defaults are printed next to their knobs
    v = run_pageserver_once(["--version"])
    assert v.returncode == 0 and v.stdout.startswith("argon-pageserver ")


def test_startup_logs_cores_and_listeners(server):
    log = server.log()
    for core in range(2):
        assert "core %d pinned to CPU" % core in log
    assert "listening for PostgreSQL connections on 127.0.0.1:%d" % server.pg_port in log
    assert "management API listening on http://127.0.0.1:%d" % server.http_port in log
    # PostgreSQL-style lines: "YYYY-MM-DD HH:MM:SS.mmm UTC [pid] LEVEL:  module: message"
    first = log.splitlines()[0]
    assert " UTC [%d] LOG:  " % server.pid in first


def test_psql_connects_and_gets_answers(server):
    r = psql(server.pg_port, "select 1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"
    r = psql(server.pg_port, "status")
    assert r.returncode == 0, r.stderr
    status, version, core, cores = r.stdout.strip().split("|")
    assert status == "ok" and cores == "2" and core in ("0", "1")
    r = psql(server.pg_port, "create table t ()")
    assert r.returncode != 0
    assert "unsupported command" in r.stderr


def test_ssl_is_refused_politely(server):
    # sslmode=prefer: the server says 'N' and the session goes on in clear.
    conn = psycopg2.connect(host="127.0.0.1", port=server.pg_port, user="argon",
                            sslmode="prefer", connect_timeout=10)
    conn.autocommit = True  # no BEGIN: the server answers health queries only
    cur = conn.cursor()
    cur.execute("select 1")
    assert cur.fetchone() == ("1",)
    conn.close()
    with pytest.raises(psycopg2.OperationalError, match="does not support SSL"):
        psycopg2.connect(host="127.0.0.1", port=server.pg_port, user="argon",
                         sslmode="require", connect_timeout=10)


def test_concurrent_clients(server):
    conns = [psycopg2.connect(host="127.0.0.1", port=server.pg_port, user="argon",
                              sslmode="disable", connect_timeout=10) for _ in range(20)]
    for c in conns:
        c.autocommit = True
    for round_ in range(5):
        for c in conns:
            cur = c.cursor()
            cur.execute("select 1")
            assert cur.fetchone() == ("1",)
    for c in conns:
        c.close()


def _startup(s):
    body = b"user\0argon\0\0"
    s.sendall(struct.pack("!II", 8 + len(body), 196608) + body)
    buf = b""
    while not buf.endswith(b"Z\0\0\0\5I"):
        chunk = s.recv(4096)
        assert chunk, buf
        buf += chunk


def _query(sql):
    q = sql.encode() + b"\0"
    return b"Q" + struct.pack("!I", 4 + len(q)) + q


def test_pipelined_queries_answered_in_order(server):
    s = _raw_connect(server.pg_port)
    _startup(s)
    # Three queries in one write: three answers, in the order asked.
    s.sendall(_query("select 1") + _query("bogus one") + _query("status"))
    buf = b""
    while buf.count(b"Z\0\0\0\5I") < 3:
        chunk = s.recv(65536)
        assert chunk, buf
        buf += chunk
    s.close()
    first, second, third = buf.split(b"Z\0\0\0\5I")[:3]
    assert first.startswith(b"T") and b"SELECT 1" in first
    assert second.startswith(b"E") and b"bogus one" in second
    assert third.startswith(b"T") and b"ok" in third


def _raw_connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


def _read_all(s):
    chunks = []
    while True:
        try:
            b = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks)


def test_malformed_protocol_gets_error_and_server_lives(server):
    cases = [
        struct.pack("!I", 3) + b"\0\0\0\0",                      # length below the header
        struct.pack("!II", 1 << 30, 196608),                     # absurd length
        struct.pack("!II", 8, 2 << 16),                          # protocol 2.0
        struct.pack("!II", 14, 196608) + b"user\0x",             # unterminated parameter
    ]
    for payload in cases:
        s = _raw_connect(server.pg_port)
        s.sendall(payload)
        reply = _read_all(s)
        s.close()
        assert reply[:1] == b"E", (payload, reply)
        assert b"08P01" in reply, reply
    # A valid session, then an unknown message type: FATAL, then the socket closes.
    s = _raw_connect(server.pg_port)
    body = b"user\0argon\0\0"
    s.sendall(struct.pack("!II", 8 + len(body), 196608) + body + b"!\0\0\0\4")
    reply = _read_all(s)
    s.close()
    assert b"invalid frontend message type" in reply
    assert psql(server.pg_port, "select 1").stdout.strip() == "1"


def test_argonctl_status(server):
    ctl = binary("tools/argonctl")
    r = subprocess.run([ctl, "--api", server.api_url, "status"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert "status:               ok" in r.stdout
    assert "core 1: CPU" in r.stdout
    r = subprocess.run([ctl, "--json", "status"], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, ARGON_API_URL=server.api_url))
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["pid"] == server.pid
    assert st["pg_listen_address"] == "127.0.0.1:%d" % server.pg_port
    assert [c["index"] for c in st["cores"]] == [0, 1]
    assert sum(c["connections_accepted"] for c in st["cores"]) >= 1


def test_argonctl_unreachable_and_unknown_path(server):
    ctl = binary("tools/argonctl")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # bound, never listening: connection refused
        r = subprocess.run([ctl, "--api", "http://127.0.0.1:%d" % dead, "status"],
                           capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "could not reach the management API" in r.stderr
    import urllib.error
    import urllib.request
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(server.api_url + "/v1/nothing", timeout=10)
    assert e.value.code == 404


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_zero_within_5s(sig):
    ps = PageServer("ps-signal")
    try:
        # Leave a connection open: shutdown must not wait for clients.
        conn = psycopg2.connect(host="127.0.0.1", port=ps.pg_port, user="argon",
                                sslmode="disable", connect_timeout=10)
        status, seconds = ps.signal_and_wait(sig)
        print("%s: exit status %s after %.3f s" % (signal.Signals(sig).name, status, seconds))
        assert status == 0, ps.log()
        assert seconds < 5.0
        assert "shut down cleanly" in ps.log()
        conn.close()
    finally:
        ps.stop()


def test_data_dir_lock():
    with PageServer("ps-lock") as ps:
        r = run_pageserver_once(["--config", ps.config_path])
        assert r.returncode != 0
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, r.stderr
        assert "is in use by another page server (pid %d)" % ps.pid in lines[0]
        assert " FATAL:  " in lines[0]
        # The running server is untouched.
        assert psql(ps.pg_port, "select 1").stdout.strip() == "1"


def _one_error_line(args):
    r = run_pageserver_once(args)
    assert r.returncode != 0
    assert r.stdout == ""
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert " FATAL:  " in lines[0]
    return lines[0]


def test_bad_config_unknown_key(tmp_dir):
    conf = os.path.join(tmp_dir, "bad.conf")
    with open(conf, "w") as f:
        f.write("core_count = 1\nbogus_knob = 3\n")
    line = _one_error_line(["--config", conf, "-D", os.path.join(tmp_dir, "d")])
    assert 'unrecognized configuration parameter "bogus_knob"' in line
    assert "line 2" in line
    line = _one_error_line(["-c", "nope=1", "-D", os.path.join(tmp_dir, "d")])
    assert 'unrecognized configuration parameter "nope"' in line


def test_bad_config_bad_unit(tmp_dir):
    line = _one_error_line(["-c", "core_arena_bytes=64MX", "-D", os.path.join(tmp_dir, "d")])
    assert 'invalid value for parameter "core_arena_bytes": "64MX"' in line
    line = _one_error_line(["-c", "shutdown_timeout_ms=5 fortnights",
                            "-D", os.path.join(tmp_dir, "d")])
    assert "shutdown_timeout_ms" in line


def _config_for(tmp_dir, data_dir):
    return ["-D", data_dir, "-c", "pg_listen_address=127.0.0.1:0",
            "-c", "http_listen_address=127.0.0.1:0", "-c", "core_arena_bytes=16MiB"]


def test_data_dir_not_writable_immutable(tmp_dir):
    # Root ignores permission bits, so make the directory immutable instead.
    data = os.path.join(tmp_dir, "immutable")
    os.mkdir(data)
    if subprocess.run(["chattr", "+i", data], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported on this filesystem")
    try:
        line = _one_error_line(_config_for(tmp_dir, data))
        assert 'data directory "%s" is not writable' % data in line
    finally:
        subprocess.run(["chattr", "-i", data])


def test_data_dir_not_writable_readonly_mount(tmp_dir):
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    data = os.path.join(tmp_dir, "ro")
    os.mkdir(data)
    # A private mount namespace, so the mount vanishes with the command.
    script = ("mount --bind {d} {d} && mount -o remount,bind,ro {d} && exec {b} {a}").format(
        d=data, b=binary("server/argon-pageserver"),
        a=" ".join(_config_for(tmp_dir, data)))
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, timeout=30)
    if "mount" in r.stderr and "FATAL" not in r.stderr:
        pytest.skip("bind mounts are not available here: " + r.stderr.strip())
    assert r.returncode != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert "is not writable: Read-only file system" in lines[0]


def test_port_in_use(tmp_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        for knob in ("pg_listen_address", "http_listen_address"):
            args = _config_for(tmp_dir, os.path.join(tmp_dir, "d")) + [
                "-c", "%s=127.0.0.1:%d" % (knob, port)]
            line = _one_error_line(args)
            assert 'could not listen on "127.0.0.1:%d": Address already in use' % port in line
