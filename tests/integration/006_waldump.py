"""Argon's WAL decoder against PostgreSQL's own pg_waldump, record by record
(LSN, prev-link, resource manager, info, total and record lengths, xid, every
block reference with its relation, fork, block and full-page image), over a
workload that produces every page resource manager's records, full-page images
compressed with pglz, lz4 and zstd, records spanning pages and a segment
boundary, and an XLOG_SWITCH.  Full-page images are rebuilt (decompressed and
their holes filled) for lz4 and zstd.  (Issue 4: decoder vs pg_waldump.)"""

import os
import re
import subprocess

import pytest

from harness.pageserver import binary
from harness.pg import PgCluster
from harness.workload import SEGMENT_SIZE, segment_name

WORKLOAD = [
    "create table h (id int primary key, v text, arr int[], p point, t tsvector)",
    "insert into h select g, md5(g::text), array[g, g+1], point(g, g), "
    "to_tsvector('english', 'word' || g) from generate_series(1, 20000) g",
    "create index on h using hash (v)",
    "create index on h using gin (arr)",
    "create index on h using gist (p)",
    "create index on h using spgist (p)",
    "create index on h using brin (id)",
    "create index on h using gin (t)",
    "update h set v = v || 'x' where id % 7 = 0",
    "delete from h where id % 11 = 0",
    "vacuum h",
    "create sequence s1",
    "select nextval('s1') from generate_series(1, 100)",
    "select pg_logical_emit_message(true, 'p', repeat('x', 100000))",
    "select pg_switch_wal()",
    "insert into h select g, 'after switch' from generate_series(20001, 21000) g",
    # a record larger than a segment: it must span into the next one
    "select pg_logical_emit_message(true, 'big', repeat('y', 17 * 1024 * 1024))",
    "checkpoint",
    "update h set v = 'fpw after checkpoint' where id < 300",
    "truncate h",
]

LINE_PG = re.compile(r"rmgr: (\S+)\s+len \(rec/tot\):\s*(\d+)/\s*(\d+), tx:\s*(\d+), "
                     r"lsn: ([0-9A-F]+/[0-9A-F]+), prev ([0-9A-F]+/[0-9A-F]+), desc: (.*)")
LINE_AR = re.compile(r"lsn: ([0-9A-F]+/[0-9A-F]+) prev ([0-9A-F]+/[0-9A-F]+) rmgr: (\S+) "
                     r"info: ([0-9A-F]+) tot: (\d+) rec: (\d+) tx: (\d+)(.*)")
BLKREF = re.compile(r"blkref #(\d+): rel (\d+)/(\d+)/(\d+)(?: fork (\w+))? blk (\d+)( FPW)?")


def norm_lsn(s):
    hi, lo = s.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def blkrefs(text):
    return [(int(m[0]), int(m[1]), int(m[2]), int(m[3]), m[4] or "main", int(m[5]), bool(m[6]))
            for m in BLKREF.findall(text)]


def parse_pg(out):
    recs = []
    for line in out.splitlines():
        m = LINE_PG.match(line)
        if m:
            recs.append((norm_lsn(m[5]), norm_lsn(m[6]), m[1], int(m[3]), int(m[2]), int(m[4]),
                         blkrefs(m[7])))
    return recs


def parse_argon(out):
    recs = []
    for line in out.splitlines():
        m = LINE_AR.match(line)
        assert m, line
        recs.append((norm_lsn(m[1]), norm_lsn(m[2]), m[3], int(m[5]), int(m[6]), int(m[7]),
                     blkrefs(m[8])))
    return recs


