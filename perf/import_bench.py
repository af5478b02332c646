#!/usr/bin/python3
"""import_bench.py - WAL import MB/s of pgbench WAL on one core, L0 flushes
included, next to a raw read of the same segment files (cold and warm)
measured in the same run.

    sudo /usr/bin/python3 perf/import_bench.py [--scale N] [--seconds N]
        [--clients N] [--compression off|pglz|lz4|zstd] [--checkpoint]
        [--repeat N] [--cpu N] [--argonctl PATH] [--perf] [--json]

What it does:

  1. A PostgreSQL 15 primary at default WAL settings (full_page_writes on,
     no wal_consistency_checking, wal_compression off unless --compression)
     through the integration harness (tests/integration/harness).  A physical
     slot reserving WAL is created first, so pg_wal keeps every segment from
     then on; a base backup (pg_basebackup -Fp -X none -c fast) is taken
     before the load; then pgbench -i -s SCALE (with --checkpoint, a
     CHECKPOINT after it) and pgbench -T SECONDS -c CLIENTS; a fast
     shutdown.  The segments from the backup's start to
     the shutdown checkpoint are copied out of pg_wal.
  2. Raw read of those segment files: 1 MiB read()s into one reused buffer,
     on the benchmark CPU; cold (sync, then 3 written to
     /proc/sys/vm/drop_caches: needs root; skipped, and said so, otherwise)
     and warm (read again).
  3. argonctl -D DIR import base BACKUP, then argonctl -D DIR import wal
     --no-progress WALDIR under taskset -c CPU, with the store's default
     settings (checkpoint distance 256 MiB), each into a fresh data
     directory: cold (the page cache dropped after the base import) and
     warm (the WAL in the page cache).  Every measurement is taken --repeat
     times (default 3); the table shows the median run and the range.
     With --perf, one more warm import under perf record (DWARF call
     graphs): its ten hottest symbols and the share of its samples per
     phase (L0 flush, ingest, decode, reads, ...).
  4. A table (or one JSON object with --json): WAL bytes, records, raw read
     MB/s cold and warm, import MB/s cold and warm, import / raw warm,
     records/s, flushes, layers written, seconds; and the goal (>= 500 MB/s
     on one core) compared in words.  Nothing is asserted: this is a
     benchmark, not a test.

Figures: MB = 10^6 bytes.  The import's WAL is its LSN range, from the base
backup's start to the end of the last record imported (page headers,
padding and the rest of the segment the base backup switched out of
included, as a WAL stream's size is usually counted); "rec MB/s" counts only
the records' own bytes.  Two import times: "loop" is the `seconds` argonctl
prints (reading, decoding, ingesting, and the L0 flushes and compactions
that fall due between records); "process" is the wall-clock time of the
whole argonctl run, which adds opening the store and the final checkpoint
(the last L0 flush, compaction, image layers).

Everything lives in harness temporary directories under ARGON_TEST_TMP
(default /tmp/argon-test), removed at the end, on SIGINT/SIGTERM, and by
the next harness run if this one was killed.
"""

import argparse
import collections
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from benchlib import loadavg, logger  # noqa: E402
from harness import procs  # noqa: E402
from harness.pg import PgCluster  # noqa: E402
from harness.workload import (SEGMENT_SIZE, controldata, lsn_int,  # noqa: E402
                              lsn_text, segment_name)

GOAL_MB_S = 500.0
NEON_MB_S = 170.0
READ_BYTES = 1 << 20
SLOT = "import_bench"
MB = 1e6


log = logger("import_bench")


def median_run(runs, key):
    """The run with the median `key` (the lower middle one for an even
    count)."""
    ordered = sorted(runs, key=lambda r: r[key])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["repeats"] = len(runs)
    return chosen


# -- page cache and raw reads ------------------------------------------------

