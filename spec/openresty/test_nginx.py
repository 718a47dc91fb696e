#!/usr/bin/python3
"""spec/openresty/test_nginx.py - TAP: the checkout service of examples/openresty in a real
nginx (Debian's, with libnginx-mod-http-lua on luajit2) against two test-server clusters.

Run by `make test-openresty` inside spec/server/with-servers (XDBTX_TEST_URI and
XDBTX_TEST_URI2: the shop's and the payment provider's clusters). Each nginx runs under
a temporary prefix on a free loopback port. The checks read both clusters directly
(spec/openresty/nginx_fixture.py's wire client), never through nginx:
  pools        one pool per worker, made after the fork by the worker, shared by its
               main VM and its thread VMs; the master has no libmongoc thread, also
               after a reload (when init_by_lua runs in the master itself)
  checkout     a checkout commits on both clusters; the request body (nulls included)
               reads back unchanged; the same id again changes nothing (journal)
  failure      a declined card: 409 naming the node, both clusters rolled back
  concurrency  50 concurrent checkouts against limited stock: each commits or fails
               cleanly, stock never negative, quantities and money conserved
  stall        a request is served while a checkout waits on a slow server (failCommand
               blockConnection); the direct call, as a control, does stall the worker
  code cache   lua_code_cache off: a new VM per request reaches the same pool, and no
               worker dies after those VMs are closed, also where no other VM holds
               the module (it is linked -z nodelete: never unloaded)
  reload       HUP with checkouts in flight: each finishes, the new worker has its own
               pool, the old one exits with code 0
  error.log    no worker exited on a signal
"""

import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import nginx_fixture as nf  # noqa: E402
from bson.son import SON  # noqa: E402

DB = "xdbtx_nginx_test"
SHOP = ("stock", "orders", "requests", "journal", "journal_markers")
PAY = ("cards", "payments", "journal_markers")

_n = [0]
_failed = [0]


def ok(cond, name, detail=""):
    _n[0] += 1
    if cond:
        print("ok %d - %s" % (_n[0], name))
    else:
        _failed[0] += 1
        print("not ok %d - %s" % (_n[0], name))
        for line in str(detail).splitlines()[:40]:
            print("#   " + line)
    sys.stdout.flush()
    return cond


def uris():
    u1, u2 = os.environ.get("XDBTX_TEST_URI"), os.environ.get("XDBTX_TEST_URI2")
    if not u1 or not u2:
        raise SystemExit("not ok 1 - XDBTX_TEST_URI and XDBTX_TEST_URI2 are not set "
                         "(run under spec/server/with-servers)\n1..1")
    # heartbeats every 500 ms: a module unloaded under libmongoc's monitor threads would
    # crash the worker within the checks' waits, not 10 s later
    return (nf.with_options(u1, "heartbeatFrequencyMS=500"),
            nf.with_options(u2, "heartbeatFrequencyMS=500"))


class World(object):
    """Both clusters' data, read and written directly."""

    def __init__(self, u1, u2):
        self.shop, self.pay = nf.Mongo(u1), nf.Mongo(u2)

    def reset(self, stock, cards):
        self.shop.reset(DB, SHOP, {"stock": [SON([("_id", k), ("price", p), ("available", a)])
                                             for k, (p, a) in stock.items()]})
        self.pay.reset(DB, PAY, {"cards": [SON([("_id", k), ("balance", b)])
                                           for k, b in cards.items()]})

    def docs(self, side, coll):
        m = self.shop if side == "shop" else self.pay
        return {d["_id"]: d for d in m.find(DB, coll)}

    def failpoint(self, side, mode, data):
        (self.shop if side == "shop" else self.pay).failpoint(mode, data)

    def failpoints_off(self):
        self.shop.failpoint_off()
        self.pay.failpoint_off()


def post(ng, order, path="/checkout", timeout=60):
    return nf.request(ng.port, "POST", path, order, timeout=timeout)


