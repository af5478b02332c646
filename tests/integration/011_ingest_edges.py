"""011: the edges of WAL import and export, on small real PostgreSQL 15 clusters.

- A cleanly stopped data directory imports as a timeline consistent at its
  checkpoint; its export equals the directory itself after PostgreSQL's masks.
  A data directory that was not shut down cleanly is refused.
- At default settings (no wal_consistency_checking) records touch pages
  without images: argon-walredo replays them, and the export equals the
  cleanly stopped primary after PostgreSQL's masks; without argon-walredo the
  export fails with an error naming the record's LSN and rmgr.
- The commit-timestamp index answers "the LSN of the newest commit at or
  before T", checked against pg_waldump's commit records.
- Tablespaces other than pg_default/pg_global are refused, in WAL and in a
  base backup, with the reason.
"""

import os
import re
import shutil
import subprocess

import pytest

from harness import oracle, procs
from harness.argonctl import argonctl, last_json, walredo_binary, walredo_missing
from harness.pg import PgCluster
from harness.workload import lsn_int, lsn_text

SETTINGS = {"wal_keep_size": "1GB", "max_wal_senders": "4", "wal_level": "replica"}


def base_backup(pg, dest, *extra):
    os.mkdir(dest, 0o700)
    os.chown(dest, pg.uid, pg.gid)
    procs.run([os.path.join(pg.bin_dir, "pg_basebackup"), "-h", pg.host, "-p", str(pg.port),
               "-U", "postgres", "-D", dest, "-Fp", "-X", "none", "-c", "fast", "--no-sync"]
              + list(extra), timeout=300, **pg.tool_kwargs())


def waldump(pg, start, end):
    env = dict(os.environ, TZ="UTC")
    out = subprocess.run([os.path.join(pg.bin_dir, "pg_waldump"), "-p",
                          os.path.join(pg.data_dir, "pg_wal"), "-s", start, "-e", end],
                         capture_output=True, text=True, timeout=300, env=env)
    return out.stdout


@pytest.mark.parametrize("checksums", [False, True], ids=["plain", "data_checksums"])
def test_stopped_data_directory(tmp_dir, checksums):
    """With data checksums, the export's pages carry PostgreSQL's pd_checksum
    (verified with pg_checksum_page).  Pages rebuilt by redo, and the negative
    control, are in 013's checksum variant."""
    pg = PgCluster("edge-stopped", settings=SETTINGS, data_checksums=checksums)
    try:
        pg.sql("create table t (a int primary key, b text)")
        pg.sql("insert into t select g, repeat('x', g % 50) from generate_series(1, 20000) g")
        pg.sql("create index on t using hash (b)")
        pg.sql("vacuum t")
        pg.stop(keep_dir=True)
        datadir = os.path.join(tmp_dir, "argon")
        base = last_json(argonctl(datadir, "import", "base", pg.data_dir))
        assert base["start_lsn"] == base["end_lsn"] and base["blocks"] > 100
        assert last_json(argonctl(datadir, "checksums", "show")) == {"data_checksums": checksums}
        out = os.path.join(tmp_dir, "export")
        exp = last_json(argonctl(datadir, "export", "--lsn", "latest", out))
        assert exp["lsn"] == base["end_lsn"]
        if oracle.oracle_binary() is None:
            pytest.skip(oracle.why_missing())
        flags = ["--checksums"] if checksums else []
        rc, stdout, stderr = oracle.run_oracle("compare", *flags, pg.data_dir, out)
        assert rc == 0, stdout[-3000:] + stderr
        print(stdout.strip().splitlines()[-2 if checksums else -1:])
        if checksums:
            assert re.search(r"checksums: [1-9]\d* pages verified, 0 wrong", stdout), stdout
    finally:
        pg.stop()


def test_unclean_data_directory_is_refused(tmp_dir):
    pg = PgCluster("edge-crashed", settings=SETTINGS)
    try:
        pg.sql("create table t (a int)")
        os.kill(pg.pid, 9)  # the postmaster dies: no shutdown checkpoint
        proc = argonctl(os.path.join(tmp_dir, "argon"), "import", "base", pg.data_dir,
                        check=False)
        assert proc.returncode == 3
        assert "was not shut down cleanly" in proc.stderr, proc.stderr
    finally:
        pg.stop(mode="immediate")


