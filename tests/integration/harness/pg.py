"""PgCluster: a throwaway PostgreSQL 15 cluster for integration tests.

The cluster lives in a harness temporary directory:

    <dir>/data      the data directory (initdb)
    <dir>/sock      the unix socket directory
    <dir>/pg.log    the server's stderr, and initdb's output

The postgres binary is started directly, not through pg_ctl, so that it is
our child and gets the harness death signal (SIGQUIT: an immediate shutdown
that also stops the backends and removes shared memory).  PostgreSQL
refuses to run as root; as root, initdb and postgres run as the "postgres"
system user and the directories are handed to it.

Settings go into postgresql.conf, so they survive restart() and ALTER
SYSTEM still works; only the listen address, port and socket directory are
given on the command line.

A standby (PgCluster.standby_of(primary), or primary=... to the
constructor) is made the same way, except that its data directory comes from
pg_basebackup -R -X stream against the primary instead of initdb: it starts
in hot standby, streaming from the primary, optionally through a physical
replication slot that pg_basebackup creates.  The primary's postgresql.conf
comes with the backup; the standby's own settings are appended after it, so
they win.
"""

import os
import pwd
import signal
import time

import psycopg2

from . import ports, procs

DEFAULT_BIN_DIR = "/usr/lib/postgresql/15/bin"
HOST = "127.0.0.1"

# pg_ctl's shutdown modes, as the signals tried in turn on the postmaster
# (procs.Daemon.stop() adds SIGKILL at the end).
_MODE_SIGNALS = {
    "smart": (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT),
    "fast": (signal.SIGINT, signal.SIGQUIT),
    "immediate": (signal.SIGQUIT,),
}

_PORT_IN_USE = ("Address already in use", "could not create any TCP/IP")