def in_parallel(fns):
    """Run every fn at once in its own thread; their results in order."""
    out = [None] * len(fns)

    def run(i):
        out[i] = fns[i]()
    ts = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return out


def pools_of_workers(ng, label):
    """Check that each worker of ng made its own pools, used by its thread VMs too, and
    that the master has no libmongoc thread."""
    master = ng.master_pid()
    workers = []
    for _ in range(100):
        workers = ng.worker_pids()
        if len(workers) == 2:
            break
        time.sleep(0.02)
    seen = {}
    for _ in range(300):
        status, h, _ = nf.request(ng.port, "GET", "/health")
        if status == 200 and isinstance(h, dict) and h.get("worker_pid") in workers:
            seen[h["worker_pid"]] = h
        if len(seen) == len(workers):
            break
    ok(len(workers) == 2 and sorted(seen) == workers,
       "pools%s: /health answered from both workers (reuseport)" % label,
       "workers %r, answered %r" % (workers, sorted(seen)))
    for pid, h in sorted(seen.items()):
        mains, threads = h.get("main_pools", {}), h.get("thread_pools", {})
        good = all(isinstance(mains.get(k), dict) and mains[k]["pid"] == pid and
                   threads.get(k) == mains[k] for k in ("shop", "payments"))
        ok(good and pid != master,
           "pools%s: worker %d made its own pools (pid = the worker's, not the master's "
           "%d), and its thread VMs use the same ones" % (label, pid, master), json.dumps(h))
    # init_by_lua runs in the master itself on a reload (at start, in the process that
    # then daemonises): a pool used there would show as libmongoc threads
    ok(nf.threads_of(master) == 1 and all(nf.threads_of(w) > 1 for w in workers),
       "pools%s: the master has one thread (no libmongoc pool or monitor), workers more" % label,
       "master %d threads, workers %r" % (nf.threads_of(master),
                                          [nf.threads_of(w) for w in workers]))
    return workers


def check_pools(u1, u2):
    ng = nf.Nginx(u1, u2, DB, workers=2, threads=4).start()
    try:
        old = pools_of_workers(ng, "")
        ng.hup()
        for _ in range(200):
            if not set(ng.worker_pids()) & set(old) and len(ng.worker_pids()) == 2:
                break
            time.sleep(0.05)
        pools_of_workers(ng, " after a reload")
        return ng.error_log()
    finally:
        ng.stop()


def check_checkout(ng, world):
    world.reset({"mug": (12, 10)}, {"alice": 100, "bob": 20})
    body = {"id": "o1", "sku": "mug", "qty": 2, "card": "alice", "note": None,
            "gift": {"wrap": None, "to": "carol"}, "tags": ["a", None]}
    status, r, _ = post(ng, body)
    ok(status == 200 and r.get("status") == "committed" and r.get("amount") == 24,
       "checkout: POST /checkout commits (200, amount 24)", "%s %r" % (status, r))
    stock, orders = world.docs("shop", "stock"), world.docs("shop", "orders")
    cards, payments = world.docs("pay", "cards"), world.docs("pay", "payments")
    ok(stock["mug"]["available"] == 8 and "o1" in orders and payments.get("o1", {}).get("amount") == 24
       and cards["alice"]["balance"] == 76,
       "checkout: both clusters have it (stock 8, order o1, payment 24, alice 76)",
       "%r %r %r %r" % (stock, orders, cards, payments))
    status, r, _ = nf.request(ng.port, "GET", "/orders/o1")
    ok(status == 200 and r.get("request") == body and r["order"]["amount"] == 24
       and r["payment"]["amount"] == 24,
       "checkout: GET /orders/o1 gives the order, its payment and the body unchanged (nulls too)",
       "%s %r" % (status, r))
    status, r, _ = post(ng, body)
    ok(status == 200 and r.get("status") == "committed"
       and world.docs("shop", "stock")["mug"]["available"] == 8
       and world.docs("pay", "cards")["alice"]["balance"] == 76,
       "checkout: the same order id again returns the journalled outcome and changes nothing",
       "%s %r" % (status, r))
    status, r, _ = nf.request(ng.port, "GET", "/orders/nope")
    ok(status == 404, "checkout: GET /orders/nope is 404", "%s %r" % (status, r))
    status, r, _ = post(ng, '{"id": "o9", "sku": "mug", "qty": 0, "card": "alice"}')
    ok(status == 400 and "body.qty" in str(r.get("error")),
       "checkout: a bad body is 400 naming the field", "%s %r" % (status, r))


