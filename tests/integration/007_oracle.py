"""argon-oracle (tools/oracle.c) on real PostgreSQL 15 clusters: a primary with
tables and indexes of every access method (btree, hash, gin, gist, spgist,
brin), a sequence, a VACUUM (so the VM has bits), an unlogged table and a second
database, streamed to a real standby; both stopped once the standby has replayed
the primary's shutdown checkpoint.  REF is the standby's data directory; each
test edits a copy of it as TEST and checks that the oracle reports exactly the
edits PostgreSQL's masks do not hide, and nothing it excludes.  primary-sanity
runs on the real primary and standby and on edited copies; page mode on single
pages cut from the relation files."""

import os
import pwd
import re
import shutil
import struct
import subprocess
import time
import types

import pytest

from harness import procs
from harness.oracle import oracle_binary, run_oracle, why_missing, write_am_map
from harness.pg import PgCluster

PAGE = 8192
RELSEG_BLOCKS = 131072           # RELSEG_SIZE: 1 GiB segments
HEAP_XMAX_COMMITTED = 0x0400
HEAP_XMAX_INVALID = 0x0800
PD_ALL_VISIBLE = 0x0004

WORKLOAD = [
    "create table h (id int primary key, v text, arr int[], p point)",
    "insert into h select g, md5(g::text), array[g % 100, g % 7], point(g % 1000, g / 1000) "
    "from generate_series(1, 20000) g",
    "create index h_hash on h using hash (v)",
    "create index h_gin on h using gin (arr)",
    "create index h_gist on h using gist (p)",
    "create index h_spgist on h using spgist (v)",
    "create index h_brin on h using brin (id)",
    "create sequence s",
    "select nextval('s') from generate_series(1, 50)",
    "delete from h where id % 10 = 0",
    "vacuum h",
    "create unlogged table u (a int primary key)",
    "insert into u select generate_series(1, 1000)",
    "create database other",
]
OTHER_WORKLOAD = [
    "create table o (a int, b text)",
    "insert into o select g, repeat('o', 50) from generate_series(1, 2000) g",
    "vacuum o",
]
KINDS = {"h": "heap", "h_pkey": "btree", "h_hash": "hash", "h_gin": "gin", "h_gist": "gist",
         "h_spgist": "spgist", "h_brin": "brin", "s": "sequence"}
SUMMARY = re.compile(r"^(oracle|sanity): (\d+) files, (\d+) blocks compared, (\d+) mismatches, "
                     r"(\d+) exclusions$", re.M)


# -- clusters ----------------------------------------------------------------

def _pg_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _owner(path):
    """(user, group) to run PostgreSQL programs as for a directory: as root, its owner."""
    if os.getuid() != 0:
        return None, None
    st = os.stat(path)
    return pwd.getpwuid(st.st_uid).pw_name, st.st_gid


