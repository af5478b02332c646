"""A throwaway argon-pageserver for integration tests.

PageServer writes a config file into its own temp dir, starts the binary from
the meson build ($ARGON_BUILD_DIR) as a tracked daemon (harness/procs.py), and
waits for the "ready" log line.  Listeners default to port 0: the server binds
free ports itself and logs them, so tests never race for a port.
"""

import os
import re
import signal
import subprocess
import time

from harness import procs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


def build_dir():
    return os.environ.get("ARGON_BUILD_DIR") or os.path.join(REPO, "build")


def binary(name):
    """Path of a built Argon program, e.g. binary('server/argon-pageserver')."""
    path = os.path.join(build_dir(), name)
    if not os.path.exists(path):
        raise RuntimeError("%s is not built (ARGON_BUILD_DIR=%s)" % (path, build_dir()))
    return path


def pg_linked_candidates(name):
    """Where a program linked from PostgreSQL (only gcc builds without sanitizers
    have those) may be: ARGON_BUILD_DIR's own, then the sibling gcc build's."""
    own = os.path.join(build_dir(), name)
    sibling = os.path.join(os.path.dirname(os.path.abspath(build_dir())), "build", name)
    return [own, sibling]


def pg_linked_binary(name):
    """The first of pg_linked_candidates(name) that exists, else None."""
    for path in pg_linked_candidates(name):
        if os.path.exists(path):
            return path
    return None


READY = "page server is ready to accept connections"


class PageServer:
    def __init__(self, name="pageserver", *, config=None, start=True, timeout=30.0):
        self.dir = procs.make_temp_dir(name)
        self.data_dir = os.path.join(self.dir, "data")
        self.config_path = os.path.join(self.dir, "argon.conf")
        self.log_path = os.path.join(self.dir, "pageserver.log")
        settings = {
            "data_dir": self.data_dir,
            "pg_listen_address": "127.0.0.1:0",
            "http_listen_address": "127.0.0.1:0",
            "core_count": "2",
            "core_arena_bytes": "16MiB",
        }
        settings.update(config or {})
        self.data_dir = settings["data_dir"]
        with open(self.config_path, "w") as f:
            for key, value in settings.items():
                f.write("%s = %s\n" % (key, value))
        self.daemon = None
        self.pg_port = None
        self.http_port = None
        if start:
            self.start(timeout=timeout)

    def start(self, timeout=30.0):
        # A restart appends to the same log: read only what this start wrote.
        skip = len(self.log())
        # PostgreSQL's redo: the build's argon-walredo, or the sibling gcc
        # build's for a sanitizer build (as argonctl gets it).
        from harness.argonctl import walredo_binary
        env = dict(os.environ)
        if not env.get("ARGON_WALREDO") and walredo_binary():
            env["ARGON_WALREDO"] = walredo_binary()
        self.daemon = procs.start_daemon(
            [binary("server/argon-pageserver"), "--config", self.config_path],
            name="argon-pageserver", log_path=self.log_path, owner_dir=self.dir,
            env=env, death_signal=signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()[skip:]
            if READY in text:
                self.pg_port = int(re.search(
                    r"PostgreSQL connections on [^\s]+:(\d+)", text).group(1))
                self.http_port = int(re.search(
                    r"management API listening on http://[^\s]+:(\d+)", text).group(1))
                return
            if not self.daemon.alive():
                raise RuntimeError("argon-pageserver exited during startup:\n" + text)
            time.sleep(0.02)
        raise RuntimeError("argon-pageserver not ready after %.0f s:\n%s" % (timeout, self.log()))

    @property
    def pid(self):
        return self.daemon.pid

    @property
    def api_url(self):
        return "http://127.0.0.1:%d" % self.http_port

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def signal_and_wait(self, sig, timeout=30.0):
        """Send sig; return (exit status, seconds until the process was gone)."""
        started = time.monotonic()
        self.daemon.popen.send_signal(sig)
        try:
            status = self.daemon.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None, time.monotonic() - started
        return status, time.monotonic() - started

    def sanitizer_reports(self):
        """Reports of ThreadSanitizer/AddressSanitizer/UBSan in the server's log."""
        markers = ("WARNING: ThreadSanitizer", "ERROR: AddressSanitizer",
                   "runtime error:", "ERROR: LeakSanitizer")
        return [line for line in self.log().splitlines() if any(m in line for m in markers)]

    def stop(self):
        if self.daemon is not None:
            self.daemon.stop(timeout=10.0)
        reports = self.sanitizer_reports()
        log = self.log()
        procs.remove_temp_dir(self.dir)
        # A sanitizer build reports races and memory errors in the log: fail on them.
        if reports:
            raise AssertionError("argon-pageserver sanitizer report:\n" + log[-8000:])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def run_pageserver_once(args, timeout=30.0):
    """Run argon-pageserver with args to completion (for startup failures)."""
    return subprocess.run([binary("server/argon-pageserver")] + list(args),
                          capture_output=True, text=True, timeout=timeout)
