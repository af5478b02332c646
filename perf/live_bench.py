#!/usr/bin/python3
"""live_bench.py - a PostgreSQL 15 primary's tpcb-like TPS with Argon as its
synchronous standby, next to the same primary with pg_receivewal
--synchronous as its synchronous standby, in the same run; transaction
latency p50/p99 and replication lag p99 of both.

    sudo /usr/bin/python3 perf/live_bench.py [--seconds N] [--rounds N]
        [--scale N] [--clients N] [--threads N] [--interval S]
        [--max-wal-size SIZE] [--keep-inactive] [--build DIR] [--keep]
        [--samples FILE] [--json]

What it does:

  1. One primary (the integration harness's PgCluster): fsync on,
     synchronous_commit on, wal_level replica, max_wal_size 64MB (a
     checkpoint every few seconds under load, so the WAL carries full-page
     images as in a steady state), the rest at defaults.  pgbench -i -s
     --scale once.
  2. Standby A: pg_receivewal --synchronous -s 1 --slot live_bench_rw -n
     -D DIR, connected with application_name=live_bench_rw (it fsyncs what
     it received and reports the flush at once; -s 1 as Argon's status
     interval in the harness, so an idle end of segment is reported within
     a second rather than 10).
     Standby B: Argon, through the harness's Live (tests/integration/harness/
     live.py) on the same primary: slot argon_live, pg_basebackup -Fp -X none
     -c fast, argonctl -D import base, argon-pageserver started, argonctl
     attach (application_name argon_live).  The programs are copies of the
     build's (ARGON_BUILD_DIR points at the copies): a rebuild during the run
     changes nothing.
  3. Rounds A, B, A, B, ... (--rounds of each).  Before each run: the
     configuration's standby is started if it was stopped and catches up,
     ALTER SYSTEM SET synchronous_standby_names to its name and
     pg_reload_conf(), pg_stat_replication must show it "sync"; the other
     standby is then stopped (--keep-inactive: left streaming,
     asynchronously), a CHECKPOINT, and the standby catches up again.  Then
     pgbench -c --clients -j --threads -T --seconds (tpcb-like, the default
     script) over the unix socket, with -l: per-transaction latencies, from
     which the p50/p99 (the whole transaction, the synchronous commit
     included).  While it runs a thread samples every --interval seconds
     (0.1) on one connection pg_current_wal_lsn() and pg_stat_replication
     (flush/replay LSN, write_lag, flush_lag, replay_lag,
     sync_state) of the active standby and, for Argon, the timeline's WAL
     status over the management API (GET /v1/tenant/T/timeline/L/wal, as
     argonctl --json wal): byte lags pg_current_wal_lsn() - flushed_lsn and
     - ingested_lsn.  The CPU seconds the standby's process used in the run
     come from /proc.
  4. A table (or with --json only the JSON): TPS per round and the median
     per configuration, the ratio Argon / pg_receivewal (goal >= 1.0),
     latency p50/p99 per configuration (all its runs' transactions pooled),
     lag p99s (byte lags; write/flush/replay lag in ms; samples pooled), the
     standby's CPU seconds, and what went wrong (a run where the standby was
     not "sync" in every sample, Argon's status errors or states other than
     "streaming"); then one JSON line with all of it.  Nothing is asserted:
     a benchmark, not a test.

Everything lives in harness temporary directories under ARGON_TEST_TMP
(default /tmp/argon-test), removed at the end, on SIGINT/SIGTERM, and by the
next harness run if this one was killed; --keep moves them to
ARGON_TEST_TMP/live-bench-kept-<time> instead (the primary's and Argon's
data, pg_receivewal's WAL, the pgbench logs, the server logs).
"""

import argparse
import glob
import json
import os
import re
import shutil
import signal
import statistics
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
from harness.live import TIMELINE, Live  # noqa: E402
from harness.pageserver import READY  # noqa: E402
from harness.pg import PgCluster  # noqa: E402
from harness.workload import lsn_int  # noqa: E402

