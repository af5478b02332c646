#!/usr/bin/python3
"""pagebench.py - argon-pageserver's GetPage throughput, latency and CPU per
GetPage over Neon's pagestream protocol on a real keyspace (pgbench), next to
a physical baseline measured in the same run: a minimal loopback server that
answers every GetPage with 8 KiB from memory (argon-pagebench --baseline).

    sudo /usr/bin/python3 perf/pagebench.py [--scale N] [--history-seconds N]
        [--seconds S] [--warmup S] [--rounds R] [--clients N]
        [--hot-pages N] [--no-pin] [--build DIR] [--quick] [--json]

What it does:

  1. The keyspace.  A PostgreSQL 15 primary (the integration harness's
     PgCluster, default settings), a physical slot reserving WAL, pgbench -i
     -s --scale, a base backup (pg_basebackup -Fp -X none -c fast), then
     pgbench -T --history-seconds (tpcb-like, 2 clients) so that pages have
     versions after the backup, and a fast shutdown.  argonctl -D DIR import
     base BACKUP, import wal PG_WAL (the store's defaults).  The relations
     read: pgbench_branches, _tellers, their primary keys, _history,
     _accounts_pkey, _accounts (main forks, in that order: the "hot" first
     --hot-pages blocks of the keyspace are the small tables, the indexes
     and the start of pgbench_accounts).  Tenant and timeline 00..01.
  2. argon-pageserver (the harness's PageServer, copies of the build's
     programs) with core_count 1 and, on a copy of the data directory,
     core_count 2; page_cache_bytes 256MiB.  The load generator is pinned to
     the last CPU and the baseline to the CPU of Argon's core 0 (the first),
     unless --no-pin.  argon-pagebench runs:
       (a) cached, latest LSN: --clients connection(s) at depth 1, 8 and 32
           over the hot keyspace, each with --baseline (baseline first, then
           Argon, --rounds times; the rounds' histograms pooled); (a') depth
           32 again with the baseline answering block b with page b mod
           --hot-pages of a buffer that size (--baseline-pages): its answers
           then come from memory, as Argon's page cache's do, not from one
           page that never leaves the CPU's caches;
       (b) historical LSNs: request_lsn uniform between the base backup's
           end (the import's consistent LSN) and the last imported record,
           depth 8, over the same hot blocks; compared with (a) at depth 8;
       (d) scaling: 2 connections at depth 8 (latest, hot), alternating
           between the 1-core and the 2-core server --rounds times: the
           server's CPU microseconds per GetPage (/proc/PID/stat) of each;
       (c) cold: the 1-core server restarted with page_cache_bytes 0 and
           layer_cache_bytes 8MiB, the whole keyspace, depth 1 and 8, the
           layer files' pages dropped from the OS page cache every 20 ms
           during the run (posix_fadvise DONTNEED; the engine reads layers
           through it, not with O_DIRECT: so its reads go to the device), the
           bytes the server read from the device during
           the run (/proc/PID/io read_bytes); with --raw-odirect on the
           largest layer file: 8 KiB O_DIRECT preads one at a time, the
           device's floor for a cold read; and first (c') cold depth 8 with
           read_batch_max 1, the same GetPages' layer reads one by one, for the
           ratio of batched (one vectored read per batch) to not batched.
  3. A table (or one JSON object with --json) and the goals: cached
     throughput at depth 8 and 32 >= 0.8x the baseline's; depth 1 p50 <=
     1.3x and p99 <= 2x the baseline's; CPU per GetPage with 2 cores <=
     1.1x that with 1; the cold p99 next to the raw O_DIRECT p99.  Nothing
     is asserted: a benchmark, not a test.  Ratios are within one run: the
     machine is shared and noisy.

--quick: scale 1, 5 s of history, 3 s runs, 1 s warm-up, 1 round (a smoke
run, about a minute).  Everything lives in harness temporary directories
under ARGON_TEST_TMP (default /tmp/argon-test), removed at the end, on
SIGINT/SIGTERM, and by the next harness run if this one was killed.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from benchlib import loadavg, logger  # noqa: E402
from harness import procs  # noqa: E402
from harness.argonctl import argonctl, last_json  # noqa: E402
from harness.pageserver import PageServer  # noqa: E402
from harness.pg import PgCluster  # noqa: E402

TENANT = "00000000000000000000000000000001"
SLOT = "pagebench"
RELATIONS = ("pgbench_branches", "pgbench_tellers", "pgbench_branches_pkey",
             "pgbench_tellers_pkey", "pgbench_history", "pgbench_accounts_pkey",
             "pgbench_accounts")
BINARIES = ("server/argon-pageserver", "tools/argonctl", "compute/argon-walredo",
            "perf/argon-pagebench")
GOAL_THROUGHPUT = 0.8   # cached, depth 8-32: Argon / baseline at least
GOAL_P50 = 1.3          # depth 1: Argon / baseline at most
GOAL_P99 = 2.0
GOAL_CPU_SCALING = 1.1  # CPU per GetPage, 2 cores / 1 core at most
CACHED = {"page_cache_bytes": "256MiB"}
COLD = {"page_cache_bytes": "0", "layer_cache_bytes": "8MiB"}

log = logger("pagebench")


# -- the keyspace ----------------------------------------------------------------

def pgbench(pg, work, *argv, timeout=1800):
    return procs.run([os.path.join(pg.bin_dir, "pgbench"), "-h", pg.socket_dir,
                      "-p", str(pg.port), "-U", "postgres"] + list(argv) + ["postgres"],
                     timeout=timeout, cwd=work, **pg.tool_kwargs())


def make_keyspace(args, work):
    """Primary, pgbench -i, base backup, pgbench -T, shutdown: the backup, the
    WAL directory and the relations {name: (spc, db, relfilenode)}."""
    pg = PgCluster("pb-primary", settings={"max_wal_senders": "4",
                                           "max_replication_slots": "4"})
    pg.sql("SELECT pg_create_physical_replication_slot(%s, true)", (SLOT,))
    log("pgbench -i -s %d" % args.scale)
    pgbench(pg, work, "-i", "-q", "-s", str(args.scale))
    backup = os.path.join(work, "backup")
    os.mkdir(backup, 0o700)
    os.chown(backup, pg.uid, pg.gid)
    procs.run([os.path.join(pg.bin_dir, "pg_basebackup"), "-h", pg.host, "-p", str(pg.port),
               "-U", "postgres", "-D", backup, "-Fp", "-X", "none", "-c", "fast",
               "--no-sync"], timeout=1800, **pg.tool_kwargs())
    log("pgbench -T %d (history after the backup)" % args.history_seconds)
    pgbench(pg, work, "-T", str(args.history_seconds), "-c", "2", "-j", "2",
            timeout=args.history_seconds + 600)
    rows = pg.sql("SELECT c.relname, coalesce(nullif(c.reltablespace, 0), d.dattablespace), "
                  "d.oid, pg_relation_filenode(c.oid) FROM pg_class c, pg_database d "
                  "WHERE d.datname = current_database() AND c.relname = ANY(%s)",
                  (list(RELATIONS),))
    rels = {name: (int(spc), int(db), int(node)) for name, spc, db, node in rows}
    missing = [r for r in RELATIONS if r not in rels]
    if missing:
        raise RuntimeError("relations not found: %s" % missing)
    pg.stop(mode="fast", keep_dir=True, timeout=300)
    return {"primary": pg, "backup": backup, "wal": os.path.join(pg.data_dir, "pg_wal"),
            "rels": rels}


def import_argon(ks, work):
    datadir = os.path.join(work, "argon")
    began = time.monotonic()
    base = last_json(argonctl(datadir, "import", "base", ks["backup"]))
    wal = last_json(argonctl(datadir, "import", "wal", "--no-progress", ks["wal"]))
    seconds = time.monotonic() - began
    lsn_min = wal.get("consistent_lsn") or base["end_lsn"]
    if lsn_min in (None, "0/0"):
        lsn_min = base["end_lsn"]
    log("imported in %.1f s: %d records, %s .. %s" % (seconds, wal["records"], lsn_min,
                                                     wal["last_lsn"]))
    return datadir, {"base_start_lsn": base["start_lsn"], "lsn_min": lsn_min,
                     "lsn_max": wal["last_lsn"], "records": wal["records"],
                     "wal_bytes": wal["wal_bytes"], "seconds": round(seconds, 1)}


def layer_files(datadir):
    """The timeline's files, largest first."""
    tl = os.path.join(datadir, "tenants", TENANT, "timelines", TENANT)
    files = [os.path.join(tl, n) for n in os.listdir(tl)]
    files = [f for f in files if os.path.isfile(f)]
    return sorted(files, key=lambda f: -os.path.getsize(f))


