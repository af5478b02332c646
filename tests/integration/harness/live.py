"""Argon as a streaming standby of a real PostgreSQL 15 primary (issue: live WAL).

    Live(name, settings=None, sync=True, config=None, data_dir=None,
         primary=None, tenant=TENANT, server_of=None, attach=True)
        a primary (PgCluster, fsync on; or the running one given) with a
        physical slot, a plain base backup imported into a fresh Argon data
        directory, then argon-pageserver started on it and attached to the
        primary (application_name = Live.APP, in synchronous_standby_names
        when sync).  server_of=another Live: a second tenant in that Live's
        page server (stopped for the offline import, then started again).
        Everything is stopped by close() (or the harness at exit).

    live.ctl(*args)            argonctl against the server's API -> process
    live.wal()                 the timeline's WAL status (JSON dict)
    wait_for(pred, what)       poll until pred() is true (or fail naming what)
    live.wait(pred, what)      the same, the failure showing the WAL status and log
    live.wait_sync()           until pg_stat_replication shows Argon as sync;
                               returns the seconds it took
    live.wait_ingested(lsn)    until Argon ingested lsn
    live.kill9()               SIGKILL the page server (no clean shutdown)
    live.start(receive=True)   start it again (receive=False: replay the
                               durable log only, no connection to the primary)
    live.stop()                a clean stop (SIGTERM)
    live.getpage(rel, blk, lsn, fork=0) -> 8 KiB bytes, over the API
    live.heap_items(page)      heap_page_items() of a page, decoded by the
                               real PostgreSQL: [(lp, t_xmin, t_ctid, t_data)]
    live.relfile(table)        (spc, db, relfilenode) of a table on the primary
"""

import json
import os
import signal
import subprocess
import time

from . import procs
from .pageserver import PageServer, binary
from .argonctl import argonctl, last_json, walredo_binary
from .pg import PgCluster
from .workload import lsn_int

TENANT = "00000000000000000000000000000001"
TIMELINE = "00000000000000000000000000000001"


