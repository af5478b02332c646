"""013: the whole-cluster oracle at default settings: pages rebuilt by
PostgreSQL's own redo (argon-walredo).

010 runs its workload with wal_consistency_checking = 'all', so nearly every
record carries the page it produces.  Here the primary runs at PostgreSQL's
defaults for what matters (full_page_writes on, no wal_consistency_checking;
wal_compression still cycles as in 010): a page that has no full-page image
after the last checkpoint is rebuilt by replaying its records, which Argon
hands to argon-walredo.  Three workloads (harness/workload.py run_full()),
each streamed to a stock PostgreSQL 15 standby that replays all of it up to
the primary's shutdown checkpoint:

  default    the issue's full workload (pgbench -s 10 for 30 s, DDL of every
             index access method, both CREATE DATABASE strategies, 2PC,
             multixacts, a 17 MiB message, ...);
  fpw-off    full_page_writes = off, scaled down (pgbench -s 2 for 10 s, the
             DDL without the logical message): after the base backups no
             page record carries an image (but for the few types PostgreSQL
             always logs one for: hash bucket splits, GIN root splits and
             vacuum, index builds' XLOG/FPI), so pages come from the base
             backup's images and redo alone;
  checksums  initdb --data-checksums, scaled down the same way.

For each, Argon (`argonctl -D`, 010's 4 MiB layers and low compaction
thresholds, so images are also made by redo during the import) imports the
base backup and the received WAL and exports a data directory at the
standby's end LSN, which argon-oracle compares with the standby's after
PostgreSQL's rm_mask functions (0 mismatches) and checks against the stopped
primary (primary-sanity).  The checksum variant also verifies every exported
page's pd_checksum with PostgreSQL's pg_checksum_page (compare --checksums)
and with pg_checksums --check (on a hard-linked copy with the standby's
pg_control: pg_checksums wants a stopped cluster's); the negative control turns Argon's checksums off (`argonctl checksums off`): the
re-export's pages then fail that verification, and only it.

Skipped, with the reason, when argon-walredo or argon-oracle is not built,
or when the disk is short.
"""

import os
import re
import shutil
import subprocess
import time

import pytest

from harness import argon_import as ai
from harness import workload as wl
from harness.argonctl import argonctl, last_json

MIB = 1024 * 1024

# The scaled-down runs: every DDL step but the 17 MiB logical message.
SMALL = dict(scale=2, seconds=10, snapshots=4,
             steps=tuple(s for s in wl.STEP_NAMES if s != "messages"),
             min_free=wl.MIN_FREE_BYTES_SMALL, consistency_checking=False)

# Page rmgrs every run's WAL has records of (Generic: only extensions).
WORKLOAD_PAGE_RMGRS = ("Heap", "Heap2", "Btree", "Hash", "Gin", "Gist",
                       "SPGist", "BRIN", "Sequence")

# Record types that log a full-page image whatever full_page_writes says
# (REGBUF_FORCE_IMAGE in PostgreSQL 15: hash's log_split_page, GIN's root
# split and xlogVacuumPage, every generic WAL record).
FORCED_IMAGES = {"Hash/SPLIT_PAGE", "Gin/SPLIT", "Gin/VACUUM_PAGE",
                 "Generic/Generic"}

BLKREF = re.compile(r"blkref #\d+: rel \d+/\d+/\d+(?: fork \S+)? blk \d+"
                    r"( FPW(?: for WAL verification)?)?")


# -- fixtures ----------------------------------------------------------------

def _run(**kwargs):
    ai.need_redo_tools()
    return wl.run_full(**kwargs)


@pytest.fixture(scope="module")
def default_run():
    """The issue's full workload at default settings."""
    result = _run(consistency_checking=False, scenario="redo-default")
    yield result
    result.cleanup()


@pytest.fixture(scope="module")
def fpw_off_run():
    result = _run(full_page_writes=False, scenario="redo-fpw-off", **SMALL)
    yield result
    result.cleanup()


@pytest.fixture(scope="module")
def checksums_run():
    result = _run(data_checksums=True, scenario="redo-checksums", **SMALL)
    yield result
    result.cleanup()


