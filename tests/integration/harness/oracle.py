"""Helpers for argon-oracle (tools/oracle.c), the whole-cluster comparison tool.

    oracle_binary()               the argon-oracle to run, or None (with why_missing())
    write_am_map(cluster, path)   the --map file of a running PgCluster
    run_oracle(*args)             run it; (exit status, stdout, stderr)

argon-oracle is linked from PostgreSQL's backend objects, so only gcc builds
without sanitizers have it; from an ASan build directory the sibling gcc build
(ARGON_BUILD_DIR/../build) is used when it has one.
"""

import subprocess

import psycopg2

from .pageserver import pg_linked_binary, pg_linked_candidates

# pg_am.amname -> the oracle's kind; an access method not listed (an extension's,
# e.g. bloom) is assumed to WAL-log through generic WAL.
_AM_KINDS = {
    "heap": "heap",
    "btree": "btree",
    "hash": "hash",
    "gin": "gin",
    "gist": "gist",
    "spgist": "spgist",
    "brin": "brin",
}

_MAP_QUERY = """
select pg_relation_filenode(c.oid), pg_relation_filepath(c.oid), c.relkind, a.amname
  from pg_class c left join pg_am a on a.oid = c.relam
 where c.relpersistence = 'p' and pg_relation_filenode(c.oid) is not null
"""


def oracle_binary():
    """The argon-oracle of ARGON_BUILD_DIR, else of the sibling gcc build; None if neither."""
    return pg_linked_binary("tools/argon-oracle")


def why_missing():
    return ("argon-oracle was not built: no PostgreSQL build was found (scripts/pg-build.sh), "
            "or this is a clang/sanitizer build without a sibling gcc build; looked for "
            + " and ".join(pg_linked_candidates("tools/argon-oracle")))


def run_oracle(*args, timeout=300):
    """Run argon-oracle with args; return (exit status, stdout, stderr)."""
    r = subprocess.run([oracle_binary()] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def _kind(relkind, amname):
    if relkind == "S":
        return "sequence"
    return _AM_KINDS.get(amname, "generic")


def _map_lines(conn):
    """(dboid, relfilenode, kind) of every permanent relation with storage in
    global/ or base/ (relations in other tablespaces are not compared)."""
    with conn.cursor() as cur:
        cur.execute(_MAP_QUERY)
        rows = cur.fetchall()
    lines = []
    for filenode, filepath, relkind, amname in rows:
        parts = filepath.split("/")
        if parts[0] == "global":
            dboid = 0
        elif parts[0] == "base":
            dboid = int(parts[1])
        else:
            continue
        lines.append((dboid, int(filenode), _kind(relkind, amname)))
    return lines


def write_am_map(cluster, path):
    """Write the --map file of a running PgCluster to path: "dboid relfilenode
    kind" for every permanent relation of every database that allows
    connections (shared catalogs once, with dboid 0).  Returns the entries as
    a dict {(dboid, relfilenode): kind}."""
    databases = [r[0] for r in cluster.sql(
        "select datname from pg_database where datallowconn order by oid")]
    entries = {}
    for datname in databases:
        conn = psycopg2.connect(host=cluster.host, port=cluster.port, user="postgres",
                                dbname=datname, connect_timeout=10)
        try:
            for dboid, filenode, kind in _map_lines(conn):
                entries[(dboid, filenode)] = kind
        finally:
            conn.close()
    with open(path, "w") as f:
        f.write("# dboid relfilenode kind (written by harness/oracle.py write_am_map)\n")
        for (dboid, filenode), kind in sorted(entries.items()):
            f.write("%d %d %s\n" % (dboid, filenode, kind))
    return entries
