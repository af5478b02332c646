"""A page-service client written from the reference layouts
(../shared/reference/neon-storage.md section 1), not from Argon's code: the
PostgreSQL v3 startup, simple queries, `pagestream_v2|v3`, and every request
and response built and parsed with struct.pack by hand.

    Conn(port, password=None)      startup (and cleartext password)
    .query(sql)                    rows, or raises PgError
    .core()                        the answering core (STATUS)
    .pagestream(version, tenant, timeline)   expects CopyBothResponse
    .send(payload) / .send_raw(bytes)        one CopyData / raw bytes
    .recv()                        the next message (type, body)
    .response()                    the next CopyData payload
    request(version, tag, ...)     a request's bytes
    parse(version, tag, payload)   a response as a dict (checks the echo)
    on_each_core(port, cores=2)    one Conn per core (STATUS names the core)
    shard_of(count, rel, blkno)    Neon's relation block -> shard
    relation_files(pgdata)         {(spc, db, relnode, fork): segment paths}
    file_pages(paths)              a relation fork's files as 8 KiB pages
"""

import os
import socket
import struct

EXISTS, NBLOCKS, GETPAGE, DBSIZE, GETSLRU = 0, 1, 2, 3, 4
R_EXISTS, R_NBLOCKS, R_GETPAGE, R_ERROR, R_DBSIZE, R_GETSLRU = \
    100, 101, 102, 103, 104, 105
ANSWER = {EXISTS: R_EXISTS, NBLOCKS: R_NBLOCKS, GETPAGE: R_GETPAGE,
          DBSIZE: R_DBSIZE, GETSLRU: R_GETSLRU}
MAX_LSN = (1 << 64) - 1
PAGE = 8192
FORKS = {"": 0, "fsm": 1, "vm": 2, "init": 3}


class PgError(Exception):
    def __init__(self, fields):
        self.fields = fields
        super().__init__("%s %s: %s" % (fields.get("S"), fields.get("C"),
                                        fields.get("M")))


def _error_fields(body):
    out = {}
    for part in body.split(b"\0"):
        if part:
            out[chr(part[0])] = part[1:].decode(errors="replace")
    return out


def body(tag, rel=None, blkno=0, dbnode=0, kind=0, segno=0):
    """A request body: rel = (spc, db, relnode, fork)."""
    if tag in (EXISTS, NBLOCKS):
        return struct.pack(">IIIB", *rel)
    if tag == GETPAGE:
        return struct.pack(">IIIBI", *rel, blkno)
    if tag == DBSIZE:
        return struct.pack(">I", dbnode)
    if tag == GETSLRU:
        return struct.pack(">BI", kind, segno)
    raise ValueError(tag)


def request(version, tag, lsn, not_modified_since=0, reqid=0, **kw):
    head = struct.pack(">B", tag)
    if version == 3:
        head += struct.pack(">Q", reqid)
    head += struct.pack(">QQ", lsn, not_modified_since)
    return head + body(tag, **kw)


def parse(version, req, payload):
    """The response to request bytes `req`: {"tag", "value"|"error"}; the v3
    echo must be the request's header (and body, except for an Error)."""
    tag = payload[0]
    p = 1
    if version == 3:
        echo_len = 24 if tag == R_ERROR else len(req) - 1
        assert payload[1:1 + echo_len] == req[1:1 + echo_len], \
            "v3 response does not echo its request: reqid %d answered for %d" % (
                struct.unpack(">Q", payload[1:9])[0], struct.unpack(">Q", req[1:9])[0])
        p += echo_len
    rest = payload[p:]
    if tag == R_ERROR:
        assert rest.endswith(b"\0") and rest.count(b"\0") == 1, rest
        return {"tag": tag, "error": rest[:-1].decode(errors="replace")}
    assert tag == ANSWER[req[0]], "tag %d answers request %d" % (tag, req[0])
    if tag == R_EXISTS:
        assert len(rest) == 1
        return {"tag": tag, "value": rest[0]}
    if tag == R_NBLOCKS:
        assert len(rest) == 4
        return {"tag": tag, "value": struct.unpack(">I", rest)[0]}
    if tag == R_GETPAGE:
        assert len(rest) == PAGE
        return {"tag": tag, "value": bytes(rest)}
    if tag == R_DBSIZE:
        assert len(rest) == 8
        return {"tag": tag, "value": struct.unpack(">q", rest)[0]}
    n = struct.unpack(">I", rest[:4])[0]
    assert n <= 32 and len(rest) == 4 + n * PAGE
    return {"tag": tag, "value": bytes(rest[4:])}


