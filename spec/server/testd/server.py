"""TCP front end: one listening socket per cluster, one thread per client connection.

A connection thread reads a request (wire.py), hands the command to its Cluster's
dispatch(), and writes the reply (none for OP_MSG moreToCome; a failpoint's
closeConnection just closes the socket).  main() parses the command line, binds every
port first, prints one `ready <uri>` line per cluster, and serves until SIGTERM/SIGINT.
A background thread reaps expired transactions; the process also ends when its parent
dies (--watch-parent) or when stdout is a pipe whose reader has gone.
"""

import argparse
import faulthandler
import os
import select
import signal
import socket
import socketserver
import stat
import sys
import threading
import traceback

from . import wire
from .cluster import Cluster
from .errors import CloseConnection


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        cluster = self.server.cluster
        sock = self.request
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        conn = cluster.new_connection(self.client_address)
        try:
            while True:
                try:
                    req = wire.read_request(sock)
                except (wire.ProtocolError, ValueError, IndexError) as e:
                    log("connection %d: protocol error: %s" % (conn.id, e))
                    return
                if req is None:
                    return
                try:
                    if req.error is not None:
                        log("connection %d: undecodable request: %s" % (conn.id, req.error))
                        reply = {"ok": 0.0, "errmsg": "invalid BSON in request: %s" % req.error,
                                 "code": 22, "codeName": "InvalidBSON"}
                    else:
                        reply = cluster.dispatch(conn, req.db, req.cmd)
                except CloseConnection:
                    return
                except Exception:
                    log("internal error on %r:\n%s" % (next(iter(req.cmd), None),
                                                       traceback.format_exc()))
                    reply = {"ok": 0.0, "errmsg": "xdbtx-testd internal error: %s"
                             % traceback.format_exc().splitlines()[-1],
                             "code": 1, "codeName": "InternalError"}
                if req.more_to_come:
                    continue
                sock.sendall(wire.build_reply(req, reply))
        except (ConnectionError, OSError):
            return
        finally:
            cluster.close_connection(conn)


class ClusterServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, cluster, host, port):
        self.cluster = cluster
        socketserver.ThreadingTCPServer.__init__(self, (host, port), Handler)
        cluster.port = self.server_address[1]


def log(msg):
    sys.stderr.write("xdbtx-testd: %s\n" % msg)
    sys.stderr.flush()


def reaper(clusters, stop):
    while not stop.wait(0.2):
        for c in clusters:
            try:
                c.reap()
            except Exception:
                log("reaper: %s" % traceback.format_exc())


def watch_stdout(stop):
    """When stdout is a pipe, exit once its reader has gone (`xdbtx-testd | head -1`)."""
    poller = select.poll()
    poller.register(sys.stdout.fileno(), 0)     # a pipe's write end reports POLLERR then
    while not stop.is_set():
        for _fd, ev in poller.poll(500):
            if ev & (select.POLLERR | select.POLLHUP):
                log("stdout reader is gone, exiting")
                stop.set()


def watch_parent(ppid, stop):
    while not stop.wait(0.5):
        if os.getppid() != ppid:
            log("parent process %d is gone, exiting" % ppid)
            stop.set()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="xdbtx-testd",
                                 description="MongoDB-compatible test server with transactions")
    ap.add_argument("--port", type=int, action="append",
                    help="listen port of one cluster (0 = any free port); repeat for more")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--standalone", action="store_true",
                    help="serve standalone servers (no replica set, no transactions)")
    ap.add_argument("--watch-parent", action="store_true",
                    help="exit when the parent process goes away (used by with-servers)")
    args = ap.parse_args(argv)
    ports = args.port or [0]

    servers = []
    for i, port in enumerate(ports):
        cluster = Cluster(i, args.host, standalone=args.standalone)
        servers.append(ClusterServer(cluster, args.host, port))
    for srv in servers:
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2},
                         daemon=True).start()
    stop = threading.Event()
    threading.Thread(target=reaper, args=([s.cluster for s in servers], stop),
                     daemon=True).start()
    for srv in servers:
        sys.stdout.write("ready %s\n" % srv.cluster.uri())
    sys.stdout.flush()

    if args.watch_parent:
        threading.Thread(target=watch_parent, args=(os.getppid(), stop), daemon=True).start()
    if stat.S_ISFIFO(os.fstat(sys.stdout.fileno()).st_mode):
        threading.Thread(target=watch_stdout, args=(stop,), daemon=True).start()

    def on_signal(signum, _frame):
        stop.set()

    faulthandler.register(signal.SIGUSR1)   # `kill -USR1 <pid>` dumps every thread's stack
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.wait(1.0):
        pass
    for srv in servers:
        srv.shutdown()
        srv.server_close()
    return 0
