"""019: the compute's page-read client library (compute/pageclient.c), driven
by its command-line user argon-pageget (compute/pageget.c) against a real
argon-pageserver.

A real PostgreSQL 15 primary runs the scaled-down whole-cluster workload
(as 017), Argon imports its base backup and WAL, and argon-pageserver serves
the tenant.  argon-pageget connects through libpq, starts `pagestream_v2|v3`,
and reads a few hundred relation forks (Nblocks, then every block): every
page must equal the offline export's byte for byte.

- Pipelined (apc_send/apc_wait as deep as the window), v3 and v2, with
  windows of 1, 32 (default) and 128 requests.
- Prefetching (apc_prefetch of the next 16 blocks, then apc_get_page): the
  prefetched answers are taken (prefetch hits > 0).
- Exists, DbSize and GetSlruSegment against the standby's files and the
  hand-built client of harness/pagestream.py.
- A tenant of 2 shards (argonctl --shard N/2, when the build has it): GetPage
  routed by Neon's hash to the shard owning the block, every other request to
  shard 0; a misrouted GetPage would be refused by the server.
- Failures: an unknown tenant, a shard the tenant does not have and a closed
  port give the server's (or libpq's) text naming the shard and exit 1; a
  connection cut mid-stream (a proxy resets it) fails the read with a clear
  message, and with --retries the library reconnects and the pages are still
  right; a server that stops answering (the proxy stalls) fails by the client's
  timeout; a server killed or stopped mid-run ends the tool with an error, not
  a hang.
"""

import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from harness import argon_import as ai
from harness import pagestream as ps
from harness import pageserver as psrv
from harness import workload as wl
from harness.pageserver import PageServer

TENANT = "00000000000000000000000000000001"
TIMELINE = TENANT
RELATIONS = 300


@pytest.fixture(scope="module")
def imported():
    result, datadir, out = ai.small_imported("pageclient")
    yield result, datadir, out
    result.cleanup()


@pytest.fixture(scope="module")
def served(imported):
    _, datadir, _ = imported
    with PageServer("pageclient", config={"data_dir": datadir}) as srv:
        yield srv
        assert srv.daemon.alive()


def file_bytes(paths):
    return b"".join(open(p, "rb").read() for p in paths)


