#!/usr/bin/python3
"""redo_bench.py - GetPage latency of pages that argon-walredo rebuilds from a
full-page image and 1, 10 or 100 WAL records, next to image hits read in the
same run from the same layers, and the records each helper applies per second.

    sudo /usr/bin/python3 perf/redo_bench.py [--pages N] [--records 1,10,100]
        [--reps N] [--probe N] [--cpu N] [--placements same,split,free]
        [--build DIR] [--json]

What it does:

  1. A PostgreSQL 15 primary at default settings (full_page_writes on; the
     integration harness's PgCluster) and a physical slot reserving WAL.  One
     table, autovacuum off, fillfactor 10 (about 20 rows a page, room for 100
     more versions of a row), one primary key; (1 + number of classes) x
     --pages pages, dealt round-robin to the classes: "image", then one per
     --records count N.  A base backup (pg_basebackup -Fp -X none -c fast),
     a CHECKPOINT, then rounds of one UPDATE each, every page's first row
     updated once per round: a page of class N gets 1 + N updates, an image
     page 1.  The first change after the checkpoint logs the page's full-page
     image; the N after it are plain HOT_UPDATE records on that page alone.
     A REPEATABLE READ transaction opened before the updates keeps every old
     row version visible, so no pruning adds records.  After the updates the
     script checks that every row stayed on its page (HOT).
  2. argonctl -D DIR --image-threshold 0 import base, then import wal
     (image layers off: nothing replaces the records to be redone).
  3. build/perf/argon-redo-bench reads every page --reps times (default 25)
     in random order, classes interleaved, at the last LSN, once per
     placement of the benchmark and its helper process:
       same   both on --cpu (a pipe hand-off on one CPU),
       split  the benchmark on --cpu, the helper on another CPU,
       free   neither pinned (the scheduler decides).
     The image class is each run's baseline.  It also times the helper's
     protocol directly on blocking pipes (pings, a page in and out with no
     records, each class's request replayed) to split pipe and wake-up
     costs from redo.  See perf/redo_bench.c.
  4. A table per placement (or one JSON object with --json): per class the
     records per read, p50/p99/p999/max GetPage latency in microseconds,
     the p50 over the image hits', the p50 of the redo call and of the
     rest of GetPage; records/s per helper; the probe's figures; the goal
     (10 records in <= 40 us at p50; Neon: ~160 us on average) in words.
     Nothing is asserted: this is a benchmark, not a test.

Everything lives in harness temporary directories under ARGON_TEST_TMP
(default /tmp/argon-test), removed at the end, on SIGINT/SIGTERM, and by the
next harness run if this one was killed.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from harness import procs  # noqa: E402
from harness.pg import PgCluster  # noqa: E402

GOAL_RECORDS = 10
GOAL_P50_US = 40.0
NEON_AVG_US = 160.0
SLOT = "redo_bench"
TABLE = "redo_bench"
PLACEMENTS = ("same", "split", "free")


def log(text):
    """Progress on stderr (stdout keeps the table or the JSON)."""
    print("redo_bench: " + text, file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# -- the WAL -----------------------------------------------------------------

def make_table(conn, args, classes):
    """The table and its rows; {class: [(page, id)]}, one row per page."""
    cur = conn.cursor()
    cur.execute("CREATE TABLE %s (id int PRIMARY KEY, v int NOT NULL) WITH "
                "(fillfactor = 10, autovacuum_enabled = false)" % TABLE)
    pages = len(classes) * args.pages
    rows = 0
    while True:  # about 20 rows a page at fillfactor 10: add until enough
        cur.execute("INSERT INTO %s SELECT g, 0 FROM generate_series(%d, %d) g"
                    % (TABLE, rows + 1, rows + 25 * pages))
        rows += 25 * pages
        cur.execute("SELECT (ctid::text::point)[0]::int AS page, min(id) FROM "
                    "%s GROUP BY 1 ORDER BY 1" % TABLE)
        firsts = cur.fetchall()
        if len(firsts) > pages:     # the last page may be partly filled
            break
    cur.execute("ANALYZE %s" % TABLE)
    dealt = {c: [] for c in classes}
    for i, (page, first_id) in enumerate(firsts[:pages]):
        dealt[classes[i % len(classes)]].append((page, first_id))
    return dealt


def base_backup(primary, work):
    backup = os.path.join(work, "backup")
    os.mkdir(backup, 0o700)
    os.chown(backup, primary.uid, primary.gid)
    procs.run([os.path.join(primary.bin_dir, "pg_basebackup"), "-h",
               primary.host, "-p", str(primary.port), "-U", "postgres", "-D",
               backup, "-Fp", "-X", "none", "-c", "fast", "--no-sync"],
              timeout=600, **primary.tool_kwargs())
    with open(os.path.join(backup, "backup_label")) as f:
        start = re.search(r"START WAL LOCATION: (\S+)", f.read()).group(1)
    return backup, start


def run_updates(primary, dealt, counts):
    """Round r updates every page whose class wants more than r updates,
    with an old snapshot held open so nothing is pruned."""
    holder = primary.connect()
    holder.autocommit = False
    holder.set_session(isolation_level="REPEATABLE READ")
    hcur = holder.cursor()
    hcur.execute("SELECT txid_current_if_assigned(), count(*) FROM %s" % TABLE)
    conn = primary.connect()
    cur = conn.cursor()
    for r in range(1 + max(counts.values())):
        ids = [i for c, rows in dealt.items() if counts[c] + 1 > r
               for _page, i in rows]
        cur.execute("UPDATE %s SET v = v + 1 WHERE id = ANY(%%s)" % TABLE,
                    (ids,))
        if cur.rowcount != len(ids):
            raise RuntimeError("round %d updated %d rows of %d"
                               % (r, cur.rowcount, len(ids)))
    cur.execute("SELECT pg_current_wal_insert_lsn()")
    end = cur.fetchone()[0]
    # Every update was HOT: each row is still on its page.  (The old snapshot
    # is still held: this read must not prune the pages either.)
    cur.execute("SELECT id, (ctid::text::point)[0]::int, v FROM %s WHERE "
                "id = ANY(%%s)" % TABLE,
                ([i for rows in dealt.values() for _p, i in rows],))
    where = {i: (page, v) for i, page, v in cur.fetchall()}
    for c, rows in dealt.items():
        for page, i in rows:
            if where[i] != (page, counts[c] + 1):
                raise RuntimeError("row %d of class %s: page %d, v %d; "
                                   "expected page %d, v %d (not HOT?)"
                                   % (i, c, where[i][0], where[i][1], page,
                                      counts[c] + 1))
    conn.close()
    holder.rollback()
    holder.close()
    return end


def make_wal(args, work, classes, counts):
    """Primary, table, backup, checkpoint, updates, fast shutdown.  Returns
    what the import and the requests need."""
    primary = PgCluster("rb-primary")
    shown = {name: primary.sql("SHOW %s" % name)[0][0] for name in (
        "server_version", "full_page_writes", "wal_compression",
        "wal_log_hints", "data_checksums", "wal_level")}
    log("primary: %s" % ", ".join("%s=%s" % kv for kv in shown.items()))
    primary.sql("SELECT pg_create_physical_replication_slot(%s, true)",
                (SLOT,))
    conn = primary.connect()
    dealt = make_table(conn, args, classes)
    cur = conn.cursor()
    cur.execute("SELECT pg_relation_filenode('%s'), d.oid, "
                "coalesce(nullif(c.reltablespace, 0), d.dattablespace) "
                "FROM pg_class c, pg_database d WHERE c.relname = '%s' AND "
                "d.datname = current_database()" % (TABLE, TABLE))
    rel, db, spc = cur.fetchone()
    conn.close()
    backup, start = base_backup(primary, work)
    primary.sql("CHECKPOINT")
    end = run_updates(primary, dealt, counts)
    log("WAL %s .. %s; %d pages per class" % (start, end, args.pages))
    primary.stop(mode="fast", keep_dir=True, timeout=300)
    return {"primary": primary, "backup": backup, "start_lsn": start,
            "end_lsn": end, "rel": (spc, db, rel), "dealt": dealt,
            "settings": shown}


# -- Argon -------------------------------------------------------------------

def run_json(args, cmd):
    """Run cmd; the JSON object it printed last (raising with its stderr if
    it failed)."""
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=3600, env=args.env)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd),
                                                   proc.returncode,
                                                   proc.stderr[-3000:]))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def argonctl(args, datadir, *argv):
    return run_json(args, [args.argonctl, "-D", datadir, "--image-threshold", "0"]
                    + list(argv))


def import_wal(args, work, wal):
    datadir = os.path.join(work, "argon")
    argonctl(args, datadir, "import", "base", wal["backup"])
    res = argonctl(args, datadir, "import", "wal", "--no-progress",
                   os.path.join(wal["primary"].data_dir, "pg_wal"))
    log("import: %d records, %d images, %d values for redo, %d image layers"
        % (res["records"], res["images"], res["wal_values"],
           res.get("image_layers_written", 0)))
    return datadir, res


def write_requests(work, wal, classes):
    path = os.path.join(work, "requests")
    spc, db, rel = wal["rel"]
    with open(path, "w") as f:
        for c in classes:               # the first class is the baseline
            for page, _id in wal["dealt"][c]:
                f.write("%s %d %d %d 0 %d\n" % (c, spc, db, rel, page))
    return path


def placement_cpus(args, placement):
    """(--cpu, --helper-cpu) of argon-redo-bench, None: not given."""
    if placement == "same":
        return args.cpu, args.cpu
    if placement == "split":
        return args.cpu, args.other_cpu
    return None, None


def bench_run(args, datadir, requests, lsn, placement):
    cpu, helper = placement_cpus(args, placement)
    cmd = [args.bench, "-D", datadir, "--requests", requests, "--reps",
           str(args.reps), "--probe", str(args.probe), "--lsn", lsn,
           "--json"]
    if cpu is not None:
        cmd += ["--cpu", str(cpu), "--helper-cpu", str(helper)]
    fig = run_json(args, cmd)
    fig["placement"] = placement
    fig["cpu_text"] = ("this process and helper on CPU %d" % cpu
                       if placement == "same" else
                       "this process on CPU %d, helper on CPU %d"
                       % (cpu, helper) if placement == "split" else
                       "neither pinned")
    return fig


# -- output ------------------------------------------------------------------

def goal_words(fig):
    """The goal, in words, for one placement."""
    ten = [c for c in fig["classes"] if c["name"] == str(GOAL_RECORDS)]
    if not ten:
        return "no class of %d records" % GOAL_RECORDS
    p50 = ten[0]["p50_us"]
    return ("%d records: p50 %.1f us (%.2f of the goal, %.2f of Neon's "
            "average): %s" % (GOAL_RECORDS, p50, p50 / GOAL_P50_US,
                              p50 / NEON_AVG_US,
                              "the goal is met" if p50 <= GOAL_P50_US else
                              "%.1fx above the goal" % (p50 / GOAL_P50_US)))


def print_placement(fig):
    base = fig["classes"][0]
    print("%s (%s), at %s:" % (fig["placement"], fig["cpu_text"], fig["lsn"]))
    print("  %-6s %5s %6s %8s %8s %8s %8s %8s %9s %9s %10s"
          % ("class", "reads", "rec/read", "p50 us", "p99 us", "p999 us",
             "max us", "p50/image", "redo p50", "engine p50",
             "redo rec/s"))
    for c in fig["classes"]:
        print("  %-6s %5d %8.1f %8.1f %8.1f %8.1f %8.1f %9.2f %9.1f %10.1f %10s"
              % (c["name"], c["reads"], c["records_per_read"], c["p50_us"],
                 c["p99_us"], c["p999_us"], c["max_us"],
                 c["p50_us"] / base["p50_us"], c["redo_p50_us"],
                 c["engine_p50_us"], "%.0f" % c["redo_records_per_s"]
                 if c["redo_records_per_s"] else "-"))
    print("  direct probe (own helper, blocking pipes, %d round trips each):"
          % (fig["probe"][0]["round_trips"] if fig["probe"] else 0))
    for p in fig["probe"]:
        print("    %-30s p50 %7.1f us  p99 %7.1f us  p999 %7.1f us"
              % (p["name"], p["p50_us"], p["p99_us"], p["p999_us"]))
    if fig["helper_record_us"] > 0:
        print("    helper: %.2f us per record on top of %.1f us for a page "
              "in and out: %.0f records/s per helper"
              % (fig["helper_record_us"], fig["helper_fixed_us"],
                 1e6 / fig["helper_record_us"]))
    probe = {p["name"]: p for p in fig["probe"]}
    extra = ["class %s %+.1f us" % (c["name"], c["redo_p50_us"] -
                                    probe[key]["p50_us"])
             for c in fig["classes"]
             for key in ["class %s's request" % c["name"]] if key in probe]
    if extra:
        print("    the pool's redo call p50 over the probe's for the same "
              "request: " + ", ".join(extra))
    top = [c for c in fig["classes"] if c["name"] == fig["top_class"]]
    if top:
        print("  records/s per helper (class %s, whole redo calls): %.0f; "
              "whole GetPage: %.0f" % (top[0]["name"],
                                       top[0]["redo_records_per_s"],
                                       top[0]["getpage_records_per_s"]))
    print("  goal: " + goal_words(fig))
    pool = fig["pool"]
    if pool["failures"] or pool["helpers_started"] != 1:
        print("  WARNING: redo pool: %d helpers started, %d failures"
              % (pool["helpers_started"], pool["failures"]))


def print_table(r):
    print("Argon redo benchmark: GetPage@LSN of heap pages rebuilt by "
          "argon-walredo from a full-page image\nand N HOT_UPDATE records, "
          "next to image hits (the baseline) from the same layers; %d pages "
          "per class,\neach read %d times in random order, classes "
          "interleaved; load average %s at start, %s at end"
          % (r["pages"], r["reps"], r["load_start"], r["load_end"]))
    print("WAL %s .. %s: %d records, %d full-page images, %d records stored "
          "for redo; image layers off" % (r["wal"]["start_lsn"],
                                          r["wal"]["end_lsn"],
                                          r["import"]["records"],
                                          r["import"]["images"],
                                          r["import"]["wal_values"]))
    for fig in r["runs"]:
        print()
        print_placement(fig)
    print()
    print("redo p50: the call into the redo pool (request, pipe round trip, "
          "helper); engine p50: the rest of\nGetPage (layers, the chain of "
          "records, the applier).  Goal: %d records in <= %.0f us at p50 "
          "(Neon: ~%.0f us\naverage per reconstruction, IPC included)."
          % (GOAL_RECORDS, GOAL_P50_US, NEON_AVG_US))
    if r["mismatched"]:
        print("WARNING: records per read differ from the class's count: %s"
              % ", ".join(r["mismatched"]))


# -- main --------------------------------------------------------------------

def parse_args():
    p = argparse.ArgumentParser(
        description="GetPage latency of pages rebuilt by argon-walredo, next "
                    "to image hits in the same run")
    p.add_argument("--pages", type=int, default=200,
                   help="pages per class (default 200)")
    p.add_argument("--records", default="1,10,100",
                   help="records above the image per class (default "
                        "1,10,100; at most 150)")
    p.add_argument("--reps", type=int, default=25,
                   help="reads of each page (default 25)")
    p.add_argument("--probe", type=int, default=2000,
                   help="round trips of each direct probe (default 2000; "
                        "0: none)")
    p.add_argument("--cpu", type=int, default=1,
                   help="the benchmark's CPU when pinned (default 1)")
    p.add_argument("--placements", default=",".join(PLACEMENTS),
                   help="of same,split,free (default all)")
    p.add_argument("--build", default=os.path.join(ROOT, "build"),
                   help="the meson build directory (default build/)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object instead of the table")
    args = p.parse_args()
    try:
        args.counts = [int(x) for x in args.records.split(",")]
    except ValueError:
        p.error("--records takes numbers separated by commas")
    if not args.counts or min(args.counts) < 1 or max(args.counts) > 150 \
            or len(set(args.counts)) != len(args.counts):
        p.error("--records: distinct counts from 1 to 150")
    args.placements = args.placements.split(",")
    if not set(args.placements) <= set(PLACEMENTS):
        p.error("--placements: of %s" % ",".join(PLACEMENTS))
    cpus = sorted(os.sched_getaffinity(0))
    if args.cpu not in cpus:
        p.error("CPU %d is not available" % args.cpu)
    others = [c for c in cpus if c != args.cpu]
    args.other_cpu = others[0] if others else None
    if args.other_cpu is None and "split" in args.placements:
        args.placements.remove("split")
    if args.pages < 1 or args.reps < 1 or args.probe < 0:
        p.error("--pages and --reps must be at least 1, --probe at least 0")
    for name in ("perf/argon-redo-bench", "tools/argonctl",
                 "compute/argon-walredo"):
        if not os.access(os.path.join(args.build, name), os.X_OK):
            p.error("%s is not built in %s" % (name, args.build))
    return args


def private_binaries(args, work):
    """Copies of the three programs: a rebuild during the run changes
    nothing here.  argon-walredo is found through ARGON_WALREDO."""
    paths = {}
    for name in ("perf/argon-redo-bench", "tools/argonctl",
                 "compute/argon-walredo"):
        dest = os.path.join(work, os.path.basename(name))
        shutil.copy2(os.path.join(args.build, name), dest)
        paths[name] = dest
    args.bench = paths["perf/argon-redo-bench"]
    args.argonctl = paths["tools/argonctl"]
    args.env = dict(os.environ, ARGON_WALREDO=paths["compute/argon-walredo"])


def check_records(result, counts):
    """Each class's reads must have redone exactly its count of records."""
    bad = []
    for fig in result["runs"]:
        for c in fig["classes"]:
            want = counts.get(c["name"])
            if want is not None and abs(c["records_per_read"] - want) > 1e-9:
                bad.append("%s: class %s %.2f (want %d)"
                           % (fig["placement"], c["name"],
                              c["records_per_read"], want))
    return bad