GOAL_RATIO = 1.0
RW_NAME = "live_bench_rw"       # pg_receivewal's slot and application_name
BINARIES = ("server/argon-pageserver", "tools/argonctl", "compute/argon-walredo")


log = logger("live_bench")


def percentile(values, q):
    """Nearest-rank percentile of values (None if empty)."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(q / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def cpu_seconds(pid):
    """utime + stime of a process (None if it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def owned_dir(path, pg):
    os.mkdir(path, 0o700)
    os.chown(path, pg.uid, pg.gid)
    return path


# -- the two standbys ----------------------------------------------------------

class Receivewal:
    """Standby A: pg_receivewal --synchronous on its own slot."""

    name = "pg_receivewal"
    app = RW_NAME

    def __init__(self, pg, work):
        self.pg = pg
        self.work = work
        self.dir = owned_dir(os.path.join(work, "receivewal"), pg)
        self.log_path = os.path.join(work, "pg_receivewal.log")
        self.daemon = None
        pg.sql("SELECT pg_create_physical_replication_slot(%s, true)", (RW_NAME,))
        self.start()

    def start(self):
        pg = self.pg
        conn = "host=%s port=%d user=postgres application_name=%s" % (
            pg.host, pg.port, RW_NAME)
        argv = [os.path.join(pg.bin_dir, "pg_receivewal"), "-d", conn,
                "--slot", RW_NAME, "--synchronous", "-s", "1", "-n", "-D", self.dir]
        self.daemon = procs.start_daemon(
            argv, name="pg_receivewal", log_path=self.log_path,
            owner_dir=self.work, cwd=self.work,
            stop_signals=(signal.SIGINT,), **pg.tool_kwargs())

    def running(self):
        return self.daemon is not None and self.daemon.alive()

    def stop(self):
        if self.daemon is not None:
            self.daemon.stop(timeout=20.0)
            self.daemon = None

    def pid(self):
        return self.daemon.pid if self.running() else None

    def status(self):
        return None

    def caught_up(self, lsn):
        return True

    def log_tail(self):
        return procs.log_tail(self.log_path, 20)


class Argon:
    """Standby B: Argon's page server (harness Live) on the same primary."""

    name = "argon"

    def __init__(self, pg):
        self.live = Live("lb", primary=pg)
        self.app = self.live.app
        self.url = "%s/v1/tenant/%s/timeline/%s/wal" % (
            self.live.ps.api_url, self.live.tenant, TIMELINE)
        self.up = True

    def running(self):
        return self.up and self.live.ps.daemon.alive()

    def start(self):
        # A restart appends to the same log: wait for one more ready line
        # and take the ports from the last one (a PageServer.start() that
        # read the whole log would have returned the first start's).
        ps = self.live.ps
        ready = ps.log().count(READY)
        self.live.start(receive=True)
        deadline = time.monotonic() + 120
        while ps.log().count(READY) <= ready:
            if not ps.daemon.alive() or time.monotonic() > deadline:
                raise RuntimeError("argon-pageserver did not restart:\n" + self.log_tail())
            time.sleep(0.02)
        text = ps.log()
        ps.pg_port = int(re.findall(r"PostgreSQL connections on [^\s]+:(\d+)", text)[-1])
        ps.http_port = int(re.findall(r"management API listening on http://[^\s]+:(\d+)",
                                      text)[-1])
        self.url = "%s/v1/tenant/%s/timeline/%s/wal" % (
            self.live.ps.api_url, self.live.tenant, TIMELINE)
        self.up = True

    def stop(self):
        self.live.stop()
        self.up = False

    def pid(self):
        return self.live.ps.pid if self.running() else None

    def status(self):
        """The timeline's WAL status (the JSON of argonctl --json wal)."""
        with urllib.request.urlopen(self.url, timeout=5) as r:
            return json.loads(r.read().decode())

    def caught_up(self, lsn):
        st = self.status()
        return lsn_int(st["flushed_lsn"]) >= lsn and lsn_int(st["ingested_lsn"]) >= lsn

    def log_tail(self):
        return "\n".join(self.live.ps.log().splitlines()[-20:])


# -- switching the synchronous standby -----------------------------------------

def repl_row(pg, app):
    rows = pg.sql("SELECT sync_state, flush_lsn::text FROM pg_stat_replication "
                  "WHERE application_name = %s", (app,))
    return rows[0] if rows else (None, None)


def wait_for(pred, what, standby, timeout=300.0):
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for %s\n%s" % (what, standby.log_tail()))
        time.sleep(0.05)


def has(pg, standby, lsn):
    """Has the standby flushed (Argon: and ingested) lsn, as the primary and
    the standby say?"""
    flush = repl_row(pg, standby.app)[1]
    return flush is not None and lsn_int(flush) >= lsn and standby.caught_up(lsn)


def catch_up(pg, standby, what="catch up with the primary"):
    """Wait until the standby has the primary's current WAL end; return the
    seconds it took."""
    began = time.monotonic()
    target = lsn_int(pg.sql("SELECT pg_current_wal_lsn()::text")[0][0])
    wait_for(lambda: has(pg, standby, target), "%s to %s" % (standby.name, what), standby)
    return time.monotonic() - began


def make_sync(pg, active, other, keep_other):
    """active becomes the synchronous standby (started and caught up first),
    other is stopped unless keep_other; returns the catch-up seconds."""
    if not active.running():
        log("starting %s" % active.name)
        active.start()
    seconds = catch_up(pg, active)
    log("%s caught up in %.1f s" % (active.name, seconds))
    pg.sql("ALTER SYSTEM SET synchronous_standby_names = '%s'" % active.app)
    pg.sql("SELECT pg_reload_conf()")
    wait_for(lambda: repl_row(pg, active.app)[0] == "sync",
             "%s to be the sync standby" % active.name, active, timeout=60)
    if not keep_other and other.running():
        other.stop()
    pg.sql("CHECKPOINT")
    catch_up(pg, active)
    return seconds


# -- sampling during a run -----------------------------------------------------

class Sampler(threading.Thread):
    """pg_current_wal_lsn(), pg_stat_replication of the active standby and,
    for Argon, its WAL status, every interval seconds."""

    QUERY = ("SELECT pg_current_wal_lsn()::text, r.sync_state, r.sent_lsn::text, "
             "r.flush_lsn::text, r.replay_lsn::text, "
             "extract(epoch FROM r.write_lag) * 1000, "
             "extract(epoch FROM r.flush_lag) * 1000, "
             "extract(epoch FROM r.replay_lag) * 1000 "
             "FROM (SELECT 1) one LEFT JOIN pg_stat_replication r "
             "ON r.application_name = %s")

    def __init__(self, pg, standby, interval):
        super().__init__(daemon=True)
        self.pg = pg
        self.standby = standby
        self.interval = interval
        self.halt = threading.Event()
        self.samples = []
        self.failures = []

    def run(self):
        conn = self.pg.connect()
        cur = conn.cursor()
        try:
            while not self.halt.is_set():
                began = time.monotonic()
                self.samples.append(self.sample(cur))
                self.halt.wait(max(0.0, self.interval - (time.monotonic() - began)))
        finally:
            conn.close()

    def sample(self, cur):
        cur.execute(self.QUERY, (self.standby.app,))
        cur_lsn, state, _sent, flush, replay, wlag, flag, rlag = cur.fetchone()
        now = lsn_int(cur_lsn)
        ms = (lambda v: None if v is None else float(v))
        s = {"t": time.monotonic(), "sync_state": state, "write_lag_ms": ms(wlag),
             "flush_lag_ms": ms(flag),
             # pg_receivewal reports no replay position; the lag PostgreSQL
             # shows for it then is meaningless
             "replay_lag_ms": ms(rlag) if replay else None,
             "flush_bytes": max(0, now - lsn_int(flush)) if flush else None,
             "replay_bytes": max(0, now - lsn_int(replay)) if replay else None}
        if isinstance(self.standby, Argon):
            try:
                st = self.standby.status()
            except Exception as e:  # noqa: BLE001 - recorded, not fatal
                self.failures.append(str(e))
                return s
            s["argon_flushed_bytes"] = max(0, now - lsn_int(st["flushed_lsn"]))
            s["argon_ingested_bytes"] = max(0, now - lsn_int(st["ingested_lsn"]))
            s["argon_state"] = st["state"]
            s["argon_error"] = st["error"]
        return s


# -- one pgbench run -----------------------------------------------------------

def pgbench(args, pg, work, label):
    logdir = owned_dir(os.path.join(work, "pgbench-" + label), pg)
    argv = [os.path.join(pg.bin_dir, "pgbench"), "-h", pg.socket_dir, "-p", str(pg.port),
            "-U", "postgres", "-c", str(args.clients), "-j", str(args.threads),
            "-T", str(args.seconds), "-l", "--log-prefix", os.path.join(logdir, "tx"),
            "postgres"]
    out = procs.run(argv, timeout=args.seconds + 300, cwd=logdir, **pg.tool_kwargs())
    tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", out).group(1))
    done = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", out)
    lat = []
    for path in glob.glob(os.path.join(logdir, "tx.*")):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2].isdigit():
                    lat.append(int(parts[2]) / 1000.0)
    return {"tps": tps, "transactions": done,
            "failed": int(failed.group(1)) if failed else 0}, lat