def sample(exported, count=RELATIONS):
    """The 20 biggest relation forks and others spread over the sorted list."""
    rels = sorted(exported)
    big = sorted(rels, key=lambda r: -sum(os.path.getsize(p) for p in exported[r]))[:20]
    rest = [r for r in rels if r not in big]
    step = max(1, len(rest) // (count - len(big)))
    return sorted(big + rest[::step][:count - len(big)])


def pageget_args(conns, out_dir, lsn, rels=(), extra=(), tenant=TENANT):
    args = [psrv.binary("compute/argon-pageget")]
    for c in conns:
        args += ["--conn", c]
    args += ["--tenant", tenant, "--timeline", TIMELINE, "--lsn", str(lsn), "--out", out_dir]
    for r in rels:
        args += ["--rel", "%d/%d/%d/%d" % r]
    return args + list(extra)


def conninfo(port):
    return "host=127.0.0.1 port=%d user=argon sslmode=disable" % port


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")


def run_pageget(conns, out_dir, lsn, rels=(), extra=(), tenant=TENANT, timeout=600):
    os.makedirs(out_dir, exist_ok=True)
    p = subprocess.run(pageget_args(conns, out_dir, lsn, rels, extra, tenant),
                       capture_output=True, text=True, timeout=timeout)
    assert not any(m in p.stderr for m in SANITIZER_MARKERS), p.stderr
    return p


def summary(proc):
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines and "relations" in lines[-1], proc.stdout
    return lines[-1]


def check_pages(out_dir, rels, exported):
    blocks = 0
    for rel in rels:
        path = os.path.join(out_dir, "%d_%d_%d_%d" % rel)
        with open(path, "rb") as f:
            got = f.read()
        want = file_bytes(exported[rel])
        assert len(got) == len(want), "%s: %d bytes over the wire, %d exported" % (
            rel, len(got), len(want))
        assert got == want, "%s differs from the export" % (rel,)
        blocks += len(got) // ps.PAGE
    return blocks


def read_and_check(srv, imported, tmp_path, extra, conns=None):
    result, _, export_dir = imported
    exported = ps.relation_files(export_dir)
    rels = sample(exported)
    out = str(tmp_path / "out")
    began = time.monotonic()
    p = run_pageget(conns or [conninfo(srv.pg_port)], out, wl.lsn_int(result.end_lsn),
                    rels, extra)
    assert p.returncode == 0, p.stderr
    s = summary(p)
    blocks = check_pages(out, rels, exported)
    assert s["relations"] == len(rels) and s["blocks"] == blocks, s
    assert s["errors"] == 0 and s["sent"] == s["received"], s
    print("argon-pageget %s: %d relation forks, %d blocks in %.2f s: %s" % (
        " ".join(extra) or "(defaults)", len(rels), blocks, time.monotonic() - began, s))
    return s


@pytest.mark.parametrize("extra", [[], ["--v2"], ["--window", "1"], ["--window", "128"],
                                   ["--v2", "--window", "128"]],
                         ids=["v3-window32", "v2", "window1", "window128", "v2-window128"])
def test_pipelined_reads_equal_the_export(imported, served, tmp_path, extra):
    if "128" in extra:
        # Past the server's own window (32): a lost answer fails in 20 s, not 150.
        extra = extra + ["--timeout-ms", "20000"]
    s = read_and_check(served, imported, tmp_path, extra)
    assert s["sent"] == s["relations"] + s["blocks"], s
    assert s["prefetch_hits"] == 0 and s["reconnects"] == 0, s


@pytest.mark.parametrize("extra", [["--prefetch"], ["--prefetch", "--v2", "--window", "8"]],
                         ids=["v3", "v2-window8"])
def test_prefetch_reads_equal_the_export(imported, served, tmp_path, extra):
    s = read_and_check(served, imported, tmp_path, extra)
    assert s["prefetch_hits"] > 0, s
    # Every block but each relation's first is prefetched: prefetches keep a slot
    # free for the read, so none is given up to make room.
    assert s["prefetch_hits"] + s["prefetch_misses"] == s["blocks"], s
    assert s["prefetch_misses"] <= s["relations"] and s["prefetch_discarded"] == 0, s


def test_exists_dbsize_slru(imported, served, tmp_path):
    result, _, export_dir = imported
    lsn = wl.lsn_int(result.end_lsn)
    rels = ps.relation_files(export_dir)
    some = sorted(rels)[len(rels) // 2]
    db = result.databases["postgres"]
    out = str(tmp_path / "out")
    p = run_pageget([conninfo(served.pg_port)], out, lsn, extra=[
        "--exists", "%d/%d/%d/%d" % some, "--exists", "1663/%d/4000000000/0" % some[1],
        "--dbsize", str(db), "--slru", "0/0"])
    assert p.returncode == 0, p.stderr
    lines = [json.loads(line) for line in p.stdout.splitlines()]
    assert lines[0]["exists"]["value"] is True and lines[1]["exists"]["value"] is False, lines
    # DbSize and the clog segment as the hand-built client reads them.
    c = ps.Conn(served.pg_port)
    c.pagestream(3, TENANT, TIMELINE)
    want = c.call(ps.request(3, ps.DBSIZE, lsn, dbnode=db))["value"]
    assert lines[2]["dbsize"] == {"db": db, "bytes": want}, lines
    slru = c.call(ps.request(3, ps.GETSLRU, lsn, kind=0, segno=0))["value"]
    c.close()
    with open(os.path.join(out, "slru_0_0"), "rb") as f:
        got = f.read()
    assert lines[3]["slru"]["pages"] == len(got) // ps.PAGE >= 1
    assert got == slru
    with open(os.path.join(result.standby_dir, "pg_xact", "0000"), "rb") as f:
        assert got == f.read()[:len(got)]


def test_two_shards_routed_by_key(imported, tmp_path):
    result, _, export_dir = imported
    datadir = os.path.join(result.work_dir, "argon-2shards")
    if not os.path.isdir(datadir):
        ai.import_shards(result, datadir, 2)
    exported = ps.relation_files(export_dir)
    per_shard = [0, 0]
    for rel in sample(exported):
        for b in range(len(file_bytes(exported[rel])) // ps.PAGE):
            per_shard[ps.shard_of(2, rel, b)] += 1
    assert min(per_shard) > 100, per_shard
    with PageServer("pageclient2", config={"data_dir": datadir}) as srv:
        conns = [conninfo(srv.pg_port)] * 2
        for extra in ([], ["--prefetch"], ["--v2", "--window", "1"]):
            s = read_and_check(srv, imported, tmp_path / ("x%d" % len(extra)), extra, conns)
        out = str(tmp_path / "small")
        p = run_pageget(conns, out, wl.lsn_int(result.end_lsn),
                        extra=["--dbsize", str(result.databases["postgres"]), "--slru", "0/0"])
        assert p.returncode == 0, p.stderr
    print("2 shards: %d + %d blocks of the sample; %s" % (per_shard[0], per_shard[1], s))


def test_refusals_name_the_shard(imported, served, tmp_path):
    result, _, export_dir = imported
    lsn = wl.lsn_int(result.end_lsn)
    rel = sample(ps.relation_files(export_dir))[0]
    out = str(tmp_path / "out")
    p = run_pageget([conninfo(served.pg_port)], out, lsn, [rel],
                    tenant="00000000000000000000000000000002")
    assert p.returncode == 1, p
    assert "shard 0 at 127.0.0.1:%d" % served.pg_port in p.stderr, p.stderr
    assert "Tenant 00000000000000000000000000000002 not found" in p.stderr, p.stderr
    # 2 shards of a tenant that has one: shard 0 (connected first) is refused.
    p = run_pageget([conninfo(served.pg_port)] * 2, out, lsn, [rel])
    assert p.returncode == 1, p
    assert "shard 0 at" in p.stderr and TENANT + "-0002" in p.stderr, p.stderr
    assert "does not exist" in p.stderr, p.stderr
    # Nobody listening.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    began = time.monotonic()
    p = run_pageget([conninfo(port)], out, lsn, [rel])
    assert p.returncode == 1 and "shard 0" in p.stderr, p
    assert "Connection refused" in p.stderr or "could not connect" in p.stderr, p.stderr
    assert time.monotonic() - began < 30
    # A request the server answers with an Error: that request fails, with its text.
    p = run_pageget([conninfo(served.pg_port)], out, 0x100, [rel])
    assert p.returncode == 1 and "Nblocks" in p.stderr, p
    assert "below the base backup" in p.stderr or "invalid" in p.stderr, p.stderr


class Proxy:
    """A loopback TCP proxy to the page server that misbehaves on its first
    connection once `after` bytes came from the server: "cut" resets both
    sockets; "stall" stops forwarding but keeps them open.  Later connections
    pass through."""

    def __init__(self, port, after, mode):
        self.target, self.after, self.mode = port, after, mode
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.misbehaved = False
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self.target))
            t = threading.Thread(target=self._pump, daemon=True,
                                 args=(client, upstream, self.connections == 1))
            self.threads.append(t)
            t.start()

    @staticmethod
    def _reset(*socks):
        for s in socks:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()

    def _pump(self, client, upstream, first):
        budget = self.after if first else None
        stalled = False
        while not self.stop.is_set():
            ready, _, _ = select.select([client] + ([] if stalled else [upstream]), [], [], 0.1)
            for s in ready:
                data = s.recv(1 << 16)
                if not data:
                    self._reset(client, upstream)
                    return
                if s is client:
                    if not stalled:
                        upstream.sendall(data)
                    continue
                if budget is not None and len(data) >= budget:
                    client.sendall(data[:budget])
                    self.misbehaved = True
                    if self.mode == "cut":
                        self._reset(client, upstream)
                        return
                    stalled = True
                    continue
                if budget is not None:
                    budget -= len(data)
                client.sendall(data)
        self._reset(client, upstream)

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(5)
        self.listener.close()


@pytest.mark.parametrize("extra", [[], ["--prefetch"]], ids=["pipelined", "prefetch"])
def test_connection_cut_mid_stream(imported, served, tmp_path, extra):
    result, _, export_dir = imported
    lsn = wl.lsn_int(result.end_lsn)
    exported = ps.relation_files(export_dir)
    rels = sample(exported)
    # Without retries: the read fails with what libpq saw, naming the shard.  (With
    # prefetch the cut may fall on a prefetched answer instead: that read is sent
    # again on a new connection, and the run succeeds.)
    proxy = Proxy(served.pg_port, 3 << 20, "cut")
    try:
        out = str(tmp_path / "a")
        p = run_pageget([conninfo(proxy.port)], out, lsn, rels, extra)
    finally:
        proxy.close()
    assert proxy.misbehaved
    if p.returncode == 0 and "--prefetch" in extra:
        s = summary(p)
        assert s["reconnects"] == 1 and s["prefetch_discarded"] > 0, s
        assert s["blocks"] == check_pages(out, rels, exported)
    else:
        assert p.returncode == 1, p
        assert "shard 0 at 127.0.0.1:%d: connection lost" % proxy.port in p.stderr, p.stderr
    # With retries: the library reconnects on the next request; every page right.
    proxy = Proxy(served.pg_port, 3 << 20, "cut")
    try:
        out = str(tmp_path / "b")
        p = run_pageget([conninfo(proxy.port)], out, lsn, rels, extra + ["--retries", "2"])
    finally:
        proxy.close()
    assert p.returncode == 0, p.stderr
    s = summary(p)
    assert s["reconnects"] == 1 and proxy.connections == 2, s
    assert s["blocks"] == check_pages(out, rels, exported)
    print("cut after 3 MiB (%s): %s; %s" % (" ".join(extra), s, p.stderr.strip()))


def test_stalled_server_times_out(imported, served, tmp_path):
    result, _, export_dir = imported
    rels = sample(ps.relation_files(export_dir))
    proxy = Proxy(served.pg_port, 1 << 20, "stall")
    began = time.monotonic()
    try:
        p = run_pageget([conninfo(proxy.port)], str(tmp_path / "out"),
                        wl.lsn_int(result.end_lsn), rels, ["--timeout-ms", "1500"],
                        timeout=60)
    finally:
        proxy.close()
    took = time.monotonic() - began
    assert proxy.misbehaved
    assert p.returncode == 1, p
    assert "within 1500 ms; connection dropped" in p.stderr, p.stderr
    assert took < 30, took


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "stop"])
def test_server_gone_mid_run(imported, tmp_path, sig):
    result, datadir, export_dir = imported
    rels = sample(ps.relation_files(export_dir))
    out = str(tmp_path / "out")
    os.makedirs(out)
    # A server of its own (a data directory serves one server at a time).
    own = os.path.join(result.work_dir, "argon-gone-%s" % sig.name)
    shutil.rmtree(own, ignore_errors=True)
    shutil.copytree(datadir, own)
    with PageServer("pageclient-gone", config={"data_dir": own}) as srv:
        # One request at a time over the sample, many times over: a long run.
        tool = subprocess.Popen(
            pageget_args([conninfo(srv.pg_port)], out, wl.lsn_int(result.end_lsn),
                         rels * 20, ["--window", "1"]),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while len(os.listdir(out)) < 5 and time.monotonic() < deadline:
                assert tool.poll() is None, tool.communicate()
                time.sleep(0.05)
            srv.daemon.popen.send_signal(sig)
            began = time.monotonic()
            _, stderr = tool.communicate(timeout=60)
            assert not any(m in stderr for m in SANITIZER_MARKERS), stderr
            took = time.monotonic() - began
        finally:
            if tool.poll() is None:
                tool.kill()
                tool.wait()
        assert tool.returncode == 1, stderr
        assert "shard 0 at 127.0.0.1:%d" % srv.pg_port in stderr, stderr
        assert "connection lost" in stderr or "could not connect" in stderr \
            or "refused" in stderr, stderr
        assert took < 20, took
        print("server %s mid-run: the tool ended in %.2f s: %s" % (
            sig.name, took, stderr.strip()))
