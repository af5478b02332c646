"""PostgreSQL 15's own regression suite (pg_regress) against a running PgCluster.

    regress_available()                  (True, "") or (False, why not)
    run_regress(cluster, out_dir, ...)   run the parallel schedule; a RegressResult
    CLUSTER_SETTINGS                     settings worth giving the cluster first

The suite comes from the cached PostgreSQL build (scripts/pg-build.sh --locate):
its src/test/regress holds pg_regress, regress.so, autoinc.so and refint.so (built
from the same 15.x sources as Debian's server) and sql/, expected/, data/ and
parallel_schedule.  psql and the server are Debian's (/usr/lib/postgresql/15/bin).

run_regress() copies what the run needs under out_dir and hands it to the
server's OS user (postgres when we are root), because the server itself reads
some of it: the C functions are loaded from  <out_dir>/lib  (--dlpath, seen by
the scripts as PG_LIBDIR), server-side COPY FROM and lo_import() read
<out_dir>/input/data  (--inputdir, PG_ABS_SRCDIR), and COPY TO / lo_export()
write into  <out_dir>/output/results  (--outputdir, PG_ABS_BUILDDIR).  pg_regress
runs as that same user, over the cluster's unix socket, as the superuser
postgres; it drops and re-creates the database "regression" (template0,
--no-locale: C collation, lc_* and timezone set per database by pg_regress) and
the tests create and drop their own regress_* roles.  The schedule is
parallel_schedule minus the skipped tests (written to <out_dir>/schedule),
"ignore:" lines kept.

Whether pg_regress's comparisons pass is not the point (the result reports the
counts; regression.diffs has the differences): what the run gives a test is a
primary that has executed the whole suite, and its WAL.  The run must reach the
end of the schedule (RegressResult.completed); a run that exceeds `timeout` is
killed (its whole process group) and reported with timed_out.

Skipped by default (DEFAULT_SKIP), with the reason printed:
  tablespace   creates tablespaces (CREATE TABLESPACE ... LOCATION ''), which
               Argon refuses in WAL.  No other test of the schedule creates one,
               and none depends on it.
"""

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import time
from typing import Dict, List, Optional

from . import procs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

DEFAULT_SKIP = {
    "tablespace": "creates tablespaces (CREATE TABLESPACE ... LOCATION ''); "
                  "Argon refuses tablespaces",
}

# What pg_regress's own temporary instance sets that changes results:
# prepared_xacts runs its real variant only with max_prepared_transactions > 0
# (otherwise the alternative expected file, prepared_xacts_1.out, matches).
CLUSTER_SETTINGS = {
    "max_prepared_transactions": 2,
}

DEFAULT_TIMEOUT = 1800.0
SCHEDULE = "parallel_schedule"
LIBRARIES = ("regress.so", "autoinc.so", "refint.so")

# "test boolean     ... ok       23 ms", "     int4   ... FAILED (test process
# exited with exit code 2)     5 ms", "     random ... failed (ignored)   7 ms"
_TEST_LINE = re.compile(
    r"^(?:test |     )(\S+)\s+\.\.\. (ok|FAILED|failed \(ignored\))"
    r"(?:\s*\(([^)]*)\))?\s+(\d+) ms\s*$")
_SUMMARY = (
    (re.compile(r"All (\d+) tests passed\."), ("passed",)),
    (re.compile(r"(\d+) of (\d+) tests passed, (\d+) failed test\(s\) ignored\."),
     ("passed", "total", "ignored")),
    (re.compile(r"(\d+) of (\d+) tests failed, (\d+) of these failures ignored\."),
     ("failed_all", "total", "ignored")),
    (re.compile(r"(\d+) of (\d+) tests failed\."), ("failed", "total")),
)


