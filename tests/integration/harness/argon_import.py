"""A WorkloadResult (harness/workload.py) through Argon and back, for the
whole-cluster comparisons of 013 and 014.

    STORE_OPTIONS                    010's small layers and low thresholds
    need_redo_tools()                pytest.skip unless argon-walredo and
                                     argon-oracle are built (with the reason)
    import_all(result, name, opts)   argonctl import base + import wal
                                     -> (datadir, base JSON, wal JSON)
    import_shards(result, datadir, n)  the same into a tenant of n shards
                                     (argonctl --shard i/n, each its share)
    SMALL_WORKLOAD, small_imported(scenario)
                                     a scaled-down run_full, imported and
                                     exported at its end: (result, datadir,
                                     export dir), for the page service's tests
    export(datadir, lsn, out)        argonctl export -> its JSON
    compare(result, out, *flags)     argon-oracle compare --map against the
                                     standby -> Comparison
    primary_sanity(result, out)      argon-oracle primary-sanity -> (rc, out)
    check_standby(result)            assert the stock standby replayed past the
                                     primary's shutdown checkpoint
    waldump(result, *args)           pg_waldump -p <the received WAL>
    record_stats(result, start, end) pg_waldump --stats=record as a dict
    replayed(*jsons)                 the union of argonctl JSONs'
                                     redo.replayed, {"Rmgr/TYPE": n}

Every argonctl command is a new process (harness/argonctl.py), with the
build's argon-walredo (or the sibling gcc build's) as ARGON_WALREDO.
"""

import collections
import dataclasses
import os
import re
import subprocess
import time

import pytest

from . import oracle
from . import workload as wl
from .argonctl import argonctl, last_json, walredo_binary, walredo_missing

MIB = 1024 * 1024

# Small layers and low thresholds (as 010): flushes, compactions and image
# layers happen on a few hundred MiB of WAL, so pages are also rebuilt by
# redo while the import creates images.
STORE_OPTIONS = ["--checkpoint-distance", str(4 * MIB),
                 "--compaction-threshold", "4", "--image-threshold", "3"]

# The resource managers whose records change relation pages through
# PostgreSQL's redo (pg_waldump's names).
PAGE_RMGRS = ("Heap", "Heap2", "Btree", "Hash", "Gin", "Gist", "Sequence",
              "SPGist", "BRIN", "Generic")

_SUMMARY = re.compile(r"oracle: (\d+) files, (\d+) blocks compared, "
                      r"(\d+) mismatches")
_CHECKSUMS = re.compile(r"checksums: (\d+) pages verified, (\d+) wrong")


def need_redo_tools():
    """Skip (with the reason) unless argon-walredo and argon-oracle exist."""
    if walredo_binary() is None:
        pytest.skip(walredo_missing())
    if oracle.oracle_binary() is None:
        pytest.skip(oracle.why_missing())


def import_all(result, name, options=STORE_OPTIONS):
    """argonctl import base, then import wal of the whole received WAL, into
    <work_dir>/<name>; returns (datadir, base JSON, wal JSON)."""
    datadir = os.path.join(result.work_dir, name)
    base = last_json(argonctl(datadir, *options, "import", "base",
                              result.backup_dir))
    wal = last_json(argonctl(datadir, *options, "import", "wal",
                             "--no-progress", result.wal_dir))
    return datadir, base, wal


def import_shards(result, datadir, count=2, options=STORE_OPTIONS):
    """argonctl --shard N/count import base, then import wal, for each shard of
    a tenant of count shards in datadir: each takes its share of every record."""
    for n in range(count):
        opts = list(options) + ["--shard", "%d/%d" % (n, count)]
        argonctl(datadir, *opts, "import", "base", result.backup_dir)
        argonctl(datadir, *opts, "import", "wal", "--no-progress", result.wal_dir)


# A scaled-down whole-cluster workload: every step but the 17 MiB message.
SMALL_WORKLOAD = dict(scale=1, seconds=5, snapshots=2,
                      steps=tuple(s for s in wl.STEP_NAMES if s != "messages"),
                      min_free=wl.MIN_FREE_BYTES_SMALL, consistency_checking=False)


def small_imported(scenario):
    """SMALL_WORKLOAD run, imported into <work_dir>/argon and exported at the
    standby's end LSN into <work_dir>/export: (result, datadir, export dir).
    The caller cleans up (result.cleanup())."""
    need_redo_tools()
    result = wl.run_full(scenario=scenario, **SMALL_WORKLOAD)
    datadir, _, _ = import_all(result, "argon")
    out = os.path.join(result.work_dir, "export")
    export(datadir, result.end_lsn, out)
    return result, datadir, out