def through_argon(result, name):
    """Import (base, then all the WAL), export at the standby's end LSN;
    the JSONs and the seconds each step took."""
    began = time.monotonic()
    datadir, base, wal = ai.import_all(result, name)
    imported = time.monotonic()
    out = os.path.join(result.work_dir, name + "-export")
    exp = ai.export(datadir, result.end_lsn, out)
    done = time.monotonic()
    return {"dir": datadir, "out": out, "base": base, "wal": wal,
            "export": exp,
            "seconds": {"import": round(imported - began, 1),
                        "export": round(done - imported, 1)}}


def check_import(result, argon, stats):
    base, wal = argon["base"], argon["wal"]
    assert base["start_lsn"] == result.base_start_lsn
    assert base["end_lsn"] == result.base_end_lsn
    assert wal["last_lsn"] == result.end_lsn
    assert wal["records"] == stats["Total"], (wal["records"], stats["Total"])
    assert wal["skipped"] == 0
    assert wal["wal_values"] > 0, wal  # records kept for PostgreSQL's redo
    assert wal["flushes"] >= 5 and wal["image_layers_written"] >= 1, wal
    assert argon["export"]["lsn"] == result.end_lsn


def check_equal(result, argon, *flags):
    """compare against the standby: 0 mismatches; primary-sanity; the
    argon-walredo counters.  Returns the Comparison."""
    c, text, redo = ai.check_equal(result, argon, *flags)
    print("\n%s: %s\n  %s\n  argon-walredo: %s\n  WAL %.0f MiB (%s .. %s), "
          "workload %.1f s, import %.1f s, export %.1f s, compare %.1f s"
          % (result.scenario, c.summary(), text.strip().splitlines()[-1],
             redo, result.wal_bytes() / MIB, result.base_start_lsn,
             result.end_lsn, result.seconds, argon["seconds"]["import"],
             argon["seconds"]["export"], argon["seconds"]["compare"]))
    return c


def record_type(line):
    """ "Rmgr/TYPE" of a pg_waldump line (as --stats=record names it)."""
    m = re.match(r"rmgr: (\S+) .*?desc: (\S+)", line)
    return "%s/%s" % (m[1], m[2])


def page_records(result, start, end):
    """pg_waldump lines of the page rmgrs in [start, end)."""
    args = ["-s", start, "-e", end]
    for rmgr in ai.PAGE_RMGRS:
        args += ["-r", rmgr]
    return [line for line in ai.waldump(result, *args).stdout.splitlines()
            if line.startswith("rmgr:")]


# -- default settings: the full workload ----------------------------------

@pytest.fixture(scope="module")
def default_stats(default_run):
    return ai.record_stats(default_run, default_run.base_start_lsn,
                           default_run.end_lsn)


@pytest.fixture(scope="module")
def default_argon(default_run):
    return through_argon(default_run, "argon")


def test_default_workload(default_run, default_stats):
    """No wal_consistency_checking, full_page_writes on: records without
    images (the pages come from redo), images after checkpoints; every page
    rmgr in the WAL; the standby replayed it all."""
    r, s = default_run, default_stats
    assert "wal_consistency_checking" not in r.settings
    assert r.settings.get("full_page_writes", True) is True
    assert not r.data_checksums
    ai.check_standby(r)
    for rmgr in WORKLOAD_PAGE_RMGRS:
        assert sum(n for t, n in s.items() if t.startswith(rmgr + "/")), rmgr
    assert s["XLOG/CHECKPOINT_SHUTDOWN"] == 1
    assert s.get("XLOG/CHECKPOINT_ONLINE", 0) >= 2
    # Page records with and without images, and none with a post-image for
    # wal_consistency_checking.
    refs = [m[1] for line in page_records(r, r.base_end_lsn, r.end_lsn)
            for m in BLKREF.finditer(line)]
    assert " FPW for WAL verification" not in refs
    assert refs.count(None) > 100000 and refs.count(" FPW") > 1000, \
        (refs.count(None), refs.count(" FPW"))
    print("\ndefault workload: %.0f MiB of WAL, %d records, %d checkpoints, "
          "%d page-record block references without an image, %d with; "
          "%.1f s: %s" % (r.wal_bytes() / MIB, s["Total"],
                          s.get("XLOG/CHECKPOINT_ONLINE", 0), refs.count(None),
                          refs.count(" FPW"), r.seconds,
                          ", ".join("%s %.1f" % kv for kv in r.timings.items())))


