"""A PostgreSQL 15 workload whose WAL and end state a whole-cluster
comparison can be checked against (issue: WAL import/export oracle).

run_full() and run_under_load() each drive a real PostgreSQL 15 primary
(PgCluster, wal_consistency_checking = 'all', wal_compression pglz, lz4 or
zstd) and hand back a WorkloadResult whose files stay on disk until
WorkloadResult.cleanup() (or the harness's own cleanup at exit):

  * the WAL of a physical replication slot "argon", received by
    pg_receivewal --slot argon -n, started before any base backup;
  * a plain-format base backup for Argon (pg_basebackup -Fp -X none -c fast,
    backup_label and backup_manifest kept) and its start LSN;
  * a stock PostgreSQL 15 hot standby (pg_basebackup -R, its own slot)
    that replayed everything up to and including the primary's shutdown
    checkpoint: the reference end state, made by PostgreSQL's own redo
    (which also ran every wal_consistency_checking comparison);
  * the primary's data directory after a fast shutdown;
  * page "history snapshots" taken with pageinspect during the pgbench load:
    the raw bytes of random heap and btree pages and their page LSN, read in
    one query so the LSN belongs to the bytes.  They are read from shared
    buffers, so they carry hint bits (and btree LP_DEAD marks) that were
    never WAL-logged: compare them masked, as wal_consistency_checking does;
  * a file mapping every permanent relation to its access method
    ("dboid relfilenode kind" lines), and the unlogged and temporary
    relations to leave out of comparisons.

run_full() is the issue's workload: pgbench -i -s 10 and 30 s of pgbench
with DDL interleaved (every index access method, TRUNCATE, VACUUM,
VACUUM FULL pg_class, CREATE DATABASE with both strategies, DROP DATABASE,
a rolled-back CREATE TABLE, > 64 subtransactions, two-phase commit and
rollback, multixacts, a 17 MiB logical message, sequences, an unlogged and
a temporary table).  run_under_load() is the smaller "base backup taken
while pgbench runs" case.

Settings (issue: PostgreSQL's redo in argon-walredo).  run_full() takes
keyword arguments that change the primary; the defaults are the issue's
workload above, unchanged (010 uses them):

  consistency_checking=True   wal_consistency_checking = 'all'; False leaves
                              it at PostgreSQL's default (off): records carry
                              no post-images, so pages are rebuilt by redo;
  full_page_writes=True       False: full_page_writes = off (pages are then
                              rebuilt from the base backup's images and redo
                              alone; PostgreSQL still forces full-page writes
                              while a base backup runs, and index builds
                              still log whole pages as XLOG/FPI);
  data_checksums=False        True: initdb --data-checksums (the standby and
                              the base backups inherit it);
  settings=None               any further postgresql.conf settings, applied
                              last;
  scale, seconds, clients, snapshots
                              pgbench's size and duration, and the number of
                              history snapshots;
  steps=None                  the DDL steps to run, by name (the function
                              names in FULL_STEPS without "_ddl_", e.g.
                              ("index_methods", "sequences")); None: all;
  scenario="full"             the result's name, and its work directory's;
  min_free=None               bytes the run needs free (default: the full
                              run's); the test is skipped with less.

run_regress() is PostgreSQL's own regression suite as the workload (harness
regress.py): the same primary (wal_consistency_checking off by default,
regress.CLUSTER_SETTINGS merged in), slot, pg_receivewal, Argon's base backup
and stock standby as run_full(), then pg_regress's parallel schedule against
the primary instead of pgbench and the DDL (its tablespace test skipped, with
the reason printed), then the same end: the result's `regress` is the
RegressResult (pg_regress's own pass/fail is reported, not judged; the run
must reach the end of the schedule).  It has no history snapshots.  The
access-method map names an index by its access method's handler, so an
index of an access method created by a test (create_am's gist2) is mapped
to the method it really is (gist).

Every result records the primary's `settings` and `data_checksums`.
"""

import dataclasses
import json
import os
import random
import re
import shutil
import struct
import threading
import time
from typing import Dict, List, Optional

import pytest

from . import procs
from . import regress as pg_regress_harness
from .pg import PgCluster

SEGMENT_SIZE = 16 * 1024 * 1024
PAGE_SIZE = 8192
COMPRESSIONS = ("pglz", "lz4", "zstd")

# Measured (du of the temporary root every 2 s): the full run peaks at
# about 2.4 GiB (about 1 GiB of received WAL, the primary with its pg_wal,
# the standby, the base backup) and leaves about 2.2 GiB on disk; the
# under-load run adds up to 1 GiB on top of that.  The thresholds leave room
# for a slower machine, where checkpoints lag and more WAL is kept.
MIN_FREE_BYTES_FULL = int(3.5 * 1024 ** 3)
MIN_FREE_BYTES_UNDER_LOAD = int(1.5 * 1024 ** 3)
# A scaled-down run_full() (scale 2, 10 s, the DDL without the 17 MiB
# message) without wal_consistency_checking: measured about 95 MiB of WAL
# and 0.5 GiB on disk, before Argon's import and export.
MIN_FREE_BYTES_SMALL = int(1.5 * 1024 ** 3)
# pg_regress: measured about 255 MiB of WAL and 0.9 GiB on disk (the WAL
# received and in the primary's pg_wal, the standby, the base backup),
# before Argon's import and export.
MIN_FREE_BYTES_REGRESS = int(2.5 * 1024 ** 3)