def lag_figures(samples):
    """p99 (and max) of every lag series in the samples."""
    out = {}
    for key in ("flush_bytes", "replay_bytes", "argon_flushed_bytes",
                "argon_ingested_bytes", "write_lag_ms", "flush_lag_ms", "replay_lag_ms"):
        vals = [s[key] for s in samples if s.get(key) is not None]
        if vals:
            out[key] = {"p50": percentile(vals, 50), "p99": percentile(vals, 99),
                        "max": max(vals), "samples": len(vals)}
    return out


def run_one(args, pg, work, standby, other, rnd):
    label = "%s-%d" % (standby.name, rnd)
    catchup = make_sync(pg, standby, other, args.keep_inactive)
    pid = standby.pid()
    cpu0 = cpu_seconds(pid) if pid else None
    sampler = Sampler(pg, standby, args.interval)
    log("round %d: %s, pgbench %d s (load %s)" % (rnd, standby.name, args.seconds, loadavg()))
    sampler.start()
    try:
        fig, lat = pgbench(args, pg, work, label)
    finally:
        sampler.halt.set()
        sampler.join(30)
    # How long the standby needs after the run to have everything (Argon:
    # ingested too); seconds past the end of pgbench.
    drain = catch_up(pg, standby, "catch up after the run")
    cpu1 = cpu_seconds(pid) if pid else None
    samples = sampler.samples
    not_sync = sum(1 for s in samples if s["sync_state"] != "sync")
    half = len(samples) // 2
    fig.update({"round": rnd, "config": standby.name, "catch_up_s": round(catchup, 3),
                "drain_s": round(drain, 3),
                "latency_p50_ms": percentile(lat, 50), "latency_p99_ms": percentile(lat, 99),
                "latencies": len(lat), "samples": len(samples), "samples_not_sync": not_sync,
                "sample_failures": sampler.failures[:5],
                "standby_cpu_s": round(cpu1 - cpu0, 2) if cpu0 is not None
                and cpu1 is not None else None,
                "lag": lag_figures(samples)})
    if isinstance(standby, Argon):
        fig["argon_states"] = sorted({s["argon_state"] for s in samples if "argon_state" in s})
        ing = [x.get("argon_ingested_bytes") for x in samples]
        ing = [x for x in ing if x is not None]
        if ing:
            # does the ingest fall further behind during the run?
            fig["argon_ingested_lag_mean_first_half"] = sum(ing[:half]) / max(1, half)
            fig["argon_ingested_lag_mean_second_half"] = sum(ing[half:]) / max(1, len(ing) - half)
        fig["argon_errors"] = sorted({s["argon_error"] for s in samples if s.get("argon_error")})
    log("  %.0f TPS, p50 %.2f ms, p99 %.2f ms, %d samples (%d not sync), caught up "
        "%.1f s before, %.1f s after"
        % (fig["tps"], fig["latency_p50_ms"] or 0, fig["latency_p99_ms"] or 0,
           len(samples), not_sync, catchup, drain))
    return fig, lat, samples