def check_failure(ng, world):
    before = (world.docs("shop", "stock"), world.docs("pay", "cards"))
    status, r, _ = post(ng, {"id": "o2", "sku": "mug", "qty": 3, "card": "bob"})
    ok(status == 409 and r.get("node") == "payment" and "declined" in r.get("error", "")
       and r.get("status") == "aborted",
       "failure: a declined card is 409, the error names the node (payment) and says aborted",
       "%s %r" % (status, r))
    after = (world.docs("shop", "stock"), world.docs("pay", "cards"))
    ok(after == before and "o2" not in world.docs("shop", "orders")
       and "o2" not in world.docs("shop", "requests") and "o2" not in world.docs("pay", "payments"),
       "failure: both clusters rolled back (stock, cards unchanged; no order, request, payment)",
       "%r\n%r" % (before, after))


def check_concurrency(ng, world):
    rnd = random.Random(9)
    cards = {"c%d" % i: 40 for i in range(10)}
    world.reset({"mug": (5, 30)}, cards)
    orders = [{"id": "p%02d" % i, "sku": "mug", "qty": rnd.randint(1, 3),
               "card": "c%d" % rnd.randrange(10)} for i in range(50)]
    t0 = time.time()
    res = in_parallel([lambda o=o: post(ng, o, timeout=90) for o in orders])
    took = time.time() - t0
    committed, refused, bad = [], [], []
    for o, (status, r, _) in zip(orders, res):
        if status == 200 and r.get("status") == "committed":
            committed.append(o)
        elif status == 409 and r.get("status") == "aborted" and r.get("node") in ("stock", "payment"):
            refused.append(o)
        else:
            bad.append((o["id"], status, r))
    ok(not bad, "concurrency: 50 concurrent checkouts each commit (%d) or are refused cleanly "
       "(%d, 409 naming the node) in %.1f s" % (len(committed), len(refused), took),
       "\n".join(repr(b) for b in bad[:10]))
    stock = world.docs("shop", "stock")["mug"]["available"]
    taken = sum(o["qty"] for o in committed)
    ok(stock >= 0 and stock == 30 - taken,
       "concurrency: stock never negative and conserved (30 - %d taken = %d)" % (taken, stock),
       "stock %d" % stock)
    ids = sorted(o["id"] for o in committed)
    pays = world.docs("pay", "payments")
    ok(sorted(world.docs("shop", "orders")) == ids and sorted(pays) == ids
       and sorted(world.docs("shop", "requests")) == ids,
       "concurrency: orders, requests and payments are exactly the committed checkouts")
    balances = world.docs("pay", "cards")
    spent = sum(40 - balances[c]["balance"] for c in cards)
    ok(spent == 5 * taken == sum(p["amount"] for p in pays.values())
       and all(b["balance"] >= 0 for b in balances.values()),
       "concurrency: money conserved (cards debited %d = payments = 5 x %d mugs), no card below 0"
       % (spent, taken), repr(balances))


