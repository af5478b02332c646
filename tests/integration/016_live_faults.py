"""016 — Argon as a streaming standby when things go wrong (issue: live WAL).

Argon attached to a real PostgreSQL 15 primary (harness/live.py), with faults
injected from outside:

- a full disk: Argon's data directory on a small tmpfs (room for layers, not
  for another 16 MiB WAL segment).  Once the primary moves to the next segment,
  Argon cannot create it: the flush position stops, the error says "No space
  left on device", and the primary's synchronous commit waits (SyncRep).  When
  space is freed (tmpfs remounted bigger), streaming and ingest resume by
  themselves, the blocked commit returns, and every commit that returned is on
  Argon's pages (ctid offset, xmin and value).  A full disk while the ingest
  writes its layers (the WAL log still has room): the ingest starts over from
  the durable log until there is room, the WAL keeps being received, and it
  catches up once space is freed.
- another database cluster (a different system identifier): the stream stops
  with both identifiers named; the server keeps answering and serving pages,
  and attaching the right primary again resumes streaming.
- a promoted standby whose timeline 2 forked before Argon's position: the
  timeline stops, naming timeline 2, the fork LSN (equal to the standby's
  00000002.history) and Argon's position.
- the primary gone in the middle of a 1 MB WAL record (a TCP proxy cuts the
  connection after a chosen byte count, half-closed and fully closed): the
  error says the connection closed and, for end-of-file, names the LSN where it
  broke, inside the record; Argon reconnects by itself when it can, catches up
  past the record, and rows committed after it are on its pages.
- two tenants in one page server: one tenant's bad stream stops only that
  tenant; the other keeps streaming (its synchronous commits return, its rows
  are ingested and readable, its connection untouched).
"""

import contextlib
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from harness.live import Live, wait_for
from harness.pg import PgCluster
from harness.workload import lsn_int, lsn_text

MiB = 1 << 20
SEG = 16 * MiB
TENANT2 = "00000000000000000000000000000002"




def current_lsn(pg):
    return lsn_int(pg.sql("select pg_current_wal_lsn()::text")[0][0])


def api_status(live):
    with urllib.request.urlopen(live.ps.api_url + "/v1/status", timeout=30) as r:
        return json.loads(r.read())


def assert_rows_on_argon(live, table, rows):
    """rows: [(value, "(blk,off)", xmin)] committed on the primary; each must be
    on Argon's latest page of table: item off with that xmin and int4 value."""
    rel = live.relfile(table)
    by_block = {}
    for value, ctid, xmin in rows:
        blk, off = (int(x) for x in ctid.strip("()").split(","))
        by_block.setdefault(blk, []).append((off, xmin, value))
    for blk, want in sorted(by_block.items()):
        items = {lp: (x, bytes(data)) for lp, x, _, data in
                 live.heap_items(live.getpage(rel, blk, lsn="latest"))}
        for off, xmin, value in want:
            assert off in items, "row %d: block %d has no item %d on Argon (items %s)" % (
                value, blk, off, sorted(items))
            got_xmin, data = items[off]
            assert (got_xmin, int.from_bytes(data[:4], "little", signed=True)) == \
                (xmin, value), "row %d at (%d,%d): Argon has xmin %d value %r, want xmin %d" % (
                    value, blk, off, got_xmin, data[:4], xmin)


def insert_rows(pg, table, values):
    """Insert values (one commit each); [(value, ctid, xmin)]."""
    out = []
    conn = pg.connect()
    try:
        with conn.cursor() as cur:
            for v in values:
                cur.execute("insert into %s values (%%s) returning ctid::text, "
                            "xmin::text::bigint" % table, (v,))
                ctid, xmin = cur.fetchone()
                out.append((v, ctid, xmin))
    finally:
        conn.close()
    return out


# -- a full disk ---------------------------------------------------------------


