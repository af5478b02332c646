"""010: the WAL import/export oracle, PostgreSQL's side.

A real PostgreSQL 15 primary runs the issue's workload (harness/workload.py:
pgbench, DDL of every index access method, both CREATE DATABASE strategies,
two-phase commit, multixacts, a 17 MiB logical message, ...) with
wal_consistency_checking = 'all'.  Its WAL is received by pg_receivewal
through the slot "argon" from before Argon's base backup, and a stock
PostgreSQL 15 standby replays all of it, up to the primary's shutdown
checkpoint.

These tests check that the workload really produced what the comparison
needs and that the standby (the reference) replayed everything.  Argon's own
checks (import the base backup and the WAL, compare every page with the
standby's and the history snapshots) use the same module-scoped fixtures,
`workload` and `under_load`, which run each scenario once.
"""

import os
import re
import subprocess

import pytest

from harness import workload as wl

MIB = 1024 * 1024
WAL_PAGE = 8192

LINE = re.compile(r"rmgr: (\S+)\s+len \(rec/tot\):\s*(\d+)/\s*(\d+), "
                  r"tx:\s*(\d+), lsn: ([0-9A-F]+/[0-9A-F]+), "
                  r"prev ([0-9A-F]+/[0-9A-F]+), desc: (.*)")


# -- fixtures ----------------------------------------------------------------

@pytest.fixture(scope="module")
def workload():
    """The full scenario, run once for the module (wal_compression from
    ARGON_WAL_COMPRESSION, else cycling)."""
    result = wl.run_full()
    yield result
    result.cleanup()


@pytest.fixture(scope="module")
def under_load():
    """Argon's base backup taken while pgbench runs."""
    result = wl.run_under_load()
    yield result
    result.cleanup()


# -- pg_waldump over the received WAL ---------------------------------------

def waldump(result, *args, check=True):
    argv = [os.path.join(result.primary.bin_dir, "pg_waldump"),
            "-p", result.waldump_dir] + list(args)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(argv),
                                                    proc.returncode,
                                                    proc.stderr[-2000:]))
    return proc


def record_stats(result, start, end):
    """pg_waldump --stats=record: {"Rmgr/TYPE": count}, plus "Total"."""
    out = waldump(result, "--stats=record", "-s", start, "-e", end).stdout
    counts = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[1].isdigit():
            counts[fields[0]] = int(fields[1])
    return counts


def records(result, start, end, *rmgrs):
    """Plain pg_waldump lines of the given resource managers, parsed:
    (rmgr, tot_len, xid, lsn, prev, desc)."""
    args = ["-s", start, "-e", end]
    for rmgr in rmgrs:
        args += ["-r", rmgr]
    out = waldump(result, *args).stdout
    parsed = []
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            parsed.append((m[1], int(m[3]), int(m[4]), m[5], m[6], m[7]))
    return parsed


def record_end(lsn, tot_len):
    """The end (exclusive) of a record of tot_len bytes starting at lsn:
    its bytes skip the page headers (long at segment starts)."""
    pos, left = lsn, tot_len
    while left > 0:
        if pos % WAL_PAGE == 0:
            pos += 40 if pos % wl.SEGMENT_SIZE == 0 else 24
        take = min(WAL_PAGE - pos % WAL_PAGE, left)
        pos += take
        left -= take
    return pos


def has_rmgr(stats, rmgr):
    return sum(n for name, n in stats.items()
               if name.startswith(rmgr + "/"))


@pytest.fixture(scope="module")
def full_stats(workload):
    return record_stats(workload, workload.base_start_lsn, workload.end_lsn)


@pytest.fixture(scope="module")
def full_records(workload):
    return records(workload, workload.base_start_lsn, workload.end_lsn,
                   "Transaction", "LogicalMessage", "Storage", "Database",
                   "RelMap", "XLOG")


# -- the full scenario -------------------------------------------------------

def test_workload_record_types(workload, full_stats):
    """Every kind of record the comparison relies on is in the received WAL
    between the base backup's start and the end."""
    s = full_stats
    for needed in ("Database/CREATE_FILE_COPY", "Database/CREATE_WAL_LOG",
                   "Database/DROP", "RelMap/UPDATE",
                   "Transaction/PREPARE", "Transaction/COMMIT_PREPARED",
                   "Transaction/ABORT_PREPARED", "Transaction/ABORT",
                   "Transaction/ASSIGNMENT", "Sequence/LOG",
                   "Storage/CREATE", "Storage/TRUNCATE",
                   "LogicalMessage/MESSAGE", "XLOG/CHECKPOINT_ONLINE",
                   "Heap2/MULTI_INSERT+INIT", "Heap/HOT_UPDATE", "Heap/LOCK",
                   "Heap2/PRUNE", "Heap2/VACUUM", "Heap2/VISIBLE"):
        assert s.get(needed, 0) > 0, needed
    for rmgr in ("Heap", "Heap2", "Btree", "Hash", "Gin", "Gist", "SPGist",
                 "BRIN", "Sequence", "MultiXact", "Standby"):
        assert has_rmgr(s, rmgr) > 0, rmgr
    # One multixact per row and locker: several SLRU pages of each kind.
    assert s.get("MultiXact/CREATE_ID", 0) >= 8000, \
        s.get("MultiXact/CREATE_ID")
    assert s.get("MultiXact/ZERO_OFF_PAGE", 0) >= 2
    assert s.get("MultiXact/ZERO_MEM_PAGE", 0) >= 2
    assert s["XLOG/CHECKPOINT_SHUTDOWN"] == 1
    # The descending CYCLE sequence wrapped (10..1, 10..1, 10..6).
    assert workload.markers["seq_down_last"] == "6"


