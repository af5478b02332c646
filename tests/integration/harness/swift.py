"""SwiftS3: a one-node OpenStack Swift with the s3api middleware, on loopback.

Why Swift and the exact configuration: /work/shared/reference/
s3-test-server.md.  Swift verifies SigV4 signatures and payload digests and
makes PUTs atomic, which the reliability tests depend on.

Layout of the temporary directory:

    <dir>/swift.conf                     hash prefix/suffix, one policy
    <dir>/{account,container,object}-server.conf, proxy-server.conf
    <dir>/{account,container,object}.builder and .ring.gz
    <dir>/node/sdb1/                     the one "disk"
    <dir>/cache/                         recon cache
    <dir>/<daemon>.log                   each daemon's stderr (-v)

Five daemons, each started here and tracked by PID through procs:
memcached, the account, container and object servers (workers = 0, so
each is a single process) and the proxy with s3api + tempauth.  The rings
are built in one Python process with Swift's RingBuilder, which does what
"swift-ring-builder <f> create 6 1 1; add r1z1-127.0.0.1:<port>/sdb1 1;
rebalance" does, without paying the CLI's start-up cost nine times.
"""

import http.client
import os
import pwd
import signal
import time

from . import ports, procs

SWIFT_PYTHON = "/usr/bin/python3"     # Debian's python, with the swift module
HOST = "127.0.0.1"
ACCESS_KEY = "test:tester"
SECRET_KEY = "testing"
REGION = "us-east-1"

BACKENDS = ("account", "container", "object")
_PORT_IN_USE = ("Address already in use", "Could not bind")

_RING_SCRIPT = r"""
import sys
from swift.common.ring import RingBuilder
swift_dir = sys.argv[1]
for spec in sys.argv[2:]:
    kind, port = spec.split(":")
    builder = RingBuilder(6, 1, 1)
    builder.add_dev({"region": 1, "zone": 1, "ip": "127.0.0.1",
                     "port": int(port), "device": "sdb1", "weight": 1})
    builder.rebalance()
    builder.validate()
    builder.save("%s/%s.builder" % (swift_dir, kind))
    builder.get_ring().save("%s/%s.ring.gz" % (swift_dir, kind))
"""

_SWIFT_CONF = """\
[swift-hash]
swift_hash_path_prefix = argon-test-prefix
swift_hash_path_suffix = argon-test-suffix

[storage-policy:0]
name = Policy-0
default = yes
"""

_COMMON_DEFAULT = """\
[DEFAULT]
bind_ip = {host}
bind_port = {port}
bind_timeout = 5
workers = 0
user = {user}
swift_dir = {dir}
devices = {dir}/node
mount_check = false
disable_fallocate = true
recon_cache_path = {dir}/cache
log_name = {kind}-server
log_level = INFO
"""

_BACKEND_TAIL = """
[pipeline:main]
pipeline = {kind}-server

[app:{kind}-server]
use = egg:swift#{kind}
"""

_PROXY_TAIL = """
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache \
listing_formats bulk s3api tempauth copy slo dlo versioned_writes \
proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:cache]
use = egg:swift#memcache
memcache_servers = {host}:{memcached_port}

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:bulk]
use = egg:swift#bulk

[filter:s3api]
use = egg:swift#s3api
location = {region}

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = {secret} .admin

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo

# Swift inserts this one itself (and logs that it did) when it is missing.
[filter:versioned_writes]
use = egg:swift#versioned_writes
"""


class _PortTaken(Exception):
    """A daemon lost its port to someone else; start again on new ones."""