def evict(paths):
    """Drop the files' clean pages from the OS page cache."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


class Evicting:
    """While in the block: drop the files from the OS page cache every 20 ms, so
    the engine's reads of layer blocks go to the device, not to memory the
    first cold read filled (a cold tier bigger than RAM)."""

    def __init__(self, paths):
        self.paths, self.stop = paths, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.wait(0.02):
            evict(self.paths)

    def __enter__(self):
        evict(self.paths)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def read_bytes(pid):
    """Bytes the process made the block layer fetch (/proc/PID/io)."""
    try:
        with open("/proc/%d/io" % pid) as f:
            for line in f:
                if line.startswith("read_bytes:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# -- the runs ----------------------------------------------------------------------

def server(datadir, name, cores, config):
    settings = {"data_dir": datadir, "core_count": str(cores), "core_arena_bytes": "64MiB"}
    settings.update(config)
    srv = PageServer(name, config=settings)
    log("%s: argon-pageserver pid %d, core_count %d, %s" % (
        name, srv.pid, cores, ", ".join("%s %s" % kv for kv in config.items())))
    return srv


def accepted(srv):
    """Connections each core of srv accepted so far (the management API)."""
    try:
        with urllib.request.urlopen(srv.api_url + "/v1/status", timeout=5) as r:
            return [c["connections_accepted"] for c in json.loads(r.read().decode())["cores"]]
    except (OSError, ValueError, KeyError):
        return None


def pagebench(args, srv, ks, **kw):
    """One argon-pagebench run against srv; its JSON object."""
    before = accepted(srv)
    cmd = [args.bench, "--port", str(srv.pg_port), "--server-pid", str(srv.pid),
           "--tenant", TENANT, "--seconds", str(kw.get("seconds", args.seconds)),
           "--warmup", str(kw.get("warmup", args.warmup)),
           "--clients", str(kw.get("clients", args.clients)), "--depth", str(kw["depth"]),
           "--rounds", str(kw.get("rounds", 1)), "--json"]
    for name in RELATIONS:
        # pgbench -T truncates pgbench_history first: its relfilenode is
        # created after the base backup, so historical runs leave it out
        if not (kw.get("historical") and name == "pgbench_history"):
            cmd += ["--rel", "%d/%d/%d/0" % ks["rels"][name]]
    if kw.get("hot"):
        cmd += ["--hot-blocks", str(args.hot_pages)]
    if kw.get("historical"):
        cmd += ["--mode", "historical", "--lsn-min", ks["lsn_min"], "--lsn", ks["lsn_max"]]
    if kw.get("baseline"):
        cmd += ["--baseline"]
    if kw.get("baseline_pages"):
        cmd += ["--baseline-pages", str(kw["baseline_pages"])]
    if kw.get("raw"):
        cmd += ["--raw-odirect", kw["raw"]]
    if args.pin:
        cmd += ["--cpu", str(args.bench_cpu), "--baseline-cpu", str(args.server_cpu)]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=3600)
    if proc.returncode != 0 and not proc.stdout.strip():
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), proc.returncode,
                                                  proc.stderr[-3000:]))
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["command"] = " ".join(cmd[1:])
    after = accepted(srv)
    if before and after:
        # the setup connection (Nblocks) included
        out["connections_per_core"] = [b - a for a, b in zip(before, after)]
    a = out["argon"]
    log("  %.0f GetPage/s, p50 %.1f us, p99 %.1f us, server CPU %s us/GetPage%s%s" % (
        a["getpage_per_s"], a["p50_us"], a["p99_us"],
        "%.1f" % a["server_cpu_us_per_getpage"]
        if a["server_cpu_us_per_getpage"] is not None else "-",
        "; baseline %.0f GetPage/s, p50 %.1f us" % (out["baseline"]["getpage_per_s"],
                                                    out["baseline"]["p50_us"])
        if "baseline" in out else "",
        "; %d ERRORS: %s" % (out["errors"], a["first_error"]) if out["errors"] else ""))
    return out


def cached_runs(args, ks, s1, runs):
    """(a) depth 1, 8, 32 with the baseline; (b) historical at depth 8."""
    for depth in (1, 8, 32):
        log("(a) cached, latest, %d client(s) x depth %d, with the baseline (load %s)"
            % (args.clients, depth, loadavg()))
        runs["cached_d%d" % depth] = pagebench(args, s1, ks, depth=depth, hot=True,
                                               baseline=True, rounds=args.rounds)
    log("(a') cached, depth 32, the baseline answering from a buffer of the hot blocks' "
        "size (load %s)" % loadavg())
    runs["cached_d32_mem"] = pagebench(args, s1, ks, depth=32, hot=True, baseline=True,
                                       baseline_pages=args.hot_pages, rounds=args.rounds)
    log("(b) historical LSNs, depth 8 (load %s)" % loadavg())
    runs["historical_d8"] = pagebench(args, s1, ks, depth=8, hot=True, historical=True,
                                      rounds=args.rounds)


def scaling_runs(args, ks, s1, s2, runs):
    """(d) the same load on 1 and 2 cores, alternating."""
    one, two = [], []
    for r in range(args.rounds):
        for srv, into, cores in ((s1, one, 1), (s2, two, 2)):
            log("(d) scaling round %d: core_count %d, 2 clients x depth 8 (load %s)"
                % (r + 1, cores, loadavg()))
            into.append(pagebench(args, srv, ks, depth=8, clients=2, hot=True))
    runs["scaling_1core"] = pooled(one)
    runs["scaling_2core"] = pooled(two)


def pooled(outs):
    """Several single-round runs of one configuration as one: GetPage/s and CPU
    per GetPage weighted by requests; latencies as the median run's."""
    a = [o["argon"] for o in outs]
    reqs = sum(x["requests"] for x in a)
    secs = sum(x["seconds"] for x in a)
    cpu = [x["server_cpu_us_per_getpage"] for x in a]
    median = sorted(outs, key=lambda o: o["argon"]["getpage_per_s"])[len(outs) // 2]
    merged = dict(median)
    merged["argon"] = dict(median["argon"])
    merged["argon"].update({
        "getpage_per_s": reqs / secs if secs else 0, "requests": reqs, "seconds": secs,
        "errors": sum(x["errors"] for x in a),
        "server_cpu_us_per_getpage": None if None in cpu else
        sum(c * x["requests"] for c, x in zip(cpu, a)) / reqs if reqs else None,
        "client_cpu_us_per_getpage": sum(x["client_cpu_us_per_getpage"] * x["requests"]
                                         for x in a) / reqs if reqs else None,
        "rounds": [x["getpage_per_s"] for x in a]})
    merged["errors"] = merged["argon"]["errors"]
    if all("connections_per_core" in o for o in outs):
        merged["connections_per_core"] = [sum(c) for c in zip(*(o["connections_per_core"]
                                                                for o in outs))]
    return merged


def cold_unbatched(args, ks, datadir, files, runs):
    """(c') cold depth 8 again with read_batch_max 1: the GetPages' layer reads
    one by one, for the batched run's ratio."""
    srv = server(datadir, "pb-cold1", 1, dict(COLD, read_batch_max="1"))
    try:
        log("(c') cold, whole keyspace, depth 8, reads not batched (load %s)" % loadavg())
        with Evicting(files):
            runs["cold_d8_unbatched"] = pagebench(args, srv, ks, depth=8, clients=1)
    finally:
        srv.stop()


def cold_runs(args, ks, datadir, runs):
    """(c) no page cache, an 8 MiB layer cache, the whole keyspace."""
    files = layer_files(datadir)
    cold_unbatched(args, ks, datadir, files, runs)
    srv = server(datadir, "pb-cold", 1, COLD)
    try:
        for depth in (1, 8):
            before = read_bytes(srv.pid)
            log("(c) cold, whole keyspace, depth %d%s (load %s)" % (
                depth, ", then raw O_DIRECT reads of %s" % os.path.basename(files[0])
                if depth == 1 else "", loadavg()))
            with Evicting(files):
                out = pagebench(args, srv, ks, depth=depth, clients=1,
                                raw=files[0] if depth == 1 else None)
            after = read_bytes(srv.pid)
            if before is not None and after is not None and out["argon"]["requests"]:
                out["device_read_bytes"] = after - before
                out["device_read_bytes_per_getpage"] = (after - before) / \
                    out["argon"]["requests"]
            out["layer_files"] = len(files)
            out["layer_bytes"] = sum(os.path.getsize(f) for f in files)
            runs["cold_d%d" % depth] = out
    finally:
        srv.stop()


# -- output ----------------------------------------------------------------------------

def goals(runs):
    """[(what, value, goal text, met)]."""
    out = []
    for d in (8, 32):
        r = runs["cached_d%d" % d]["ratios"]["throughput"]
        out.append(("cached throughput, depth %d, Argon / baseline" % d, r,
                     ">= %.1fx" % GOAL_THROUGHPUT, r >= GOAL_THROUGHPUT))
    d1 = runs["cached_d1"]["ratios"]
    out.append(("depth 1 p50, Argon / baseline", d1["p50"], "<= %.1fx" % GOAL_P50,
                d1["p50"] <= GOAL_P50))
    out.append(("depth 1 p99, Argon / baseline", d1["p99"], "<= %.1fx" % GOAL_P99,
                d1["p99"] <= GOAL_P99))
    c1 = runs["scaling_1core"]["argon"]["server_cpu_us_per_getpage"]
    c2 = runs["scaling_2core"]["argon"]["server_cpu_us_per_getpage"]
    if c1 and c2:
        out.append(("server CPU per GetPage, 2 cores / 1 core", c2 / c1,
                    "<= %.1fx" % GOAL_CPU_SCALING, c2 / c1 <= GOAL_CPU_SCALING))
    r = runs["cached_d32_mem"]["ratios"]["throughput"]
    out.append(("cached throughput, depth 32, Argon / baseline from a hot-set buffer", r,
                "(shown, no goal)", None))
    cold = runs["cold_d1"]
    raw = cold.get("raw_odirect")
    if raw and raw["p99_us"]:
        out.append(("cold depth 1 p99 / raw O_DIRECT p99", cold["argon"]["p99_us"] /
                    raw["p99_us"], "(shown, no goal)", None))
    return out


def fmt(v, spec="%.1f"):
    return "-" if v is None else spec % v


def row(name, run, cores):
    a, b = run["argon"], run.get("baseline")
    ratios = run.get("ratios")
    return ("%-17s %5s %5s %9.0f %7.1f %7.1f %8.1f %6s %5.0f%% %9s %6s %6s  %s" % (
        name, cores, "%dx%d" % (run["clients"], run["depth"]), a["getpage_per_s"],
        a["p50_us"], a["p99_us"], a["p999_us"], fmt(a["server_cpu_us_per_getpage"]),
        100 * a["client_busy"],
        "%.0f" % b["getpage_per_s"] if b else "-",
        "%.1f" % b["p50_us"] if b else "-", "%.1f" % b["p99_us"] if b else "-",
        "tput %.2fx p50 %.2fx p99 %.2fx cpu %sx" % (
            ratios["throughput"], ratios["p50"], ratios["p99"],
            fmt(ratios["server_cpu"], "%.1f")) if ratios else ""))


def print_table(r):
    runs = r["runs"]
    print("Argon pagebench: GetPage over pagestream v3 on a pgbench scale-%d keyspace "
          "(%d blocks; hot %d),\n%s s runs after %s s warm-up, %d round(s) pooled; "
          "%d vCPUs; load %s at start, %s at end; %s"
          % (r["scale"], runs["cold_d1"]["keyspace"]["blocks"],
             runs["cached_d1"]["keyspace"]["hot_blocks"], r["seconds"], r["warmup"],
             r["rounds"], r["machine"]["nproc"], r["machine"]["load_start"],
             r["machine"]["load_end"], r["date"]))
    print()
    print("%-17s %5s %5s %9s %7s %7s %8s %6s %6s %9s %6s %6s  %s" % (
        "run", "cores", "c x d", "GetPage/s", "p50 us", "p99 us", "p999 us", "CPU us",
        "gen", "base GP/s", "b p50", "b p99", "Argon / baseline"))
    names = [("cached_d1", 1), ("cached_d8", 1), ("cached_d32", 1), ("cached_d32_mem", 1),
             ("historical_d8", 1),
             ("scaling_1core", 1), ("scaling_2core", 2), ("cold_d1", 1), ("cold_d8", 1),
             ("cold_d8_unbatched", 1)]
    for name, cores in names:
        print(row(name, runs[name], cores))
    base = [runs["cached_d%d" % d]["baseline"] for d in (1, 8, 32)]
    print("(CPU us: the server's user + system CPU microseconds per GetPage; gen: the load "
          "generator's CPU\ntime over the run's, near 100%%: it limits.  The baseline: CPU "
          "%s us per GetPage at depth\n1 / 8 / 32, its load generator %s busy)" % (
              " / ".join(fmt(b["server_cpu_us_per_getpage"]) for b in base),
              " / ".join("%.0f%%" % (100 * b["client_busy"]) for b in base)))
    for name in ("scaling_1core", "scaling_2core"):
        if "connections_per_core" in runs[name]:
            print("%s: connections accepted per core %s (Nblocks' included)" % (
                name, runs[name]["connections_per_core"]))
    b8, u8 = runs["cold_d8"]["argon"], runs["cold_d8_unbatched"]["argon"]
    print("cold depth 8, batched (one vectored read per batch) / not batched "
          "(read_batch_max 1):\n  throughput %.2fx, p50 %.2fx, p99 %.2fx, CPU per GetPage %sx"
          % (b8["getpage_per_s"] / u8["getpage_per_s"], b8["p50_us"] / u8["p50_us"],
             b8["p99_us"] / u8["p99_us"],
             fmt(b8["server_cpu_us_per_getpage"] / u8["server_cpu_us_per_getpage"], "%.2f")
             if b8["server_cpu_us_per_getpage"] and u8["server_cpu_us_per_getpage"]
             else "-"))
    h, l8 = runs["historical_d8"]["argon"], runs["cached_d8"]["argon"]
    print("historical / latest at depth 8: throughput %.2fx, p50 %.2fx"
          % (h["getpage_per_s"] / l8["getpage_per_s"], h["p50_us"] / l8["p50_us"]))
    raw = runs["cold_d1"].get("raw_odirect")
    if raw:
        print("raw O_DIRECT 8 KiB preads, one at a time, of the largest layer file (%.0f MiB): "
              "%.0f/s,\n  p50 %.1f us, p99 %.1f us, p99.9 %.1f us" % (
                  raw["file_bytes"] / 1048576.0, raw["iops"], raw["p50_us"], raw["p99_us"],
                  raw["p999_us"]))
    for d in (1, 8):
        c = runs["cold_d%d" % d]
        if "device_read_bytes" in c:
            print("cold depth %d: the server read %.1f MiB from the device (%.0f bytes per "
                  "GetPage); layers: %d files, %.0f MiB" % (
                      d, c["device_read_bytes"] / 1048576.0,
                      c["device_read_bytes_per_getpage"], c["layer_files"],
                      c["layer_bytes"] / 1048576.0))
    print()
    print("Goals:")
    for what, value, goal, met in r["goals"]:
        print("  %-45s %6.2fx  goal %-16s %s" % (
            what, value, goal, "" if met is None else "met" if met else "NOT MET"))
    if r["errors"]:
        print("ERRORS: %s" % "; ".join(r["errors"]))


# -- main ------------------------------------------------------------------------------

def parse_args():
    p = argparse.ArgumentParser(
        description="argon-pageserver GetPage throughput and latency next to a physical "
                    "baseline, same run")
    p.add_argument("--scale", type=int, default=10, help="pgbench -i -s (default 10)")
    p.add_argument("--history-seconds", type=int, default=20,
                   help="pgbench -T after the base backup (default 20)")
    p.add_argument("--seconds", type=float, default=10, help="each run (default 10)")
    p.add_argument("--warmup", type=float, default=2, help="before each run (default 2)")
    p.add_argument("--rounds", type=int, default=2,
                   help="baseline/Argon rounds per run, and 1-core/2-core rounds (default 2)")
    p.add_argument("--clients", type=int, default=1,
                   help="connections of the cached runs (default 1)")
    p.add_argument("--hot-pages", type=int, default=4096,
                   help="blocks of the cached runs' keyspace (default 4096: 32 MiB)")
    p.add_argument("--no-pin", dest="pin", action="store_false",
                   help="pin neither the load generator nor the baseline")
    p.add_argument("--build", default=os.environ.get("ARGON_BUILD_DIR")
                   or os.path.join(ROOT, "build"), help="the meson build directory")
    p.add_argument("--quick", action="store_true",
                   help="scale 1, 5 s of history, 3 s runs, 1 s warm-up, 1 round")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    if args.quick:
        args.scale, args.history_seconds, args.seconds, args.warmup, args.rounds = 1, 5, 3, 1, 1
    if args.scale < 1 or args.rounds < 1 or args.clients < 1 or args.seconds <= 0 \
            or args.hot_pages < 1:
        p.error("--scale, --rounds, --clients, --hot-pages must be >= 1, --seconds > 0")
    cpus = sorted(os.sched_getaffinity(0))
    args.server_cpu, args.bench_cpu = cpus[0], cpus[-1]
    for name in BINARIES:
        if not os.access(os.path.join(args.build, name), os.X_OK):
            p.error("%s is not built in %s" % (name, args.build))
    return args


def private_binaries(args):
    """Copies of the programs in the build's layout (a rebuild during the run
    changes nothing); ARGON_BUILD_DIR points the harness at them."""
    dest = procs.make_temp_dir("pagebench-bin")
    for name in BINARIES:
        os.makedirs(os.path.join(dest, os.path.dirname(name)), exist_ok=True)
        shutil.copy2(os.path.join(args.build, name), os.path.join(dest, name))
    os.environ["ARGON_BUILD_DIR"] = dest
    args.bench = os.path.join(dest, "perf/argon-pagebench")


def run_all(args, result):
    work = procs.make_temp_dir("pagebench")
    ks = make_keyspace(args, work)
    datadir, imp = import_argon(ks, work)
    ks.update(imp)
    result["import"] = imp
    result["relations"] = {k: "%d/%d/%d" % v for k, v in ks["rels"].items()}
    copy = os.path.join(work, "argon-2cores")
    shutil.copytree(datadir, copy, symlinks=True)
    runs = result["runs"]
    s1 = server(datadir, "pb-1core", 1, CACHED)
    s2 = server(copy, "pb-2cores", 2, CACHED)
    try:
        cached_runs(args, ks, s1, runs)
        scaling_runs(args, ks, s1, s2, runs)
    finally:
        s2.stop()
        s1.stop()
    cold_runs(args, ks, datadir, runs)


def main():
    args = parse_args()
    procs.install()
    result = {"benchmark": "pagebench", "scale": args.scale,
              "history_seconds": args.history_seconds, "seconds": args.seconds,
              "warmup": args.warmup, "rounds": args.rounds, "clients": args.clients,
              "hot_pages": args.hot_pages, "pinned": args.pin,
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "runs": {},
              "machine": {"nproc": os.cpu_count(), "load_start": loadavg(),
                          "cpu": cpu_model()}}
    if args.pin:
        result["cpus"] = {"load_generator": args.bench_cpu, "baseline": args.server_cpu}
    try:
        private_binaries(args)
        run_all(args, result)
        result["machine"]["load_end"] = loadavg()
        result["goals"] = [{"what": w, "value": v, "goal": g, "met": m}
                           for w, v, g, m in goals(result["runs"])]
        result["errors"] = ["%s: %d (first: %s)" % (name, run["errors"],
                                                    run["argon"]["first_error"])
                            for name, run in result["runs"].items() if run["errors"]]
        if args.json:
            print(json.dumps(result, sort_keys=True))
        else:
            print_table(dict(result, goals=goals(result["runs"])))
        return 1 if result["errors"] else 0
    finally:
        procs.cleanup_all()


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
        return m.group(1).strip() if m else None
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main())
