"""Process and temporary-directory tracking for Argon's integration tests.

Everything a test starts goes through this module, so that nothing outlives
the test process, however the test ends:

  1. Each daemon runs in its own session (so a terminal ^C or meson's
     killpg() does not reach it half-way through a shutdown) and with
     prctl(PR_SET_PDEATHSIG), so the kernel signals it if the test process
     dies, even by SIGKILL.
  2. Every daemon PID is remembered in memory and in a small pidfile
     (".argon-pids") inside the temporary directory it belongs to.
  3. cleanup_all() stops every daemon still running and removes every
     temporary directory.  It runs from atexit and from SIGTERM/SIGINT
     handlers (meson sends SIGTERM on timeout and SIGKILL 0.5 s later, so
     the signal path is quick: hard signals to all daemons at once, a short
     wait, then the directories).
  4. Temporary directories live under ARGON_TEST_TMP (default
     /tmp/argon-test) and are named "<owner-pid>-<name>-<random>".
     sweep_stale() removes directories whose owner died (the SIGKILL case),
     after killing any daemon still listed in their pidfile.  It runs once
     in each process, before the first directory is created.

A PID is only ever signalled if its start time still matches the one
recorded when it was started, so a recycled PID is never hit.
"""

import atexit
import ctypes
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

DEFAULT_TMP_ROOT = "/tmp/argon-test"
PIDFILE_NAME = ".argon-pids"
OWNERFILE_NAME = ".argon-owner"

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)
_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                   ctypes.c_ulong, ctypes.c_ulong]
_prctl.restype = ctypes.c_int

_DIR_NAME_RE = re.compile(r"^(\d+)-")

# Process-wide registry.  Only the process that imported this module first
# (the owner) acts on it: a forked child between fork() and exec() must not
# run the cleanup if a signal reaches it there.
_owner_pid = os.getpid()
_daemons = {}           # pid -> Daemon, in start order (dicts keep order)
_temp_dirs = []         # paths, in creation order
_installed = False
_swept = False
_cleaning = False


def tmp_root():
    """Return the root for temporary directories, creating it if needed.

    The root is world-writable and sticky (like /tmp) so that runs as root
    and as ordinary users can share it.
    """
    root = os.environ.get("ARGON_TEST_TMP") or DEFAULT_TMP_ROOT
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        os.makedirs(root, exist_ok=True)
        try:
            os.chmod(root, 0o1777)
        except PermissionError:
            pass
    return root


def proc_start_time(pid):
    """Return the start time of pid (clock ticks since boot), or None.

    None means the process does not exist or is a zombie.
    """
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may contain spaces and parentheses, so
    # split after the last ')'.  Field 3 is the state, field 22 the start
    # time.
    fields = stat[stat.rindex(b")") + 2:].split()
    if fields[0] == b"Z":
        return None
    return int(fields[19])


def pid_alive(pid, start_time=None):
    """Is pid a live (not zombie) process, optionally the one started at
    start_time?"""
    current = proc_start_time(pid)
    if current is None:
        return False
    return start_time is None or current == start_time


def children_of(pid):
    """Return the PIDs of all live descendants of pid (a snapshot)."""
    parent_of = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        if fields[0] != b"Z":
            parent_of[int(entry)] = int(fields[1])
    found = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parent_of.items():
            if ppid == parent and child not in found:
                found.append(child)
                frontier.append(child)
    return found