def export(datadir, lsn, out, check=True):
    """argonctl export --lsn LSN OUT; its JSON (check=False: the process)."""
    proc = argonctl(datadir, "export", "--lsn", lsn, out, check=check)
    return last_json(proc) if check else proc


@dataclasses.dataclass
class Comparison:
    rc: int
    stdout: str
    stderr: str
    files: int = 0
    blocks: int = 0
    mismatches: int = -1          # -1: no summary line
    checksums_verified: int = -1  # -1: no "checksums:" line
    checksums_wrong: int = -1

    def summary(self):
        lines = [line for line in self.stdout.strip().splitlines()
                 if line.startswith(("oracle:", "checksums:"))]
        return "; ".join(lines) or self.stdout[-500:]

    def tail(self):
        """For an assertion message: the first mismatch lines, the summary
        and stderr (the exclusion lines are left out)."""
        lines = self.stdout.splitlines()
        shown = [line for line in lines if line.startswith("mismatch")][:40]
        return "\n".join(shown + [self.summary(), self.stderr[-2000:]])


def compare(result, out, *flags):
    """argon-oracle compare --map <the workload's map> [flags] STANDBY OUT
    (flags: --checksums; the oracle wants it after --map)."""
    rc, stdout, stderr = oracle.run_oracle(
        "compare", "--map", result.am_map_path, *flags, result.standby_dir,
        out, timeout=900)
    c = Comparison(rc, stdout, stderr)
    m = None
    for m in _SUMMARY.finditer(stdout):
        pass
    if m:
        c.files, c.blocks, c.mismatches = int(m[1]), int(m[2]), int(m[3])
    m = _CHECKSUMS.search(stdout)
    if m:
        c.checksums_verified, c.checksums_wrong = int(m[1]), int(m[2])
    return c


def primary_sanity(result, out):
    rc, stdout, stderr = oracle.run_oracle(
        "primary-sanity", "--map", result.am_map_path, result.primary_dir,
        out, timeout=900)
    return rc, stdout + stderr


def waldump(result, *args, check=True):
    argv = [os.path.join(result.primary.bin_dir, "pg_waldump"),
            "-p", result.waldump_dir] + [str(a) for a in args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900)
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


def replayed(*jsons):
    """The record types argon-walredo replayed in any of these argonctl
    runs: {"Rmgr/TYPE": total count}."""
    union = collections.Counter()
    for j in jsons:
        union.update((j.get("redo") or {}).get("replayed") or {})
    return dict(union)


def redo_totals(*jsons):
    """helpers_started, requests, records and failures summed over runs."""
    totals = collections.Counter()
    for j in jsons:
        redo = j.get("redo") or {}
        for key in ("helpers_started", "requests", "records", "failures"):
            totals[key] += redo.get(key, 0)
    return dict(totals)


def check_standby(result):
    """Assert that the stock standby replayed past the primary's shutdown
    checkpoint and shut down there; return its pg_controldata."""
    standby = wl.controldata(result.standby)
    assert wl.controldata(result.primary)["Database cluster state"] == \
        "shut down"
    assert standby["Database cluster state"] == "shut down in recovery"
    assert standby["Latest checkpoint location"] == \
        result.shutdown_checkpoint_lsn
    with open(result.standby.log_path, errors="replace") as f:
        log = f.read()
    assert "PANIC" not in log and "consistent recovery state reached" in log
    return standby


def check_equal(result, argon, *flags):
    """Argon's export (argon["out"]) against the standby: 0 mismatches and
    primary-sanity passing; argon-walredo replayed records without a failure
    during the import and the export.  Times the comparison into
    argon["seconds"]["compare"].  Returns (Comparison, sanity text, redo totals)."""
    began = time.monotonic()
    c = compare(result, argon["out"], *flags)
    argon["seconds"]["compare"] = round(time.monotonic() - began, 1)
    assert c.rc == 0 and c.mismatches == 0, c.tail()
    assert c.blocks > 1000, c.summary()
    rc, text = primary_sanity(result, argon["out"])
    assert rc == 0, text[-4000:]
    redo = redo_totals(argon["wal"], argon["export"])
    assert redo["failures"] == 0, redo
    assert redo["records"] > 0 and redo["helpers_started"] >= 1, redo
    return c, text, redo