# -- output ----------------------------------------------------------------------

def summarize(runs, lats, samples):
    tps = [r["tps"] for r in runs]
    return {"tps": tps, "tps_median": statistics.median(tps),
            "tps_min": min(tps), "tps_max": max(tps),
            "latency_p50_ms": percentile(lats, 50), "latency_p99_ms": percentile(lats, 99),
            "latency_mean_ms": sum(lats) / len(lats) if lats else None,
            "standby_cpu_s_per_run": statistics.median(
                [r["standby_cpu_s"] for r in runs if r["standby_cpu_s"] is not None] or [0]),
            "lag": lag_figures(samples)}


def problems(result):
    out = []
    for r in result["runs"]:
        where = "round %d %s" % (r["round"], r["config"])
        if r["samples_not_sync"]:
            out.append("%s: not sync in %d of %d samples"
                       % (where, r["samples_not_sync"], r["samples"]))
        if r["failed"]:
            out.append("%s: %d failed transactions" % (where, r["failed"]))
        if r["sample_failures"]:
            out.append("%s: status not readable: %s" % (where, r["sample_failures"][0]))
        if r.get("argon_errors"):
            out.append("%s: Argon status error: %s" % (where, "; ".join(r["argon_errors"])))
        if r.get("argon_states") and r["argon_states"] != ["streaming"]:
            out.append("%s: Argon states %s" % (where, ",".join(r["argon_states"])))
    return out