INDEX_KINDS = ("btree", "hash", "gin", "gist", "spgist", "brin")


# -- small helpers -----------------------------------------------------------

def lsn_int(text):
    """'1/2A0' -> 0x1000002A0."""
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def lsn_text(value):
    """0x1000002A0 -> '1/2A0' (as PostgreSQL prints it)."""
    return "%X/%X" % (value >> 32, value & 0xFFFFFFFF)


def segment_name(lsn, timeline=1):
    """The WAL segment file holding the byte at lsn (an int)."""
    segno = lsn // SEGMENT_SIZE
    return "%08X%08X%08X" % (timeline, segno // 0x100, segno % 0x100)


def default_compression():
    """ARGON_WAL_COMPRESSION if set, else pglz/lz4/zstd in turn by
    10-minute slot, so that successive runs cover all three."""
    chosen = os.environ.get("ARGON_WAL_COMPRESSION")
    if chosen:
        if chosen not in COMPRESSIONS:
            raise ValueError("ARGON_WAL_COMPRESSION=%r is not one of %s"
                             % (chosen, ", ".join(COMPRESSIONS)))
        return chosen
    return COMPRESSIONS[int(time.time() // 600) % 3]


def check_free_space(path, needed):
    """pytest.skip unless path's file system has `needed` bytes free."""
    free = shutil.disk_usage(path).free
    if free < needed:
        pytest.skip("the WAL workload needs %.1f GiB free under %s, only "
                    "%.1f GiB are" % (needed / 1024 ** 3, path,
                                      free / 1024 ** 3))
    return free


def controldata(cluster):
    """pg_controldata of a cluster's data directory, as a dict."""
    out = procs.run([os.path.join(cluster.bin_dir, "pg_controldata"),
                     cluster.data_dir], **cluster.tool_kwargs())
    fields = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def disk_usage(path):
    """Bytes used by the files under path (not following symlinks)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


# -- results -----------------------------------------------------------------

@dataclasses.dataclass
class PageSnapshot:
    """One page as the primary had it at `lsn` (its page LSN: the end of the
    last record that changed it).  `data` is the 8 KiB page with hint bits
    as they were in shared buffers."""
    spc_oid: int
    db_oid: int
    relfilenode: int
    fork: str           # always "main"
    block: int
    kind: str           # "heap" or "btree"
    relname: str
    lsn: str
    data: bytes
    seconds: float      # when, since the workload started


@dataclasses.dataclass
class Exclusion:
    """A relation whose pages are not WAL-logged (unlogged: only its init
    fork is; temporary: nothing), to leave out of comparisons."""
    db_oid: int
    relfilenode: int
    persistence: str    # "u" (unlogged) or "t" (temporary)
    kind: str           # heap, btree, ... as in the access-method map
    relname: str
    path: str           # pg_relation_filepath(), e.g. base/5/t3_16384


@dataclasses.dataclass
class WorkloadResult:
    scenario: str               # "full", "under_load", "regress", or the
                                # scenario name run_full() was given
    compression: str            # wal_compression used
    system_identifier: int
    timeline: int
    # Directories (all kept until cleanup()).
    work_dir: str               # holds backup/, wal/, waldump/, logs, map
    primary_dir: str            # the primary's data directory, shut down
    standby_dir: str            # the stock standby's, shut down after replay
    backup_dir: str             # Argon's base backup (plain format)
    wal_dir: str                # pg_receivewal's directory, as it left it
    waldump_dir: str            # the same segments, the last one without
                                # its .partial suffix (for pg_waldump)
    # LSNs, as PostgreSQL prints them.
    base_start_lsn: str         # backup_label START WAL LOCATION
    base_checkpoint_lsn: str    # backup_label CHECKPOINT LOCATION
    base_end_lsn: Optional[str]  # backup_manifest WAL-Ranges End-LSN
    shutdown_checkpoint_lsn: str  # primary's "Latest checkpoint location"
    end_lsn: str                # standby's pg_last_wal_replay_lsn() after
                                # it replayed the shutdown checkpoint: the
                                # end of that record, MAXALIGNed (where a
                                # next record would start)
    # What the workload made.
    snapshots: List[PageSnapshot]
    am_map_path: str            # lines "dboid relfilenode kind"
    exclusions: List[Exclusion]
    databases: Dict[str, int]   # name -> oid, at the end
    markers: Dict[str, str]     # named LSNs seen during the run
    partial_segment: Optional[str]  # e.g. 000000010000000000000041.partial
    receivewal_exit: int        # pg_receivewal's exit status (1: see log)
    receivewal_log: str
    seconds: float              # the whole run
    timings: Dict[str, float]   # per phase
    disk_bytes: int             # used under work/primary/standby dirs
    primary: PgCluster = dataclasses.field(repr=False, default=None)
    standby: PgCluster = dataclasses.field(repr=False, default=None)
    # The primary's postgresql.conf settings (the harness's, not defaults).
    settings: Dict[str, object] = dataclasses.field(default_factory=dict)
    data_checksums: bool = False
    # run_regress(): pg_regress's RegressResult (else None).
    regress: object = dataclasses.field(repr=False, default=None)

    @property
    def end_lsn_int(self):
        return lsn_int(self.end_lsn)

    @property
    def base_start_lsn_int(self):
        return lsn_int(self.base_start_lsn)

    def wal_bytes(self):
        return self.end_lsn_int - self.base_start_lsn_int

    def cleanup(self):
        """Remove every directory of the run (the clusters are stopped)."""
        for cluster in (self.standby, self.primary):
            if cluster is not None:
                cluster.stop()
        procs.remove_temp_dir(self.work_dir)


# -- the access-method map -------------------------------------------------

# An index's kind is its access method's handler's: an access method made
# with CREATE ACCESS METHOD ... HANDLER gisthandler is gist.
_INDEX_HANDLERS = {
    "bthandler": "btree",
    "hashhandler": "hash",
    "ginhandler": "gin",
    "gisthandler": "gist",
    "spghandler": "spgist",
    "brinhandler": "brin",
}

_RELATIONS_SQL = """
SELECT CASE WHEN c.relisshared THEN 0 ELSE d.oid END,
       pg_relation_filenode(c.oid),
       CASE c.relkind WHEN 'S' THEN 'sequence'
                      WHEN 'i' THEN 'index:' || a.amname || ':'
                                    || a.amhandler::text
                      ELSE 'heap' END,
       c.relpersistence, c.relname, pg_relation_filepath(c.oid)
  FROM pg_class c
  LEFT JOIN pg_am a ON a.oid = c.relam
  JOIN pg_database d ON d.datname = current_database()
 WHERE c.relkind IN ('r', 't', 'm', 'i', 'S')
   AND pg_relation_filenode(c.oid) IS NOT NULL
"""


def _kind(text):
    """'heap', 'sequence', or an index's 'index:<amname>:<handler>' -> the
    access method's kind (the handler's; else the amname)."""
    if not text.startswith("index:"):
        return text
    _tag, amname, handler = text.split(":", 2)
    return _INDEX_HANDLERS.get(handler, amname)


def _connectable_databases(cluster):
    return [row[0] for row in cluster.sql(
        "SELECT datname FROM pg_database WHERE datallowconn ORDER BY oid")]


def _all_relations(cluster):
    rows = set()
    for db in _connectable_databases(cluster):
        rows.update((dboid, node, _kind(kind), persistence, name, path)
                    for dboid, node, kind, persistence, name, path
                    in cluster.sql(_RELATIONS_SQL, dbname=db))
    return sorted(rows)


def write_am_map(cluster, path):
    """Write "dboid relfilenode kind" for every permanent relation with
    storage, in every database that allows connections (dboid 0: shared
    catalogs; template0 is not covered).  Returns the number of lines."""
    lines = sorted({(dboid, node, kind) for dboid, node, kind, persistence,
                    _name, _path in _all_relations(cluster)
                    if persistence == "p"})
    unknown = {kind for _d, _n, kind in lines} - set(INDEX_KINDS) \
        - {"heap", "sequence"}
    if unknown:
        raise RuntimeError("unexpected access methods: %s" % unknown)
    with open(path, "w") as f:
        for dboid, node, kind in lines:
            f.write("%d %d %s\n" % (dboid, node, kind))
    return len(lines)


def list_exclusions(cluster):
    """Every unlogged and temporary relation with storage."""
    return [Exclusion(dboid, node, persistence, kind, name, path)
            for dboid, node, kind, persistence, name, path
            in _all_relations(cluster) if persistence in ("u", "t")]


# -- page history snapshots ------------------------------------------------

_SNAPSHOT_SQL = """
SELECT c.relname, a.amname,
       coalesce(nullif(c.reltablespace, 0), d.dattablespace),
       d.oid, pg_relation_filenode(c.oid), b.blk,
       (page_header(raw.page)).lsn, raw.page
  FROM unnest(%(rels)s::text[]) AS r(rel)
  JOIN pg_class c ON c.oid = r.rel::regclass
  JOIN pg_am a ON a.oid = c.relam
  JOIN pg_database d ON d.datname = current_database()
 CROSS JOIN generate_series(1, %(per_rel)s) AS n
 CROSS JOIN LATERAL (SELECT floor(random() * (pg_relation_size(c.oid)
                                              / 8192))::int + 0 * n AS blk)
       AS b
 CROSS JOIN LATERAL get_raw_page(c.oid::regclass::text, 'main', b.blk)
       AS raw(page)
 WHERE pg_relation_size(c.oid) > 0
"""

SNAPSHOT_HEAPS = ("pgbench_accounts", "pgbench_branches", "pgbench_tellers",
                  "pgbench_history")
SNAPSHOT_INDEXES = ("pgbench_accounts_pkey", "pgbench_branches_pkey",
                    "pgbench_tellers_pkey")


def take_snapshot(conn, rng, began, per_rel=2):
    """Random pages of two pgbench tables and two of their primary keys, in
    one query: page LSN and bytes come from one read of each page."""
    rels = rng.sample(SNAPSHOT_HEAPS, 2) + rng.sample(SNAPSHOT_INDEXES, 2)
    with conn.cursor() as cur:
        cur.execute(_SNAPSHOT_SQL, {"rels": rels, "per_rel": per_rel})
        rows = cur.fetchall()
    now = time.monotonic() - began
    snaps = []
    for relname, amname, spc, dboid, node, blk, lsn, page in rows:
        page = bytes(page)
        hi, lo = struct.unpack_from("<II", page, 0)
        if lsn_int(lsn) != (hi << 32 | lo) or len(page) != PAGE_SIZE:
            raise RuntimeError("page_header() and the page bytes disagree")
        if page == bytes(PAGE_SIZE):
            # A page the relation was just extended by, not yet initialized
            # (PageIsNew): no record made this version, redo never has it.
            continue
        snaps.append(PageSnapshot(spc, dboid, node, "main", blk,
                                  "heap" if amname == "heap" else amname,
                                  relname, lsn, page, now))
    return snaps


class _Snapshotter(threading.Thread):
    """Takes `count` snapshots at random times over `duration` seconds."""

    def __init__(self, cluster, count, duration, began, seed):
        super().__init__(name="snapshots", daemon=True)
        self.cluster = cluster
        self.rng = random.Random(seed)
        self.times = sorted(self.rng.uniform(0.5, duration)
                            for _ in range(count))
        self.began = began
        self.snapshots = []
        self.error = None

    def run(self):
        try:
            conn = self.cluster.connect()
            try:
                start = time.monotonic()
                for at in self.times:
                    delay = start + at - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    self.snapshots += take_snapshot(conn, self.rng,
                                                    self.began)
            finally:
                conn.close()
        except Exception as e:  # reported by finish()
            self.error = e

    def finish(self, timeout=60):
        self.join(timeout)
        if self.is_alive():
            raise RuntimeError("snapshot thread did not finish")
        if self.error is not None:
            raise RuntimeError("snapshot failed: %r" % (self.error,))
        return self.snapshots


# -- the driver --------------------------------------------------------------

PRIMARY_SETTINGS = {
    "wal_level": "replica",
    "wal_consistency_checking": "all",
    "max_wal_senders": 10,
    "max_replication_slots": 10,
    "max_prepared_transactions": 10,
    "wal_keep_size": "64MB",
    "checkpoint_timeout": "30s",
    "max_wal_size": "256MB",
    "min_wal_size": "64MB",
    "shared_buffers": "64MB",
    "autovacuum": True,
    "autovacuum_naptime": "5s",
    "log_checkpoints": True,
    "wal_sender_timeout": "120s",
}


class _Run:
    """State of one scenario while it runs."""

    def __init__(self, scenario, compression, min_free, *, settings=None,
                 data_checksums=False):
        self.scenario = scenario
        self.compression = compression or default_compression()
        print("WAL workload %s: wal_compression = %s" % (scenario,
                                                          self.compression))
        check_free_space(procs.tmp_root(), min_free)
        self.began = time.monotonic()
        self.phase_began = self.began
        self.timings = {}
        self.markers = {}
        self.primary = None
        self.standby = None
        self.receiver = None
        self.work_dir = procs.make_temp_dir("wl-" + scenario)
        self.backup_dir = os.path.join(self.work_dir, "backup")
        self.wal_dir = os.path.join(self.work_dir, "wal")
        self.waldump_dir = os.path.join(self.work_dir, "waldump")
        self.am_map_path = os.path.join(self.work_dir, "am_map.txt")
        self.receivewal_log = os.path.join(self.work_dir, "pg_receivewal.log")
        self.data_checksums = data_checksums
        self.settings = dict(PRIMARY_SETTINGS)
        self.settings["wal_compression"] = self.compression
        for key, value in (settings or {}).items():
            if value is None:
                self.settings.pop(key, None)    # PostgreSQL's default
            else:
                self.settings[key] = value

    def phase(self, name):
        now = time.monotonic()
        self.timings[name] = round(now - self.phase_began, 2)
        self.phase_began = now

    def tool(self, name):
        return os.path.join(self.primary.bin_dir, name)

    def conn_args(self):
        return ["-h", self.primary.host, "-p", str(self.primary.port),
                "-U", "postgres"]

    def owned_dir(self, path):
        os.mkdir(path, 0o700)
        os.chown(path, self.primary.uid, self.primary.gid)

    # -- setup ---------------------------------------------------------------

    def start_primary(self):
        self.primary = PgCluster("wl-primary", settings=self.settings,
                                 data_checksums=self.data_checksums)
        self.primary.sql("CREATE EXTENSION pageinspect")
        print("WAL workload %s: primary settings %s%s"
              % (self.scenario, self.settings,
                 ", data checksums" if self.data_checksums else ""))
        self.phase("primary")

    def start_receiver(self):
        """Slot "argon" (reserving WAL now), then pg_receivewal on it; wait
        until it streams."""
        self.primary.sql("SELECT pg_create_physical_replication_slot("
                         "'argon', true)")
        self.owned_dir(self.wal_dir)
        argv = [self.tool("pg_receivewal")] + self.conn_args() + [
            "--slot", "argon", "-n", "-v", "-D", self.wal_dir]
        self.receiver = procs.start_daemon(
            argv, name="pg_receivewal", log_path=self.receivewal_log,
            owner_dir=self.work_dir, cwd=self.work_dir,
            **self.primary.tool_kwargs())
        deadline = time.monotonic() + 30
        while not self.primary.sql("SELECT active FROM pg_replication_slots "
                                   "WHERE slot_name = 'argon'")[0][0]:
            if not self.receiver.alive() or time.monotonic() > deadline:
                raise RuntimeError("pg_receivewal did not start streaming\n"
                                   + procs.log_tail(self.receivewal_log))
            time.sleep(0.05)
        self.phase("receiver")

    def start_standby(self):
        self.standby = PgCluster.standby_of(self.primary, "wl-standby",
                                            slot="standby")
        self.phase("standby")

    def base_backup(self):
        """Argon's base backup: plain format, no WAL (it comes from the
        slot), fast checkpoint, backup_label and backup_manifest kept."""
        self.owned_dir(self.backup_dir)
        procs.run([self.tool("pg_basebackup")] + self.conn_args() + [
            "-D", self.backup_dir, "-Fp", "-X", "none", "-c", "fast",
            "--no-sync"], timeout=600, cwd=self.work_dir,
            log_path=os.path.join(self.work_dir, "pg_basebackup.log"),
            **self.primary.tool_kwargs())
        with open(os.path.join(self.backup_dir, "backup_label")) as f:
            label = f.read()
        self.base_start_lsn = re.search(r"START WAL LOCATION: (\S+)",
                                        label).group(1)
        self.base_checkpoint_lsn = re.search(r"CHECKPOINT LOCATION: (\S+)",
                                             label).group(1)
        self.base_end_lsn = None
        manifest = os.path.join(self.backup_dir, "backup_manifest")
        if os.path.exists(manifest):
            with open(manifest) as f:
                ranges = json.load(f).get("WAL-Ranges") or []
            if ranges:
                self.base_end_lsn = ranges[-1]["End-LSN"]
        print("base backup: start %s, checkpoint %s, end %s"
              % (self.base_start_lsn, self.base_checkpoint_lsn,
                 self.base_end_lsn))
        self.phase("base_backup")

    # -- pgbench -------------------------------------------------------------

    def pgbench_init(self, scale):
        procs.run([self.tool("pgbench")] + self.conn_args() + [
            "-i", "-s", str(scale), "-q", "postgres"], timeout=900,
            cwd=self.work_dir,
            log_path=os.path.join(self.work_dir, "pgbench-init.log"),
            **self.primary.tool_kwargs())
        self.phase("pgbench_init")

    def pgbench_start(self, seconds, clients=2):
        log = os.path.join(self.work_dir, "pgbench.log")
        self.pgbench = procs.start_daemon(
            [self.tool("pgbench")] + self.conn_args() + [
                "-c", str(clients), "-j", str(clients), "-T", str(seconds),
                "-P", "5", "postgres"],
            name="pgbench", log_path=log, owner_dir=self.work_dir,
            cwd=self.work_dir, **self.primary.tool_kwargs())
        self.pgbench_seconds = seconds

    def pgbench_wait(self):
        daemon = self.pgbench
        if not daemon.wait(self.pgbench_seconds + 120):
            daemon.stop()
            raise RuntimeError("pgbench did not finish\n"
                               + daemon.log_tail())
        code = daemon.popen.returncode
        daemon.stop()           # unregisters it
        tail = daemon.log_tail(6)
        if code != 0:
            raise RuntimeError("pgbench failed (%s)\n%s" % (code, tail))
        print("pgbench:", " ".join(line for line in tail.splitlines()
                                   if line.startswith("tps")))
        self.phase("pgbench_run")

    # -- the end -------------------------------------------------------------

    def finish(self, snapshots, temp_conn=None):
        """Map, exclusions, fast shutdown, standby replay to the shutdown
        checkpoint, pg_receivewal's exit; return the WorkloadResult."""
        primary, standby = self.primary, self.standby
        write_am_map(primary, self.am_map_path)
        exclusions = list_exclusions(primary)
        databases = dict(primary.sql("SELECT datname, oid::int "
                                     "FROM pg_database"))
        if temp_conn is not None:
            temp_conn.close()
        self.markers["primary_insert_at_stop"] = primary.sql(
            "SELECT pg_current_wal_insert_lsn()")[0][0]
        self.phase("map")

        primary.stop(mode="fast", keep_dir=True, timeout=120)
        control = controldata(primary)
        if control["Database cluster state"] != "shut down":
            raise RuntimeError("primary did not shut down cleanly: %s"
                               % control["Database cluster state"])
        checkpoint = control["Latest checkpoint location"]
        self.phase("primary_stop")

        deadline = time.monotonic() + 600
        while True:
            replayed = standby.sql("SELECT pg_last_wal_replay_lsn()")[0][0]
            if replayed and lsn_int(replayed) > lsn_int(checkpoint):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("standby replayed only to %s, not past "
                                   "the shutdown checkpoint %s\n%s"
                                   % (replayed, checkpoint,
                                      standby.log_tail()))
            time.sleep(0.1)
        standby.stop(mode="fast", keep_dir=True, timeout=120)
        self.phase("standby_catch_up")

        if not self.receiver.wait(60):
            self.receiver.stop()
            raise RuntimeError("pg_receivewal did not exit after the "
                               "primary stopped\n"
                               + procs.log_tail(self.receivewal_log))
        receivewal_exit = self.receiver.popen.returncode
        self.receiver.stop()
        log = procs.log_tail(self.receivewal_log, 20)
        # With -n it ends with "disconnected" (exit 1) when the primary
        # shuts down; anything else is a failure.
        if receivewal_exit != 0 and not (
                receivewal_exit == 1 and "error: disconnected" in log
                and "terminated before stop point" in log):
            raise RuntimeError("pg_receivewal failed (%s)\n%s"
                               % (receivewal_exit, log))
        partial = self._make_waldump_dir(lsn_int(self.base_start_lsn),
                                         lsn_int(replayed))
        self.phase("receiver_exit")

        seconds = time.monotonic() - self.began
        result = WorkloadResult(
            scenario=self.scenario, compression=self.compression,
            system_identifier=int(control["Database system identifier"]),
            timeline=int(control["Latest checkpoint's TimeLineID"]),
            work_dir=self.work_dir, primary_dir=primary.data_dir,
            standby_dir=standby.data_dir, backup_dir=self.backup_dir,
            wal_dir=self.wal_dir, waldump_dir=self.waldump_dir,
            base_start_lsn=self.base_start_lsn,
            base_checkpoint_lsn=self.base_checkpoint_lsn,
            base_end_lsn=self.base_end_lsn,
            shutdown_checkpoint_lsn=checkpoint, end_lsn=replayed,
            snapshots=snapshots, am_map_path=self.am_map_path,
            exclusions=exclusions, databases=databases,
            markers=self.markers, partial_segment=partial,
            receivewal_exit=receivewal_exit,
            receivewal_log=self.receivewal_log, seconds=round(seconds, 2),
            timings=self.timings,
            disk_bytes=sum(disk_usage(d) for d in (
                self.work_dir, primary.dir, standby.dir)),
            primary=primary, standby=standby,
            settings=dict(self.settings), data_checksums=self.data_checksums)
        print("WAL workload %s: %.1f s, %.0f MiB of WAL from %s to %s, "
              "%.0f MiB on disk, %d snapshots; %s"
              % (self.scenario, seconds, result.wal_bytes() / 2 ** 20,
                 result.base_start_lsn, result.end_lsn,
                 result.disk_bytes / 2 ** 20, len(snapshots),
                 ", ".join("%s %.1f" % kv for kv in self.timings.items())))
        return result

    def _make_waldump_dir(self, start, end):
        """Check that the received segments cover [start, end) and link them
        into waldump_dir, the .partial one under its plain name."""
        os.mkdir(self.waldump_dir)
        names = os.listdir(self.wal_dir)
        partial = None
        for name in sorted(names):
            plain = name[:-len(".partial")] if name.endswith(".partial") \
                else name
            if not re.fullmatch(r"[0-9A-F]{24}", plain):
                continue
            if name != plain:
                if plain in names:
                    continue
                partial = name
            os.symlink(os.path.join(self.wal_dir, name),
                       os.path.join(self.waldump_dir, plain))
        have = set(os.listdir(self.waldump_dir))
        missing = [segment_name(lsn) for lsn in
                   range(start - start % SEGMENT_SIZE, end, SEGMENT_SIZE)
                   if segment_name(lsn) not in have]
        if missing:
            raise RuntimeError("pg_receivewal lacks segments %s\n%s"
                               % (missing[:5],
                                  procs.log_tail(self.receivewal_log)))
        return partial

    def abandon(self):
        """After a failure: stop what runs; the directories stay registered
        for the harness's cleanup."""
        for daemon in (getattr(self, "pgbench", None), self.receiver):
            if daemon is not None:
                daemon.stop()
        for cluster in (self.standby, self.primary):
            if cluster is not None:
                cluster.stop()
        procs.remove_temp_dir(self.work_dir)


# -- the workload's SQL ------------------------------------------------------

def _exec(conn, *statements):
    """Run statements in turn; return the last result set (or None)."""
    rows = None
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
            rows = cur.fetchall() if cur.description is not None else None
    return rows


def _ddl_index_methods(conn, run):
    """A table with an index of every access method that stays, and one
    whose indexes and then itself are dropped."""
    for table, rows in (("am_keep", 10000), ("am_drop", 2000)):
        _exec(conn,
              "CREATE TABLE %s (id int PRIMARY KEY, v text, arr int[], "
              "p point, ts tsvector)" % table,
              "INSERT INTO %s SELECT g, md5(g::text), array[g, g %% 97], "
              "point(g %% 300, g / 300), to_tsvector('simple', 'w' || "
              "(g %% 500)) FROM generate_series(1, %d) g" % (table, rows),
              "CREATE INDEX %s_hash ON %s USING hash (v)" % (table, table),
              "CREATE INDEX %s_gin ON %s USING gin (arr)" % (table, table),
              "CREATE INDEX %s_gin_ts ON %s USING gin (ts)" % (table, table),
              "CREATE INDEX %s_gist ON %s USING gist (p)" % (table, table),
              "CREATE INDEX %s_spgist ON %s USING spgist (p)"
              % (table, table),
              "CREATE INDEX %s_brin ON %s USING brin (id) "
              "WITH (pages_per_range = 4)" % (table, table),
              "CREATE INDEX %s_btree ON %s USING btree (v)"
              % (table, table))
    # Index inserts and vacuums in every access method.
    _exec(conn,
          "INSERT INTO am_keep SELECT g, md5(g::text), array[g], "
          "point(g, g), to_tsvector('simple', 'x' || g) "
          "FROM generate_series(10001, 12000) g",
          "UPDATE am_keep SET v = v || 'u', arr = arr || 1 WHERE id % 20 = 0",
          "DELETE FROM am_keep WHERE id % 7 = 0",
          "VACUUM am_keep")
    for kind in ("hash", "gin", "gin_ts", "gist", "spgist", "brin", "btree"):
        _exec(conn, "DROP INDEX am_drop_%s" % kind)
    _exec(conn, "DROP TABLE am_drop")


def _ddl_truncate_vacuum(conn, run):
    _exec(conn,
          "CREATE TABLE trunc_me (id int, v text)",
          "INSERT INTO trunc_me SELECT g, repeat('t', 200) "
          "FROM generate_series(1, 20000) g",
          "TRUNCATE trunc_me",
          "INSERT INTO trunc_me SELECT g, 'again' "
          "FROM generate_series(1, 1000) g",
          # VACUUM cutting off the empty tail: an smgr TRUNCATE record.
          "CREATE TABLE shrink (id int, v text)",
          "INSERT INTO shrink SELECT g, repeat('s', 100) "
          "FROM generate_series(1, 20000) g",
          "DELETE FROM shrink WHERE id > 100",
          "VACUUM shrink",
          "VACUUM (FREEZE) trunc_me")


def _ddl_sequences(conn, run):
    _exec(conn,
          "CREATE SEQUENCE seq_up",
          "SELECT nextval('seq_up') FROM generate_series(1, 500)",
          "CREATE SEQUENCE seq_down INCREMENT BY -1 MINVALUE 1 MAXVALUE 10 "
          "START 10 CACHE 1 CYCLE",
          "SELECT nextval('seq_down') FROM generate_series(1, 25)",
          "CREATE TABLE serial_t (id bigserial PRIMARY KEY, v int)",
          "INSERT INTO serial_t (v) SELECT g FROM generate_series(1, 2000) g")
    run.markers["seq_down_last"] = str(_exec(
        conn, "SELECT last_value FROM seq_down")[0][0])


def _ddl_transactions(conn, run):
    # A CREATE TABLE that is rolled back: its file is dropped by the abort
    # record.
    _exec(conn, "BEGIN; CREATE TABLE rolled_back (id int); "
                "INSERT INTO rolled_back SELECT generate_series(1, 1000); "
                "ROLLBACK")
    # More than 64 subtransactions with writes: XACT ASSIGNMENT records.
    body = "".join("SAVEPOINT s%d; INSERT INTO subx VALUES (%d); " % (i, i)
                   for i in range(100))
    _exec(conn, "CREATE TABLE subx (id int)")
    _exec(conn, "BEGIN; " + body + "RELEASE SAVEPOINT s50; "
                "ROLLBACK TO SAVEPOINT s20; COMMIT")
    # Two-phase commit, both ways; the rolled back one made a table.
    _exec(conn, "BEGIN; CREATE TABLE prepared_kept (id int); "
                "INSERT INTO prepared_kept SELECT generate_series(1, 500); "
                "PREPARE TRANSACTION 'argon_commit'")
    _exec(conn, "BEGIN; CREATE TABLE prepared_gone (id int); "
                "INSERT INTO prepared_gone SELECT generate_series(1, 500); "
                "PREPARE TRANSACTION 'argon_rollback'")
    _exec(conn, "COMMIT PREPARED 'argon_commit'")
    _exec(conn, "ROLLBACK PREPARED 'argon_rollback'")


def _ddl_multixacts(conn, run, rows=4000, lockers=2):
    """Many multixacts: one session share-locks every row and stays in its
    transaction; then, for each extra locker, a loop of one transaction per
    row share-locks that row too.  Every row so gets a multixact of its own
    (a backend reuses a multixact for an identical member set, so one
    transaction locking all rows would make just one), which fills several
    offsets and members SLRU pages."""
    _exec(conn, "CREATE TABLE mx (id int PRIMARY KEY, v int)",
          "INSERT INTO mx SELECT g, g FROM generate_series(1, %d) g" % rows)
    holder = run.primary.connect()
    try:
        _exec(holder, "BEGIN", "SELECT id FROM mx FOR SHARE")
        for _ in range(lockers):
            _exec(conn, "DO $$ BEGIN FOR i IN 1..%d LOOP "
                        "PERFORM 1 FROM mx WHERE id = i FOR SHARE; COMMIT; "
                        "END LOOP; END $$" % rows)
        _exec(holder, "COMMIT")
    finally:
        holder.close()


def _ddl_relmap(conn, run):
    _exec(conn, "VACUUM FULL pg_class")


def _ddl_databases(conn, run):
    for name, strategy in (("argon_wal_log", "wal_log"),
                           ("argon_file_copy", "file_copy"),
                           ("argon_dropped", "wal_log")):
        _exec(conn, "CREATE DATABASE %s STRATEGY %s" % (name, strategy))
        if name != "argon_dropped":
            db = run.primary.connect(name)
            try:
                _exec(db, "CREATE TABLE t (id int PRIMARY KEY, v text)",
                      "INSERT INTO t SELECT g, md5(g::text) "
                      "FROM generate_series(1, 5000) g")
            finally:
                db.close()
    _exec(conn, "DROP DATABASE argon_dropped")


def _ddl_messages(conn, run):
    run.markers["small_message_end"] = _exec(
        conn, "SELECT pg_logical_emit_message(false, 'argon', 'small')")[0][0]
    run.markers["big_message_end"] = _exec(
        conn, "SELECT pg_logical_emit_message(true, 'argon', "
              "repeat('m', 17 * 1024 * 1024 + 1000))")[0][0]


def _ddl_unlogged_temp(conn, run):
    """An unlogged table (only its init forks are WAL-logged) and a temp
    table in a session that stays open until the end."""
    _exec(conn, "CREATE UNLOGGED TABLE ul (id int PRIMARY KEY, v text)",
          "INSERT INTO ul SELECT g, md5(g::text) "
          "FROM generate_series(1, 5000) g")
    temp = run.primary.connect()
    _exec(temp, "CREATE TEMP TABLE tt (id int PRIMARY KEY, v text)",
          "INSERT INTO tt SELECT g, md5(g::text) "
          "FROM generate_series(1, 5000) g")
    return temp


FULL_STEPS = (_ddl_index_methods, _ddl_sequences, _ddl_transactions,
              _ddl_truncate_vacuum, _ddl_multixacts, _ddl_relmap,
              _ddl_messages, _ddl_databases)


STEP_NAMES = tuple(step.__name__[len("_ddl_"):] for step in FULL_STEPS)


def _settings_for(consistency_checking, full_page_writes, settings):
    """PRIMARY_SETTINGS overrides for run_full()/run_regress()'s choices
    (None removes a setting: PostgreSQL's default)."""
    chosen = {}
    if not consistency_checking:
        chosen["wal_consistency_checking"] = None
    if not full_page_writes:
        chosen["full_page_writes"] = False
    chosen.update(settings or {})
    return chosen


def run_full(compression=None, *, scale=10, seconds=30, clients=2,
             snapshots=20, seed=None, consistency_checking=True,
             full_page_writes=True, data_checksums=False, settings=None,
             steps=None, scenario="full", min_free=None):
    """The issue's workload; see the module docstring (the defaults are the
    issue's workload; the keyword arguments scale it down or change the
    primary's settings)."""
    if steps is None:
        chosen_steps = FULL_STEPS
    else:
        unknown = set(steps) - set(STEP_NAMES)
        if unknown:
            raise ValueError("unknown workload steps %s (known: %s)"
                             % (sorted(unknown), ", ".join(STEP_NAMES)))
        chosen_steps = tuple(step for step, name in zip(FULL_STEPS,
                                                        STEP_NAMES)
                             if name in steps)
    run = _Run(scenario, compression,
               MIN_FREE_BYTES_FULL if min_free is None else min_free,
               settings=_settings_for(consistency_checking, full_page_writes,
                                      settings),
               data_checksums=data_checksums)
    seed = seed if seed is not None else random.randrange(1 << 30)
    print("WAL workload %s: seed %d" % (scenario, seed))
    temp = None
    try:
        run.start_primary()
        run.start_receiver()
        run.base_backup()
        run.start_standby()
        run.pgbench_init(scale)
        conn = run.primary.connect()
        temp = _ddl_unlogged_temp(conn, run)
        run.pgbench_start(seconds, clients)
        snapper = _Snapshotter(run.primary, snapshots, seconds - 1,
                               run.began, seed)
        snapper.start()
        step_times = {}
        for step in chosen_steps:
            t = time.monotonic()
            step(conn, run)
            step_times[step.__name__[5:]] = round(time.monotonic() - t, 2)
        print("DDL steps (s):", step_times)
        run.phase("ddl")
        run.pgbench_wait()
        snaps = snapper.finish()
        conn.close()
        return run.finish(snaps, temp)
    except BaseException:
        if temp is not None:
            temp.close()
        run.abandon()
        raise


def run_regress(compression=None, *, consistency_checking=False,
                full_page_writes=True, data_checksums=False, settings=None,
                skip=None, timeout=None, scenario="regress", min_free=None):
    """PostgreSQL's regression suite as the workload; see the module
    docstring.  skip: {test: reason} (default regress.DEFAULT_SKIP, the
    tablespace test); timeout: pg_regress's (default regress's)."""
    ok, why = pg_regress_harness.regress_available()
    if not ok:
        pytest.skip("pg_regress is not available: " + why)
    merged = dict(pg_regress_harness.CLUSTER_SETTINGS)
    merged.update(settings or {})
    run = _Run(scenario, compression,
               MIN_FREE_BYTES_REGRESS if min_free is None else min_free,
               settings=_settings_for(consistency_checking, full_page_writes,
                                      merged),
               data_checksums=data_checksums)
    try:
        run.start_primary()
        run.start_receiver()
        run.base_backup()
        run.start_standby()
        outcome = pg_regress_harness.run_regress(
            run.primary, os.path.join(run.work_dir, "pg_regress"),
            skip=pg_regress_harness.DEFAULT_SKIP if skip is None else skip,
            timeout=pg_regress_harness.DEFAULT_TIMEOUT if timeout is None
            else timeout)
        run.markers["regress_start"] = outcome.wal_start_lsn
        run.markers["regress_end"] = outcome.wal_end_lsn
        if not outcome.completed:
            raise RuntimeError("pg_regress did not reach the end of its "
                               "schedule (exit %s%s)\n%s"
                               % (outcome.returncode,
                                  ", timed out" if outcome.timed_out else "",
                                  outcome.stdout[-3000:]))
        run.phase("pg_regress")
        result = run.finish([])
        result.regress = outcome
        return result
    except BaseException:
        run.abandon()
        raise


def run_under_load(compression=None, *, scale=2, seconds=12, clients=2,
                   backup_after=3.0, snapshots=5, seed=None):
    """Argon's base backup taken while pgbench runs; WAL from before its
    start by the slot; then the same end as run_full()."""
    run = _Run("under_load", compression, MIN_FREE_BYTES_UNDER_LOAD)
    seed = seed if seed is not None else random.randrange(1 << 30)
    try:
        run.start_primary()
        run.pgbench_init(scale)
        run.start_receiver()
        run.start_standby()
        run.pgbench_start(seconds, clients)
        snapper = _Snapshotter(run.primary, snapshots, seconds - 1,
                               run.began, seed)
        snapper.start()
        time.sleep(backup_after)
        run.phase("load_before_backup")
        run.base_backup()
        run.pgbench_wait()
        snaps = snapper.finish()
        return run.finish(snaps)
    except BaseException:
        run.abandon()
        raise
