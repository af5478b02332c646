"""014: PostgreSQL's own regression suite through Argon, compared with a
stock standby.

A real PostgreSQL 15 primary at default settings (no
wal_consistency_checking, full_page_writes on; harness/workload.py
run_regress()) runs pg_regress's parallel schedule (harness/regress.py; the
tablespace test is skipped by name, with the reason printed, because Argon
refuses tablespaces) while a stock standby streams from it and
pg_receivewal --slot collects its WAL from before Argon's base backup.
pg_regress's own pass/fail is printed, not asserted; its run must reach the
end of the schedule.

Argon (`argonctl -D`, 010's 4 MiB layers and low compaction thresholds)
imports the base backup and that WAL and exports a data directory at the
standby's end LSN; argon-oracle compares it with the standby's after
PostgreSQL's masks: 0 mismatching pages, and primary-sanity against the
stopped primary.

Then coverage: pg_waldump --stats=record over the received WAL lists the
record types, and pg_waldump's record lines tell which of the page rmgrs'
(Heap, Heap2, Btree, Hash, Gin, Gist, Sequence, SPGist, BRIN, Generic) types
reference blocks without a full-page image to apply, i.e. need PostgreSQL's
redo.  Every such type must have been replayed by argon-walredo at least
once (argonctl's "redo"."replayed", the import's image creation and the
export together) -- unless none of its records can matter to any page at
the end: every block it touched belongs to a relation the standby no longer
has, lies past the relation's end (or was cut off by a later truncation),
or was later replaced whole (a full-page image, or a "+INIT" record).  Those
types are printed with the reason; a type that did matter and was not
replayed fails the test.

Skipped, with the reason, when argon-walredo, argon-oracle or the
PostgreSQL regression suite is not built, or when the disk is short.
"""

import collections
import os
import re
import subprocess
import time

import pytest

from harness import argon_import as ai
from harness import workload as wl

MIB = 1024 * 1024
BLOCK = 8192

LINE = re.compile(r"^rmgr: (\S+)\s.*?, lsn: ([0-9A-F]+)/([0-9A-F]+), "
                  r"prev \S+, desc: (\S+)")
BLKREF = re.compile(r"blkref #(\d+): rel (\d+)/(\d+)/(\d+)(?: fork (\S+))? "
                    r"blk (\d+)( FPW(?: for WAL verification)?)?")
TRUNCATE = re.compile(r"desc: TRUNCATE (?:base/(\d+)|global)/(\d+) to (\d+) "
                      r"blocks")


# -- fixtures ----------------------------------------------------------------

@pytest.fixture(scope="module")
def regress_run():
    ai.need_redo_tools()
    result = wl.run_regress()
    yield result
    result.cleanup()


@pytest.fixture(scope="module")
def argon(regress_run):
    r = regress_run
    began = time.monotonic()
    datadir, base, wal = ai.import_all(r, "argon")
    imported = time.monotonic()
    out = os.path.join(r.work_dir, "argon-export")
    exp = ai.export(datadir, r.end_lsn, out)
    return {"dir": datadir, "out": out, "base": base, "wal": wal,
            "export": exp,
            "seconds": {"import": round(imported - began, 1),
                        "export": round(time.monotonic() - imported, 1)}}


@pytest.fixture(scope="module")
def stats(regress_run):
    return ai.record_stats(regress_run, regress_run.base_start_lsn,
                           regress_run.end_lsn)


# -- the run ---------------------------------------------------------------

def test_regress_ran(regress_run, stats):
    """pg_regress ran the schedule to its end (its tablespace test skipped,
    with the reason) at default settings; the standby replayed all of it."""
    r = regress_run
    reg = r.regress     # its summary was printed by the run
    assert reg.completed, reg.stdout[-3000:]
    assert "tablespace" in reg.skipped and "tablespace" not in reg.tests
    assert len(reg.tests) > 150, len(reg.tests)
    assert "wal_consistency_checking" not in r.settings
    assert r.settings.get("full_page_writes", True) is True
    ai.check_standby(r)
    assert stats["XLOG/CHECKPOINT_SHUTDOWN"] == 1
    assert stats.get("Tablespace/CREATE", 0) == 0
    print("regress workload: %.0f MiB of WAL (%s .. %s), %d records, %.1f s: "
          "%s" % (r.wal_bytes() / MIB, r.base_start_lsn, r.end_lsn,
                  stats["Total"], r.seconds,
                  ", ".join("%s %.1f" % kv for kv in r.timings.items())))