def drop_caches():
    """sync, then drop the page cache; (True, None) or (False, why)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError as e:
        return False, "cannot drop the page cache (%s)" % e
    return True, None


class Pinned:
    """Run the calling thread on one CPU for a with-block."""

    def __init__(self, cpu):
        self.cpu = cpu

    def __enter__(self):
        self.saved = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {self.cpu})

    def __exit__(self, *exc):
        os.sched_setaffinity(0, self.saved)
        return False


def raw_read(paths, cpu):
    """Read every file with 1 MiB read()s into one buffer, on cpu."""
    buf = bytearray(READ_BYTES)
    view = memoryview(buf)
    total = 0
    with Pinned(cpu):
        began = time.perf_counter()
        for path in paths:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
                while True:
                    n = os.readv(fd, [view])
                    if n <= 0:
                        break
                    total += n
            finally:
                os.close(fd)
        seconds = time.perf_counter() - began
    return {"bytes": total, "seconds": seconds, "mb_per_s": total / MB /
            seconds}


def raw_reads(args, paths, cold):
    """--repeat raw reads, cold (cache dropped before each) or warm."""
    runs = []
    if not cold:
        raw_read(paths, args.cpu)       # fills the page cache
    for _ in range(args.repeat):
        if cold:
            dropped, why = drop_caches()
            if not dropped:
                return {"skipped": why}
        runs.append(raw_read(paths, args.cpu))
    fig = median_run(runs, "seconds")
    rates = [r["mb_per_s"] for r in runs]
    fig["mb_per_s_range"] = [min(rates), max(rates)]
    return fig


# -- the WAL -----------------------------------------------------------------

def make_wal(args, work):
    """Primary, slot, base backup, pgbench, shutdown; the segments copied
    into work/wal.  Returns a dict describing the WAL."""
    settings = {"wal_compression": args.compression}
    primary = PgCluster("ib-primary", settings=settings)
    try:
        conn = ["-h", primary.host, "-p", str(primary.port), "-U",
                "postgres"]
        kw = primary.tool_kwargs()

        def tool(name):
            return os.path.join(primary.bin_dir, name)

        shown = {name: primary.sql("SHOW %s" % name)[0][0] for name in (
            "server_version", "wal_level", "full_page_writes",
            "wal_compression", "wal_consistency_checking", "max_wal_size",
            "checkpoint_timeout", "shared_buffers", "fsync")}
        log("primary: %s" % ", ".join("%s=%s" % kv for kv in shown.items()))
        primary.sql("SELECT pg_create_physical_replication_slot(%s, true)",
                    (SLOT,))

        backup = os.path.join(work, "backup")
        os.mkdir(backup, 0o700)
        os.chown(backup, primary.uid, primary.gid)
        procs.run([tool("pg_basebackup")] + conn + [
            "-D", backup, "-Fp", "-X", "none", "-c", "fast", "--no-sync"],
            timeout=600, cwd=work, **kw)
        with open(os.path.join(backup, "backup_label")) as f:
            start = re.search(r"START WAL LOCATION: (\S+)",
                              f.read()).group(1)
        log("base backup: start %s" % start)

        t = time.monotonic()
        procs.run([tool("pgbench")] + conn + [
            "-i", "-s", str(args.scale), "-q", "postgres"],
            timeout=3600, cwd=work, **kw)
        init_s = time.monotonic() - t
        log("pgbench -i -s %d: %.1f s" % (args.scale, init_s))
        if args.checkpoint:
            primary.sql("CHECKPOINT")
        t = time.monotonic()
        out = procs.run([tool("pgbench")] + conn + [
            "-T", str(args.seconds), "-c", str(args.clients),
            "-j", str(args.clients), "postgres"],
            timeout=args.seconds + 600, cwd=work, **kw)
        run_s = time.monotonic() - t
        tps = re.search(r"tps = ([0-9.]+)", out)
        tps = float(tps.group(1)) if tps else None
        log("pgbench -T %d -c %d: %s tps" % (args.seconds, args.clients,
                                             tps))

        primary.stop(mode="fast", keep_dir=True, timeout=300)
        control = controldata(primary)
        if control["Database cluster state"] != "shut down":
            raise RuntimeError("the primary did not shut down cleanly: %s"
                               % control["Database cluster state"])
        checkpoint = lsn_int(control["Latest checkpoint location"])

        # Every segment from the backup's start through the one after the
        # shutdown checkpoint's page, if there is one (the record may cross
        # into it; a recycled segment there is a clean end of WAL).
        wal = os.path.join(work, "wal")
        os.mkdir(wal)
        pg_wal = os.path.join(primary.data_dir, "pg_wal")
        first = lsn_int(start) - lsn_int(start) % SEGMENT_SIZE
        paths = []
        for lsn in range(first, checkpoint + 8192 + 1, SEGMENT_SIZE):
            name = segment_name(lsn)
            src = os.path.join(pg_wal, name)
            if not os.path.exists(src):
                if lsn <= checkpoint:
                    raise RuntimeError("pg_wal lacks segment %s" % name)
                continue
            shutil.copyfile(src, os.path.join(wal, name))
            paths.append(os.path.join(wal, name))
        os.sync()
        return {"start_lsn": start,
                "shutdown_checkpoint_lsn": lsn_text(checkpoint),
                "backup_dir": backup, "wal_dir": wal,
                "segment_paths": paths,
                "pgbench_init_seconds": round(init_s, 1),
                "pgbench_seconds": round(run_s, 1), "pgbench_tps": tps,
                "primary_settings": shown}
    finally:
        primary.stop()          # and its directory: pg_wal was copied


# -- argonctl ----------------------------------------------------------------

def argonctl(args, work, datadir, argv, tag, pin=True, prefix=None):
    """Run argonctl -D datadir argv...; (its JSON, wall seconds, CPU
    seconds, stderr lines)."""
    cmd = [args.argonctl, "-D", datadir] + argv
    if pin:
        cmd = ["taskset", "-c", str(args.cpu)] + cmd
    if prefix:
        cmd = prefix + cmd
    err_path = os.path.join(work, "argonctl-%s.stderr" % tag)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(err_path, "wb") as err:
        began = time.perf_counter()
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=err,
                              timeout=3600)
        wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + \
        (after.ru_stime - before.ru_stime)
    with open(err_path, "rb") as f:
        stderr = f.read().decode("utf-8", "replace").splitlines()
    if proc.returncode != 0:
        raise RuntimeError("%s failed (exit %d)\n%s"
                           % (" ".join(cmd), proc.returncode,
                              "\n".join(stderr[-20:])))
    lines = [line for line in proc.stdout.decode().splitlines()
             if line.startswith("{")]
    if not lines:
        raise RuntimeError("%s printed no JSON" % " ".join(cmd))
    return json.loads(lines[-1]), wall, cpu, stderr


def import_run(args, work, wal, tag, cold, prefix=None):
    """A fresh data directory: base import, then (the page cache dropped
    if cold) the timed WAL import.  Returns its figures."""
    datadir = os.path.join(work, "argon-" + tag)
    try:
        base, base_wall, _cpu, _err = argonctl(
            args, work, datadir, ["import", "base", wal["backup_dir"]],
            tag + "-base", pin=False)
        if cold:
            dropped, why = drop_caches()
            if not dropped:
                return {"skipped": why}
        else:
            os.sync()   # the base import's writes out of the way
        res, wall, cpu, stderr = argonctl(
            args, work, datadir, ["import", "wal", "--no-progress",
                                  wal["wal_dir"]], tag, prefix=prefix)
    finally:
        shutil.rmtree(datadir, ignore_errors=True)
    lsn_bytes = lsn_int(res["last_lsn"]) - lsn_int(wal["start_lsn"])
    return {
        "base_import_seconds": round(base_wall, 3),
        "base_blocks": base.get("blocks"),
        "seconds": res["seconds"],
        "process_seconds": wall,
        "process_cpu_seconds": cpu,
        "lsn_bytes": lsn_bytes,
        "mb_per_s": lsn_bytes / MB / res["seconds"],
        "record_mb_per_s": res["wal_bytes"] / MB / res["seconds"],
        "records_per_s": res["records"] / res["seconds"],
        "process_mb_per_s": lsn_bytes / MB / wall,
        "mb_per_cpu_s": lsn_bytes / MB / cpu if cpu > 0 else None,
        "stderr_lines": len(stderr),
        "postponed_warnings": sum("postponed" in line for line in stderr),
        "stderr_first": stderr[:3],
        "argonctl": res,
    }


def imports(args, work, wal, cold):
    """--repeat imports, cold or warm; the median by loop seconds."""
    tag = "cold" if cold else "warm"
    runs = []
    for i in range(args.repeat):
        if not cold:
            raw_read(wal["segment_paths"], args.cpu)  # WAL in the cache
        fig = import_run(args, work, wal, "%s%d" % (tag, i), cold)
        if fig.get("skipped"):
            return fig
        runs.append(fig)
        log("import %s #%d: %.1f MB/s (loop), %.1f MB/s (process)"
            % (tag, i + 1, fig["mb_per_s"], fig["process_mb_per_s"]))
    fig = median_run(runs, "seconds")
    fig["mb_per_s_range"] = [min(r["mb_per_s"] for r in runs),
                             max(r["mb_per_s"] for r in runs)]
    fig["process_mb_per_s_range"] = [min(r["process_mb_per_s"]
                                         for r in runs),
                                     max(r["process_mb_per_s"]
                                         for r in runs)]
    fig["all_runs"] = [{k: r[k] for k in ("seconds", "process_seconds",
                                          "mb_per_s", "process_mb_per_s")}
                       for r in runs]
    return fig


# -- the profile -------------------------------------------------------------

def _has(syms, *names):
    return any(n in syms for n in names)


# Phases of a sample, by the functions on its call chain; the first match
# wins.  They name Argon's functions as they are today: a renamed function
# shows up as "other".
PHASES = (
    ("L0 flush: zstd compression",
     lambda s, d: _has(s, "inmem_write_layer", "tl_flush_one")
     and ("libzstd" in d or any(x.startswith("ZSTD_") for x in s))),
    ("L0 flush: reading the in-memory layer's file back",
     lambda s, d: _has(s, "whole_load")),
    ("L0 flush: sort, encode, write",
     lambda s, d: _has(s, "inmem_write_layer", "tl_flush_one",
                       "inmem_destroy")),
    ("in-memory layer file removal",
     lambda s, d: _has(s, "io_unlinkat", "do_unlinkat")),
    ("image layers",
     lambda s, d: _has(s, "images_start", "images_step", "collect_keys")),
    ("compaction", lambda s, d: any("compact" in x for x in s)),
    ("ingest: in-memory layer put",
     lambda s, d: _has(s, "inmem_put", "inmem_append")),
    ("ingest: walingest",
     lambda s, d: _has(s, "wi_record", "ingest_block", "size_entry",
                       "tl_put")
     or any(x.startswith(("wi_", "keymap_")) for x in s)),
    ("WAL decode (incl. CRC-32C)",
     lambda s, d: _has(s, "wal_reader_page", "wal_record_decode")
     or "libisal" in d),
    ("WAL reads (io_uring, page cache copies)",
     lambda s, d: _has(s, "io_read")),
    ("io_uring writes", lambda s, d: _has(s, "io_write")),
    ("start-up, exit",
     lambda s, d: _has(s, "_dl_start", "store_open", "exit", "store_close",
                       "__libc_start_main_impl")
     and not _has(s, "wal_import")),
)


def perf_phases(data):
    """Share of the samples per phase (PHASES), from perf script."""
    out = subprocess.run(
        ["perf", "script", "-i", data, "-F", "comm,ip,sym,dso"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        timeout=900).stdout.decode("utf-8", "replace")
    frame = re.compile(r"\s*[0-9a-f]+ (\S+)(?: \(inlined\))?(?: \((.*)\))?")
    counts = collections.Counter()
    total = 0
    for sample in out.split("\n\n"):
        lines = [line for line in sample.splitlines() if line.strip()]
        if not lines:
            continue
        syms, dsos = set(), []
        for line in lines[1:]:
            m = frame.match(line)
            if m:
                syms.add(m.group(1).split("+")[0])
                dsos.append(m.group(2) or "")
        dso_text = " ".join(dsos)
        total += 1
        for name, match in PHASES:
            if match(syms, dso_text):
                counts[name] += 1
                break
        else:
            counts["other"] += 1
    return [{"phase": name, "percent": 100.0 * n / total}
            for name, n in counts.most_common()] if total else []


def perf_top(data, limit=10):
    """perf report's hottest symbols by self time."""
    out = subprocess.run(
        ["perf", "report", "-i", data, "--stdio", "--no-children",
         "--sort", "dso,symbol", "-g", "none", "--percent-limit", "0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        timeout=900).stdout.decode("utf-8", "replace")
    top = []
    for line in out.splitlines():
        m = re.match(r"\s*([0-9.]+)%\s+(\S+)\s+\[[.k]\]\s+(\S+)", line)
        if m:
            top.append({"percent": float(m.group(1)), "dso": m.group(2),
                        "symbol": m.group(3)})
        if len(top) == limit:
            break
    return top


def profile(args, work, wal):
    """One more warm import under perf record with DWARF call graphs (the
    build keeps no frame pointers)."""
    data = os.path.join(work, "perf.data")
    raw_read(wal["segment_paths"], args.cpu)
    fig = import_run(args, work, wal, "perf", cold=False,
                     prefix=["perf", "record", "--call-graph", "dwarf",
                             "-q", "-o", data, "--"])
    return {"seconds": fig["seconds"],
            "process_seconds": fig["process_seconds"],
            "top": perf_top(data), "phases": perf_phases(data)}


# -- output ------------------------------------------------------------------

def print_table(r):
    w = r["wal"]
    cold, warm = r["import_cold"], r["import_warm"]
    rc, rw = r["raw_cold"], r["raw_warm"]
    a = warm["argonctl"]
    print("Argon WAL import benchmark: pgbench -i -s %d, -T %d -c %d "
          "(%s tps)%s, wal_compression %s; import on CPU %d; median of %d"
          % (r["scale"], r["seconds"], r["clients"], w["pgbench_tps"],
             ", CHECKPOINT after -i" if r["checkpoint"] else "",
             r["compression"], r["cpu"], r["repeat"]))
    print("load average: %s at start, %s at end" % (r["load_start"],
                                                    r["load_end"]))
    print("WAL: %s .. %s, %.1f MB (LSN range), %d records (%.1f MB of "
          "records), %d full-page images, %d segment files (%.1f MB)"
          % (w["start_lsn"], a["last_lsn"], warm["lsn_bytes"] / MB,
             a["records"], a["wal_bytes"] / MB, a["images"],
             len(w["segment_paths"]), rw["bytes"] / MB))
    print()
    print("%-24s %8s %8s %15s %9s %10s %9s %9s"
          % ("", "seconds", "MB/s", "(range)", "rec MB/s", "records/s",
             "/raw warm", "MB/CPU-s"))
    for label, fig in (("raw read, cold", rc), ("raw read, warm", rw)):
        if fig.get("skipped"):
            print("%-24s skipped: %s" % (label, fig["skipped"]))
            continue
        print("%-24s %8.3f %8.1f %15s" % (
            label, fig["seconds"], fig["mb_per_s"],
            "%.0f-%.0f" % tuple(fig["mb_per_s_range"])))
    for label, fig in (("import, cold", cold), ("import, warm", warm)):
        if fig.get("skipped"):
            print("%-24s skipped: %s" % (label, fig["skipped"]))
            continue
        x = fig["argonctl"]
        for kind, secs, key in (("loop", fig["seconds"], "mb_per_s"),
                                ("process", fig["process_seconds"],
                                 "process_mb_per_s")):
            mb_s = fig["lsn_bytes"] / MB / secs
            print("%-24s %8.3f %8.1f %15s %9.1f %10.0f %9.3f %9s"
                  % ("%s (%s)" % (label, kind), secs, mb_s,
                     "%.1f-%.1f" % tuple(fig[key + "_range"]),
                     x["wal_bytes"] / MB / secs, x["records"] / secs,
                     mb_s / rw["mb_per_s"],
                     "%.1f" % fig["mb_per_cpu_s"] if kind == "process"
                     else ""))
    print("MB/s: the WAL's LSN range per second; rec MB/s: the records' own "
          "bytes.  loop: argonctl's `seconds`;\nprocess: the whole argonctl "
          "run (adds the store's opening and the final checkpoint); "
          "MB/CPU-s: per second of\nthe process's CPU time (its io_uring "
          "workers included), less sensitive to a busy machine.")
    print()
    for label, fig in (("cold", cold), ("warm", warm)):
        if fig.get("skipped"):
            continue
        x = fig["argonctl"]
        print("import %s: flushes %d, layers written %d, compactions %d, "
              "L1 written %d, image layers %d; CPU %.2f s of %.2f s; "
              "%d stderr lines (%d 'postponed')"
              % (label, x["flushes"], x["layers_written"], x["compactions"],
                 x["l1_written"], x["image_layers_written"],
                 fig["process_cpu_seconds"], fig["process_seconds"],
                 fig["stderr_lines"], fig["postponed_warnings"]))
        for line in fig["stderr_first"][:1]:
            print("  stderr: %s" % line[:160])
    if r["no_flush"]:
        print("WARNING: an import reported no flushes: L0 flushes are NOT "
              "included in these figures")
    print()
    best = warm["mb_per_s"]
    print("goal: >= %.0f MB/s on one core (Neon: ~%.0f MB/s per shard).  "
          "Warm import: %.1f MB/s in the loop\n(%.2f of the goal, %.2f of "
          "Neon's), %.1f MB/s for the whole process: %s."
          % (GOAL_MB_S, NEON_MB_S, best, best / GOAL_MB_S, best / NEON_MB_S,
             warm["process_mb_per_s"],
             "the goal is met" if best >= GOAL_MB_S else
             "%.1fx below the goal" % (GOAL_MB_S / best)))
    if r.get("perf"):
        p = r["perf"]
        print()
        print("perf record --call-graph dwarf of one more warm import "
              "(%.3f s loop, %.3f s process under perf);"
              % (p["seconds"], p["process_seconds"]))
        print("hottest symbols (self time, whole process):")
        for t in p["top"]:
            print("  %6.2f%%  %-20s %s" % (t["percent"], t["dso"],
                                           t["symbol"]))
        print("samples by phase (call chains; whole process):")
        for t in p["phases"]:
            print("  %6.2f%%  %s" % (t["percent"], t["phase"]))


# -- main --------------------------------------------------------------------

def parse_args():
    p = argparse.ArgumentParser(
        description="WAL import MB/s of pgbench WAL on one core, next to "
                    "a raw read of the same files")
    p.add_argument("--scale", type=int, default=20, help="pgbench -i -s")
    p.add_argument("--seconds", type=int, default=30, help="pgbench -T")
    p.add_argument("--clients", type=int, default=4, help="pgbench -c/-j")
    p.add_argument("--compression", default="off",
                   choices=("off", "pglz", "lz4", "zstd"),
                   help="the primary's wal_compression (default off)")
    p.add_argument("--checkpoint", action="store_true",
                   help="CHECKPOINT after pgbench -i: the run then writes a "
                        "full-page image at each page's first change, as "
                        "in a steady state (by default a 30 s run sees no "
                        "checkpoint, and wal_compression has next to "
                        "nothing to compress)")
    p.add_argument("--repeat", type=int, default=3,
                   help="runs of each measurement; the median is shown")
    p.add_argument("--cpu", type=int, default=1,
                   help="the CPU the import and the raw read run on")
    p.add_argument("--argonctl",
                   default=os.path.join(ROOT, "build", "tools", "argonctl"))
    p.add_argument("--perf", action="store_true",
                   help="also profile one import and print where its "
                        "time goes")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object instead of the table")
    args = p.parse_args()
    if args.cpu not in os.sched_getaffinity(0):
        p.error("CPU %d is not available" % args.cpu)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    if not os.access(args.argonctl, os.X_OK):
        p.error("%s is not an executable (build first)" % args.argonctl)
    return args


def main():
    args = parse_args()
    procs.install()
    result = {"scale": args.scale, "seconds": args.seconds,
              "clients": args.clients, "compression": args.compression,
              "checkpoint": args.checkpoint, "repeat": args.repeat,
              "cpu": args.cpu,
              "load_start": loadavg()}
    try:
        work = procs.make_temp_dir("import-bench")
        # A private copy: a rebuild of the tree during the run changes
        # nothing here.
        private = os.path.join(work, "argonctl")
        shutil.copy2(args.argonctl, private)
        args.argonctl = private

        wal = make_wal(args, work)
        result["wal"] = {k: v for k, v in wal.items()
                         if k not in ("backup_dir", "wal_dir")}
        paths = wal["segment_paths"]

        result["raw_cold"] = raw_reads(args, paths, cold=True)
        if result["raw_cold"].get("skipped"):
            log(result["raw_cold"]["skipped"] + ": no cold figures")
        result["raw_warm"] = raw_reads(args, paths, cold=False)
        log("raw read: %s" % ", ".join(
            "%s %.1f MB/s" % (k, result[k]["mb_per_s"])
            for k in ("raw_cold", "raw_warm") if "mb_per_s" in result[k]))

        result["import_cold"] = imports(args, work, wal, cold=True)
        result["import_warm"] = imports(args, work, wal, cold=False)
        result["no_flush"] = any(
            not f.get("skipped") and f["argonctl"]["flushes"] == 0
            for f in (result["import_cold"], result["import_warm"]))
        if args.perf:
            result["perf"] = profile(args, work, wal)
        result["load_end"] = loadavg()
        result["goal_mb_per_s"] = GOAL_MB_S
        result["goal_met"] = result["import_warm"]["mb_per_s"] >= GOAL_MB_S
        result["import_over_raw_warm"] = \
            result["import_warm"]["mb_per_s"] / \
            result["raw_warm"]["mb_per_s"]
        if args.json:
            print(json.dumps(result, sort_keys=True))
        else:
            print_table(result)
        return 0
    finally:
        procs.cleanup_all()


if __name__ == "__main__":
    sys.exit(main())