def check_stall(ng, world):
    world.reset({"mug": (1, 100)}, {"alice": 100})
    for path, control in (("/checkout", False), ("/checkout/direct", True)):
        # the shop cluster holds the checkout's journal insert for 2 s
        world.failpoint("shop", {"times": 1}, SON([
            ("failCommands", ["insert"]), ("appName", "xdbtx-shop"),
            ("blockConnection", True), ("blockTimeMS", 2000)]))
        out = {}

        def slow():
            out["slow"] = post(ng, {"id": "s" + path, "sku": "mug", "qty": 1, "card": "alice"}, path)
            out["slow_end"] = time.time()

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.4)
        health = nf.request(ng.port, "GET", "/health", timeout=10)
        health_end = time.time()
        order = nf.request(ng.port, "GET", "/orders/o-none", timeout=10)
        t.join(30)
        world.failpoints_off()
        slow_status, slow_r, slow_t = out.get("slow", (0, None, 0))
        if not control:
            ok(slow_status == 200 and slow_t >= 1.8,
               "stall: the checkout through the thread pool waited on the slow server (%.2f s)"
               % slow_t, "%s %r" % (slow_status, slow_r))
            ok(health[0] == 200 and health[2] < 0.5 and order[0] == 404 and order[2] < 0.5
               and health_end < out.get("slow_end", 0),
               "stall: meanwhile /health (%.3f s) and /orders/:id (%.3f s) were served at once"
               % (health[2], order[2]), "%r %r" % (health, order))
        else:
            ok(slow_status == 200 and health[0] == 200 and health[2] >= 1.0,
               "stall (control): the direct call blocks the worker: /health waited %.2f s"
               % health[2], "%r %r" % (health, out.get("slow")))


def check_code_cache_off(ng, world):
    world.reset({"mug": (3, 100)}, {"alice": 1000})
    worker = ng.worker_pids()
    _, main, _ = nf.request(ng.port, "GET", "/health")
    results = [post(ng, {"id": "d%d" % i, "sku": "mug", "qty": 1, "card": "alice"}, "/dev/checkout")
               for i in range(5)]
    hs = [nf.request(ng.port, "GET", "/dev/health") for _ in range(5)]
    ok(all(s == 200 and r.get("status") == "committed" for s, r, _ in results),
       "code cache off: 5 checkouts, each in a new VM, commit", repr(results))
    ok(all(s == 200 and r.get("main_pools") == main.get("main_pools") for s, r, _ in hs),
       "code cache off: each new VM reaches the worker's same pools", "%r\n%r" % (main, hs))
    # the closed VMs' module stays loaded (-z nodelete): heartbeats (500 ms) keep running
    time.sleep(2)
    s, _, _ = nf.request(ng.port, "GET", "/health")
    ok(s == 200 and ng.worker_pids() == worker and "signal" not in ng.error_log(),
       "code cache off: 2 s of heartbeats later the same worker serves, none died",
       "workers %r then %r" % (worker, ng.worker_pids()))


# Only VMs that lua_code_cache off closes after each request load xdbtx here (no
# init_worker, no thread VM): without -z nodelete the module would be unloaded under
# libmongoc's running monitor threads after each request.
UNLOAD_CONF = """
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1;
error_log logs/error.log notice;
pid logs/nginx.pid;
env XDBTX_URI;
env XDBTX_URI2;
env XDBTX_DB;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path tmp;
    lua_package_path "@ROOT@/examples/?.lua;@ROOT@/lua/?.lua;;";
    lua_package_cpath "@CPATH@/?.so;;";
    lua_code_cache off;
    server {
        listen 127.0.0.1:@PORT@;
        location = /health {
            content_by_lua_block {
                local status, json = require("openresty.work").health()
                ngx.status = status
                ngx.say(json)
            }
        }
    }
}
"""


def check_unload(u1, u2):
    ng = nf.Nginx(u1, u2, DB, conf=UNLOAD_CONF).start()
    try:
        worker = ng.worker_pids()
        rs = [nf.request(ng.port, "GET", "/health") for _ in range(5)]
        time.sleep(2)
        rs += [nf.request(ng.port, "GET", "/health") for _ in range(2)]
        time.sleep(2)
        log = ng.error_log()
        ok(all(r[0] == 200 for r in rs) and ng.worker_pids() == worker and "signal" not in log,
           "code cache off, no other VM holding xdbtx: each closed VM leaves the module loaded "
           "(-z nodelete), the worker lives on", "%r\n%s" % (rs, log))
        return log
    finally:
        ng.stop()