def test_export_equals_the_standby(regress_run, stats, argon):
    r = regress_run
    wal = argon["wal"]
    assert wal["last_lsn"] == r.end_lsn and wal["skipped"] == 0, wal
    assert wal["records"] == stats["Total"], (wal["records"], stats["Total"])
    assert wal["image_layers_written"] >= 1, wal
    c, text, redo = ai.check_equal(r, argon)
    print("\nregress: %s\n  %s\n  argon-walredo: %s\n  import: %s\n  "
          "WAL %.0f MiB, workload %.1f s, import %.1f s, export %.1f s, "
          "compare %.1f s"
          % (c.summary(), text.strip().splitlines()[-1], redo,
             {k: v for k, v in wal.items() if k != "redo"},
             r.wal_bytes() / MIB, r.seconds, argon["seconds"]["import"],
             argon["seconds"]["export"], argon["seconds"]["compare"]))


# -- which page record types needed redo, and which were replayed ----------

def _fork_blocks(standby_dir, spc, db, rel, fork, cache):
    """Blocks of a relation fork in the standby's data directory (0: none)."""
    key = (spc, db, rel, fork)
    if key not in cache:
        top = "global" if spc == 1664 else os.path.join("base", str(db))
        name = str(rel) + ("" if fork == "main" else "_" + fork)
        total, seg = 0, 0
        while True:
            path = os.path.join(standby_dir, top,
                                name + ("" if seg == 0 else ".%d" % seg))
            try:
                total += os.path.getsize(path)
            except OSError:
                break
            seg += 1
        cache[key] = total // BLOCK
    return cache[key]


def analyse_wal(result):
    """One pass of pg_waldump over the received WAL.  Per page-rmgr record
    type: its records, block references, references without a full-page
    image to apply (the ones PostgreSQL's redo must rebuild), and how many
    of those can matter to a page at the end (see the module docstring)."""
    argv = [os.path.join(result.primary.bin_dir, "pg_waldump"), "-p",
            result.waldump_dir, "-s", result.base_start_lsn, "-e",
            result.end_lsn]
    page_rmgrs = set(ai.PAGE_RMGRS)
    records = collections.Counter()
    refs = collections.Counter()
    redo_refs = collections.Counter()
    last_redo_ref = {}      # (type, block key) -> LSN of the last such ref
    after = {}              # (type, block key) -> LSN of the record after it
    waiting = []            # refs of the previous record, waiting for that LSN
    replaced = {}           # block key -> LSN of its last whole-page image
    truncations = collections.defaultdict(list)  # (db, rel) -> [(lsn, n)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        m = LINE.match(line)
        if not m:
            continue
        rmgr, desc = m[1], m[4]
        lsn = (int(m[2], 16) << 32) | int(m[3], 16)
        for ref in waiting:
            after[ref] = lsn
        waiting = []
        if rmgr == "Storage" and desc == "TRUNCATE":
            t = TRUNCATE.search(line)
            truncations[(int(t[1] or 0), int(t[2]))].append((lsn, int(t[3])))
            continue
        page = rmgr in page_rmgrs
        kind = "%s/%s" % (rmgr, desc)
        if page:
            records[kind] += 1
        for b in BLKREF.finditer(line):
            key = (int(b[2]), int(b[3]), int(b[4]), b[5] or "main",
                   int(b[6]))
            image = b[7] == " FPW"
            if image or (kind.endswith("+INIT") and b[1] == "0"):
                replaced[key] = lsn
            if not page:
                continue
            refs[kind] += 1
            if not image:
                redo_refs[kind] += 1
                last_redo_ref[(kind, key)] = lsn
                waiting.append((kind, key))
    stderr = proc.stderr.read()
    if proc.wait() != 0 and "invalid record length" not in stderr:
        raise AssertionError("pg_waldump failed: " + stderr[-2000:])

    sizes = {}
    matters = collections.Counter()
    why_not = collections.defaultdict(collections.Counter)
    for (kind, key), lsn in last_redo_ref.items():
        spc, db, rel, fork, blk = key
        if _fork_blocks(result.standby_dir, spc, db, rel, fork, sizes) == 0:
            why_not[kind]["relation gone"] += 1
        elif blk >= sizes[(spc, db, rel, fork)]:
            why_not[kind]["past the relation's end"] += 1
        elif fork == "main" and any(t > lsn and n <= blk for t, n
                                    in truncations.get((db, rel), ())):
            why_not[kind]["truncated away later"] += 1
        elif replaced.get(key, -1) > lsn:
            why_not[kind]["page replaced whole later"] += 1
        else:
            matters[kind] += 1
    return {"records": records, "refs": refs, "redo_refs": redo_refs,
            "matters": matters, "why_not": why_not, "last_redo_ref": last_redo_ref,
            "after": after}