def _conf_value(value):
    """Render a Python value as a postgresql.conf value."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (int, float)):
        return str(value)
    return "'%s'" % str(value).replace("'", "''")


class PgCluster:
    """A PostgreSQL 15 cluster on 127.0.0.1:<free port>.

    PgCluster(name, data_checksums=False, fsync=False, settings=None,
              bin_dir=None, start=True, startup_timeout=60.0,
              primary=None, slot=None)

    fsync is off by default, as in PostgreSQL's own TAP tests; pass
    fsync=True for tests that need real durability.

    With primary (a running PgCluster) the cluster is a streaming standby
    of it, created by pg_basebackup -R instead of initdb (data_checksums is
    then the primary's); slot names the physical replication slot it
    streams through (created by pg_basebackup -C; None: no slot).
    """

    def __init__(self, name="pg", *, data_checksums=False, fsync=False,
                 settings=None, bin_dir=None, start=True,
                 startup_timeout=60.0, primary=None, slot=None):
        if slot is not None and primary is None:
            raise ValueError("slot needs a primary")
        self.name = name
        self.primary = primary
        self.slot = slot
        self.data_checksums = data_checksums
        self.fsync = fsync
        self.settings = dict(settings or {})
        self._bin_dir = bin_dir or DEFAULT_BIN_DIR
        self.startup_timeout = startup_timeout
        self.startup_seconds = None     # initdb plus first start
        self._dir = None
        self._port = None
        self._daemon = None
        if os.getuid() == 0:
            pw = pwd.getpwnam("postgres")
            self._user, self._uid, self._gid = "postgres", pw.pw_uid, \
                pw.pw_gid
        else:
            self._user, self._uid, self._gid = None, os.getuid(), \
                os.getgid()
        if start:
            try:
                self.start()
            except BaseException:
                self.stop()
                raise

    @classmethod
    def standby_of(cls, primary, name="standby", *, slot=None, settings=None,
                   **kwargs):
        """A hot standby of primary, made with pg_basebackup -R and started
        (unless start=False); see the class docstring."""
        return cls(name, primary=primary, slot=slot, settings=settings,
                   bin_dir=kwargs.pop("bin_dir", None) or primary.bin_dir,
                   **kwargs)

    # -- properties ---------------------------------------------------------

    @property
    def dir(self):
        return self._dir

    @property
    def data_dir(self):
        return os.path.join(self._dir, "data") if self._dir else None

    @property
    def socket_dir(self):
        return os.path.join(self._dir, "sock") if self._dir else None

    @property
    def log_path(self):
        return os.path.join(self._dir, "pg.log") if self._dir else None

    @property
    def bin_dir(self):
        return self._bin_dir

    @property
    def host(self):
        return HOST

    @property
    def port(self):
        return self._port

    @property
    def pid(self):
        """The postmaster's PID, or None when not running."""
        return self._daemon.pid if self._daemon else None

    @property
    def pids(self):
        """Every PID started for this cluster (the postmaster)."""
        return [self._daemon.pid] if self._daemon else []

    @property
    def uid(self):
        """The OS user id the server runs as (postgres when we are root)."""
        return self._uid

    @property
    def gid(self):
        return self._gid

    def running(self):
        return self._daemon is not None and self._daemon.alive()

    def tool_kwargs(self):
        """Keyword arguments for procs.run() / procs.start_daemon() that run
        a PostgreSQL program (pg_basebackup, pg_receivewal, pgbench...) as
        the server's OS user with the harness's clean environment."""
        return {"user": self._user,
                "group": self._gid if self._user else None,
                "env": self._env()}

    # -- lifecycle ----------------------------------------------------------

    def _bin(self, program):
        return os.path.join(self._bin_dir, program)

    def _env(self):
        # PG* variables from the caller's environment would redirect
        # initdb or the server; drop them.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        return env

    def _make_dirs(self):
        self._dir = procs.make_temp_dir(self.name)
        for sub in (self.data_dir, self.socket_dir):
            os.mkdir(sub, 0o700)
            os.chown(sub, self._uid, self._gid)
        sock_path = os.path.join(self.socket_dir, ".s.PGSQL.65535")
        if len(sock_path) > 107:
            raise RuntimeError("socket path too long (%d bytes): %s; use a "
                               "shorter ARGON_TEST_TMP"
                               % (len(sock_path), sock_path))

    def _initdb(self):
        argv = [self._bin("initdb"), "-D", self.data_dir, "--no-locale",
                "-E", "UTF8", "-U", "postgres", "--auth=trust", "--no-sync"]
        if self.data_checksums:
            argv.append("-k")
        procs.run(argv, user=self._user, group=self._gid if self._user
                  else None, env=self._env(), cwd=self._dir,
                  log_path=self.log_path)
        self._append_settings()

    def _basebackup(self):
        """The standby's data directory: a streamed base backup of the
        primary, with standby.signal and primary_conninfo (-R)."""
        argv = [self._bin("pg_basebackup"), "-D", self.data_dir,
                "-h", self.primary.host, "-p", str(self.primary.port),
                "-U", "postgres", "-X", "stream", "-c", "fast", "-R",
                "--no-sync"]
        if self.slot is not None:
            argv += ["-C", "-S", self.slot]
        procs.run(argv, timeout=600, cwd=self._dir, log_path=self.log_path,
                  **self.tool_kwargs())
        self._append_settings()

    def _append_settings(self):
        lines = ["", "# Added by the Argon test harness.",
                 "fsync = %s" % _conf_value(self.fsync)]
        if self.primary is not None:
            lines.append("hot_standby = on")
        lines += ["%s = %s" % (k, _conf_value(v))
                  for k, v in self.settings.items()]
        with open(os.path.join(self.data_dir, "postgresql.conf"), "a") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout=None):
        """Create the cluster if needed, then start it and wait for it.

        A port taken by someone else between choosing and binding is
        retried with a fresh port, a few times.
        """
        if self.running():
            return
        began = time.monotonic()
        first = self._dir is None
        if first:
            self._make_dirs()
            if self.primary is not None:
                self._basebackup()
            else:
                self._initdb()
        timeout = timeout or self.startup_timeout
        for attempt in range(5):
            self._port = ports.free_port()
            if self._launch(timeout):
                break
            if attempt == 4:
                raise RuntimeError("postgres could not bind a port after 5 "
                                   "tries\n" + self.log_tail())
        if first:
            self.startup_seconds = time.monotonic() - began

    def _launch(self, timeout):
        """Start postgres once; False if the port was taken."""
        log_start = os.path.getsize(self.log_path) \
            if os.path.exists(self.log_path) else 0
        argv = [self._bin("postgres"), "-D", self.data_dir,
                "-h", HOST, "-p", str(self._port), "-k", self.socket_dir]
        self._daemon = procs.start_daemon(
            argv, name="postgres", log_path=self.log_path,
            owner_dir=self._dir, user=self._user,
            group=self._gid if self._user else None, env=self._env(),
            cwd=self.data_dir, death_signal=signal.SIGQUIT,
            stop_signals=(signal.SIGINT, signal.SIGQUIT),
            hard_signal=signal.SIGQUIT)
        deadline = time.monotonic() + timeout
        last_error = None
        while True:
            if not self._daemon.alive():
                with open(self.log_path, "rb") as f:
                    f.seek(log_start)
                    new_log = f.read().decode("utf-8", "replace")
                self._daemon.stop()
                self._daemon = None
                if any(s in new_log for s in _PORT_IN_USE):
                    return False
                raise RuntimeError("postgres exited during startup (port "
                                   "%d)\n--- %s ---\n%s"
                                   % (self._port, self.log_path,
                                      self.log_tail()))
            try:
                conn = psycopg2.connect(self.connstr(), connect_timeout=2)
                conn.close()
                return True
            except psycopg2.OperationalError as e:
                last_error = str(e).strip()
            if time.monotonic() >= deadline:
                self._daemon.stop()
                self._daemon = None
                raise RuntimeError("postgres not ready after %.0f s (port "
                                   "%d): %s\n--- %s ---\n%s"
                                   % (timeout, self._port, last_error,
                                      self.log_path, self.log_tail()))
            time.sleep(0.05)

    def stop(self, mode="fast", keep_dir=False, timeout=30.0):
        """Stop the server, then remove its directory unless keep_dir.

        mode is a pg_ctl shutdown mode: smart, fast (default) or immediate.
        If the server has not exited in time it gets SIGQUIT, then SIGKILL.
        With keep_dir=True the cluster can be started again with start().
        """
        if self._daemon is not None:
            self._daemon.stop(timeout=timeout, signals=_MODE_SIGNALS[mode])
            self._daemon = None
        if not keep_dir and self._dir is not None:
            procs.remove_temp_dir(self._dir)
            self._dir = None

    def restart(self, mode="fast"):
        """Stop (keeping the data) and start again on the same port."""
        self.stop(mode=mode, keep_dir=True)
        if not self._launch(self.startup_timeout):
            raise RuntimeError("port %d was taken during restart\n%s"
                               % (self._port, self.log_tail()))

    def __enter__(self):
        if not self.running():
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def __repr__(self):
        return "<PgCluster %s port=%s pid=%s>" % (self.name, self._port,
                                                  self.pid)

    # -- client helpers -----------------------------------------------------

    def connstr(self, dbname="postgres", user="postgres"):
        """A libpq connection string over TCP."""
        return "host=%s port=%d user=%s dbname=%s" % (HOST, self._port,
                                                      user, dbname)

    dsn = connstr

    def connect(self, dbname="postgres", **kwargs):
        """Return a new psycopg2 connection in autocommit mode."""
        conn = psycopg2.connect(self.connstr(dbname), connect_timeout=10,
                                **kwargs)
        conn.autocommit = True
        return conn

    def sql(self, query, params=None, dbname="postgres"):
        """Run one statement on a fresh connection; return its rows.

        Statements without a result set return [].
        """
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description is not None else []
        finally:
            conn.close()

    def log_tail(self, lines=40):
        if self.log_path is None:
            return "(no log)"
        return procs.log_tail(self.log_path, lines)