@dataclasses.dataclass
class RegressResult:
    command: List[str]          # pg_regress's argv, as run
    schedule_path: str          # the schedule given to pg_regress
    output_dir: str             # --outputdir (results/, regression.out/.diffs)
    skipped: Dict[str, str]     # test -> why it was left out
    tests: List[str]            # every test pg_regress reported, in order
    statuses: Dict[str, str]    # test -> "ok", "FAILED" or "failed (ignored)"
    exit_problems: Dict[str, str]  # test -> "test process exited with ..."
    passed: Optional[int]       # from pg_regress's summary (None: no summary)
    failed: Optional[int]       # not counting the ignored failures
    ignored: Optional[int]      # failures of "ignore:" tests
    returncode: Optional[int]   # pg_regress's exit status (None: killed)
    timed_out: bool
    seconds: float
    stdout: str                 # pg_regress's output (stderr merged)
    diffs_path: Optional[str]   # regression.diffs, None if pg_regress left none
    wal_start_lsn: Optional[str] = None   # pg_current_wal_lsn() before
    wal_end_lsn: Optional[str] = None     # and after the run

    @property
    def completed(self):
        """Did pg_regress run the schedule to its end (summary printed)?"""
        return self.passed is not None and not self.timed_out

    @property
    def wal_bytes(self):
        if self.wal_start_lsn is None or self.wal_end_lsn is None:
            return None
        return _lsn_int(self.wal_end_lsn) - _lsn_int(self.wal_start_lsn)

    def failed_tests(self):
        return [t for t in self.tests if self.statuses.get(t) == "FAILED"]

    def summary(self):
        """A few lines for a test's output."""
        lines = ["pg_regress: %d tests reported, %s passed, %s failed, %s ignored, "
                 "%.1f s%s" % (len(self.tests), self.passed, self.failed,
                               self.ignored, self.seconds,
                               " (TIMED OUT)" if self.timed_out else "")]
        for name, why in self.skipped.items():
            lines.append("  skipped %s: %s" % (name, why))
        if self.failed_tests():
            lines.append("  failed: " + " ".join(self.failed_tests()))
        for name, why in self.exit_problems.items():
            lines.append("  %s: %s" % (name, why))
        if self.wal_bytes is not None:
            lines.append("  WAL %s .. %s: %.1f MiB" % (
                self.wal_start_lsn, self.wal_end_lsn, self.wal_bytes / 1024 ** 2))
        if self.diffs_path:
            lines.append("  diffs: " + self.diffs_path)
        return "\n".join(lines)


