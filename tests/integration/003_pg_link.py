"""Programs linked from PostgreSQL 15's own backend objects (the cached build of
Debian's postgresql-15 source package): argon-pgprobe recomputes every page
checksum of a real relation with PostgreSQL's pg_checksum_page() and must agree
with what the real server wrote.  (Issue 2, Foundation: PostgreSQL source build.)"""

import os
import shutil
import subprocess

import pytest

from harness.pageserver import build_dir
from harness.pg import PgCluster

PROBE = os.path.join(build_dir(), "tools", "argon-pgprobe")


@pytest.fixture(scope="module")
def pg_checksums():
    if not os.path.exists(PROBE):
        pytest.skip("argon-pgprobe was not built: no PostgreSQL build was found "
                    "(scripts/pg-build.sh) or this is a clang/sanitizer build")
    cluster = PgCluster("pg-checksums", data_checksums=True)
    yield cluster
    cluster.stop()


def test_linked_version_matches_server_major(pg_checksums):
    r = subprocess.run([PROBE, "version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("PostgreSQL 15.")
    server = pg_checksums.sql("show server_version_num")[0][0]
    assert server.startswith("15")


def _relation_file(pg, table):
    pg.sql("checkpoint")
    path = pg.sql("select pg_relation_filepath(%s)", (table,))[0][0]
    blocks = pg.sql("select pg_relation_size(%s) / 8192", (table,))[0][0]
    return os.path.join(pg.data_dir, path), blocks


def test_checksums_agree_with_postgresql(pg_checksums, tmp_dir):
    pg = pg_checksums
    assert pg.sql("show data_checksums")[0][0] == "on"
    pg.sql("create table probe_t (id int primary key, payload text)")
    pg.sql("insert into probe_t select g, repeat(md5(g::text), 4) from generate_series(1, 5000) g")
    pg.sql("delete from probe_t where id % 7 = 0")
    path, blocks = _relation_file(pg, "probe_t")
    assert blocks > 10
    copy = os.path.join(tmp_dir, "probe_t")
    shutil.copyfile(path, copy)
    r = subprocess.run([PROBE, "checksum", copy], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith("%d blocks, 0 new, 0 mismatches" % blocks)

    # One flipped byte in block 3 must be caught, and only there.
    with open(copy, "r+b") as f:
        f.seek(3 * 8192 + 4000)
        b = f.read(1)
        f.seek(3 * 8192 + 4000)
        f.write(bytes([b[0] ^ 0xFF]))
    r = subprocess.run([PROBE, "checksum", copy], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    bad = [line for line in r.stdout.splitlines() if "MISMATCH" in line]
    assert len(bad) == 1 and bad[0].startswith("block 3 ")


def test_truncated_file_is_a_clear_error(tmp_dir):
    if not os.path.exists(PROBE):
        pytest.skip("argon-pgprobe was not built")
    path = os.path.join(tmp_dir, "short")
    with open(path, "wb") as f:
        f.write(b"\0" * 9000)
    r = subprocess.run([PROBE, "checksum", path], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "not a whole number" in r.stderr
