"""015: Argon as a synchronous standby of a stock PostgreSQL 15 primary.

- Attached to a primary that names it in synchronous_standby_names, Argon
  shows in pg_stat_replication as `sync` within a second.
- No acknowledged commit is lost: while pgbench runs with synchronous
  replication, a client records (id, ctid, xid) of each commit that returned
  OK.  Argon is killed with SIGKILL at random moments (10 cycles).  After each
  restart, before it reconnects (started with wal_receive = 0: it only replays
  its durable WAL log), every recorded commit's commit-record end LSN (from
  pg_waldump on the primary) is at or below Argon's flush position, the row
  is on Argon's page (decoded by heap_page_items on the real PostgreSQL) with
  the commit's xid as xmin, and the xid's clog bits on Argon's clog page say
  committed (as pg_xact_status does on the primary).
- Catch-up through the slot: with Argon stopped, a writer with
  synchronous_commit = local writes twice max_wal_size and checkpoints; the
  slot keeps the WAL; Argon restarts and catches up with no gap; at the end
  its export equals a stock standby's data directory (argon-oracle, with
  PostgreSQL's masks), with small layers so flushes and compaction ran live.
"""

import json
import os
import random
import re
import signal
import subprocess
import threading
import time

import psycopg2
import pytest

from harness import oracle
from harness.argonctl import argonctl, last_json, walredo_binary, walredo_missing
from harness.live import Live
from harness.pg import PgCluster
from harness.workload import lsn_int, lsn_text, segment_name

CYCLES = 10
CLOG_XACTS_PER_PAGE = 8192 * 4
SLRU_PAGES_PER_SEGMENT = 32
_COMMIT = re.compile(r"rmgr: Transaction\s+len \(rec/tot\):\s+\d+/\s*(\d+), tx:\s+(\d+), "
                     r"lsn: ([0-9A-F]+/[0-9A-F]+), prev [0-9A-F/]+, desc: COMMIT")


def need_redo():
    if walredo_binary() is None:
        pytest.skip(walredo_missing())