@pytest.fixture(scope="module")
def default_cluster():
    """A primary at default settings: a base backup, then writes and commits
    whose records touch pages without full-page images."""
    pg = PgCluster("edge-default", settings=SETTINGS)
    work = procs.make_temp_dir("edge-default")
    pg.sql("create table t (a int, b text)")
    pg.sql("insert into t select g, 'row ' || g from generate_series(1, 100) g")
    backup = os.path.join(work, "backup")
    base_backup(pg, backup)
    start = re.search(r"START WAL LOCATION: (\S+)",
                      open(os.path.join(backup, "backup_label")).read())[1]
    for i in range(30):  # small transactions, one commit each
        pg.sql("insert into t values (%d, 'later')" % (1000 + i))
    pg.sql("select pg_switch_wal()")
    end = pg.sql("select pg_current_wal_insert_lsn()")[0][0]
    pg.stop(keep_dir=True)
    datadir = os.path.join(work, "argon")
    argonctl(datadir, "import", "base", backup)
    wal = last_json(argonctl(datadir, "import", "wal", "--no-progress",
                             os.path.join(pg.data_dir, "pg_wal")))
    yield {"pg": pg, "work": work, "datadir": datadir, "start": start, "end": end, "wal": wal}
    pg.stop()
    procs.remove_temp_dir(work)


def test_records_needing_redo_fail_clearly_without_walredo(default_cluster):
    """Without argon-walredo, a page that needs PostgreSQL's redo is an error
    naming the record; nothing is exported half-way."""
    c = default_cluster
    assert c["wal"]["wal_values"] > 0  # records stored for PostgreSQL's redo
    out = os.path.join(c["work"], "x")
    proc = argonctl(c["datadir"], "export", "--lsn", "latest", out, check=False,
                    env={"ARGON_WALREDO": os.path.join(c["work"], "no-such-walredo")})
    assert proc.returncode == 3
    m = re.search(r"the record at ([0-9A-F]+/[0-9A-F]+) \(rmgr (\d+)\) needs PostgreSQL's redo, "
                  r"and no argon-walredo was found", proc.stderr)
    assert m, proc.stderr
    assert int(m[2]) in (9, 10), proc.stderr  # heap2 (multi-insert) or heap
    print(proc.stderr.strip())


def test_records_replayed_by_walredo(default_cluster):
    """With argon-walredo the same export succeeds and equals the cleanly
    stopped primary (whose shutdown checkpoint wrote every page) after masks."""
    c = default_cluster
    if walredo_binary() is None:
        pytest.skip(walredo_missing())
    if oracle.oracle_binary() is None:
        pytest.skip(oracle.why_missing())
    out = os.path.join(c["work"], "y")
    redo = last_json(argonctl(c["datadir"], "export", "--lsn", "latest", out))["redo"]
    print("redo:", redo)
    assert redo["records"] > 0 and redo["failures"] == 0, redo
    assert set(redo["replayed"]) & {"Heap/INSERT", "Heap2/MULTI_INSERT"}, redo
    rc, stdout, stderr = oracle.run_oracle("compare", c["pg"].data_dir, out)
    assert rc == 0, stdout[-3000:] + stderr
    print(stdout.strip().splitlines()[-1])