def _lsn_int(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def pg_source_dir():
    """The cached PostgreSQL build (scripts/pg-build.sh --locate), or None."""
    try:
        out = subprocess.run([os.path.join(REPO, "scripts", "pg-build.sh"), "--locate"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    path = out.stdout.strip()
    return path if out.returncode == 0 and path and os.path.isdir(path) else None


def regress_dir():
    """<PostgreSQL build>/src/test/regress, or None."""
    src = pg_source_dir()
    return os.path.join(src, "src", "test", "regress") if src else None


def regress_available(bin_dir="/usr/lib/postgresql/15/bin"):
    """(True, "") when pg_regress, its libraries and the suite are built and psql
    is installed; else (False, the reason)."""
    d = regress_dir()
    if d is None:
        return False, ("no cached PostgreSQL build (scripts/pg-build.sh --locate "
                       "printed nothing)")
    needed = ["pg_regress", SCHEDULE, "resultmap", "sql", "expected", "data"] \
        + list(LIBRARIES)
    missing = [n for n in needed if not os.path.exists(os.path.join(d, n))]
    if missing:
        return False, "%s lacks %s (src/test/regress not built?)" % (
            d, ", ".join(missing))
    if not os.access(os.path.join(bin_dir, "psql"), os.X_OK):
        return False, "no psql in %s" % bin_dir
    return True, ""


def write_schedule(source, dest, skip):
    """Copy schedule `source` to `dest` without the tests named in `skip`
    (a dict name -> reason); return {name: reason} for those it held.  A name
    the schedule does not hold is an error (a typo would skip nothing)."""
    found = {}
    lines = []
    with open(source) as f:
        for line in f:
            m = re.match(r"^test:\s*(.*)$", line)
            if not m:
                lines.append(line)
                continue
            names = m.group(1).split()
            kept = [n for n in names if n not in skip]
            for n in names:
                if n in skip:
                    found[n] = skip[n]
            if kept:
                lines.append("test: %s\n" % " ".join(kept))
            else:
                lines.append("# test: %s  (skipped)\n" % " ".join(names))
    unknown = sorted(set(skip) - set(found))
    if unknown:
        raise ValueError("not in %s: %s" % (source, ", ".join(unknown)))
    with open(dest, "w") as f:
        f.writelines(lines)
    return found


def _hand_over(path, uid, gid):
    """Give path (a file or a tree) to uid:gid when we are root; directories
    0755 (the cache's are world-writable)."""
    for root, dirs, files in os.walk(path):
        os.chmod(root, 0o755)
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)
    if os.getuid() != 0:
        return
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid)


def _prepare(cluster, out_dir, skip):
    """Copy the suite and libraries under out_dir for the server's user; return
    (pg_regress, inputdir, outputdir, libdir, schedule, skipped)."""
    src = regress_dir()
    os.makedirs(out_dir, exist_ok=True)
    inputdir = os.path.join(out_dir, "input")
    outputdir = os.path.join(out_dir, "output")
    libdir = os.path.join(out_dir, "lib")
    for d in (inputdir, outputdir, libdir):
        if os.path.exists(d):
            shutil.rmtree(d)
    for sub in ("sql", "expected", "data"):
        shutil.copytree(os.path.join(src, sub), os.path.join(inputdir, sub))
    shutil.copy(os.path.join(src, "resultmap"), inputdir)
    os.mkdir(outputdir)
    os.mkdir(libdir)
    for lib in LIBRARIES:
        shutil.copy(os.path.join(src, lib), libdir)
    pg_regress = os.path.join(out_dir, "pg_regress")
    shutil.copy(os.path.join(src, "pg_regress"), pg_regress)
    schedule = os.path.join(out_dir, "schedule")
    skipped = write_schedule(os.path.join(src, SCHEDULE), schedule, skip)
    os.chmod(out_dir, 0o755)
    for path in (inputdir, libdir, outputdir, schedule, pg_regress):
        _hand_over(path, cluster.uid, cluster.gid)
    return pg_regress, inputdir, outputdir, libdir, schedule, skipped


def _parse(stdout):
    tests, statuses, problems = [], {}, {}
    counts = {}
    for line in stdout.splitlines():
        m = _TEST_LINE.match(line)
        if m:
            name, status, problem = m.group(1), m.group(2), m.group(3)
            tests.append(name)
            statuses[name] = status
            if problem:
                problems[name] = problem
            continue
        for pattern, fields in _SUMMARY:
            s = pattern.search(line)
            if s:
                counts = dict(zip(fields, (int(g) for g in s.groups())))
                break
    if not counts:
        return tests, statuses, problems, None, None, None
    ignored = counts.get("ignored", 0)
    if "failed_all" in counts:
        failed = counts["failed_all"] - ignored
    else:
        failed = counts.get("failed", 0)
    if "passed" in counts:
        passed = counts["passed"]
    else:
        passed = counts["total"] - failed - ignored
    return tests, statuses, problems, passed, failed, ignored


def _current_lsn(cluster):
    try:
        return cluster.sql("SELECT pg_current_wal_lsn()")[0][0]
    except Exception:
        return None


def run_regress(cluster, out_dir, skip=DEFAULT_SKIP, timeout=DEFAULT_TIMEOUT,
                dbname="regression", extra_args=()):
    """Run PostgreSQL's parallel_schedule (minus `skip`, a dict test -> reason)
    against the running primary `cluster`, with its files under out_dir (made
    if needed; input/, lib/, output/, schedule and pg_regress are replaced).

    Prints the skipped tests with their reasons and, at the end, the summary.
    Returns a RegressResult whatever pg_regress concluded; raises only when the
    run could not be set up."""
    ok, why = regress_available(cluster.bin_dir)
    if not ok:
        raise RuntimeError("pg_regress unavailable: " + why)
    skip = dict(skip or {})
    pg_regress, inputdir, outputdir, libdir, schedule, skipped = _prepare(
        cluster, os.path.abspath(out_dir), skip)
    for name, reason in skipped.items():
        print("pg_regress: skipping %s: %s" % (name, reason))
    argv = [pg_regress,
            "--bindir=" + cluster.bin_dir,
            "--inputdir=" + inputdir,
            "--outputdir=" + outputdir,
            "--dlpath=" + libdir,
            "--schedule=" + schedule,
            "--host=" + cluster.socket_dir,
            "--port=%d" % cluster.port,
            "--user=postgres",
            "--dbname=" + dbname,
            "--no-locale"] + list(extra_args)
    kwargs = cluster.tool_kwargs()
    env = dict(kwargs["env"])
    env["HOME"] = outputdir
    wal_start = _current_lsn(cluster)
    began = time.monotonic()
    log_path = os.path.join(out_dir, "pg_regress.log")
    timed_out = False
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=outputdir, env=env, user=kwargs["user"], group=kwargs["group"],
            start_new_session=True,
            preexec_fn=procs.death_signal_preexec(signal.SIGKILL))
        try:
            returncode = popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            # pg_regress and the psql processes it forked share its session's
            # process group (its pid).
            try:
                os.killpg(popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            popen.wait()
            returncode = None
        except BaseException:
            try:
                os.killpg(popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            popen.wait()
            raise
    seconds = time.monotonic() - began
    wal_end = _current_lsn(cluster)
    with open(log_path, "rb") as f:
        stdout = f.read().decode("utf-8", "replace")
    tests, statuses, problems, passed, failed, ignored = _parse(stdout)
    diffs = os.path.join(outputdir, "regression.diffs")
    result = RegressResult(
        command=argv, schedule_path=schedule, output_dir=outputdir,
        skipped=skipped, tests=tests, statuses=statuses, exit_problems=problems,
        passed=passed, failed=failed, ignored=ignored, returncode=returncode,
        timed_out=timed_out, seconds=seconds, stdout=stdout,
        diffs_path=diffs if os.path.exists(diffs) else None,
        wal_start_lsn=wal_start, wal_end_lsn=wal_end)
    print(result.summary())
    return result