@pytest.mark.parametrize("compression", ["pglz", "lz4", "zstd"])
def test_decoder_matches_pg_waldump(compression):
    pg = PgCluster("pg-wal-" + compression,
                   settings={"wal_compression": compression, "max_wal_size": "1GB",
                             "wal_keep_size": "1GB"})
    try:
        start = pg.sql("select pg_current_wal_lsn()")[0][0]
        for statement in WORKLOAD:
            pg.sql(statement)
        end = pg.sql("select pg_current_wal_insert_lsn()")[0][0]
        pg_wal = os.path.join(pg.data_dir, "pg_wal")
        pg.stop(keep_dir=True)
        waldump = os.path.join(pg.bin_dir, "pg_waldump")
        ref = subprocess.run([waldump, "-p", pg_wal, "-s", start, "-e", end],
                             capture_output=True, text=True, timeout=300)
        expected = parse_pg(ref.stdout)
        args = [binary("tools/argon-waldump"), "--start", start, "--end", end, "--images"]
        mine = subprocess.run(args + [pg_wal], capture_output=True, text=True, timeout=300)
        assert mine.returncode == 0, mine.stderr
        got = parse_argon(mine.stdout)
        print("%s: %d records from %s to %s; pg_waldump %d; %s" % (
            compression, len(got), start, end, len(expected), mine.stderr.strip()))
        assert len(expected) > 20000
        assert len(got) == len(expected)
        for a, b in zip(got, expected):
            assert a == b, "argon %r\npg_waldump %r" % (a, b)
        rmgrs = {r[2] for r in got}
        for needed in ("Heap", "Heap2", "Btree", "Hash", "Gin", "Gist", "SPGist", "BRIN",
                       "Sequence", "Storage", "Transaction", "XLOG", "LogicalMessage"):
            assert needed in rmgrs, needed
        assert any(ref[6] and any(b[6] for b in ref[6]) for ref in got)  # FPWs seen
        segs = {r[0] >> 24 for r in got}
        assert len(segs) >= 3  # XLOG_SWITCH and the 17 MiB record cross segments
        assert " 0 page images" not in mine.stderr
    finally:
        pg.stop()


def _first_segment(pg_wal):
    return sorted(f for f in os.listdir(pg_wal) if len(f) == 24)[0]


def test_bad_wal_is_a_clear_error(tmp_dir):
    """A flipped byte inside a record, and a segment of another system: a clear
    error naming the LSN, exit 1; a recycled (renamed) segment is a clean end."""
    pgs = [PgCluster("pg-bad-%d" % i, settings={"wal_keep_size": "1GB"}) for i in range(2)]
    try:
        for pg in pgs:
            pg.sql("create table t (a int)")
            pg.sql("insert into t select generate_series(1, 5000)")
        start = pgs[0].sql("select pg_current_wal_lsn()")[0][0]
        pgs[0].sql("select pg_switch_wal()")  # the reader must go on into the next file
        dirs = []
        for pg in pgs:
            d = os.path.join(pg.data_dir, "pg_wal")
            pg.stop(keep_dir=True)
            dirs.append(d)
        start_lsn = norm_lsn(start)
        seg = segment_name(start_lsn)
        good = open(os.path.join(dirs[0], seg), "rb").read()

        flipped = os.path.join(tmp_dir, "flipped")
        os.mkdir(flipped)
        bad = bytearray(good)
        bad[start_lsn % SEGMENT_SIZE + 16] ^= 0x40  # xl_info of the record at start
        open(os.path.join(flipped, seg), "wb").write(bad)
        r = subprocess.run([binary("tools/argon-waldump"), "--start", start, flipped],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1
        assert "at %s" % ("%X/%08X" % (start_lsn >> 32, start_lsn & 0xFFFFFFFF)) in r.stderr, \
            r.stderr
        print("flipped byte:", r.stderr.strip())

        other = os.path.join(tmp_dir, "other")
        os.mkdir(other)
        other_seg = open(os.path.join(dirs[1], _first_segment(dirs[1])), "rb").read()
        # this cluster's first segment, then the other cluster's as the next one
        open(os.path.join(other, seg), "wb").write(good)
        next_start = (start_lsn // SEGMENT_SIZE + 1) * SEGMENT_SIZE
        nxt = segment_name(next_start)
        patched = bytearray(other_seg)
        patched[8:16] = next_start.to_bytes(8, "little")
        open(os.path.join(other, nxt), "wb").write(patched)
        r = subprocess.run([binary("tools/argon-waldump"), "--start", start, other],
                           capture_output=True, text=True, timeout=60)
        print("other system:", r.stderr.strip())
        assert r.returncode == 1
        assert "different database system" in r.stderr

        recycled = os.path.join(tmp_dir, "recycled")
        os.mkdir(recycled)
        open(os.path.join(recycled, seg), "wb").write(good)
        open(os.path.join(recycled, nxt), "wb").write(good)  # old contents, wrong address
        r = subprocess.run([binary("tools/argon-waldump"), "--start", start, recycled],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "end of WAL" in r.stderr
    finally:
        for pg in pgs:
            pg.stop()