def main():
    args = parse_args()
    procs.install()
    classes = ["image"] + [str(n) for n in args.counts]
    counts = dict({"image": 0}, **{str(n): n for n in args.counts})
    result = {"pages": args.pages, "reps": args.reps, "probe": args.probe,
              "records": args.counts, "load_start": loadavg()}
    try:
        work = procs.make_temp_dir("redo-bench")
        private_binaries(args, work)
        wal = make_wal(args, work, classes, counts)
        result["wal"] = {k: wal[k] for k in ("start_lsn", "end_lsn",
                                             "settings")}
        datadir, result["import"] = import_wal(args, work, wal)
        requests = write_requests(work, wal, classes)
        result["runs"] = []
        for placement in args.placements:
            log("reading, placement %s" % placement)
            result["runs"].append(bench_run(args, datadir, requests,
                                            wal["end_lsn"], placement))
        result["mismatched"] = check_records(result, counts)
        result["load_end"] = loadavg()
        result["goal"] = {"records": GOAL_RECORDS, "p50_us": GOAL_P50_US,
                          "neon_avg_us": NEON_AVG_US}
        if args.json:
            print(json.dumps(result, sort_keys=True))
        else:
            print_table(result)
        return 0
    finally:
        procs.cleanup_all()


if __name__ == "__main__":
    sys.exit(main())