def test_commit_time_index(default_cluster):
    """The LSN for a time is the end of the newest commit at or before it."""
    c = default_cluster
    text = waldump(c["pg"], c["start"], c["end"])
    commits = []  # (time text, start lsn)
    for line in text.splitlines():
        m = re.search(r"lsn: ([0-9A-F]+/[0-9A-F]+),.*desc: COMMIT (\S+ \S+) UTC", line)
        if m:
            commits.append((m[2], m[1]))
    assert len(commits) >= 30
    for when, start in (commits[3], commits[len(commits) // 2], commits[-1]):
        got = last_json(argonctl(c["datadir"], "lsn-for-time", when))["lsn"]
        # The end of this commit record, or of a later one with the same time:
        # past its start, before any commit later in time.
        later = [s for t, s in commits if t > when]
        assert lsn_int(got) > lsn_int(start), (when, got, start)
        if later:
            assert lsn_int(got) < min(lsn_int(s) for s in later), (when, got)
    early = argonctl(c["datadir"], "lsn-for-time", "2001-01-01 00:00:00", check=False)
    assert early.returncode == 3 and "no commit" in early.stderr


def test_tablespaces_are_refused(tmp_dir):
    pg = PgCluster("edge-tblspc", settings=SETTINGS)
    try:
        backup = os.path.join(tmp_dir, "backup")
        base_backup(pg, backup)
        loc = os.path.join(tmp_dir, "ts")
        os.mkdir(loc, 0o700)
        os.chown(loc, pg.uid, pg.gid)
        pg.sql("create tablespace extra location '%s'" % loc)
        pg.sql("create table t (a int) tablespace extra")
        pg.sql("select pg_switch_wal()")
        backup2 = os.path.join(tmp_dir, "backup2")
        loc2 = os.path.join(tmp_dir, "ts2")
        os.mkdir(loc2, 0o700)
        os.chown(loc2, pg.uid, pg.gid)
        base_backup(pg, backup2, "-T", "%s=%s" % (loc, loc2))
        pg.stop(keep_dir=True)
        datadir = os.path.join(tmp_dir, "argon")
        argonctl(datadir, "import", "base", backup)
        proc = argonctl(datadir, "import", "wal", "--no-progress",
                        os.path.join(pg.data_dir, "pg_wal"), check=False)
        assert proc.returncode == 3
        assert "supports only pg_default and pg_global" in proc.stderr, proc.stderr
        assert re.search(r"[0-9A-F]+/[0-9A-F]+", proc.stderr)
        print(proc.stderr.strip())
        proc = argonctl(os.path.join(tmp_dir, "argon2"), "import", "base", backup2,
                        check=False)
        assert proc.returncode == 3
        assert "supports only pg_default and pg_global" in proc.stderr, proc.stderr
        shutil.rmtree(loc, ignore_errors=True)
    finally:
        pg.stop()


def test_tar_format_backup(tmp_dir):
    """pg_basebackup -Ft (gzip) imports like the plain format: with the WAL up
    to a clean shutdown, the export equals the stopped primary after masking
    (heap and btree only: pages PostgreSQL changes without WAL are avoided)."""
    settings = dict(SETTINGS, wal_consistency_checking="all")
    pg = PgCluster("edge-tar", settings=settings)
    try:
        pg.sql("create table t (a int primary key, b text)")
        pg.sql("insert into t select g, md5(g::text) from generate_series(1, 5000) g")
        backup = os.path.join(tmp_dir, "tar")
        base_backup(pg, backup, "-Ft", "-z")
        assert os.path.exists(os.path.join(backup, "base.tar.gz"))
        pg.sql("update t set b = 'changed' where a % 7 = 0")
        pg.sql("update t set b = b || '!'")  # every page again: WAL past a segment
        pg.sql("delete from t where a > 4000")
        pg.sql("vacuum t")
        pg.stop(keep_dir=True)
        datadir = os.path.join(tmp_dir, "argon")
        base = last_json(argonctl(datadir, "import", "base", backup))
        assert base["blocks"] > 50 and base["end_lsn"] != "0/0"
        assert not [n for n in os.listdir(datadir) if n.startswith("unpack-")]
        # Stop half-way into the next segment, then resume from there: the
        # resumed import reads from 8 MiB into a segment file.
        seg = 16 << 20
        start = lsn_int(base["start_lsn"])
        stop = (start // seg + 1) * seg + (8 << 20)
        stop_text = lsn_text(stop)
        pg_wal = os.path.join(pg.data_dir, "pg_wal")
        first = last_json(argonctl(datadir, "import", "wal", "--no-progress", "--stop-lsn",
                                   stop_text, pg_wal))
        assert first["records"] > 100
        nxt = lsn_int(first["next_lsn"])
        assert stop <= nxt < stop + (1 << 20) and nxt % seg > (1 << 20), first
        wal = last_json(argonctl(datadir, "import", "wal", "--no-progress", pg_wal))
        assert wal["records"] > 1000 and wal["skipped"] == 0, wal
        print("tar backup: import stopped at %s, resumed to %s" % (first["next_lsn"],
                                                                    wal["last_lsn"]))
        out = os.path.join(tmp_dir, "export")
        argonctl(datadir, "export", "--lsn", "latest", out)
        if oracle.oracle_binary() is None:
            pytest.skip(oracle.why_missing())
        rc, stdout, stderr = oracle.run_oracle("compare", pg.data_dir, out)
        assert rc == 0, stdout[-3000:] + stderr
        print("tar backup: " + stdout.strip().splitlines()[-1])
    finally:
        pg.stop()