class Writer(threading.Thread):
    """Commits in a loop: a marker row in t and about 1 MiB of WAL in pad per
    transaction.  done: [(id, ctid, xmin, lsn after commit)]; in_flight: the id
    whose COMMIT has not returned yet (or None).  After pause_after commits it
    sets paused and waits for go; then it switches to the next WAL segment
    (pg_switch_wal) and goes on."""

    def __init__(self, pg, pause_after):
        super().__init__(daemon=True)
        self.pg = pg
        self.pause_after = pause_after
        self.paused = threading.Event()
        self.go = threading.Event()
        self.stop = threading.Event()
        self.done = []
        self.in_flight = None
        self.pid = None
        self.error = None

    def run(self):
        try:
            conn = self.pg.connect()
            with conn.cursor() as cur:
                cur.execute("select pg_backend_pid()")
                self.pid = cur.fetchone()[0]
                i = 0
                while not self.stop.is_set():
                    if i == self.pause_after:
                        self.paused.set()
                        self.go.wait()
                        cur.execute("select pg_switch_wal()")
                    i += 1
                    cur.execute("begin")
                    cur.execute("insert into t values (%s) returning ctid::text, "
                                "xmin::text::bigint", (i,))
                    ctid, xmin = cur.fetchone()
                    cur.execute("insert into pad select repeat('p', 900) "
                                "from generate_series(1, 1000)")
                    self.in_flight = i
                    cur.execute("commit")
                    cur.execute("select pg_current_wal_insert_lsn()::text")
                    self.done.append((i, ctid, xmin, lsn_int(cur.fetchone()[0])))
                    self.in_flight = None
            conn.close()
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e


@contextlib.contextmanager
def tmpfs(tmp_dir):
    """A 96 MiB tmpfs mounted in tmp_dir (skip when that is not allowed)."""
    mnt = os.path.join(tmp_dir, "mnt")
    os.mkdir(mnt)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", mnt],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip("cannot mount a tmpfs: %s" % (proc.stderr.strip() or proc.returncode))
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", mnt], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", mnt], capture_output=True)