def _signal_pid(pid, sig, start_time=None):
    """Send sig to pid if it is still the process we mean; never raise."""
    if not pid_alive(pid, start_time):
        return False
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _reap(pid):
    """Collect pid if it is our exited child; harmless otherwise."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def wait_pids_gone(pids, timeout):
    """Wait until none of pids is alive; return the ones still alive."""
    deadline = time.monotonic() + timeout
    while True:
        for pid in pids:
            _reap(pid)
        alive = [pid for pid in pids if pid_alive(pid)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.02)


class Daemon:
    """One long-running process started by start_daemon().

    stop_signals is the polite sequence tried first, one after the other,
    each given its share of the timeout; SIGKILL comes last.  hard_signal is
    what the quick signal-handler cleanup sends.
    """

    def __init__(self, name, popen, argv, log_path, owner_dir, start_time,
                 stop_signals, hard_signal):
        self.name = name
        self.popen = popen
        self.pid = popen.pid
        self.argv = list(argv)
        self.log_path = log_path
        self.owner_dir = owner_dir
        self.start_time = start_time
        self.stop_signals = tuple(stop_signals)
        self.hard_signal = hard_signal

    def __repr__(self):
        return "<Daemon %s pid=%d>" % (self.name, self.pid)

    def alive(self):
        """Is the process still running (not exited, not a zombie)?"""
        # poll() takes Popen's lock without blocking, so it is safe even
        # from a signal handler that interrupted another wait.
        if self.popen.poll() is not None:
            return False
        return pid_alive(self.pid, self.start_time)

    def wait(self, timeout):
        """Wait up to timeout seconds for exit; True if it exited."""
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def signal(self, sig):
        """Send sig to the daemon if it is still running."""
        if self.alive():
            _signal_pid(self.pid, sig, self.start_time)

    def stop(self, timeout=10.0, signals=None):
        """Stop the daemon: polite signals in turn, then SIGKILL.

        SIGKILL also goes to the daemon's process group, which catches
        helpers it forked without a new session of their own.
        """
        seq = tuple(signals) if signals is not None else self.stop_signals
        share = timeout / max(len(seq), 1)
        for sig in seq:
            if not self.alive():
                break
            self.signal(sig)
            self.wait(share)
        if self.alive():
            self.signal(signal.SIGKILL)
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.wait(5.0)
        _daemons.pop(self.pid, None)
        return not self.alive()

    def log_tail(self, lines=30):
        return log_tail(self.log_path, lines)


def log_tail(path, lines=30):
    """Return the last lines of a log file as one string (never raises)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return "(no log: %s)" % e
    return "\n".join(data.splitlines()[-lines:])


def death_signal_preexec(death_signal):
    """Build a preexec_fn that makes the child get death_signal when we die.

    Usable with any subprocess.Popen.  It runs after subprocess has
    switched user and group, which matters: the kernel clears the death
    signal when credentials change.
    """
    parent = os.getpid()

    def preexec():
        _prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        # If the parent died before prctl(), nobody will ever signal us.
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def _append_pidfile(owner_dir, pid, start_time, name):
    if owner_dir is None:
        return
    with open(os.path.join(owner_dir, PIDFILE_NAME), "a") as f:
        f.write("%d %d %s\n" % (pid, start_time, name))


def start_daemon(argv, *, name, log_path, owner_dir=None, user=None,
                 group=None, env=None, cwd=None, death_signal=signal.SIGKILL,
                 stop_signals=(signal.SIGTERM,), hard_signal=signal.SIGKILL):
    """Start argv as a tracked daemon and return its Daemon.

    stdout and stderr go to log_path (opened by us, so it works when the
    daemon runs as another user); stdin is /dev/null.  The PID is recorded
    in memory and in owner_dir's pidfile before this returns.
    """
    _ensure_installed()
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            env=env, cwd=cwd, user=user, group=group,
            start_new_session=True, close_fds=True,
            preexec_fn=death_signal_preexec(death_signal))
    start_time = proc_start_time(popen.pid) or 0
    daemon = Daemon(name, popen, argv, log_path, owner_dir, start_time,
                    stop_signals, hard_signal)
    _daemons[popen.pid] = daemon
    _append_pidfile(owner_dir, popen.pid, start_time, name)
    return daemon


def run(argv, *, timeout=120, user=None, group=None, env=None, cwd=None,
        log_path=None):
    """Run a short-lived command to completion; raise with its output on
    failure.

    It gets the same death signal as a daemon, so a killed test does not
    leave an initdb behind.  Returns the combined output as text.
    """
    _ensure_installed()
    proc = subprocess.run(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, env=env, cwd=cwd, user=user, group=group,
        timeout=timeout, preexec_fn=death_signal_preexec(signal.SIGKILL))
    output = proc.stdout.decode("utf-8", "replace")
    if log_path is not None:
        with open(log_path, "a") as f:
            f.write("$ %s\n%s" % (" ".join(argv), output))
    if proc.returncode != 0:
        raise RuntimeError("command failed with exit code %d: %s\n%s"
                           % (proc.returncode, " ".join(argv),
                              output[-4000:]))
    return output


def make_temp_dir(name):
    """Create and register <root>/<our-pid>-<name>-<random>; return it.

    The directory is 0755 so that daemons run as another user (postgres)
    can reach the subdirectories handed to them.
    """
    _ensure_installed()
    if not _swept:
        sweep_stale()
    path = tempfile.mkdtemp(prefix="%d-%s-" % (os.getpid(), name),
                            dir=tmp_root())
    os.chmod(path, 0o755)
    with open(os.path.join(path, OWNERFILE_NAME), "w") as f:
        f.write("%d %d\n" % (os.getpid(), proc_start_time(os.getpid())))
    _temp_dirs.append(path)
    return path