def test_default_import(default_run, default_stats, default_argon):
    check_import(default_run, default_argon, default_stats)
    wal = default_argon["wal"]
    assert wal["dbs_created"] == 3 and wal["dbs_dropped"] == 1
    assert wal["compactions"] >= 3 and wal["images_created"] > 1000, wal
    print("\nimport: %s" % {k: v for k, v in wal.items() if k != "redo"})


def test_default_export_equals_the_standby(default_run, default_argon):
    c = check_equal(default_run, default_argon)
    assert c.blocks > 10000, c.summary()


def test_default_redo_replayed_every_page_rmgr(default_run, default_stats,
                                               default_argon):
    """argon-walredo replayed records of every page rmgr the WAL has, and
    the common record types by name (the import's image creation and the
    export together)."""
    replayed = ai.replayed(default_argon["wal"], default_argon["export"])
    print("\nreplayed:", dict(sorted(replayed.items())))
    for rmgr in WORKLOAD_PAGE_RMGRS:
        assert any(t.startswith(rmgr + "/") for t in replayed), rmgr
    for name in ("Heap/INSERT", "Heap/HOT_UPDATE", "Heap/UPDATE",
                 "Heap2/PRUNE", "Btree/INSERT_LEAF", "Sequence/LOG"):
        assert default_stats.get(name, 0) > 0, name
        assert replayed.get(name, 0) > 0, name
    # Only types that occurred (pg_waldump's names: the same spelling).
    assert set(replayed) <= set(default_stats), \
        set(replayed) - set(default_stats)


# -- full_page_writes = off ----------------------------------------------------

def last_backup_end(result):
    """The LSN of the last XLOG BACKUP_END record: full-page writes are
    forced from a base backup's start to its end (Argon's, then the
    standby's)."""
    out = ai.waldump(result, "-s", result.base_start_lsn, "-e",
                     result.end_lsn, "-r", "XLOG").stdout
    ends = re.findall(r"lsn: ([0-9A-F]+/[0-9A-F]+), prev \S+, "
                      r"desc: BACKUP_END", out)
    assert len(ends) >= 1, "no BACKUP_END record"
    return ends[-1]


def test_fpw_off_workload(fpw_off_run):
    """After the base backups, no page record carries a full-page image
    (but those that always do, FORCED_IMAGES): every page is rebuilt from
    the base backup (or an XLOG/FPI of an index build) by redo."""
    r = fpw_off_run
    assert r.settings["full_page_writes"] is False
    assert "wal_consistency_checking" not in r.settings
    standby = ai.check_standby(r)
    assert standby["Latest checkpoint's full_page_writes"] == "off"
    after = last_backup_end(r)
    lines = page_records(r, after, r.end_lsn)
    refs = [m[1] for line in lines for m in BLKREF.finditer(line)]
    forced = [line for line in lines if " FPW" in line
              and record_type(line) in FORCED_IMAGES]
    with_image = [line for line in lines if " FPW" in line
                  and record_type(line) not in FORCED_IMAGES]
    assert not with_image, with_image[:5]
    assert len(refs) > 10000, len(refs)
    print("\nfpw off: %d page-record block references after the last "
          "BACKUP_END (%s), none with an image but %d records that always "
          "log one (%s); %.0f MiB of WAL, %.1f s"
          % (len(refs), after, len(forced),
             ", ".join(sorted({record_type(line) for line in forced})),
             r.wal_bytes() / MIB, r.seconds))


def test_fpw_off_export_equals_the_standby(fpw_off_run):
    r = fpw_off_run
    stats = ai.record_stats(r, r.base_start_lsn, r.end_lsn)
    argon = through_argon(r, "argon")
    check_import(r, argon, stats)
    check_equal(r, argon)
    replayed = ai.replayed(argon["wal"], argon["export"])
    for rmgr in WORKLOAD_PAGE_RMGRS:
        assert any(t.startswith(rmgr + "/") for t in replayed), rmgr
    print("  replayed:", dict(sorted(replayed.items())))


# -- data checksums ----------------------------------------------------------

@pytest.fixture(scope="module")
def checksums_argon(checksums_run):
    return through_argon(checksums_run, "argon")