class Conn:
    def __init__(self, port, user="argon", password=None, timeout=30.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()
        params = b"user\0" + user.encode() + b"\0application_name\0pytest\0\0"
        self.sock.sendall(struct.pack(">II", 8 + len(params), 196608) + params)
        while True:
            t, b = self.recv()
            if t == b"R":
                code = struct.unpack(">I", b[:4])[0]
                if code == 3:
                    pw = (password or "").encode() + b"\0"
                    self.sock.sendall(b"p" + struct.pack(">I", 4 + len(pw)) + pw)
                else:
                    assert code == 0, code
            elif t == b"E":
                raise PgError(_error_fields(b))
            elif t == b"Z":
                return

    def close(self):
        self.sock.close()

    def _fill(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk

    def recv(self):
        self._fill(5)
        t = bytes(self.buf[:1])
        n = struct.unpack(">I", self.buf[1:5])[0]
        self._fill(1 + n)
        b = bytes(self.buf[5:1 + n])
        del self.buf[:1 + n]
        return t, b

    def query(self, sql):
        q = sql.encode() + b"\0"
        self.sock.sendall(b"Q" + struct.pack(">I", 4 + len(q)) + q)
        rows, err = [], None
        while True:
            t, b = self.recv()
            if t == b"D":
                n = struct.unpack(">H", b[:2])[0]
                p, row = 2, []
                for _ in range(n):
                    ln = struct.unpack(">i", b[p:p + 4])[0]
                    p += 4
                    row.append(b[p:p + ln].decode())
                    p += ln
                rows.append(row)
            elif t == b"E":
                err = PgError(_error_fields(b))
            elif t == b"Z":
                if err:
                    raise err
                return rows

    def core(self):
        return int(self.query("STATUS")[0][2])

    def pagestream(self, version, tenant, timeline):
        q = ("pagestream_v%d %s %s" % (version, tenant, timeline)).encode() + b"\0"
        self.sock.sendall(b"Q" + struct.pack(">I", 4 + len(q)) + q)
        t, b = self.recv()
        if t == b"E":
            fields = _error_fields(b)
            t, _ = self.recv()
            assert t == b"Z"
            raise PgError(fields)
        assert t == b"W" and b == b"\0\0\0", (t, b)
        self.version = version

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, payload):
        self.sock.sendall(b"d" + struct.pack(">I", 4 + len(payload)) + payload)

    def response(self):
        t, b = self.recv()
        if t == b"E":
            raise PgError(_error_fields(b))
        assert t == b"d", t
        return b

    def call(self, req):
        self.send(req)
        return parse(self.version, req, self.response())

    def pipeline(self, reqs, depth=32):
        """Send with up to depth in flight; the parsed answers in order."""
        out, sent = [], 0
        while len(out) < len(reqs):
            batch = b""
            while sent < len(reqs) and sent - len(out) < depth:
                r = reqs[sent]
                batch += b"d" + struct.pack(">I", 4 + len(r)) + r
                sent += 1
            if batch:
                self.sock.sendall(batch)
            out.append(parse(self.version, reqs[len(out)], self.response()))
        return out


def on_each_core(port, cores=2, tries=64):
    """One connection per core: STATUS names the core that accepted it."""
    found, spare = {}, []
    for _ in range(tries):
        c = Conn(port)
        core = c.core()
        if core in found:
            spare.append(c)
        else:
            found[core] = c
        if len(found) == cores:
            break
    for c in spare:
        c.close()
    assert len(found) == cores, "connections landed only on cores %s" % sorted(found)
    return [found[k] for k in sorted(found)]


def _fmix32(h):
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h


def shard_of(count, rel, blkno, stripe=2048):
    """Neon's key -> shard for a relation block (reference section 10):
    hash_combine(murmur32(relnode), murmur32(blkno / stripe)) % count, shard 0
    when unsharded, for the init fork, or for relnode 0 (not a relation)."""
    if count < 2 or rel[3] == FORKS["init"] or rel[2] == 0:
        return 0
    a, b = _fmix32(rel[2]), _fmix32(blkno // stripe)
    combined = a ^ ((b + 0x9E3779B9 + ((a << 6) & 0xFFFFFFFF) + (a >> 2)) & 0xFFFFFFFF)
    return combined % count


def relation_files(pgdata):
    """{(spc, db, relnode, fork): [segment paths in order]} of a data directory."""
    rels = {}
    dirs = [(1664, 0, os.path.join(pgdata, "global"))]
    base = os.path.join(pgdata, "base")
    for db in sorted(os.listdir(base)):
        dirs.append((1663, int(db), os.path.join(base, db)))
    for spc, db, path in dirs:
        for name in sorted(os.listdir(path)):
            stem, _, seg = name.partition(".")
            rel, _, fork = stem.partition("_")
            if not rel.isdigit() or fork not in FORKS or (seg and not seg.isdigit()):
                continue
            key = (spc, db, int(rel), FORKS[fork])
            rels.setdefault(key, []).append((int(seg or 0), os.path.join(path, name)))
    return {k: [p for _, p in sorted(v)] for k, v in rels.items()}


def file_pages(paths):
    """A relation fork's segment files as a list of 8 KiB pages."""
    data = b"".join(open(p, "rb").read() for p in paths)
    return [data[i:i + PAGE] for i in range(0, len(data), PAGE)]