def _start_standby(primary):
    """A streaming standby of primary: a fresh PgCluster whose data directory is
    replaced by pg_basebackup -R, then started."""
    standby = PgCluster("oracle-standby")
    standby.stop(keep_dir=True)
    data = standby.data_dir
    for name in os.listdir(data):
        path = os.path.join(data, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    user, group = _owner(data)
    procs.run([os.path.join(primary.bin_dir, "pg_basebackup"), "-D", data, "-R",
               "-X", "stream", "-c", "fast", "--no-sync", "-h", primary.host,
               "-p", str(primary.port), "-U", "postgres"],
              user=user, group=group, env=_pg_env(), log_path=standby.log_path)
    standby.start()
    return standby


def _lsn(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def _wait_replayed(standby, lsn, timeout=60):
    """Wait until standby has replayed WAL past lsn (text X/X)."""
    deadline = time.monotonic() + timeout
    while True:
        replayed = standby.sql("select pg_last_wal_replay_lsn()")[0][0]
        if replayed is not None and _lsn(replayed) > _lsn(lsn):
            return
        assert time.monotonic() < deadline, "standby stuck at %s, waiting for %s" % (replayed,
                                                                                      lsn)
        time.sleep(0.1)


def _latest_checkpoint(cluster):
    out = subprocess.run([os.path.join(cluster.bin_dir, "pg_controldata"), cluster.data_dir],
                         capture_output=True, text=True, env=_pg_env(), check=True).stdout
    return re.search(r"^Latest checkpoint location:\s+(\S+)$", out, re.M).group(1)


def _stop_in_step(primary, standby):
    """Stop the primary, then the standby once it has replayed the primary's
    shutdown checkpoint: a standby flushes its buffers only at a restartpoint,
    which needs a replayed checkpoint record, so stopping it earlier would leave
    its data files behind its WAL."""
    primary.stop(keep_dir=True)
    _wait_replayed(standby, _latest_checkpoint(primary))
    standby.stop(keep_dir=True)


@pytest.fixture(scope="module")
def env():
    if oracle_binary() is None:
        pytest.skip(why_missing())
    primary = PgCluster("oracle-primary", settings={"autovacuum": False})
    standby = None
    work = procs.make_temp_dir("oracle-work")
    try:
        standby = _start_standby(primary)
        for statement in WORKLOAD:
            primary.sql(statement)
        for statement in OTHER_WORKLOAD:
            primary.sql(statement, dbname="other")
        paths = {name: primary.sql("select pg_relation_filepath(%s)", (name,))[0][0]
                 for name in ["h", "u"] + list(KINDS)}
        dboids = dict(primary.sql("select datname, oid from pg_database"))
        map_path = os.path.join(work, "am.map")
        kinds = write_am_map(primary, map_path)
        _stop_in_step(primary, standby)
        yield types.SimpleNamespace(primary=primary.data_dir, ref=standby.data_dir, map=map_path,
                                    kinds=kinds, paths=paths, dboids=dboids)
    finally:
        if standby is not None:
            standby.stop()
        primary.stop()
        procs.remove_temp_dir(work)


# -- helpers -----------------------------------------------------------------

def copy_cluster(src, tmp_dir, name="test"):
    """A copy of the data directory src (pg_wal's contents left out: never compared)."""
    dst = os.path.join(tmp_dir, name)
    shutil.copytree(src, dst, symlinks=True,
                    ignore=lambda d, names: names if os.path.basename(d) == "pg_wal" else [])
    return dst


def summary(out, prefix="oracle"):
    m = [x for x in SUMMARY.finditer(out) if x.group(1) == prefix]
    assert len(m) == 1, out[-3000:]
    files, blocks, mismatches, exclusions = (int(x) for x in m[0].groups()[1:])
    return types.SimpleNamespace(files=files, blocks=blocks, mismatches=mismatches,
                                 exclusions=exclusions)


def lines(out, prefix):
    return [line for line in out.splitlines() if line.startswith(prefix)]


def read_page(path, blkno):
    with open(path, "rb") as f:
        f.seek(blkno * PAGE)
        page = f.read(PAGE)
    assert len(page) == PAGE
    return bytearray(page)


def write_page(path, blkno, page):
    assert len(page) == PAGE
    with open(path, "r+b") as f:
        f.seek(blkno * PAGE)
        f.write(page)


def items(page):
    """(offset, length) of each LP_NORMAL line pointer of a page, in order."""
    (pd_lower,) = struct.unpack_from("<H", page, 12)
    found = []
    for n in range((pd_lower - 24) // 4):
        (lp,) = struct.unpack_from("<I", page, 24 + 4 * n)
        if (lp >> 15) & 3 == 1:
            found.append((lp & 0x7FFF, lp >> 17))
    return found


def flip_item_byte(path, blkno, n):
    """Flip the last byte of the page's n-th (1-based) normal item; return its offset."""
    page = read_page(path, blkno)
    off, length = items(page)[n - 1]
    page[off + length - 1] ^= 0x5A
    write_page(path, blkno, page)
    return off + length - 1


def expected_blocks(data_dir):
    """Blocks of every main and VM fork in global/ and base/*/, unlogged relations
    (those with an init fork) left out: what compare must compare."""
    total = 0
    rel = re.compile(r"^(\d+)(_vm)?(\.\d+)?$")
    dirs = [os.path.join(data_dir, "global")] + [
        os.path.join(data_dir, "base", d) for d in os.listdir(os.path.join(data_dir, "base"))]
    for d in dirs:
        names = os.listdir(d)
        unlogged = {n.split("_")[0] for n in names if re.match(r"^\d+_init", n)}
        for n in names:
            m = rel.match(n)
            if m and m.group(1) not in unlogged:
                total += os.path.getsize(os.path.join(d, n)) // PAGE
    return total


# -- compare -----------------------------------------------------------------

def test_identical_copies_match(env, tmp_dir):
    test = copy_cluster(env.ref, tmp_dir)
    # A standby has only the init fork of an unlogged relation; the primary's main
    # fork, present in TEST alone, is excluded with it rather than a mismatch.
    u = env.paths["u"]
    assert not os.path.exists(os.path.join(env.ref, u))
    shutil.copyfile(os.path.join(env.primary, u), os.path.join(test, u))
    rc, out, err = run_oracle("compare", "--map", env.map, env.ref, test)
    assert rc == 0, out[-3000:] + err
    s = summary(out)
    print("identical: oracle: %d files, %d blocks, %d exclusions" % (s.files, s.blocks,
                                                                     s.exclusions))
    assert s.mismatches == 0
    assert s.blocks == expected_blocks(env.ref) > 1000
    assert s.files > 500
    h = env.paths["h"]
    assert "excluded: %s_fsm (FSM is not WAL-logged)" % h in out
    for fork in ("", "_init"):
        assert "excluded: %s%s (unlogged relation: it has an init fork)" % (u, fork) in out
    assert "excluded: base/%d/PG_VERSION (not a relation file)" % env.dboids["postgres"] in out
    assert "excluded: pg_wal/ (not global/, base/, pg_xact/ or pg_multixact/)" in out
    assert s.exclusions == len(lines(out, "excluded: "))
    # The map covers every database that allows connections: only template0 is detected.
    detected = lines(out, "detected: ")
    assert detected and all(d.startswith("detected: base/%d/" % env.dboids["template0"])
                            for d in detected)


def test_access_methods_detected_without_map(env, tmp_dir):
    test = copy_cluster(env.ref, tmp_dir)
    rc, out, err = run_oracle("compare", env.ref, test)
    assert rc == 0, out[-3000:] + err
    dboid = env.dboids["postgres"]
    for name, kind in KINDS.items():
        path = env.paths[name]
        assert env.kinds[(dboid, int(path.split("/")[-1]))] == kind, name  # the map agrees
        assert re.search(r"^detected: %s %s \(special space of REF block \d+\)$"
                         % (re.escape(path), kind), out, re.M), name
    detected = lines(out, "detected: ")
    assert all(re.match(r"detected: (global|base/\d+)/\d+ [a-z]+ \(special space of REF block "
                        r"\d+\)$", d) for d in detected)
    assert not [d for d in detected if " unknown " in d]


def test_masked_fields_are_not_mismatches(env, tmp_dir):
    """pd_lsn, pd_checksum, PD_ALL_VISIBLE and tuples' hint bits on a heap page
    differ; heap_mask hides all of them."""
    test = copy_cluster(env.ref, tmp_dir)
    path = os.path.join(test, env.paths["h"])
    page = read_page(path, 2)
    struct.pack_into("<IIH", page, 0, 0x7, 0x12345678, 0xBEEF)   # pd_lsn, pd_checksum
    page[10] ^= PD_ALL_VISIBLE                                   # pd_flags
    for off, _ in items(page)[:3]:
        (infomask,) = struct.unpack_from("<H", page, off + 20)
        struct.pack_into("<H", page, off + 20,
                         infomask ^ HEAP_XMAX_INVALID ^ HEAP_XMAX_COMMITTED)
    write_page(path, 2, page)
    rc, out, err = run_oracle("compare", "--map", env.map, env.ref, test)
    assert rc == 0, "\n".join(lines(out, "mismatch")) + err
    assert summary(out).mismatches == 0


def test_data_changes_are_reported(env, tmp_dir):
    """One byte of an item changed in a heap, a btree and a gin page: each
    reported with its file, block and offset, and nothing else."""
    test = copy_cluster(env.ref, tmp_dir)
    want = []
    for name, blkno, n in (("h", 5, 4), ("h_pkey", 1, 2), ("h_gin", 1, 2)):
        rel = env.paths[name]
        offset = flip_item_byte(os.path.join(test, rel), blkno, n)
        want.append("mismatch: %s block %d: differs at offset %d (items) after %s masking"
                    % (rel, blkno, offset, KINDS[name]))
    rc, out, err = run_oracle("compare", "--map", env.map, env.ref, test)
    assert rc == 1, err
    got = lines(out, "mismatch: ")
    print("\n".join(got))
    assert sorted(got) == sorted(want)
    assert summary(out).mismatches == 3


def test_vm_bit_is_reported(env, tmp_dir):
    test = copy_cluster(env.ref, tmp_dir)
    vm = os.path.join(test, env.paths["h"] + "_vm")
    page = read_page(vm, 0)
    assert any(page[24:]), "VACUUM set no VM bit"
    page[24] ^= 0x01                       # heap block 0's all-visible bit
    write_page(vm, 0, page)
    rc, out, _ = run_oracle("compare", "--map", env.map, env.ref, test)
    assert rc == 1
    assert lines(out, "mismatch: ") == [
        "mismatch: %s_vm block 0: differs at offset 24 (bitmap, heap blocks 0-3) after vm "
        "masking" % env.paths["h"]]


def test_slru_and_filenode_map_bytes_are_reported(env, tmp_dir):
    test = copy_cluster(env.ref, tmp_dir)
    filenode_map = "base/%d/pg_filenode.map" % env.dboids["postgres"]
    for rel, offset in (("pg_xact/0000", 10), (filenode_map, 100), ("global/pg_filenode.map", 8)):
        with open(os.path.join(test, rel), "r+b") as f:
            f.seek(offset)
            b = f.read(1)
            f.seek(offset)
            f.write(bytes([b[0] ^ 0x10]))
    rc, out, _ = run_oracle("compare", "--map", env.map, env.ref, test)
    assert rc == 1
    assert sorted(lines(out, "mismatch: ")) == sorted([
        "mismatch: pg_xact/0000: differs at offset 10 (byte for byte)",
        "mismatch: %s: differs at offset 100 (byte for byte)" % filenode_map,
        "mismatch: global/pg_filenode.map: differs at offset 8 (byte for byte)"])


def test_missing_relation_and_database_are_reported(env, tmp_dir):
    test = copy_cluster(env.ref, tmp_dir)
    brin = env.paths["h_brin"]
    os.remove(os.path.join(test, brin))
    other = "base/%d" % env.dboids["other"]
    shutil.rmtree(os.path.join(test, other))
    rc, out, _ = run_oracle("compare", "--map", env.map, env.ref, test)
    assert rc == 1
    assert sorted(lines(out, "mismatch: ")) == sorted([
        "mismatch: %s: only in REF" % brin, "mismatch: %s/: only in REF" % other])
    assert summary(out).mismatches == 2


def test_fsm_changes_are_excluded(env, tmp_dir):
    test = copy_cluster(env.ref, tmp_dir)
    fsm = env.paths["h"] + "_fsm"
    with open(os.path.join(test, fsm), "r+b") as f:
        f.seek(100)
        f.write(b"\xff" * 64)
    rc, out, _ = run_oracle("compare", "--map", env.map, env.ref, test)
    assert rc == 0, "\n".join(lines(out, "mismatch"))
    assert "excluded: %s (FSM is not WAL-logged)" % fsm in out


def _segmented_cluster(root, heap_page):
    """A minimal data directory whose relation base/1/16384 spans two segments:
    segment 0 a sparse, all-zero 1 GiB file (RELSEG_SIZE blocks), segment 1 a
    zero page and heap_page."""
    os.makedirs(os.path.join(root, "global"))
    os.makedirs(os.path.join(root, "base", "1"))
    rel = os.path.join(root, "base", "1", "16384")
    with open(rel, "wb") as f:
        f.truncate(RELSEG_BLOCKS * PAGE)
    with open(rel + ".1", "wb") as f:
        f.write(bytes(PAGE) + heap_page)
    return rel


def test_segments_are_one_fork(env, tmp_dir):
    """Segments N, N.1 are read as one fork: a difference in N.1's second block
    is block RELSEG_SIZE + 1; a segment past a short one and a partial block are
    mismatches."""
    page = read_page(os.path.join(env.ref, env.paths["h"]), 1)
    _segmented_cluster(os.path.join(tmp_dir, "ref"), page)
    off, length = items(page)[0]
    page[off + length - 1] ^= 1
    rel = _segmented_cluster(os.path.join(tmp_dir, "test"), page)
    with open(rel + ".1", "ab") as f:
        f.write(b"x" * 100)                # a partial block
    with open(rel + ".3", "wb") as f:
        f.write(bytes(PAGE))               # past the short segment 1
    map_path = os.path.join(tmp_dir, "map")
    with open(map_path, "w") as f:
        f.write("# segments\n1 16384 heap\n")
    rc, out, err = run_oracle("compare", "--map", map_path, os.path.join(tmp_dir, "ref"),
                              os.path.join(tmp_dir, "test"))
    assert rc == 1, err
    assert lines(out, "mismatch: ") == [
        "mismatch: base/1/16384 segment 1: 16484 bytes in TEST, not whole blocks",
        "mismatch: base/1/16384.3: in TEST past the end (segment 1 is short)",
        "mismatch: base/1/16384 block %d: differs at offset %d (items) after heap masking"
        % (RELSEG_BLOCKS + 1, off + length - 1)]
    s = summary(out)
    assert (s.files, s.blocks, s.mismatches) == (3, RELSEG_BLOCKS + 2, 3)


# -- page --------------------------------------------------------------------

def _page_file(tmp_dir, name, page):
    path = os.path.join(tmp_dir, name)
    with open(path, "wb") as f:
        f.write(page)
    return path


def test_page_mode(env, tmp_dir):
    h = os.path.join(env.ref, env.paths["h"])
    page = read_page(h, 1)
    a = _page_file(tmp_dir, "a", page)
    lsn_only = bytearray(page)
    struct.pack_into("<II", lsn_only, 0, 0, 0x1000)
    b = _page_file(tmp_dir, "b", lsn_only)
    rc, out, _ = run_oracle("page", "heap", a, b)
    assert (rc, out) == (0, "page: equal after heap masking\n")

    data = bytearray(page)
    off, length = items(data)[0]
    data[off + length - 1] ^= 1
    c = _page_file(tmp_dir, "c", data)
    rc, out, _ = run_oracle("page", "heap", a, c)
    assert rc == 1
    assert out == "page: differs at offset %d (items) after heap masking\n" % (off + length - 1)

    # A VM page: heap_mask would mask the whole bitmap away (it is "unused
    # space" between pd_lower and pd_upper); the vm kind does not.
    vm = read_page(h + "_vm", 0)
    flipped = bytearray(vm)
    flipped[30] ^= 0x02
    va, vb = _page_file(tmp_dir, "va", vm), _page_file(tmp_dir, "vb", flipped)
    assert run_oracle("page", "heap", va, vb)[0] == 0
    rc, out, _ = run_oracle("page", "vm", va, vb)
    assert rc == 1 and "differs at offset 30 (bitmap, heap blocks 24-27)" in out

    # A header the masks cannot trust (mask_unused_space() would elog(ERROR)):
    # compared with only pd_lsn and pd_checksum masked, and said so.
    bad_header = bytearray(page)
    struct.pack_into("<H", bad_header, 14, 0xFFFF)   # pd_upper
    d = _page_file(tmp_dir, "d", bad_header)
    rc, out, _ = run_oracle("page", "heap", a, d)
    assert (rc, out) == (1, "page: differs at offset 14 (page header) after LSN/checksum "
                            "masking (FILE_B page: invalid page header)\n")

    short = _page_file(tmp_dir, "short", page[:100])
    rc, _, err = run_oracle("page", "heap", a, short)
    assert rc == 2 and "not one 8192-byte page" in err
    assert run_oracle("page", "nosuchkind", a, b)[0] == 2


# -- primary-sanity ----------------------------------------------------------

def test_primary_sanity_accepts_the_real_standby(env):
    rc, out, err = run_oracle("primary-sanity", "--map", env.map, env.primary, env.ref)
    assert rc == 0, "\n".join(lines(out, "mismatch")) + err
    s = summary(out, "sanity")
    print("primary vs standby: sanity: %d files, %d blocks, %d exclusions" % (
        s.files, s.blocks, s.exclusions))
    assert s.mismatches == 0 and s.files > 500 and s.blocks > 0


def _empty_page():
    """A page as PageInit() leaves it, never WAL-logged: pd_lsn 0, no line pointers."""
    page = bytearray(PAGE)
    struct.pack_into("<HHHH", page, 12, 24, PAGE, PAGE, PAGE | 4)
    return page


def test_primary_sanity_accepts_unlogged_extension(env, tmp_dir):
    """PRIMARY's relation has two more blocks than TEST's, one all zeros and one
    empty with pd_lsn 0 (relation extension that was never WAL-logged), and
    TEST's VM has a bit fewer than PRIMARY's."""
    primary = copy_cluster(env.primary, tmp_dir, "primary")
    test = copy_cluster(env.ref, tmp_dir, "test")
    with open(os.path.join(primary, env.paths["h"]), "ab") as f:
        f.write(bytes(PAGE) + _empty_page())
    vm = os.path.join(test, env.paths["h"] + "_vm")
    page = read_page(vm, 0)
    bit = next(i for i in range(24, PAGE) if page[i])
    page[bit] &= page[bit] - 1             # clear the lowest bit set
    write_page(vm, 0, page)
    rc, out, err = run_oracle("primary-sanity", primary, test)
    assert rc == 0, "\n".join(lines(out, "mismatch")) + err
    baseline = summary(run_oracle("primary-sanity", env.primary, env.ref)[1], "sanity")
    assert summary(out, "sanity").blocks == baseline.blocks + 2


def test_primary_sanity_rejects_lost_blocks_and_extra_vm_bits(env, tmp_dir):
    """TEST lacks the relation's last block, which PRIMARY has with tuples, and
    TEST's VM has a bit PRIMARY's has not."""
    test = copy_cluster(env.ref, tmp_dir)
    h = os.path.join(test, env.paths["h"])
    nblocks = os.path.getsize(h) // PAGE
    os.truncate(h, (nblocks - 1) * PAGE)
    vm = h + "_vm"
    page = read_page(vm, 0)
    page[24 + 1000] |= 0x01                # heap block 4000: far past the table's end
    write_page(vm, 0, page)
    rc, out, _ = run_oracle("primary-sanity", "--map", env.map, env.primary, test)
    assert rc == 1
    got = lines(out, "mismatch: ")
    print("\n".join(got))
    rel = env.paths["h"]
    assert len(got) == 2
    assert got[0].startswith("mismatch: %s block %d: past TEST's %d blocks, PRIMARY's page is "
                             "neither zeros nor empty with LSN 0 (lsn "
                             % (rel, nblocks - 1, nblocks - 1))
    assert got[0].endswith(" (heap)")
    assert got[1] == ("mismatch: %s_vm block 0: bits 0x01 set in TEST, not in PRIMARY "
                      "(offset 1024, heap block 4000)" % rel)


# -- errors --------------------------------------------------------------------

def test_usage_and_io_errors(env, tmp_dir):
    rc, _, err = run_oracle()
    assert rc == 2 and err.startswith("usage: argon-oracle compare")
    rc, _, err = run_oracle("compare", env.ref, os.path.join(tmp_dir, "nowhere"))
    assert rc == 2 and "could not stat directory" in err
    rc, _, err = run_oracle("compare", tmp_dir, env.ref)
    assert rc == 2 and "is not a data directory" in err
    bad_map = os.path.join(tmp_dir, "bad.map")
    with open(bad_map, "w") as f:
        f.write("0 1262 heap\n5 16384 columnar\n")
    rc, _, err = run_oracle("compare", "--map", bad_map, env.ref, env.ref)
    assert rc == 2 and 'invalid line 2 in map file' in err