def controldata(result, datadir):
    out = subprocess.run([os.path.join(result.primary.bin_dir,
                                       "pg_controldata"), datadir],
                         capture_output=True, text=True, timeout=60).stdout
    return {k.strip(): v.strip() for k, _, v in
            (line.partition(":") for line in out.splitlines())}


def pg_checksums(result, datadir):
    """PostgreSQL's pg_checksums --check over an export's relation files:
    (exit status, output).  pg_checksums wants a cleanly stopped cluster's
    pg_control, so it runs on a hard-linked copy of the export whose
    pg_control is the standby's (stopped at the same LSN, checksums on);
    it only reads the files."""
    copy = datadir + "-pg_checksums"
    subprocess.run(["cp", "-al", datadir, copy], check=True, timeout=300)
    control = os.path.join(copy, "global", "pg_control")
    os.unlink(control)
    shutil.copy(os.path.join(result.standby_dir, "global", "pg_control"),
                control)
    try:
        proc = subprocess.run([os.path.join(result.primary.bin_dir,
                                            "pg_checksums"), "--check",
                               "-D", copy], capture_output=True, text=True,
                              timeout=600)
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    return proc.returncode, proc.stdout + proc.stderr


def test_checksums_export(checksums_run, checksums_argon):
    """With initdb --data-checksums, the base backup's pg_control turns
    Argon's checksums on; every exported page's pd_checksum is PostgreSQL's
    (argon-oracle's pg_checksum_page, and pg_checksums --check)."""
    r, argon = checksums_run, checksums_argon
    assert r.data_checksums
    ai.check_standby(r)
    assert wl.controldata(r.primary)["Data page checksum version"] == "1"
    assert last_json(argonctl(argon["dir"], "checksums", "show")) == \
        {"data_checksums": True}
    check_import(r, argon, ai.record_stats(r, r.base_start_lsn, r.end_lsn))
    c = check_equal(r, argon, "--checksums")
    assert c.checksums_wrong == 0, c.summary()
    assert c.checksums_verified > 1000, c.summary()
    state = controldata(r, argon["out"])
    print("  the export's pg_control: %s, checksum version %s"
          % (state["Database cluster state"],
             state["Data page checksum version"]))
    rc, text = pg_checksums(r, argon["out"])
    assert rc == 0 and re.search(r"Bad checksums:\s+0\n", text), text
    blocks = int(re.search(r"Blocks scanned:\s+(\d+)", text)[1])
    assert blocks >= c.checksums_verified, (blocks, c.summary())
    print("  pg_checksums: " + " ".join(text.split()))


def test_checksums_negative_control(checksums_run, checksums_argon):
    """`argonctl checksums off`: the re-export's pages keep whatever
    pd_checksum they were made with, so compare --checksums and pg_checksums
    find wrong checksums, and the comparison without --checksums still
    passes.  Then on again."""
    r, argon = checksums_run, checksums_argon
    assert last_json(argonctl(argon["dir"], "checksums", "off")) == \
        {"data_checksums": False}
    try:
        assert last_json(argonctl(argon["dir"], "checksums", "show")) == \
            {"data_checksums": False}
        out = os.path.join(r.work_dir, "argon-export-no-checksums")
        ai.export(argon["dir"], r.end_lsn, out)
        bad = ai.compare(r, out, "--checksums")
        print("\nchecksums off: " + bad.summary())
        assert bad.rc != 0, bad.summary()
        # Pages nothing changed since the base backup keep the primary's
        # (right) checksum; every page redo or an image made is wrong.
        assert bad.checksums_verified > 1000 and \
            bad.checksums_wrong >= 100, bad.summary()
        assert "pd_checksum" in bad.stdout and "PostgreSQL computes" in \
            bad.stdout, bad.tail()
        plain = ai.compare(r, out)
        assert plain.rc == 0 and plain.mismatches == 0, plain.tail()
        rc, text = pg_checksums(r, out)
        bad_blocks = re.search(r"Bad checksums:\s+(\d+)", text)
        assert rc != 0 and bad_blocks and int(bad_blocks[1]) >= 100, text
        print("pg_checksums: " + ", ".join(
            line.strip() for line in text.splitlines()
            if re.match(r"(Blocks scanned|Bad checksums):", line)))
    finally:
        argonctl(argon["dir"], "checksums", "on")
    assert last_json(argonctl(argon["dir"], "checksums", "show")) == \
        {"data_checksums": True}
