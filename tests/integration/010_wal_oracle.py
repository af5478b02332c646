"""010: the WAL import/export oracle.

A real PostgreSQL 15 primary runs the issue's workload (harness/workload.py:
pgbench, DDL of every index access method, both CREATE DATABASE strategies,
two-phase commit, multixacts, a 17 MiB logical message, ...) with
wal_consistency_checking = 'all'.  Its WAL is received by pg_receivewal
through the slot "argon" from before Argon's base backup, and a stock
PostgreSQL 15 standby replays all of it, up to the primary's shutdown
checkpoint.

The first tests check that the workload really produced what the
comparison needs and that the standby (the reference) replayed everything.
Then Argon: `argonctl -D` imports the base backup and the received WAL (a
4 MiB checkpoint distance and low compaction thresholds, so layers are
flushed, compacted, imaged and collected), exports a data directory at the
end, and argon-oracle compares it with the standby's after masking with
PostgreSQL's own rm_mask functions; the history snapshots are read back at
their pd_lsn, directly and through branches; Argon's decoder is compared
with pg_waldump record by record; the base backup taken under load passes
the same comparison; and bad WAL stops the import with a clear error, losing
nothing before it.  Every argonctl command is a new process: Argon is
restarted between import, GC and every read.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess

import pytest

from harness import oracle
from harness.argon_import import record_stats, waldump
from harness import workload as wl
from harness.argonctl import argonctl, last_json, walredo_binary, walredo_missing
from harness.pageserver import binary

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



# -- Argon -------------------------------------------------------------------

# Small layers and low thresholds: every part of the engine runs on this WAL.
STORE_OPTIONS = ["--checkpoint-distance", str(4 * MIB), "--compaction-threshold", "4",
                 "--image-threshold", "3"]


def need_oracle():
    if oracle.oracle_binary() is None:
        pytest.skip(oracle.why_missing())


def import_all(result, name, options=()):
    datadir = os.path.join(result.work_dir, name)
    base = last_json(argonctl(datadir, *options, "import", "base", result.backup_dir))
    wal = last_json(argonctl(datadir, *options, "import", "wal", "--no-progress",
                             result.wal_dir))
    return datadir, base, wal


def redo_check_flipped(workload, datadir):
    """The redo check's negative control: the first HOT_UPDATE after the
    backup's end that carries post-images only (no full-page image to apply),
    the first byte of its main data (the old tuple's xmax, which no mask hides)
    flipped; (its LSN, the argonctl process)."""
    begin = wl.lsn_int(workload.base_end_lsn)
    heap = records(workload, workload.base_end_lsn, workload.end_lsn, "Heap")
    lsn, tot = next((lsn, tot) for rmgr, tot, _, lsn, _, desc in heap
                    if desc.startswith("HOT_UPDATE ") and wl.lsn_int(lsn) > begin
                    and "FPW for WAL verification" in desc
                    and not re.search(r"FPW(?! for WAL verification)", desc))
    end = wl.lsn_text(record_end(wl.lsn_int(lsn), tot))
    return lsn, argonctl(datadir, "redo-check", "--no-progress", "--flip-main-data", lsn,
                         "--stop-lsn", end, workload.wal_dir)


@pytest.fixture(scope="module")
def argon(workload):
    """The full scenario imported; the record-by-record redo check (it needs
    the history GC removes); then GC up to the earliest snapshot."""
    datadir, base, wal = import_all(workload, "argon", STORE_OPTIONS)
    check = flipped = None
    if walredo_binary() is not None:
        check = last_json(argonctl(datadir, "redo-check", "--no-progress", workload.wal_dir))
        flipped = redo_check_flipped(workload, datadir)
    earliest = min(wl.lsn_int(s.lsn) for s in workload.snapshots)
    gc = last_json(argonctl(datadir, "gc", "--lsn", wl.lsn_text(earliest)))
    print("\nArgon import: base %s; WAL %s; gc %s" % (base, wal, gc))
    return {"dir": datadir, "base": base, "wal": wal, "gc": gc, "earliest": earliest,
            "redo_check": check, "redo_check_flipped": flipped}


def test_argon_imported_everything(workload, full_stats, argon):
    base, wal = argon["base"], argon["wal"]
    assert base["start_lsn"] == workload.base_start_lsn
    assert base["end_lsn"] == workload.base_end_lsn
    assert base["blocks"] > 1000 and base["slru_pages"] >= 1
    assert wal["last_lsn"] == workload.end_lsn
    assert wal["records"] == full_stats["Total"]
    assert wal["dbs_created"] == 3 and wal["dbs_dropped"] == 1
    assert wal["multixacts"] >= 8000 and wal["relmaps"] >= 1
    assert wal["rels_dropped"] > 0 and wal["vm_clears"] > 0


def test_layers_really_used(argon):
    """Flushes, L0 -> L1 compactions, image layers and GC all happened, and
    the layer files on disk say so after a restart."""
    wal, gc = argon["wal"], argon["gc"]
    assert wal["flushes"] >= 20, wal
    assert wal["compactions"] >= 3 and wal["l1_written"] >= 3, wal
    assert wal["image_layers_written"] >= 1 and wal["images_created"] > 1000, wal
    assert gc["gc_cutoff"] == wl.lsn_text(argon["earliest"])
    show = json.loads(argonctl(argon["dir"], "show").stdout)
    tl = show["timelines"][0]
    assert tl["gc_cutoff"] == gc["gc_cutoff"]
    assert tl["l1_layers"] >= 1 and tl["image_layers"] >= 1, tl
    assert tl["disk_consistent_lsn"] == tl["last_record_lsn"]
    print("layers: %s; GC removed %d" % (tl, gc["layers_removed"]))


def test_export_equals_the_standby(workload, argon):
    """Argon's data directory at the end equals the stock standby's: every
    database's main and VM forks after PostgreSQL's masks, pg_xact,
    pg_multixact and pg_filenode.map byte for byte."""
    need_oracle()
    out = os.path.join(workload.work_dir, "export-end")
    exp = last_json(argonctl(argon["dir"], "export", "--lsn", workload.end_lsn, out))
    assert exp["lsn"] == workload.end_lsn and exp["blocks"] > 10000
    rc, stdout, stderr = oracle.run_oracle("compare", "--map", workload.am_map_path,
                                           workload.standby_dir, out)
    print(stdout)  # every exclusion, with its reason
    assert rc == 0, stdout[-4000:] + stderr
    summary = stdout.strip().splitlines()[-1]
    m = re.match(r"oracle: (\d+) files, (\d+) blocks compared, 0 mismatches", summary)
    assert m and int(m[2]) > 10000, summary
    print("excluded by the test too (unlogged and temporary relations): %s"
          % ", ".join("%s (%s)" % (e.path, e.relname) for e in workload.exclusions))

    rc, stdout, stderr = oracle.run_oracle("primary-sanity", "--map", workload.am_map_path,
                                           workload.primary_dir, out)
    assert rc == 0, stdout[-4000:] + stderr
    print(stdout.strip().splitlines()[-1])


def test_record_by_record_redo(workload, argon):
    """argon-walredo replays every record on Argon's page before it; after
    PostgreSQL's masks each result equals the post-image wal_consistency_checking
    logged.  The negative control flips one byte of a HOT_UPDATE's main data
    (its CRC made right again): the check must report that record as a page
    that differs after masking (redo itself succeeds)."""
    if argon["redo_check"] is None:
        pytest.skip(walredo_missing())
    check = argon["redo_check"]
    print("redo check:", {k: v for k, v in check.items() if k != "redo"})
    print("replayed:", check["redo"]["replayed"])
    assert check["blocks_checked"] > 100000, check
    assert check["mismatches"] == 0 and check["redo_errors"] == 0, check
    assert check["lsn_mismatches"] == 0 and check["keep_disagreements"] == 0, check
    target, proc = argon["redo_check_flipped"]
    bad = last_json(proc)
    print("negative control at %s: %s" % (target, {k: v for k, v in bad.items()
                                                    if k != "redo"}))
    assert bad["flipped"] == 1 and bad["mismatches"] >= 1 and bad["redo_errors"] == 0, bad
    assert "mismatch: record at %s" % target in proc.stdout, proc.stdout


def test_reads_below_the_backup_end_are_refused(workload, argon):
    out = os.path.join(workload.work_dir, "export-early")
    proc = argonctl(argon["dir"], "export", "--lsn", workload.base_start_lsn, out, check=False)
    assert proc.returncode == 3
    assert "below the base backup's end (%s)" % workload.base_end_lsn in proc.stderr


def snapshot_reads(workload, datadir, timeline=None):
    """Argon's page at each snapshot's pd_lsn, compared with the snapshot after
    the access method's mask.  Returns (compared, excluded)."""
    need_oracle()
    pages = os.path.join(workload.work_dir, "history-%s" % (timeline or "main"))
    os.makedirs(pages, exist_ok=True)
    wanted, excluded = [], []
    for i, s in enumerate(workload.snapshots):
        lsn = wl.lsn_int(s.lsn)
        if lsn == 0 or lsn < wl.lsn_int(workload.base_end_lsn):
            excluded.append((s, "pd_lsn 0 or below the import's end"))
            continue
        wanted.append((i, s))
    listing = os.path.join(pages, "list")
    with open(listing, "w") as f:
        for i, s in wanted:
            f.write("%s %d %d %d 0 %d %s\n" % (s.lsn, s.spc_oid, s.db_oid, s.relfilenode,
                                               s.block, os.path.join(pages, str(i))))
    args = ["getpage", "--batch", listing] + (["--timeline", timeline] if timeline else [])
    got = argonctl(datadir, *args).stdout.splitlines()
    assert all(line.startswith("ok ") for line in got), [x for x in got if "error" in x]
    assert len(got) == len(wanted)
    for i, s in wanted:
        mine = os.path.join(pages, str(i))
        theirs = os.path.join(pages, "%d.snapshot" % i)
        with open(theirs, "wb") as f:
            f.write(s.data)
        rc, stdout, _ = oracle.run_oracle("page", s.kind, theirs, mine)
        assert rc == 0, "snapshot %d (%s block %d at %s): %s" % (i, s.relname, s.block,
                                                                  s.lsn, stdout)
    return len(wanted), excluded


def test_history_snapshots(workload, argon):
    """Random heap and btree pages fetched during the workload equal Argon's
    page at their pd_lsn (read after GC up to the earliest of them)."""
    compared, excluded = snapshot_reads(workload, argon["dir"])
    print("history: %d pages compared; excluded: %d (%s); VM, FSM and sequence pages are "
          "not snapshotted" % (compared, len(excluded),
                               "; ".join("%s block %d: %s" % (s.relname, s.block, why)
                                         for s, why in excluded[:5])))
    assert compared >= 40


def test_history_through_branches(workload, argon):
    """The same pages through branches created at their LSNs."""
    need_oracle()
    snaps = sorted(workload.snapshots, key=lambda s: wl.lsn_int(s.lsn))
    picks = [snaps[len(snaps) // 4], snaps[len(snaps) // 2], snaps[-1]]
    for n, s in enumerate(picks):
        branch = "%032x" % (0xB0 + n)
        argonctl(argon["dir"], "branch", "--lsn", s.lsn, "--new", branch)
        page = os.path.join(workload.work_dir, "branch-%d" % n)
        argonctl(argon["dir"], "getpage", "--timeline", branch, "--lsn", s.lsn,
                 s.spc_oid, s.db_oid, s.relfilenode, 0, s.block, page)
        snap = page + ".snapshot"
        with open(snap, "wb") as f:
            f.write(s.data)
        rc, stdout, _ = oracle.run_oracle("page", s.kind, snap, page)
        assert rc == 0, stdout
        # A branch ends at its LSN: nothing later is readable there.
        later = argonctl(argon["dir"], "getpage", "--timeline", branch, "--lsn",
                         workload.end_lsn, s.spc_oid, s.db_oid, s.relfilenode, 0, s.block,
                         page, check=False)
        assert later.returncode == 3 and "past the last one stored" in later.stderr


def _waldump_parsers():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "006_waldump.py")
    spec = importlib.util.spec_from_file_location("waldump006", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_decoder_matches_pg_waldump(workload):
    """Argon's decoder against pg_waldump over the workload's WAL, record by
    record: LSN, prev, rmgr, lengths, xid, block references."""
    mod = _waldump_parsers()
    ref = waldump(workload, "-s", workload.base_start_lsn, "-e", workload.end_lsn)
    expected = mod.parse_pg(ref.stdout)
    mine = subprocess.run([binary("tools/argon-waldump"), "--start", workload.base_start_lsn,
                           "--end", workload.end_lsn, "--images", workload.waldump_dir],
                          capture_output=True, text=True, timeout=900)
    assert mine.returncode == 0, mine.stderr
    got = mod.parse_argon(mine.stdout)
    assert len(got) == len(expected) > 100000
    for a, b in zip(got, expected):
        assert a == b, "argon %r\npg_waldump %r" % (a, b)
    assert " 0 page images" not in mine.stderr
    print("decoder: %d records equal pg_waldump's; %s" % (len(got), mine.stderr.strip()))


# -- the base backup taken under load, and bad input ---------------------------

def flip_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


def test_bad_wal_stops_cleanly_then_resumes(under_load, workload):
    """A flipped byte inside a record: the import stops there with the LSN and
    the cause, keeps everything before it, and with the good file resumes;
    then the export at the end equals the standby (a base backup taken under
    load).  Garbage and another system's WAL are refused the same way."""
    r, other_system = under_load, workload
    datadir = os.path.join(r.work_dir, "argon-bad")
    argonctl(datadir, "import", "base", r.backup_dir)
    bad_wal = os.path.join(r.work_dir, "wal-bad")
    shutil.copytree(r.wal_dir, bad_wal)
    segs = sorted(n for n in os.listdir(bad_wal) if len(n) == 24)
    first = segs.index(wl.segment_name(r.base_start_lsn_int))
    assert len(segs) >= first + 3, segs  # the import reads two whole segments at least
    victim = os.path.join(bad_wal, segs[first + 1])
    flip_byte(victim, 3 * MIB + 4321)
    proc = argonctl(datadir, "import", "wal", "--no-progress", bad_wal, check=False)
    assert proc.returncode == 3, proc.stderr
    m = re.search(r"at ([0-9A-F]+/[0-9A-F]+)", proc.stderr)
    # The flip breaks a record's checksum, or its length (then the mismatch shows
    # where the record continues): either way the LSN and the cause.
    assert m and re.search(r"checksum|length", proc.stderr), proc.stderr
    bad_lsn = wl.lsn_int(m[1])
    seg_start = (int(segs[first + 1][8:16], 16) << 32) + \
        int(segs[first + 1][16:], 16) * wl.SEGMENT_SIZE
    assert seg_start <= bad_lsn <= seg_start + 3 * MIB + 4321
    tl = json.loads(argonctl(datadir, "show").stdout)["timelines"][0]
    last = wl.lsn_int(tl["last_record_lsn"])
    assert tl["disk_consistent_lsn"] == tl["last_record_lsn"]
    assert bad_lsn - 8192 <= last <= bad_lsn, (tl, m[1])
    print("flipped byte: %s; kept everything up to %s" % (proc.stderr.strip(),
                                                           tl["last_record_lsn"]))

    # Garbage in place of the next segment, another system's segment: refused
    # with the LSN and the cause.
    shutil.copy(os.path.join(r.wal_dir, segs[first + 1]), victim)
    # The other system's segment of the same name: its pages have the addresses
    # expected, only the system identifier differs.
    other_seg = os.path.join(other_system.wal_dir, segs[first + 2])
    assert os.path.exists(other_seg), sorted(os.listdir(other_system.wal_dir))
    for what, expect in (("garbage", "magic"), ("another system", "different database system")):
        odd = os.path.join(r.work_dir, "wal-odd")
        shutil.rmtree(odd, ignore_errors=True)
        shutil.copytree(r.wal_dir, odd)
        target = os.path.join(odd, segs[first + 2])
        if what == "garbage":
            with open(target, "wb") as f:
                f.write(os.urandom(wl.SEGMENT_SIZE))
        else:
            shutil.copy(other_seg, target)
        proc = argonctl(datadir, "import", "wal", "--no-progress", odd, check=False)
        assert proc.returncode == 3, (what, proc.stderr)
        assert re.search(r"[0-9A-F]+/[0-9A-F]+", proc.stderr), proc.stderr
        assert expect in proc.stderr, (what, proc.stderr)
        print("%s: %s" % (what, proc.stderr.strip()))

    # The good WAL: the import resumes and the result equals the standby, also
    # after GC up to the end has removed the history below it.
    wal = last_json(argonctl(datadir, *STORE_OPTIONS, "import", "wal", "--no-progress",
                             r.wal_dir))
    assert wal["last_lsn"] == r.end_lsn and wal["consistent_lsn"] == r.base_end_lsn
    assert wal["image_layers_written"] >= 1, wal
    gc = last_json(argonctl(datadir, "gc", "--lsn", r.end_lsn))
    assert gc["layers_removed"] >= 1, gc
    print("GC at the end removed %d layers" % gc["layers_removed"])
    need_oracle()
    out = os.path.join(r.work_dir, "export-under-load")
    argonctl(datadir, "export", "--lsn", r.end_lsn, out)
    rc, stdout, stderr = oracle.run_oracle("compare", "--map", r.am_map_path, r.standby_dir,
                                           out)
    assert rc == 0, stdout[-4000:] + stderr
    print("under load: " + stdout.strip().splitlines()[-1])