def test_workload_record_details(workload, full_records):
    """The records' descriptions: what each one touched."""
    recs = full_records
    by_desc = [(rmgr, desc) for rmgr, _len, _xid, _lsn, _prev, desc in recs]
    postgres_oid = workload.databases["postgres"]

    # A rolled-back CREATE TABLE: an abort record that drops its file; and
    # the rolled-back prepared transaction's table, dropped by ABORT_PREPARED.
    assert any(r == "Transaction" and d.startswith("ABORT ") and "rels:" in d
               for r, d in by_desc)
    assert any(r == "Transaction" and d.startswith("ABORT_PREPARED")
               and "rels:" in d for r, d in by_desc)
    assert any(r == "Transaction" and d.startswith("COMMIT_PREPARED")
               for r, d in by_desc)
    # VACUUM FULL pg_class rewrote the postgres database's relation map.
    assert any(r == "RelMap" and d.startswith("UPDATE database %d "
                                              % postgres_oid)
               for r, d in by_desc)
    # Both CREATE DATABASE strategies, and the third database dropped.
    copied = [d for r, d in by_desc if d.startswith("CREATE_FILE_COPY")]
    assert any(d.endswith("/%d" % workload.databases["argon_file_copy"])
               for d in copied), copied
    assert any(r == "Database" and d.startswith("CREATE_WAL_LOG") and
               d.endswith("/%d" % workload.databases["argon_wal_log"])
               for r, d in by_desc)
    dropped = [int(m[1]) for r, d in by_desc
               for m in [re.match(r"DROP dir \d+/(\d+)", d)] if m]
    assert dropped and not set(dropped) & set(workload.databases.values())
    assert any(r == "Storage" and d.startswith("TRUNCATE ")
               for r, d in by_desc)

    # The 17 MiB logical message spans segments.
    big = [(lsn, tot) for rmgr, tot, _x, lsn, _p, _d in recs
           if rmgr == "LogicalMessage" and tot > 17 * MIB]
    assert len(big) == 1
    start = wl.lsn_int(big[0][0])
    end = record_end(start, big[0][1])
    assert start // wl.SEGMENT_SIZE != (end - 1) // wl.SEGMENT_SIZE
    assert (end - 1) // wl.SEGMENT_SIZE - start // wl.SEGMENT_SIZE >= 1
    # pg_logical_emit_message() returned the (MAXALIGNed) end.
    assert (end + 7) & ~7 == wl.lsn_int(workload.markers["big_message_end"])
    print("17 MiB message: %s .. %s (segments %s .. %s)"
          % (big[0][0], wl.lsn_text(end), wl.segment_name(start),
             wl.segment_name(end - 1)))

    # The shutdown checkpoint is the last record, ending at end_lsn.
    last = recs[-1]
    assert last[0] == "XLOG" and last[5].startswith("CHECKPOINT_SHUTDOWN")
    assert last[3] == workload.shutdown_checkpoint_lsn
    # (end_lsn, like every "end of record" LSN PostgreSQL reports, is
    # MAXALIGNed: where the next record would start.)
    assert (record_end(wl.lsn_int(last[3]), last[1]) + 7) & ~7 == \
        workload.end_lsn_int


def test_received_wal_ends_at_the_shutdown_checkpoint(workload):
    """pg_receivewal got the shutdown checkpoint (in the .partial segment)
    and nothing after it."""
    assert workload.partial_segment == \
        wl.segment_name(workload.end_lsn_int - 1) + ".partial"
    after = waldump(workload, "-s", workload.shutdown_checkpoint_lsn,
                    check=False)
    lines = [line for line in after.stdout.splitlines()
             if line.startswith("rmgr:")]
    assert len(lines) == 1 and "CHECKPOINT_SHUTDOWN" in lines[0], lines
    assert "invalid record length at %s" % workload.end_lsn in after.stderr
    log = open(workload.receivewal_log).read()
    assert workload.receivewal_exit in (0, 1), log
    assert "not renaming \"%s\"" % workload.partial_segment in log


