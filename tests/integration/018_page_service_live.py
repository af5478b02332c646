"""018: the page service on a live timeline (Argon streaming from a real
PostgreSQL 15 primary as its synchronous standby, harness/live.py).

- Rows committed on the primary are on the page read over the wire at the
  latest LSN (heap_page_items on the real PostgreSQL decodes it), through
  connections on both cores; the page equals the management API's read.
- Neon's LSN rule with a live ingest: a request whose not_modified_since is
  the primary's LSN after a commit Argon has not necessarily ingested waits
  for the ingest and then answers with that commit's row; one far ahead
  times out with "LSN timeout".
- A primary's request (request_lsn = max) and a replica's (an exact LSN) on
  the same page give the page as of those LSNs.
"""

import time

from harness import pagestream as ps
from harness.live import Live, TENANT, TIMELINE
from harness.workload import lsn_int



def test_live_reads_over_the_wire():
    live = Live("pslive", config={"wait_lsn_timeout_ms": "5000"})
    try:
        live.wait_sync()
        pg = live.pg
        pg.sql("create table t (id int primary key, v text)")
        pg.sql("insert into t select g, 'row ' || g from generate_series(1, 50) g")
        lsn1 = pg.sql("select pg_current_wal_lsn()::text")[0][0]
        live.wait_ingested(lsn1)
        rel = live.relfile("t")
        conns = ps.on_each_core(live.ps.pg_port)
        for c in conns:
            c.pagestream(3, TENANT, TIMELINE)
        page = None
        for c in conns:
            r = c.call(ps.request(3, ps.GETPAGE, ps.MAX_LSN, lsn_int(lsn1),
                                  rel=(*rel, 0), blkno=0))
            assert "value" in r, r
            page = page or r["value"]
            assert r["value"] == page
        assert len(live.heap_items(page)) == 50
        assert page == live.getpage(rel, 0, lsn1)
        n = conns[0].call(ps.request(3, ps.NBLOCKS, ps.MAX_LSN, lsn_int(lsn1),
                                     rel=(*rel, 0)))
        assert n["value"] == 1

        # A commit Argon may not have yet: local commit, then ask with
        # not_modified_since = its LSN at once; the answer waits for the ingest.
        pg.sql("set synchronous_commit = local; insert into t values (51, 'late')")
        lsn2 = lsn_int(pg.sql("select pg_current_wal_insert_lsn()::text")[0][0])
        r = conns[1].call(ps.request(3, ps.GETPAGE, ps.MAX_LSN, lsn2, rel=(*rel, 0), blkno=0))
        assert "value" in r, r
        items = live.heap_items(r["value"])
        assert len(items) == 51 and any(b"late" in bytes(i[3]) for i in items)
        # A replica's read at the first LSN still sees 50 rows.
        r = conns[0].call(ps.request(3, ps.GETPAGE, lsn_int(lsn1), 0, rel=(*rel, 0), blkno=0))
        assert len(live.heap_items(r["value"])) == 50
        # Far ahead: the bounded wait ends with an Error, the connection stays.
        began = time.monotonic()
        r = conns[0].call(ps.request(3, ps.GETPAGE, ps.MAX_LSN, lsn2 + (1 << 40),
                                     rel=(*rel, 0), blkno=0))
        assert "LSN timeout" in r["error"] and time.monotonic() - began > 4, r
        r = conns[0].call(ps.request(3, ps.EXISTS, ps.MAX_LSN, lsn2, rel=(*rel, 0)))
        assert r["value"] == 1
        assert not live.ps.sanitizer_reports()
    finally:
        live.close()