FORKS = {"main": 0, "fsm": 1, "vm": 2, "init": 3}


def force_replay(result, argon, a, kind):
    """Read, at the LSN of the record after it, a block that a record of
    kind touched without an image: the read replays it.  The JSON of the
    first read that succeeds, else None."""
    begin = wl.lsn_int(result.base_end_lsn)
    for (k, key), lsn in sorted(a["last_redo_ref"].items(), key=lambda kv: -kv[1]):
        if k != kind or (k, key) not in a["after"] or lsn < begin:
            continue
        spc, db, rel, fork, blk = key
        out = os.path.join(result.work_dir, "forced-page")
        proc = ai.argonctl(argon["dir"], "getpage", "--lsn", wl.lsn_text(a["after"][(k, key)]),
                           spc, db, rel, FORKS[fork], blk, out, check=False)
        if proc.returncode == 0:
            return ai.last_json(proc)
    return None


def test_every_page_record_type_needing_redo_was_replayed(regress_run, stats,
                                                          argon):
    r = regress_run
    a = analyse_wal(r)
    replayed = ai.replayed(argon["base"], argon["wal"], argon["export"])
    page_types = {t: n for t, n in stats.items()
                  if t.split("/")[0] in ai.PAGE_RMGRS and n > 0}
    # pg_waldump's two views of the WAL agree on the page records.
    assert dict(a["records"]) == page_types, \
        set(a["records"].items()) ^ set(page_types.items())

    print("\n%-28s %8s %8s %8s %8s %8s" % ("record type", "records",
                                           "blkrefs", "to redo", "matter",
                                           "replayed"))
    for t in sorted(page_types):
        print("%-28s %8d %8d %8d %8d %8d"
              % (t, page_types[t], a["refs"][t], a["redo_refs"][t],
                 a["matters"][t], replayed.get(t, 0)))
    no_blocks = sorted(t for t in page_types if not a["refs"][t])
    images_only = sorted(t for t in page_types
                         if a["refs"][t] and not a["redo_refs"][t])
    needs_redo = {t for t in page_types if a["redo_refs"][t]}
    must = {t for t in needs_redo if a["matters"][t]}
    print("no block references: %s" % (", ".join(no_blocks) or "none"))
    print("full-page images only: %s" % (", ".join(images_only) or "none"))
    for t in sorted(needs_redo - must):
        print("%s: no reference matters at the end (%s)%s"
              % (t, ", ".join("%s %d" % kv for kv in
                              sorted(a["why_not"][t].items())),
                 "" if t in replayed else "; not replayed"))
    print("replayed by argon-walredo: %d of the %d page record types that "
          "need redo; %d of the %d whose records matter at the end"
          % (len(needs_redo & set(replayed)), len(needs_redo),
             len(must & set(replayed)), len(must)))

    # Strict: every type that needed redo.  A type the import and the export
    # did not happen to replay (its pages were gone or replaced by the end)
    # is replayed by reading one of its blocks just after one of its records.
    forced = {}
    for t in sorted(needs_redo - set(replayed)):
        got = force_replay(r, argon, a, t)
        forced[t] = got is not None and got.get("redo", {}).get("replayed", {}).get(t, 0) > 0
    print("replayed by a read at a past LSN: %s" % (forced or "none needed"))
    missing = sorted(t for t in needs_redo - set(replayed) if not forced.get(t))
    assert not missing, "record types that needed redo but were never " \
        "replayed: %s" % missing
    # Every page rmgr the suite used, and the types one expects of it.
    for rmgr in ("Heap", "Heap2", "Btree", "Hash", "Gin", "Gist", "SPGist",
                 "BRIN", "Sequence"):
        assert any(t.startswith(rmgr + "/") for t in must), rmgr
    assert len(must) >= 40, sorted(must)
    # argon-walredo names types as pg_waldump does: nothing it replayed is
    # missing from --stats=record.
    assert set(replayed) <= set(stats), set(replayed) - set(stats)