def test_standby_replayed_everything(workload, full_stats):
    """The stock standby replayed past the primary's shutdown checkpoint
    (every record's wal_consistency_checking comparison passed on the way)
    and made its final restartpoint there."""
    standby = wl.controldata(workload.standby)
    primary = wl.controldata(workload.primary)
    assert primary["Database cluster state"] == "shut down"
    assert standby["Database cluster state"] == "shut down in recovery"
    assert standby["Database system identifier"] == \
        str(workload.system_identifier)
    assert wl.lsn_int(workload.end_lsn) > \
        wl.lsn_int(workload.shutdown_checkpoint_lsn)
    assert standby["Latest checkpoint location"] == \
        workload.shutdown_checkpoint_lsn
    log = open(workload.standby.log_path, errors="replace").read()
    assert "inconsistent page" not in log and "PANIC" not in log
    assert "consistent recovery state reached" in log

    # Every permanent relation of the map is a file of the standby.
    kinds = set()
    with open(workload.am_map_path) as f:
        entries = [line.split() for line in f]
    for dboid, node, kind in entries:
        kinds.add(kind)
        rel = os.path.join("global", node) if dboid == "0" else \
            os.path.join("base", dboid, node)
        assert os.path.exists(os.path.join(workload.standby_dir, rel)), rel
    assert kinds == {"heap", "btree", "hash", "gin", "gist", "spgist",
                     "brin", "sequence"}
    for db in ("argon_wal_log", "argon_file_copy"):
        assert any(d == str(workload.databases[db]) for d, _n, _k in entries)

    print("\nWAL oracle (full): compression %s, %.0f MiB of WAL "
          "(%s .. %s), %d records, %d checkpoints, %d full-page images "
          "alone; %d snapshots; %.0f MiB on disk; %.1f s: %s"
          % (workload.compression, workload.wal_bytes() / MIB,
             workload.base_start_lsn, workload.end_lsn,
             full_stats["Total"], full_stats["XLOG/CHECKPOINT_ONLINE"],
             full_stats.get("XLOG/FPI", 0), len(workload.snapshots),
             workload.disk_bytes / MIB, workload.seconds,
             ", ".join("%s %.1f" % kv for kv in workload.timings.items())))


def test_result_for_argon(workload):
    """What Argon's checks will read: the base backup, the snapshots and
    the exclusions."""
    backup = workload.backup_dir
    for name in ("backup_label", "backup_manifest", "global/pg_control"):
        assert os.path.exists(os.path.join(backup, name)), name
    assert os.listdir(os.path.join(backup, "pg_wal")) in ([],
                                                          ["archive_status"])
    assert workload.base_end_lsn is not None
    assert wl.lsn_int(workload.base_start_lsn) <= \
        wl.lsn_int(workload.base_end_lsn) <= workload.end_lsn_int

    snaps = workload.snapshots
    assert len(snaps) >= 40
    assert {s.kind for s in snaps} == {"heap", "btree"}
    for s in snaps:
        assert len(s.data) == wl.PAGE_SIZE
        assert workload.base_start_lsn_int < wl.lsn_int(s.lsn) \
            < workload.end_lsn_int
        assert s.db_oid == workload.databases["postgres"]
        assert s.spc_oid == 1663 and s.fork == "main"

    excluded = {(e.persistence, e.relname) for e in workload.exclusions}
    assert ("u", "ul") in excluded and ("t", "tt") in excluded
    with open(workload.am_map_path) as f:
        mapped = {tuple(map(int, line.split()[:2])) for line in f}
    for e in workload.exclusions:
        assert (e.db_oid, e.relfilenode) not in mapped


# -- the base backup taken under load ---------------------------------------

def test_base_backup_under_load(under_load):
    """pgbench wrote while Argon's base backup ran; the slot's WAL reaches
    back before the backup's start; the standby replayed it all."""
    r = under_load
    stats = record_stats(r, r.base_start_lsn, r.end_lsn)
    during = record_stats(r, r.base_start_lsn, r.base_end_lsn)
    assert during.get("Heap/HOT_UPDATE", 0) + during.get("Heap/UPDATE", 0) \
        > 0, "no pgbench writes during the base backup"
    # The Argon backup's end record ends at the manifest's End-LSN (the
    # standby's backup ended before the Argon backup started).
    assert during.get("XLOG/BACKUP_END", 0) == 1
    assert stats["XLOG/CHECKPOINT_SHUTDOWN"] == 1
    assert stats.get("XLOG/BACKUP_END", 0) == 1
    first = min(n for n in os.listdir(r.wal_dir) if len(n) == 24)
    assert first <= wl.segment_name(r.base_start_lsn_int)
    last = records(r, r.shutdown_checkpoint_lsn, r.end_lsn, "XLOG")
    assert len(last) == 1 and last[0][5].startswith("CHECKPOINT_SHUTDOWN")
    standby = wl.controldata(r.standby)
    assert standby["Latest checkpoint location"] == r.shutdown_checkpoint_lsn
    assert r.snapshots
    print("\nWAL oracle (under load): compression %s, base %s .. %s, end "
          "%s, %.0f MiB of WAL, %d records; %.1f s"
          % (r.compression, r.base_start_lsn, r.base_end_lsn, r.end_lsn,
             r.wal_bytes() / MIB, stats["Total"], r.seconds))