def fmt(v, spec="%.2f"):
    return "-" if v is None else spec % v


def lagp(summary, key, spec="%.2f"):
    """p50 / p99 / max of one lag series."""
    f = summary["lag"].get(key)
    if not f:
        return "-"
    return " / ".join(fmt(f[q], spec) for q in ("p50", "p99", "max"))


def print_table(r):
    a, b = r["configs"]["pg_receivewal"], r["configs"]["argon"]
    print("Argon live benchmark: primary tpcb-like TPS with a synchronous standby; pgbench -c %d "
          "-j %d -T %d,\nscale %d, %d round(s) of each, alternating; %d vCPUs; load %s at start, "
          "%s at end" % (r["clients"], r["threads"], r["seconds"], r["scale"], r["rounds"],
                         r["machine"]["nproc"], r["machine"]["load_start"],
                         r["machine"]["load_end"]))
    print()
    print("%-6s %-14s %9s %9s %9s %9s %9s %8s %7s"
          % ("round", "standby", "TPS", "p50 ms", "p99 ms", "before", "after", "CPU s",
             "sync"))
    for run in r["runs"]:
        print("%-6d %-14s %9.0f %9s %9s %8.1fs %8.1fs %8s %7s"
              % (run["round"], run["config"], run["tps"], fmt(run["latency_p50_ms"]),
                 fmt(run["latency_p99_ms"]), run["catch_up_s"], run["drain_s"],
                 fmt(run["standby_cpu_s"], "%.1f"),
                 "%d/%d" % (run["samples"] - run["samples_not_sync"], run["samples"])))
    print()
    print("%-34s %24s %24s" % ("", "pg_receivewal", "Argon"))
    rows = [("TPS median [min..max]", "%.0f [%.0f..%.0f]" % (a["tps_median"], a["tps_min"],
                                                           a["tps_max"]),
             "%.0f [%.0f..%.0f]" % (b["tps_median"], b["tps_min"], b["tps_max"])),
            ("latency p50 / p99 (ms)", "%s / %s" % (fmt(a["latency_p50_ms"]),
                                                    fmt(a["latency_p99_ms"])),
             "%s / %s" % (fmt(b["latency_p50_ms"]), fmt(b["latency_p99_ms"]))),
            ("write_lag p50/p99/max (ms)", lagp(a, "write_lag_ms"), lagp(b, "write_lag_ms")),
            ("flush_lag p50/p99/max (ms)", lagp(a, "flush_lag_ms"), lagp(b, "flush_lag_ms")),
            ("replay_lag p50/p99/max (ms)", lagp(a, "replay_lag_ms"), lagp(b, "replay_lag_ms")),
            ("flush lag, bytes (pg view)", lagp(a, "flush_bytes", "%.0f"),
             lagp(b, "flush_bytes", "%.0f")),
            ("flushed lag, bytes (Argon)", "-", lagp(b, "argon_flushed_bytes", "%.0f")),
            ("ingested lag, bytes (Argon)", "-", lagp(b, "argon_ingested_bytes", "%.0f")),
            ("standby CPU s per run (median)", "%.1f" % a["standby_cpu_s_per_run"],
             "%.1f" % b["standby_cpu_s_per_run"])]
    for name, x, y in rows:
        print("%-34s %24s %24s" % (name, x, y))
    print()
    print("ratio Argon / pg_receivewal (median TPS): %.3f; goal >= %.1f: %s"
          % (r["ratio_tps"], GOAL_RATIO,
             "met" if r["ratio_tps"] >= GOAL_RATIO else "not met"))
    print("Latency: the whole tpcb transaction (pgbench -l), synchronous commit included. Lags "
          "(p50 / p99 / max):\nsamples every %.0f ms during the runs; byte lags are "
          "pg_current_wal_lsn() minus the standby's\nposition; pg_receivewal reports no replay "
          "position. CPU: the standby process's user + system\nseconds during a run."
          % (r["interval"] * 1000))
    for p in r["problems"]:
        print("WARNING: " + p)