def remove_temp_dir(path):
    """Remove a temporary directory (after its daemons have stopped)."""
    _rmtree(path)
    if path in _temp_dirs:
        _temp_dirs.remove(path)


def _rmtree(path):
    # A daemon that is still dying may create a file while we delete; one
    # retry after a short pause covers that.
    for attempt in range(3):
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            return
        time.sleep(0.1 * (attempt + 1))


def daemons():
    """Return the daemons still registered (started and not stopped)."""
    return list(_daemons.values())


def temp_dirs():
    """Return the temporary directories still registered."""
    return list(_temp_dirs)


def _read_pidfile(path):
    records = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0].isdigit() \
                        and parts[1].isdigit():
                    records.append((int(parts[0]), int(parts[1])))
    except OSError:
        pass
    return records


def _owner_alive(dir_path, owner_pid):
    """Is the process that created dir_path still running?"""
    recorded = _read_pidfile(os.path.join(dir_path, OWNERFILE_NAME))
    start_time = recorded[0][1] if recorded else None
    return pid_alive(owner_pid, start_time)


def sweep_stale(root=None):
    """Remove directories left by dead owners; return their paths.

    Daemons listed in such a directory's pidfile are killed first (only if
    their start time still matches).  Directories of live owners, including
    parallel test processes, are left alone.
    """
    global _swept
    _swept = True
    root = root or tmp_root()
    removed = []
    try:
        entries = os.listdir(root)
    except FileNotFoundError:
        return removed
    for entry in entries:
        match = _DIR_NAME_RE.match(entry)
        path = os.path.join(root, entry)
        if not match or not os.path.isdir(path):
            continue
        owner = int(match.group(1))
        if owner == os.getpid() or _owner_alive(path, owner):
            continue
        records = _read_pidfile(os.path.join(path, PIDFILE_NAME))
        for pid, start_time in records:
            _signal_pid(pid, signal.SIGKILL, start_time)
        wait_pids_gone([pid for pid, _ in records], 5.0)
        _rmtree(path)
        if not os.path.exists(path):
            removed.append(path)
    return removed


def cleanup_all(quick=False):
    """Stop every registered daemon and remove every temporary directory.

    The normal path stops daemons one by one, newest first, with their
    polite signals.  The quick path (signal handlers) sends every daemon its
    hard signal at once, waits at most two seconds, then SIGKILLs the rest.
    Safe to call more than once.
    """
    global _cleaning
    if os.getpid() != _owner_pid:
        return
    # A signal may interrupt a normal cleanup: the quick one then runs
    # nested (every step is idempotent); a second normal one does not.
    if _cleaning and not quick:
        return
    was_cleaning = _cleaning
    _cleaning = True
    try:
        running = list(reversed(list(_daemons.values())))
        if quick:
            for d in running:
                d.signal(d.hard_signal)
            deadline = time.monotonic() + 2.0
            while any(d.alive() for d in running) \
                    and time.monotonic() < deadline:
                time.sleep(0.02)
            for d in running:
                if d.alive():
                    d.signal(signal.SIGKILL)
        else:
            for d in running:
                d.stop(timeout=10.0)
        _daemons.clear()
        for path in list(reversed(_temp_dirs)):
            remove_temp_dir(path)
    finally:
        _cleaning = was_cleaning


def _on_signal(signum, frame):
    """SIGTERM/SIGINT: clean up, then let the signal take its usual
    course."""
    if os.getpid() != _owner_pid:
        return
    cleanup_all(quick=True)
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    signal.signal(signum, previous)
    if callable(previous):
        previous(signum, frame)          # SIGINT: raises KeyboardInterrupt
    elif previous != signal.SIG_IGN:
        os.kill(os.getpid(), signum)     # die of the signal, as expected


_previous_handlers = {}


def _ensure_installed():
    """Register the atexit hook and signal handlers once per process.

    Signal handlers can only be set from the main thread; elsewhere atexit
    and the death signal still apply.
    """
    global _installed
    if _installed or os.getpid() != _owner_pid:
        return
    _installed = True
    atexit.register(cleanup_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if previous == signal.SIG_IGN:
            continue        # e.g. SIGINT in a background job: keep ignoring
        _previous_handlers[signum] = previous if previous is not None \
            else signal.SIG_DFL
        signal.signal(signum, _on_signal)


def install():
    """Install the cleanup hooks now (otherwise done on first use)."""
    _ensure_installed()