def wait_for(pred, what, timeout=120.0, interval=0.05, detail=lambda: ""):
    """Poll pred() until it is true (returned), or fail naming what and detail()."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0f s waiting for %s\n%s"
                                 % (timeout, what, detail()))
        time.sleep(interval)


class Live:
    APP = "argon_live"
    SLOT = "argon_live"

    def __init__(self, name="live", *, settings=None, sync=True, config=None,
                 data_dir=None, primary=None, tenant=TENANT, server_of=None, attach=True):
        self.name = name
        self.tenant = tenant
        self.app = self.APP if tenant == TENANT else "argon_" + tenant[-8:]
        self.slot = self.app
        base = {"wal_level": "replica", "max_wal_senders": "8",
                "max_replication_slots": "8", "wal_keep_size": "0",
                "max_wal_size": "64MB", "min_wal_size": "32MB"}
        if sync:
            base["synchronous_standby_names"] = self.app
        base.update(settings or {})
        self.own_primary = primary is None
        self.pg = primary or PgCluster(name + "-primary", settings=base, fsync=True)
        cfg = {"wal_status_interval_ms": "1s", "shutdown_timeout_ms": "20s"}
        if data_dir:
            cfg["data_dir"] = data_dir
        cfg.update(config or {})
        self.server_of = server_of
        self.env = dict(os.environ)
        helper = walredo_binary()
        if helper:
            self.env["ARGON_WALREDO"] = helper
        try:
            if server_of:
                self.ps = server_of.ps
                server_of.stop()
                self._import_base()
                server_of.start()
            else:
                self.ps = PageServer(name + "-argon", config=cfg, start=False)
                self._import_base()
                self.start()
            if attach:
                self.attach()
        except BaseException:
            self.close()
            raise

    # -- setting up ---------------------------------------------------------

    def _import_base(self):
        pg = self.pg
        pg.sql("select pg_create_physical_replication_slot(%s, true)", (self.slot,))
        backup = os.path.join(self.ps.dir, "backup-" + self.tenant)
        os.mkdir(backup, 0o700)
        os.chown(backup, pg.uid, pg.gid)
        procs.run([os.path.join(pg.bin_dir, "pg_basebackup"), "-h", pg.host, "-p",
                   str(pg.port), "-U", "postgres", "-D", backup, "-Fp", "-X", "none",
                   "-c", "fast", "--no-sync"], timeout=300, **pg.tool_kwargs())
        self.base = last_json(argonctl(self.ps.data_dir, "--tenant", self.tenant, "import",
                                       "base", backup))
        procs.run(["rm", "-rf", backup], timeout=60)

    def attach(self, conninfo=None, slot=None, app=None, check=True):
        return self.ctl("attach", conninfo or self.pg.connstr(), "--slot", slot or self.slot,
                        "--application-name", app or self.app, check=check)

    # -- the page server ----------------------------------------------------

    def start(self, receive=True):
        with open(self.ps.config_path) as f:
            lines = [ln for ln in f if not ln.startswith("wal_receive")]
        lines.append("wal_receive = %d\n" % (1 if receive else 0))
        with open(self.ps.config_path, "w") as f:
            f.writelines(lines)
        self.ps.start(timeout=120)

    def kill9(self):
        self.ps.daemon.popen.send_signal(signal.SIGKILL)
        self.ps.daemon.popen.wait(30)

    def stop(self):
        status, _ = self.ps.signal_and_wait(signal.SIGTERM, timeout=60)
        assert status == 0, "argon-pageserver exited with %r:\n%s" % (status, self.ps.log()[-4000:])

    def close(self):
        try:
            if not self.server_of and getattr(self, "ps", None):
                self.ps.stop()
        finally:
            if self.own_primary:
                self.pg.stop()

    # -- asking it ----------------------------------------------------------

    def ctl(self, *args, check=True, timeout=120):
        proc = subprocess.run([binary("tools/argonctl"), "--api", self.ps.api_url,
                               "--tenant", self.tenant, "--timeline", TIMELINE] + list(args),
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError("argonctl %s failed (%d): %s\n%s" % (
                " ".join(args), proc.returncode, proc.stderr, self.ps.log()[-3000:]))
        return proc

    def wal(self):
        return json.loads(self.ctl("--json", "wal").stdout)

    def wait(self, pred, what, timeout=60.0, interval=0.05):
        return wait_for(pred, what, timeout, interval, detail=lambda: "WAL status %s\n%s" % (
            self._wal_or_none(), self.ps.log()[-3000:]))

    def _wal_or_none(self):
        try:
            return self.wal()
        except Exception as e:  # noqa: BLE001 - only for the message
            return "unavailable (%s)" % e

    def sync_state(self):
        rows = self.pg.sql("select sync_state from pg_stat_replication "
                           "where application_name = %s", (self.app,))
        return rows[0][0] if rows else None

    def wait_sync(self, timeout=30.0):
        started = time.monotonic()
        self.wait(lambda: self.sync_state() == "sync", "Argon to be a sync standby", timeout)
        return time.monotonic() - started

    def wait_ingested(self, lsn, timeout=120.0):
        want = lsn_int(lsn) if isinstance(lsn, str) else lsn
        self.wait(lambda: lsn_int(self.wal()["ingested_lsn"]) >= want,
                  "ingest to reach %X/%X" % (want >> 32, want & 0xFFFFFFFF), timeout)

    def getpage(self, rel, blk, lsn="latest", fork=0):
        out = os.path.join(self.ps.dir, "page.bin")
        self.ctl("getpage", "--lsn", lsn, str(rel[0]), str(rel[1]), str(rel[2]),
                 str(fork), str(blk), out)
        with open(out, "rb") as f:
            return f.read()

    def relfile(self, table, dbname="postgres"):
        spc, db, node = self.pg.sql(
            "select case when reltablespace = 0 then 1663 else reltablespace end, "
            "(select oid from pg_database where datname = current_database()), "
            "pg_relation_filenode(oid) from pg_class where oid = %s::regclass",
            (table,), dbname=dbname)[0]
        return (spc, db, node)

    def heap_items(self, page, pg=None):
        """heap_page_items() of page, decoded by a real PostgreSQL (pageinspect)."""
        pg = pg or self.pg
        # Creating it commits, and a commit waits for a synchronous standby:
        # create it while Argon streams (here only when missing).
        if not pg.sql("select 1 from pg_extension where extname = 'pageinspect'"):
            pg.sql("create extension pageinspect")
        return pg.sql("select lp, t_xmin::text::bigint, t_ctid::text, t_data "
                      "from heap_page_items(%s) where lp_flags = 1", (page,))