# -- main --------------------------------------------------------------------------

def parse_args():
    p = argparse.ArgumentParser(
        description="Primary tpcb TPS with Argon as synchronous standby vs pg_receivewal "
                    "--synchronous, same run")
    p.add_argument("--seconds", type=int, default=30, help="pgbench -T (default 30)")
    p.add_argument("--rounds", type=int, default=2, help="runs of each configuration (default 2)")
    p.add_argument("--scale", type=int, default=10, help="pgbench -i -s (default 10)")
    p.add_argument("--clients", type=int, default=4, help="pgbench -c (default 4)")
    p.add_argument("--threads", type=int, default=2, help="pgbench -j (default 2)")
    p.add_argument("--interval", type=float, default=0.1,
                   help="lag sampling interval in seconds (default 0.1)")
    p.add_argument("--max-wal-size", default="64MB", help="the primary's (default 64MB)")
    p.add_argument("--keep-inactive", action="store_true",
                   help="leave the other standby streaming (asynchronously) during a run")
    p.add_argument("--build", default=os.environ.get("ARGON_BUILD_DIR")
                   or os.path.join(ROOT, "build"), help="the meson build directory")
    p.add_argument("--keep", action="store_true",
                   help="keep the directories (moved to ARGON_TEST_TMP/live-bench-kept-*)")
    p.add_argument("--samples", metavar="FILE",
                   help="also write every lag sample there, one JSON object a line")
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    args = p.parse_args()
    if args.seconds < 1 or args.rounds < 1 or args.scale < 1 or args.clients < 1 \
            or args.threads < 1 or args.interval <= 0:
        p.error("--seconds, --rounds, --scale, --clients, --threads must be >= 1, "
                "--interval > 0")
    return args


