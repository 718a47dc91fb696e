"""The pieces spec/openresty/test_nginx.py and bench/openresty.py share: an nginx running
examples/openresty/nginx.conf under a temporary prefix on a free loopback port, an HTTP
client, and a small OP_MSG client for the test-server clusters (set-up, inspection,
failpoints), so the checks read both clusters without going through nginx.

Runs under Debian's /usr/bin/python3 (python3-bson, via spec/server/testd/wire.py).
"""

import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))

import sys  # noqa: E402

sys.path.insert(0, os.path.join(TOP, "spec", "server"))
from bson.son import SON  # noqa: E402
from testd import wire  # noqa: E402

NGINX = os.environ.get("XDBTX_NGINX", "/usr/sbin/nginx")
CPATH = os.environ.get("XDBTX_NGINX_CPATH", os.path.join(TOP, "build", "luajit"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def uri_port(uri):
    """The port of a mongodb://127.0.0.1:PORT/... URI."""
    return int(uri.split("://", 1)[1].split("/", 1)[0].split(",")[0].rsplit(":", 1)[1])


def with_options(uri, extra):
    return uri + ("&" if "?" in uri else "/?" if uri.count("/") == 2 else "?") + extra


class Mongo(object):
    """One connection to a test-server cluster; run(db, cmd) returns the reply."""

    def __init__(self, uri):
        self.sock = socket.create_connection(("127.0.0.1", uri_port(uri)), timeout=30)
        self.rid = 0

    def run(self, db, cmd):
        doc = SON(cmd)
        doc["$db"] = db
        body = struct.pack("<I", 0) + b"\0" + wire.encode(doc)
        self.rid += 1
        self.sock.sendall(struct.pack("<iiii", 16 + len(body), self.rid, 0, 2013) + body)
        hdr = self._exact(16)
        n = struct.unpack("<i", hdr[:4])[0]
        return wire.decode(self._exact(n - 16)[5:])

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise IOError("the test server closed the connection")
            buf += chunk
        return buf

    def find(self, db, coll, flt=None):
        r = self.run(db, SON([("find", coll), ("filter", flt or {}), ("batchSize", 100000)]))
        if not r.get("ok"):
            raise IOError("find %s.%s: %r" % (db, coll, r))
        return list(r["cursor"]["firstBatch"])

    def reset(self, db, colls, docs=None):
        """Empty colls, then insert docs ({coll: [doc, ...]})."""
        for c in colls:
            self.run(db, SON([("delete", c), ("deletes", [SON([("q", {}), ("limit", 0)])])]))
        for c, ds in (docs or {}).items():
            self.run(db, SON([("insert", c), ("documents", ds)]))

    def failpoint(self, mode, data):
        r = self.run("admin", SON([("configureFailPoint", "failCommand"), ("mode", mode),
                                   ("data", data)]))
        if not r.get("ok"):
            raise IOError("configureFailPoint: %r" % (r,))

    def failpoint_off(self):
        self.run("admin", SON([("configureFailPoint", "failCommand"), ("mode", "off")]))

    def close(self):
        self.sock.close()


def request(port, method, path, body=None, timeout=60):
    """(status, decoded JSON or the raw text, seconds taken); status 0 on a failure."""
    t0 = time.time()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        data = None if body is None else (body if isinstance(body, str) else json.dumps(body))
        c.request(method, path, body=data, headers={"Connection": "close",
                                                    "Content-Type": "application/json"})
        r = c.getresponse()
        text = r.read().decode("utf-8", "replace")
        c.close()
        try:
            out = json.loads(text)
        except ValueError:
            out = text
        return r.status, out, time.time() - t0
    except (OSError, http.client.HTTPException) as e:
        return 0, "%s: %s" % (type(e).__name__, e), time.time() - t0


class Nginx(object):
    """examples/openresty/nginx.conf in a temporary prefix, started as a daemon."""

    def __init__(self, uri, uri2, db, workers=1, threads=8, env=None, conf=None):
        self.prefix = tempfile.mkdtemp(prefix="xdbtx-nginx.")
        for d in ("conf", "logs", "tmp"):
            os.mkdir(os.path.join(self.prefix, d))
        self.port = free_port()
        if conf is None:
            with open(os.path.join(TOP, "examples", "openresty", "nginx.conf")) as f:
                conf = f.read()
        for k, v in (("@ROOT@", TOP), ("@CPATH@", CPATH), ("@PORT@", str(self.port)),
                     ("@WORKERS@", str(workers)), ("@THREADS@", str(threads))):
            conf = conf.replace(k, v)
        self.conf = os.path.join(self.prefix, "conf", "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.env = dict(os.environ)
        self.env.update({"XDBTX_URI": uri, "XDBTX_URI2": uri2, "XDBTX_DB": db})
        self.env.update(env or {})
        self.log = os.path.join(self.prefix, "logs", "error.log")

    def _nginx(self, *args):
        return subprocess.run([NGINX, "-p", self.prefix, "-c", self.conf, "-e", self.log] +
                              list(args), env=self.env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, universal_newlines=True, timeout=30)

    def start(self):
        r = self._nginx()
        if r.returncode != 0:
            raise RuntimeError("nginx did not start: " + r.stdout + self.error_log())
        for _ in range(100):
            status, _, _ = request(self.port, "GET", "/health", timeout=5)
            if status:
                return self
            time.sleep(0.05)
        raise RuntimeError("nginx is not answering on port %d: %s" % (self.port, self.error_log()))

    def master_pid(self):
        with open(os.path.join(self.prefix, "logs", "nginx.pid")) as f:
            return int(f.read().strip())

    def worker_pids(self):
        master = self.master_pid()
        out = []
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    with open("/proc/%s/stat" % p) as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    with open("/proc/%s/cmdline" % p) as f:
                        cmd = f.read()
                except OSError:
                    continue
                if int(fields[1]) == master and "worker process" in cmd \
                        and "shutting down" not in cmd:
                    out.append(int(p))
        return sorted(out)

    def hup(self):
        os.kill(self.master_pid(), signal.SIGHUP)

    def error_log(self):
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, keep=False):
        try:
            master = self.master_pid()
        except (OSError, ValueError):
            master = None
        self._nginx("-s", "quit")
        for _ in range(200):
            if master is None or not os.path.exists("/proc/%d" % master):
                break
            time.sleep(0.05)
        else:
            os.kill(master, signal.SIGKILL)
        if not keep:
            shutil.rmtree(self.prefix, ignore_errors=True)


def threads_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0