def resize(mnt, room=None, size=None):
    """Remount mnt with room bytes free beyond what is used now (or size bytes)."""
    if room is not None:
        vfs = os.statvfs(mnt)
        size = (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize + room
    subprocess.run(["mount", "-o", "remount,size=%dk" % (size // 1024), mnt], check=True)


def live_on_tmpfs(name, mnt, **kwargs):
    """Layers every 4 MiB; no checkpoint (so no WAL segment trimmed) during the test."""
    live = Live(name, data_dir=os.path.join(mnt, "data"),
                  config={"checkpoint_distance_bytes": "4MiB",
                          "wal_checkpoint_interval_ms": "1h"}, **kwargs)
    live.pg.sql("create table t(id int)")
    live.pg.sql("create table pad(p text)")
    return live


def last_segment(live, mnt):
    """The WAL log's last segment number; it holds the flush position."""
    wal_dir = os.path.join(mnt, "data", "wal", live.tenant, live.tenant)
    segments = sorted(n for n in os.listdir(wal_dir) if not n.endswith(".tmp"))
    st = live.wal()
    assert segments and int(segments[-1][16:], 16) == lsn_int(st["flushed_lsn"]) // SEG, \
        "the last WAL segment holds %s: %s" % (st["flushed_lsn"], segments)
    return int(segments[-1][16:], 16)


def status_and_log(live):
    return "%s\n%s" % (live._wal_or_none(), live.ps.log()[-4000:])


def test_full_disk_stalls_then_resumes(tmp_dir):
    live = writer = None
    with tmpfs(tmp_dir) as mnt:
        try:
            live = live_on_tmpfs("full", mnt)
            pg = live.pg
            live.wait_sync(timeout=60)
            # Room for layers, not for another 16 MiB WAL segment.
            resize(mnt, room=15 * MiB)
            writer = Writer(pg, pause_after=5)
            writer.start()
            wait_for(lambda: writer.paused.is_set() or writer.error, "5 commits")
            assert writer.error is None, writer.error
            # Argon caught up, then the primary moves to the next segment: the
            # ingest is idle while the receiver fails to make that segment (its
            # zero-filling fills the disk for a moment: see the next test).
            live.wait_ingested(current_lsn(pg))
            flushed0 = lsn_int(live.wal()["flushed_lsn"])
            boundary = (last_segment(live, mnt) + 1) * SEG
            writer.go.set()

            def stalled():
                first = live.wal()
                time.sleep(2)
                st = live.wal()
                if writer.error or (first["flushed_lsn"] == st["flushed_lsn"] and
                                    "No space left on device" in st["error"]):
                    return st
                return None
            stuck = wait_for(stalled, "Argon to report a full disk and stop flushing",
                             interval=0, detail=lambda: status_and_log(live))
            assert writer.error is None, writer.error
            flushed = lsn_int(stuck["flushed_lsn"])
            assert flushed0 <= flushed <= boundary, \
                "the flush stops at the segment that could not be made (%s): %s" % (
                    lsn_text(boundary), stuck)
            assert "creating WAL segment" in stuck["error"], stuck
            wait_for(lambda: writer.in_flight is not None, "a commit in flight")
            blocked = writer.in_flight
            # The commit waits for Argon's flush: it must not return while the disk is full.
            time.sleep(5)
            after = live.wal()
            assert after["flushed_lsn"] == stuck["flushed_lsn"], (stuck, after)
            assert after["state"] in ("waiting", "connecting", "streaming"), after
            assert writer.in_flight == blocked and writer.error is None, \
                "commit %r returned while Argon could not flush (%r)" % (blocked, writer.error)
            assert all(d[0] != blocked for d in writer.done)
            assert current_lsn(pg) > flushed, "the primary has WAL Argon has not made durable"
            waits = pg.sql("select wait_event from pg_stat_activity where pid = %s",
                           (writer.pid,))
            assert waits == [("SyncRep",)], waits
            assert live.ps.daemon.alive()
            n_before = len(writer.done)
            assert n_before == 5, writer.done

            # Free space: everything resumes by itself.
            resize(mnt, size=512 * MiB)
            wait_for(lambda: any(d[0] == blocked for d in writer.done) or writer.error,
                     "the blocked commit %d to return" % blocked,
                     detail=lambda: status_and_log(live))
            writer.stop.set()
            writer.join(120)
            assert not writer.is_alive() and writer.error is None, writer.error
            end = current_lsn(pg)
            wait_for(lambda: (lambda s: lsn_int(s["flushed_lsn"]) >= end and
                              lsn_int(s["ingested_lsn"]) >= end)(live.wal()),
                     "flush and ingest to pass %s" % lsn_text(end),
                     detail=lambda: status_and_log(live))
            st = live.wal()
            assert st["state"] == "streaming" and st["error"] == "", st
            assert writer.done[-1][3] <= lsn_int(st["ingested_lsn"])
            assert len(writer.done) > n_before
            assert_rows_on_argon(live, "t",
                                 [(i, ctid, xmin) for i, ctid, xmin, _ in writer.done])
        finally:
            if writer is not None:
                writer.stop.set()
            if live is not None:
                live.close()


def test_full_disk_in_layer_writes(tmp_dir):
    """The WAL log has room (a fresh segment), the layers do not: the ingest must
    wait for space, not stop the timeline, and catch up once there is room."""
    live = None
    with tmpfs(tmp_dir) as mnt:
        try:
            live = live_on_tmpfs("full-layers", mnt, sync=False)
            pg = live.pg
            pg.sql("select pg_switch_wal()")
            rows = insert_rows(pg, "t", [1])
            live.wait_ingested(current_lsn(pg))
            segno = last_segment(live, mnt)
            resize(mnt, room=1 * MiB)
            conn = pg.connect()
            try:
                with conn.cursor() as cur:
                    for i in range(2, 10):
                        cur.execute("insert into pad select repeat('p', 900) "
                                    "from generate_series(1, 1000)")
                        rows += insert_rows(pg, "t", [i])
            finally:
                conn.close()
            end = current_lsn(pg)
            assert end // SEG == segno, "the WAL stays in the segment Argon has"
            live.wait(lambda: "No space left on device" in live.wal()["error"],
                      "Argon to report a full disk")
            time.sleep(2)
            st = live.wal()
            assert st["state"] != "stopped", \
                "a full disk stopped the timeline instead of stalling it: %s" % st
            # The WAL is durable (the segment was made whole); only the ingest waits.
            live.wait(lambda: lsn_int(live.wal()["flushed_lsn"]) >= end, "the flush to go on")
            resize(mnt, size=512 * MiB)
            live.wait_ingested(end)
            st = live.wal()
            assert st["state"] == "streaming" and st["error"] == "", st
            assert_rows_on_argon(live, "t", rows)
        finally:
            if live is not None:
                live.close()


# -- streams Argon must not follow ----------------------------------------------


@pytest.fixture(scope="module")
def stranger():
    """Another freshly initdb'ed primary: another system identifier."""
    pg = PgCluster("stranger", settings={"wal_level": "replica", "max_wal_senders": "4",
                                         "max_replication_slots": "4"})
    yield pg
    pg.stop()


def system_id(pg):
    return str(pg.sql("select system_identifier from pg_control_system()")[0][0])


def test_wrong_system_id(stranger):
    live = Live("sysid", sync=False)
    try:
        live.pg.sql("create table t(id int)")
        rows = insert_rows(live.pg, "t", range(1, 11))
        live.wait_ingested(current_lsn(live.pg))
        ours = live.wal()
        assert ours["state"] == "streaming" and ours["system_id"] == system_id(live.pg), ours
        theirs = system_id(stranger)
        assert theirs != ours["system_id"]

        live.attach(conninfo=stranger.connstr())
        st = live.wait(lambda: (lambda s: s if s["state"] == "stopped" else None)(live.wal()),
                       "the timeline to stop", timeout=60)
        assert "another database cluster" in st["error"], st
        assert theirs in st["error"] and ours["system_id"] in st["error"], st
        assert st["flushed_lsn"] == ours["flushed_lsn"], (ours, st)
        # The server lives on and still serves the timeline's pages.
        assert live.ps.daemon.alive()
        assert api_status(live)["status"] == "ok"
        assert_rows_on_argon(live, "t", rows)
        assert "another database cluster" in live.ps.log()
        # Only the stream stopped: attaching the right primary again resumes it.
        live.attach(conninfo=live.pg.connstr())
        live.wait(lambda: live.wal()["state"] == "streaming", "streaming again")
        more = insert_rows(live.pg, "t", range(11, 21))
        live.wait_ingested(current_lsn(live.pg))
        assert live.wal()["error"] == ""
        assert_rows_on_argon(live, "t", rows + more)
    finally:
        live.close()


def test_timeline_fork_before_argons_position():
    live = Live("fork", sync=False)
    standby = None
    try:
        pg = live.pg
        pg.sql("create table t(id int)")
        standby = PgCluster.standby_of(pg, "fork-standby")
        insert_rows(pg, "t", range(1, 101))
        replayed_to = current_lsn(pg)
        wait_for(lambda: lsn_int(standby.sql("select pg_last_wal_replay_lsn()::text")[0][0])
                 >= replayed_to, "the standby to replay %s" % lsn_text(replayed_to))
        standby.stop(keep_dir=True)
        auto = os.path.join(standby.data_dir, "postgresql.auto.conf")
        with open(auto) as f:
            kept = [ln for ln in f if not ln.lstrip().startswith("primary_conninfo")]
        with open(auto, "w") as f:
            f.writelines(kept)
        # Timeline 1 goes on without the standby (well past a WAL page); Argon follows it.
        pg.sql("insert into t select generate_series(101, 3000)")
        ahead = current_lsn(pg)
        live.wait_ingested(ahead)
        ours = live.wal()

        standby.start()
        assert standby.sql("select pg_promote()") == [(True,)]
        wait_for(lambda: standby.sql("select pg_is_in_recovery()") == [(False,)],
                 "the standby to be promoted")
        history = standby.sql("select pg_read_file('pg_wal/00000002.history')")[0][0]
        m = re.match(r"1\t([0-9A-F]+/[0-9A-F]+)\t", history)
        assert m, history
        fork = lsn_int(m.group(1))
        assert replayed_to <= fork < ahead, (lsn_text(replayed_to), history, lsn_text(ahead))

        live.attach(conninfo=standby.connstr())
        st = live.wait(lambda: (lambda s: s if s["state"] == "stopped" else None)(live.wal()),
                       "the timeline to stop", timeout=60)
        m = re.search(r"timeline 2 forked from timeline 1 at ([0-9A-F]+/[0-9A-F]+), before "
                      r"Argon's position ([0-9A-F]+/[0-9A-F]+)", st["error"])
        assert m, st
        assert lsn_int(m.group(1)) == fork, (history, st["error"])
        position = lsn_int(m.group(2))
        flushed = lsn_int(ours["flushed_lsn"])
        # Argon's position: what its log holds durably.
        assert position == flushed and fork < position, (ours, st)
        assert st["flushed_lsn"] == ours["flushed_lsn"] and st["pg_timeline"] == 1, st
        assert live.ps.daemon.alive() and api_status(live)["status"] == "ok"
    finally:
        if standby is not None:
            standby.stop()
        live.close()


# -- the primary gone mid-record ------------------------------------------------


class _Pair:
    def __init__(self, client, upstream):
        self.client, self.upstream = client, upstream
        self.cut = False


def _shut(*socks):
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


class CuttingProxy:
    """A TCP proxy 127.0.0.1:port -> 127.0.0.1:upstream_port, both directions.

    cut_after(n, half): the connection carrying the next n bytes from the
    upstream loses its upstream right after them: the upstream socket is closed
    (the walsender goes away) and the client gets end-of-file.  half=False:
    the client's socket is closed as well (its later sends fail, as when a
    primary's process dies); half=True: only its receiving side ends (a FIN),
    what the client still sends is read and dropped until it closes.  From the
    cut on, new connections are held (accepted, never answered) until
    release() closes them and forwards again."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.lock = threading.Lock()
        self.budget = None
        self.half = False
        self.holding = False
        self.held = []
        self.pairs = []
        self.accepted = 0
        self.cut = threading.Event()
        self.closed = False
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def conninfo(self):
        return "host=127.0.0.1 port=%d user=postgres dbname=postgres" % self.port

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                if self.holding:
                    self.held.append(client)
                    continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), 10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            pair = _Pair(client, upstream)
            with self.lock:
                self.pairs.append(pair)
            threading.Thread(target=self._down, args=(pair,), daemon=True).start()
            threading.Thread(target=self._up, args=(pair,), daemon=True).start()

    def _down(self, pair):
        """upstream -> client, with the cut."""
        try:
            while True:
                data = pair.upstream.recv(65536)
                if not data:
                    break
                cut = False
                with self.lock:
                    if self.budget is not None:
                        if len(data) >= self.budget:
                            data, cut = data[:self.budget], True
                            self.budget = None
                            self.holding = True
                            pair.cut = True
                        else:
                            self.budget -= len(data)
                if data:
                    pair.client.sendall(data)
                if cut:
                    if self.half:
                        _shut(pair.upstream)
                        pair.client.shutdown(socket.SHUT_WR)
                        self.cut.set()
                        return
                    break
        except OSError:
            pass
        _shut(pair.upstream, pair.client)
        if pair.cut:
            self.cut.set()

    def _up(self, pair):
        """client -> upstream; after a half cut, read and dropped."""
        try:
            while True:
                data = pair.client.recv(65536)
                if not data:
                    break
                if pair.cut:
                    continue
                try:
                    pair.upstream.sendall(data)
                except OSError:
                    if not pair.cut:
                        break
        except OSError:
            pass
        _shut(pair.upstream, pair.client)

    def cut_after(self, n, half):
        with self.lock:
            self.cut.clear()
            self.half = half
            self.budget = n

    def release(self):
        with self.lock:
            self.holding = False
            held, self.held = self.held, []
        for s in held:
            s.close()

    def close(self):
        self.closed = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self.release()
        with self.lock:
            pairs = list(self.pairs)
        for pair in pairs:
            _shut(pair.upstream, pair.client)


def big_record(pg):
    """A 1 MB non-transactional logical message (about 128 WAL pages):
    (an LSN at or before its start, its end)."""
    conn = pg.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("select pg_current_wal_insert_lsn()::text")
            start = lsn_int(cur.fetchone()[0])
            cur.execute("select pg_logical_emit_message(false, 'argon', "
                        "repeat('x', 1000000))::text")
            return start, lsn_int(cur.fetchone()[0])
    finally:
        conn.close()


BROKE_AT = r"the connection to the primary broke at ([0-9A-F]+/[0-9A-F]+)"


def test_primary_gone_mid_record():
    live = Live("cut", sync=False, attach=False)
    proxy = None
    try:
        pg = live.pg
        pg.sql("create table t(id int)")
        proxy = CuttingProxy(pg.port)
        live.attach(conninfo=proxy.conninfo())
        live.wait(lambda: live.wal()["state"] == "streaming", "streaming through the proxy")
        live.wait_ingested(current_lsn(pg))
        rows = []
        for half in (True, False):
            connects = live.wal()["connects"]
            # The cut comes 400 kB into the 1 MB record.
            proxy.cut_after(400 * 1000, half)
            rec_start, rec_end = big_record(pg)
            assert proxy.cut.wait(60), "the proxy never forwarded 400 kB"
            st = live.wait(lambda: (lambda s: s if s["error"] else None)(live.wal()),
                           "the broken connection to be reported", timeout=30)
            assert st["state"] in ("waiting", "connecting"), st
            assert "server closed the connection unexpectedly" in st["error"], st
            assert rec_start < lsn_int(st["flushed_lsn"]) < rec_end, \
                "the cut is not inside the record %s..%s: %s" % (
                    lsn_text(rec_start), lsn_text(rec_end), st)
            assert lsn_int(st["ingested_lsn"]) < rec_start + 8192, st
            m = re.search(BROKE_AT, st["error"])
            if half:
                # Only end-of-file, no failed send: the error names where it broke.
                assert m, st
            if m:
                broke = lsn_int(m.group(1))
                assert rec_start < broke < rec_end and broke >= lsn_int(st["flushed_lsn"]), st
                assert m.group(0) in live.ps.log()
            # It keeps trying: the proxy holds its next attempt.
            wait_for(lambda: proxy.held, "Argon to try again")
            assert live.wal()["state"] == "connecting"
            assert live.ps.daemon.alive() and api_status(live)["status"] == "ok"

            proxy.release()
            live.wait_ingested(rec_end, timeout=120)
            rows += insert_rows(pg, "t", [len(rows) + 1, len(rows) + 2, len(rows) + 3])
            live.wait_ingested(current_lsn(pg))
            st = live.wal()
            assert st["state"] == "streaming" and st["error"] == "", st
            assert st["connects"] >= connects + 2, (connects, st)
            assert_rows_on_argon(live, "t", rows)
    finally:
        if proxy is not None:
            proxy.close()
        live.close()


# -- one bad stream among several -------------------------------------------------


def test_bad_stream_stops_only_its_timeline(stranger):
    first = Live("two-a")  # synchronous: its commits return only once Argon flushed them
    second = None
    try:
        first.pg.sql("create table t(id int)")
        second = Live("two-b", tenant=TENANT2, server_of=first, sync=False)
        first.wait_sync(timeout=60)
        before = insert_rows(first.pg, "t", range(1, 6))
        first.wait_ingested(current_lsn(first.pg))
        second.wait(lambda: second.wal()["state"] == "streaming", "tenant 2 streaming")
        connects = first.wal()["connects"]

        second.attach(conninfo=stranger.connstr())
        st2 = second.wait(
            lambda: (lambda s: s if s["state"] == "stopped" else None)(second.wal()),
            "tenant 2 to stop", timeout=60)
        assert "another database cluster" in st2["error"], st2

        after = insert_rows(first.pg, "t", range(6, 206))
        first.wait_ingested(current_lsn(first.pg))
        st1 = first.wal()
        assert st1["state"] == "streaming" and st1["error"] == "", st1
        assert st1["connects"] == connects, "tenant 1's connection was disturbed: %s" % st1
        assert first.sync_state() == "sync"
        assert_rows_on_argon(first, "t", before + after)
        st2b = second.wal()
        assert st2b["state"] == "stopped" and st2b["error"] == st2["error"], st2b
        assert first.ps.daemon.alive() and api_status(first)["status"] == "ok"
    finally:
        if second is not None:
            second.close()
        first.close()