def private_binaries(args):
    """Copies of the build's programs in the build's layout; ARGON_BUILD_DIR
    points the harness at them."""
    dest = procs.make_temp_dir("live-bench-bin")
    for name in BINARIES:
        src = os.path.join(args.build, name)
        for attempt in range(30):       # a rebuild may be linking it right now
            if os.access(src, os.X_OK):
                break
            time.sleep(2)
        else:
            raise RuntimeError("%s is not built" % src)
        os.makedirs(os.path.join(dest, os.path.dirname(name)), exist_ok=True)
        shutil.copy2(src, os.path.join(dest, name))
    os.environ["ARGON_BUILD_DIR"] = dest


def keep_dirs():
    """Stop every daemon, then move the temporary directories out of the
    sweep's reach."""
    for d in reversed(procs.daemons()):
        d.stop(timeout=30.0)
    kept = os.path.join(procs.tmp_root(), "live-bench-kept-%d" % int(time.time()))
    os.mkdir(kept)
    for path in procs.temp_dirs():
        os.rename(path, os.path.join(kept, os.path.basename(path)))
        procs.remove_temp_dir(path)     # only unregisters it: it is gone
    return kept


def main():
    args = parse_args()
    procs.install()
    result = {"benchmark": "live_bench", "seconds": args.seconds, "rounds": args.rounds,
              "scale": args.scale, "clients": args.clients, "threads": args.threads,
              "interval": args.interval, "max_wal_size": args.max_wal_size,
              "inactive_standby": "streaming" if args.keep_inactive else "stopped",
              "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "machine": {"nproc": os.cpu_count(), "load_start": loadavg()}}
    try:
        private_binaries(args)
        work = procs.make_temp_dir("live-bench")
        pg = PgCluster("lb-primary", fsync=True, settings={
            "wal_level": "replica", "max_wal_senders": "8", "max_replication_slots": "8",
            "wal_keep_size": "0", "max_wal_size": args.max_wal_size, "min_wal_size": "32MB",
            "synchronous_commit": "on"})
        result["machine"]["pg_version"] = pg.sql("SHOW server_version")[0][0]
        log("pgbench -i -s %d" % args.scale)
        procs.run([os.path.join(pg.bin_dir, "pgbench"), "-h", pg.socket_dir, "-p",
                   str(pg.port), "-U", "postgres", "-i", "-q", "-s", str(args.scale),
                   "postgres"], timeout=1800, cwd=work, **pg.tool_kwargs())
        log("pg_receivewal and Argon (base backup, import, attach)")
        rw = Receivewal(pg, work)
        argon = Argon(pg)
        runs, lats, samples = [], {"pg_receivewal": [], "argon": []}, \
            {"pg_receivewal": [], "argon": []}
        for rnd in range(1, args.rounds + 1):
            for standby, other in ((rw, argon), (argon, rw)):
                fig, lat, smp = run_one(args, pg, work, standby, other, rnd)
                runs.append(fig)
                lats[standby.name] += lat
                samples[standby.name] += smp
                if args.samples:
                    with open(args.samples, "a") as f:
                        for x in smp:
                            f.write(json.dumps(dict(x, round=rnd, config=standby.name,
                                                    t=round(x["t"] - smp[0]["t"], 3)))
                                    + "\n")
        result["runs"] = runs
        result["configs"] = {name: summarize([r for r in runs if r["config"] == name],
                                             lats[name], samples[name])
                             for name in ("pg_receivewal", "argon")}
        result["ratio_tps"] = (result["configs"]["argon"]["tps_median"]
                               / result["configs"]["pg_receivewal"]["tps_median"])
        result["goal_ratio"] = GOAL_RATIO
        result["machine"]["load_end"] = loadavg()
        result["problems"] = problems(result)
        if args.keep:
            result["kept"] = keep_dirs()
            log("kept in %s" % result["kept"])
        if not args.json:
            print_table(result)
        print(json.dumps(result, sort_keys=True))
        return 0
    finally:
        procs.cleanup_all()


if __name__ == "__main__":
    sys.exit(main())