def record_end(start, tot_len, seg_bytes=16 << 20):
    """A record's end LSN (MAXALIGNed, as the primary's XLogFlush asks for):
    tot_len bytes from start, page headers skipped."""
    pos, left = start, tot_len
    while left > 0:
        page_end = (pos // 8192 + 1) * 8192
        take = min(page_end - pos, left)
        pos += take
        left -= take
        if left > 0:
            pos = page_end + (40 if page_end % seg_bytes == 0 else 24)
    return (pos + 7) & ~7


class CommitEnds:
    """xid -> commit record end LSN, from pg_waldump on the primary's pg_wal
    (a slot of the test keeps every segment), scanned incrementally."""

    def __init__(self, pg, start):
        self.pg = pg
        self.scanned = start
        self.ends = {}

    def scan(self):
        upto = lsn_int(self.pg.sql("select pg_current_wal_flush_lsn()::text")[0][0])
        begin = self.scanned
        if upto <= begin:
            return
        # The start and end segments are named: given only the directory,
        # pg_waldump takes the segment size from whichever file it lists
        # first, which may be a segment the primary has just created, its
        # header still zeros ("header specifies 0 bytes").
        proc = subprocess.run([os.path.join(self.pg.bin_dir, "pg_waldump"), "-p",
                               os.path.join(self.pg.data_dir, "pg_wal"), "-r", "Transaction",
                               "-s", lsn_text(begin), "-e", lsn_text(upto),
                               segment_name(begin), segment_name(upto - 1)],
                              capture_output=True, text=True, timeout=300)
        # Stopping at -e is not an error: a failure is, and is said.
        assert proc.returncode == 0, "pg_waldump -s %s -e %s exited %d: %s" % (
            lsn_text(begin), lsn_text(upto), proc.returncode, proc.stderr.strip()[-300:])
        last = None
        for m in _COMMIT.finditer(proc.stdout):
            self.ends[int(m[2])] = record_end(lsn_int(m[3]), int(m[1]))
            last = lsn_int(m[3])
        # The next scan starts at the last commit found: a record start.  Not at
        # upto: the flush position may fall inside a record (the WAL writer
        # flushes whole pages), which this scan could not read to its end and a
        # scan starting there would skip.
        if last is not None:
            self.scanned = last


class Recorder(threading.Thread):
    """Commits one row at a time; records (id, ctid, xid) of each commit that
    returned OK."""

    def __init__(self, pg):
        super().__init__(daemon=True)
        self.pg = pg
        self.done = []
        self.lock = threading.Lock()
        self.stopping = False
        self.error = None

    def run(self):
        conn = self.pg.connect()
        try:
            with conn.cursor() as cur:
                i = 0
                while not self.stopping:
                    i += 1
                    cur.execute("insert into rec values (%s, repeat('r', 300)) "
                                "returning ctid::text, txid_current()", (i,))
                    ctid, xid = cur.fetchone()
                    with self.lock:
                        self.done.append((i, ctid, xid))
        except psycopg2.Error as e:
            self.error = e
        finally:
            conn.close()

    def snapshot(self):
        with self.lock:
            return list(self.done)


def clog_status(page, xid):
    byte = page[(xid % CLOG_XACTS_PER_PAGE) // 4]
    return (byte >> ((xid % 4) * 2)) & 3


def check_acknowledged(live, rec, ends, snapshot):
    """Every recorded commit: durable in Argon's log, its row on Argon's page,
    its clog bits committed."""
    w = live.wal()
    flushed = lsn_int(w["flushed_lsn"])
    ends.scan()
    missing = [xid for _, _, xid in snapshot if xid not in ends.ends]
    assert not missing, "no commit record found by pg_waldump for xids %s" % missing[:10]
    late = [(i, xid, lsn_text(ends.ends[xid])) for i, _, xid in snapshot
            if ends.ends[xid] > flushed]
    assert not late, "acknowledged commits above Argon's flush position %s: %s" % (
        w["flushed_lsn"], late[:10])
    by_block = {}
    for i, ctid, xid in snapshot:
        blk, off = (int(x) for x in ctid.strip("()").split(","))
        by_block.setdefault(blk, []).append((off, xid, i))
    for blk, rows in sorted(by_block.items()):
        items = {(lp, xmin) for lp, xmin, _, _ in live.heap_items(live.getpage(rec, blk))}
        lost = [(i, off, xid) for off, xid, i in rows if (off, xid) not in items]
        assert not lost, "rows of acknowledged commits missing on Argon's block %d: %s" % (
            blk, lost[:10])
    pages = {}
    for _, _, xid in snapshot:
        page_no = xid // CLOG_XACTS_PER_PAGE
        if page_no not in pages:
            out = os.path.join(live.ps.dir, "clog.bin")
            live.ctl("getslru", "--lsn", "latest", "clog",
                     str(page_no // SLRU_PAGES_PER_SEGMENT),
                     str(page_no % SLRU_PAGES_PER_SEGMENT), out)
            with open(out, "rb") as f:
                pages[page_no] = f.read()
        status = clog_status(pages[page_no], xid)
        assert status == 1, "xid %d's clog bits on Argon are %d, not committed" % (xid, status)
    sample = [xid for _, _, xid in snapshot[-20:]]
    if sample:
        states = live.pg.sql("select distinct pg_xact_status(x::text::xid8) from unnest(%s) x",
                             (sample,))
        assert states == [("committed",)], states
    return flushed, len(by_block)


def start_pgbench(pg, seconds=3600):
    return subprocess.Popen([os.path.join(pg.bin_dir, "pgbench"), "-h", pg.host, "-p",
                             str(pg.port), "-U", "postgres", "-n", "-c", "2", "-j", "1", "-T",
                             str(seconds), "postgres"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def pgbench_init(pg, scale):
    subprocess.run([os.path.join(pg.bin_dir, "pgbench"), "-h", pg.host, "-p", str(pg.port),
                    "-U", "postgres", "-i", "-q", "-s", str(scale), "postgres"],
                   check=True, capture_output=True, timeout=600)


def test_sync_within_a_second():
    live = Live("live-sync", attach=False)
    try:
        began = time.monotonic()
        live.attach()
        live.wait_sync(timeout=30)
        took = time.monotonic() - began
        print("015: Argon is a sync standby %.3f s after attach" % took)
        assert took < 1.0, "Argon became sync only after %.3f s" % took
        live.pg.sql("create table t (a int)")
        for i in range(50):
            live.pg.sql("insert into t values (%s)", (i,))
        w = live.wal()
        assert w["state"] == "streaming" and w["error"] == "", w
        row = live.pg.sql("select flush_lsn::text, replay_lsn::text from pg_stat_replication "
                          "where application_name = %s", (live.app,))[0]
        assert lsn_int(row[0]) >= lsn_int(live.pg.sql("select pg_current_wal_flush_lsn()::text")[0][0]) - 8192 * 4
        assert lsn_int(row[1]) > 0, "apply (= ingested) is reported"
    finally:
        live.close()


def test_kill9_no_acknowledged_commit_lost():
    need_redo()
    seed = int(os.environ.get("ARGON_TEST_SEED", time.time()))
    rng = random.Random(seed)
    print("015: seed %d" % seed)
    live = Live("live-kill", config={"checkpoint_distance_bytes": "8MiB",
                                     "wal_checkpoint_interval_ms": "2s"})
    pgbench = None
    recorder = None
    try:
        pg = live.pg
        pg.sql("select pg_create_physical_replication_slot('test_keep', true)")
        start = pg.sql("select restart_lsn::text from pg_replication_slots "
                       "where slot_name = 'test_keep'")[0][0]
        ends = CommitEnds(pg, lsn_int(start))
        live.wait_sync()
        pg.sql("create table rec (id int primary key, pad text)")
        pg.sql("create extension pageinspect")
        pgbench_init(pg, 2)
        rec = live.relfile("rec")
        pgbench = start_pgbench(pg)
        recorder = Recorder(pg)
        recorder.start()
        last_count = 0
        for cycle in range(CYCLES):
            # Commits go on again (the one blocked over the last kill included).
            live.wait(lambda: len(recorder.snapshot()) > last_count + 1,
                      "commits to resume (cycle %d)" % cycle, 120)
            time.sleep(rng.uniform(0.1, 1.5))
            live.kill9()
            time.sleep(0.3)  # commits acknowledged before the kill finish returning
            snapshot = recorder.snapshot()
            assert len(snapshot) > last_count, "no commit between kills (cycle %d)" % cycle
            last_count = len(snapshot)
            live.start(receive=False)
            live.wait(lambda: live.wal()["state"] == "idle", "the durable log's replay", 120)
            flushed, blocks = check_acknowledged(live, rec, ends, snapshot)
            print("015: cycle %d: %d acknowledged commits on %d blocks, all at or below "
                  "Argon's flush position %s" % (cycle, len(snapshot), blocks,
                                                 lsn_text(flushed)))
            live.stop()
            live.start(receive=True)
            live.wait_sync(timeout=60)
            assert recorder.error is None, recorder.error
            assert pgbench.poll() is None, pgbench.stderr.read()
    finally:
        if recorder:
            recorder.stopping = True
        if pgbench and pgbench.poll() is None:
            pgbench.send_signal(signal.SIGTERM)
            pgbench.wait(30)
        if recorder:
            recorder.join(30)
        live.close()


def wait_replayed(standby, lsn, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = standby.sql("select pg_last_wal_replay_lsn()::text")[0][0]
        if got and lsn_int(got) >= lsn:
            return
        time.sleep(0.2)
    raise AssertionError("the standby did not replay %s" % lsn_text(lsn))


def test_catch_up_through_the_slot_then_oracle(tmp_dir):
    need_redo()
    if oracle.oracle_binary() is None:
        pytest.skip(oracle.why_missing())
    live = Live("live-catchup", settings={"max_wal_size": "64MB"},
                config={"checkpoint_distance_bytes": "4MiB", "wal_checkpoint_interval_ms": "1s"})
    standby = None
    try:
        pg = live.pg
        standby = PgCluster.standby_of(pg, "live-catchup-standby", slot="stock_standby")
        live.wait_sync()
        pgbench_init(pg, 2)
        live.wait_ingested(pg.sql("select pg_current_wal_flush_lsn()::text")[0][0])
        live.stop()
        # Argon away: a writer that does not wait for it (synchronous_commit =
        # local) writes twice max_wal_size, with checkpoints that would recycle
        # the WAL were it not for Argon's slot.
        began = lsn_int(pg.sql("select pg_current_wal_lsn()::text")[0][0])
        conn = pg.connect()
        with conn.cursor() as cur:
            cur.execute("set synchronous_commit = local")
            cur.execute("create table bulk (id bigint, pad text)")
            while lsn_int(pg.sql("select pg_current_wal_lsn()::text")[0][0]) - began < 128 << 20:
                cur.execute("insert into bulk select g, repeat('b', 500) "
                            "from generate_series(1, 20000) g")
                cur.execute("update pgbench_accounts set abalance = abalance + 1 "
                            "where aid % 50 = 0")
                cur.execute("checkpoint")
        conn.close()
        slot = pg.sql("select restart_lsn::text, wal_status from pg_replication_slots "
                      "where slot_name = %s", (live.slot,))[0]
        assert lsn_int(slot[0]) <= began and slot[1] in ("reserved", "extended"), slot
        target = pg.sql("select pg_current_wal_flush_lsn()::text")[0][0]
        began_catch_up = time.monotonic()
        live.start()
        live.wait_sync(timeout=120)
        live.wait_ingested(target, timeout=600)
        print("015: catch-up of %d MiB through the slot took %.1f s" % (
            (lsn_int(target) - began) >> 20, time.monotonic() - began_catch_up))
        pg.sql("insert into bulk values (-1, 'after catch-up')")  # a sync commit again
        amap = os.path.join(tmp_dir, "am.map")
        oracle.write_am_map(pg, amap)
        pg.stop(keep_dir=True)
        shutdown = lsn_int(subprocess.run(
            [os.path.join(pg.bin_dir, "pg_controldata"), pg.data_dir], capture_output=True,
            text=True, check=True).stdout.split("Latest checkpoint location:")[1].split()[0])
        wait_replayed(standby, shutdown)
        live.wait(lambda: lsn_int(live.wal()["ingested_lsn"]) > shutdown,
                  "Argon to ingest the shutdown checkpoint", 300)
        standby.stop(keep_dir=True)
        live.stop()
        show = json.loads(argonctl(live.ps.data_dir, "show").stdout)["timelines"][0]
        out = os.path.join(tmp_dir, "export")
        exp = last_json(argonctl(live.ps.data_dir, "export", "--lsn", "latest", out))
        rc, stdout, stderr = oracle.run_oracle("compare", "--map", amap, standby.data_dir, out,
                                               timeout=900)
        summary = [ln for ln in stdout.splitlines() if ln.startswith("oracle:")]
        print("015: catch-up: %s; export %s" % (summary, exp.get("blocks")))
        assert rc == 0 and summary and " 0 mismatches" in summary[-1], stdout[-4000:] + stderr
        layers = show["l0_layers"] + show["l1_layers"] + show["image_layers"]
        assert layers >= 4 and show["l1_layers"] + show["image_layers"] > 0, \
            "expected layer files from live flushes and compaction: %s" % show
    finally:
        if standby:
            standby.stop()
        live.close()