def check_reload(ng, world):
    world.reset({"mug": (2, 100)}, {"alice": 1000})
    old = ng.worker_pids()
    # every payments commit of this round is held 1.5 s: the checkouts are in flight
    world.failpoint("pay", {"times": 8}, SON([
        ("failCommands", ["commitTransaction"]), ("appName", "xdbtx-payments"),
        ("blockConnection", True), ("blockTimeMS", 1500)]))
    orders = [{"id": "h%d" % i, "sku": "mug", "qty": 1, "card": "alice"} for i in range(8)]
    out = {}

    def hup():
        time.sleep(0.6)
        out["paid"] = len(world.docs("pay", "payments"))  # payments not committed yet
        ng.hup()

    res = in_parallel([lambda o=o: post(ng, o, timeout=60) for o in orders] + [hup])[:-1]
    world.failpoints_off()
    ok(out.get("paid") == 0 and all(s == 200 and r.get("status") == "committed" for s, r, _ in res),
       "reload: 8 checkouts in flight across a HUP (none had committed its payment) all commit",
       "paid at the HUP: %r\n%r" % (out.get("paid"), res))
    new = []
    for _ in range(100):
        new = ng.worker_pids()
        if new and not set(new) & set(old):
            break
        time.sleep(0.05)
    s, h, _ = nf.request(ng.port, "GET", "/health")
    ok(s == 200 and new and not set(new) & set(old) and h.get("worker_pid") in new
       and h["main_pools"]["shop"]["pid"] == h["worker_pid"] == h["thread_pools"]["shop"]["pid"],
       "reload: a new worker serves, with pools of its own", "old %r new %r %r" % (old, new, h))
    time.sleep(0.5)
    log = ng.error_log()
    ok(all("worker process %d exited with code 0" % p in log for p in old),
       "reload: the old worker finished its requests and exited with code 0",
       "\n".join(l for l in log.splitlines() if "exited" in l))
    ok(world.docs("shop", "stock")["mug"]["available"] == 92
       and world.docs("pay", "cards")["alice"]["balance"] == 1000 - 16
       and len(world.docs("pay", "payments")) == 8,
       "reload: both clusters have exactly the 8 orders")


def check_log(name, log):
    bad = [l for l in log.splitlines() if "exited on signal" in l or "core dumped" in l
           or "segfault" in l or "lua entry thread aborted" in l]
    ok(not bad, "error.log (%s): no worker exited on a signal, no Lua handler aborted" % name,
       "\n".join(bad))


def main():
    if not os.path.exists(nf.NGINX) or \
            not os.path.exists("/usr/lib/nginx/modules/ngx_http_lua_module.so"):
        print("not ok 1 - nginx or its Lua module is missing (sh scripts/deps.sh openresty luajit)")
        print("1..1")
        return 1
    if not os.path.exists(os.path.join(nf.CPATH, "xdbtx", "core.so")):
        print("not ok 1 - %s/xdbtx/core.so is not built (make luajit)" % nf.CPATH)
        print("1..1")
        return 1
    u1, u2 = uris()
    world = World(u1, u2)
    check_log("two workers", check_pools(u1, u2))
    check_log("code cache off", check_unload(u1, u2))
    ng = nf.Nginx(u1, u2, DB, workers=1, threads=8).start()
    keep = False
    try:
        for check in (check_checkout, check_failure, check_concurrency, check_stall,
                      check_code_cache_off, check_reload):
            try:
                check(ng, world)
            except Exception as e:  # a check that raised is one failure, the rest still run
                world.failpoints_off()
                ok(False, "%s raised %s: %s" % (check.__name__, type(e).__name__, e))
        check_log("one worker, reloaded", ng.error_log())
    finally:
        keep = _failed[0] > 0
        ng.stop(keep=keep)
        if keep:
            print("# nginx prefix kept: " + ng.prefix)
    print("1..%d" % _n[0])
    return 1 if _failed[0] else 0


if __name__ == "__main__":
    sys.exit(main())