def _http_status(port, path, timeout=1.0):
    """Status of GET path on 127.0.0.1:port, or None if nothing answers."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _memcached_ready(port):
    """Does memcached on port answer a version command?"""
    import socket
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as s:
            s.sendall(b"version\r\n")
            return s.recv(64).startswith(b"VERSION")
    except OSError:
        return False


class SwiftS3:
    """A one-node Swift + s3api endpoint on loopback.

    SwiftS3(name="swift", start=True, startup_timeout=60.0)

    Credentials: access key "test:tester", secret "testing", region
    us-east-1; path-style addressing.
    """

    def __init__(self, name="swift", *, start=True, startup_timeout=60.0):
        self.name = name
        self.startup_timeout = startup_timeout
        self.startup_seconds = None
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.region = REGION
        self._dir = None
        self._ports = {}
        self._daemons = {}
        self._user = "root" if os.getuid() == 0 \
            else pwd.getpwuid(os.getuid()).pw_name
        if start:
            try:
                self.start()
            except BaseException:
                self.stop()
                raise

    # -- properties ---------------------------------------------------------

    @property
    def dir(self):
        return self._dir

    @property
    def host(self):
        return HOST

    @property
    def port(self):
        """The proxy's (S3 endpoint's) port."""
        return self._ports.get("proxy")

    @property
    def ports(self):
        """Ports by daemon: proxy, account, container, object, memcached."""
        return dict(self._ports)

    @property
    def endpoint(self):
        return "http://%s:%d" % (HOST, self.port)

    @property
    def pids(self):
        """PIDs of the running daemons, by daemon name."""
        return {name: d.pid for name, d in self._daemons.items()}

    def running(self):
        return bool(self._daemons) and all(d.alive()
                                           for d in self._daemons.values())

    # -- lifecycle ----------------------------------------------------------

    def start(self):
        """Configure and start all daemons; wait until the proxy is healthy.

        Ports are chosen afresh and everything is rebuilt if a daemon finds
        its port taken (at most three tries).
        """
        if self._daemons:
            return
        began = time.monotonic()
        if self._dir is None:
            self._dir = procs.make_temp_dir(self.name)
            for sub in ("node/sdb1", "cache"):
                os.makedirs(os.path.join(self._dir, sub))
            with open(os.path.join(self._dir, "swift.conf"), "w") as f:
                f.write(_SWIFT_CONF)
        for attempt in range(3):
            try:
                self._start_once()
                break
            except _PortTaken:
                self._stop_daemons()
                if attempt == 2:
                    raise RuntimeError("swift daemons could not bind ports "
                                       "after 3 tries\n" + self.log_tails())
        self.startup_seconds = time.monotonic() - began

    def _start_once(self):
        names = ("proxy",) + BACKENDS + ("memcached",)
        self._ports = dict(zip(names, ports.free_ports(len(names))))
        self._write_confs()
        procs.run([SWIFT_PYTHON, "-c", _RING_SCRIPT, self._dir]
                  + ["%s:%d" % (k, self._ports[k]) for k in BACKENDS],
                  cwd=self._dir, log_path=self._log("rings"))
        memcached = ["memcached", "-l", HOST, "-p",
                     str(self._ports["memcached"]), "-U", "0", "-m", "64",
                     "-c", "256"]
        if os.getuid() == 0:
            memcached += ["-u", "root"]
        self._spawn("memcached", memcached)
        for kind in BACKENDS + ("proxy",):
            self._spawn(kind, ["swift-%s-server" % kind,
                               self._conf_path(kind), "-v"])
        self._wait_ready()

    def _conf_path(self, kind):
        return os.path.join(self._dir, "%s-server.conf" % kind)

    def _log(self, name):
        return os.path.join(self._dir, "%s.log" % name)

    def _write_confs(self):
        for kind in BACKENDS + ("proxy",):
            fields = dict(host=HOST, port=self._ports[kind], user=self._user,
                          dir=self._dir, kind=kind, region=REGION,
                          secret=SECRET_KEY,
                          memcached_port=self._ports["memcached"])
            tail = _PROXY_TAIL if kind == "proxy" else _BACKEND_TAIL
            with open(self._conf_path(kind), "w") as f:
                f.write((_COMMON_DEFAULT + tail).format(**fields))

    def _spawn(self, name, argv):
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)     # Debian's swift, not a venv's copy
        self._daemons[name] = procs.start_daemon(
            argv, name=name, log_path=self._log(name), owner_dir=self._dir,
            env=env, cwd=self._dir, death_signal=signal.SIGKILL,
            stop_signals=(signal.SIGTERM,), hard_signal=signal.SIGKILL)

    def _check_alive(self):
        """Raise if a daemon exited: _PortTaken or a clear error."""
        for name, daemon in self._daemons.items():
            if daemon.alive():
                continue
            tail = daemon.log_tail(40)
            if any(s in tail for s in _PORT_IN_USE):
                raise _PortTaken(name)
            raise RuntimeError("swift daemon %s exited during startup "
                               "(exit code %s)\n%s"
                               % (name, daemon.popen.returncode,
                                  self.log_tails()))

    def _wait_ready(self):
        """Ready: memcached answers, each backend answers HTTP, and the
        proxy's /healthcheck says 200."""
        deadline = time.monotonic() + self.startup_timeout
        pending = ["memcached"] + list(BACKENDS) + ["proxy"]
        while pending:
            self._check_alive()
            name = pending[0]
            port = self._ports[name]
            if name == "memcached":
                ready = _memcached_ready(port)
            elif name == "proxy":
                ready = _http_status(port, "/healthcheck") == 200
            else:
                # Any HTTP answer will do; a backend has no healthcheck.
                ready = _http_status(port, "/") is not None
            if ready:
                pending.pop(0)
                continue
            if time.monotonic() >= deadline:
                raise RuntimeError("swift not ready after %.0f s: %s on port "
                                   "%d does not answer\n%s"
                                   % (self.startup_timeout, name, port,
                                      self.log_tails()))
            time.sleep(0.05)

    def _stop_daemons(self):
        # Proxy first, memcached last: the reverse of the start order.
        for name in reversed(list(self._daemons)):
            self._daemons[name].stop(timeout=10.0)
        self._daemons = {}

    def stop(self, keep_dir=False):
        """Stop every daemon by PID; remove the directory unless keep_dir."""
        self._stop_daemons()
        if not keep_dir and self._dir is not None:
            procs.remove_temp_dir(self._dir)
            self._dir = None

    def __enter__(self):
        if not self._daemons:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def __repr__(self):
        return "<SwiftS3 %s endpoint=%s>" % (self.name,
                                             self.endpoint if self.port
                                             else None)

    # -- clients and diagnostics --------------------------------------------

    def boto3_client(self, **config_kwargs):
        """A boto3 S3 client for this endpoint: SigV4, path-style URLs.

        config_kwargs are passed to botocore.config.Config (for example
        retries or read_timeout).
        """
        import boto3
        from botocore.config import Config
        options = dict(signature_version="s3v4",
                       s3={"addressing_style": "path"},
                       retries={"max_attempts": 2, "mode": "standard"},
                       connect_timeout=5, read_timeout=30)
        options.update(config_kwargs)
        return boto3.client("s3", endpoint_url=self.endpoint,
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key,
                            region_name=self.region,
                            config=Config(**options))

    def log_tails(self, lines=20):
        """The last lines of every daemon's log, for error messages."""
        if self._dir is None:
            return "(no directory)"
        out = []
        for name in ("memcached",) + BACKENDS + ("proxy", "rings"):
            path = self._log(name)
            if os.path.exists(path):
                out.append("--- %s ---\n%s" % (path,
                                               procs.log_tail(path, lines)))
        return "\n".join(out)
