#!/usr/bin/python3
"""bench/openresty.py - POST /checkout of examples/openresty through ngx.run_worker_thread
versus the direct (blocking) call, at 1, 8 and 32 concurrent clients.

  make bench-openresty     (spec/server/with-servers /usr/bin/python3 bench/openresty.py)

One nginx worker (the unit that blocks), thread_pool threads=16, against the two
test-server clusters of spec/server/with-servers (or XDBTX_TEST_URI / _URI2). Each
client is a thread with one keep-alive connection sending journalled checkouts with
unique ids, of its own item and card (no two clients' transactions conflict: the figures
are about calling, not about write conflicts on one hot document); every answer must be
200 committed. Rounds of the two paths are interleaved
(thread, direct, thread, direct, ...) so both see the same machine; each prints requests
per second and latency percentiles, then the ratio thread / direct per client count.
The test server is a single Python process: it bounds both paths alike, so the figures
compare the two ways of calling, not the database. BENCH_SECONDS (default 3) per round,
BENCH_ROUNDS (default 2) rounds per path and client count.
"""

import http.client
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))),
                                "spec", "openresty"))
import nginx_fixture as nf  # noqa: E402
from bson.son import SON  # noqa: E402

DB = "xdbtx_nginx_bench"
SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
CLIENTS = (1, 8, 32)
PATHS = (("thread", "/checkout"), ("direct", "/checkout/direct"))


def probe(port, stop_at, out):
    """GET /alive every 20 ms until stop_at: how long a request that needs neither Lua
    nor a cluster waits behind the checkouts (seconds, into out)."""
    while time.time() < stop_at:
        _, _, dt = nf.request(port, "GET", "/alive", timeout=30)
        out.append(dt)
        time.sleep(0.02)


def round_(port, path, clients, seconds, tag):
    """(latencies in seconds, failures, wall seconds, reruns, /alive latencies) of
    `clients` clients for `seconds`."""
    lat, bad, alive = [], [], []
    reruns = [0]
    lock = threading.Lock()
    stop_at = time.time() + seconds

    def client(k):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        n = 0
        mine = []
        while time.time() < stop_at:
            n += 1
            body = json.dumps({"id": "%s-%d-%d" % (tag, k, n), "sku": "mug%d" % k, "qty": 1,
                               "card": "bench%d" % k})
            t0 = time.time()
            try:
                conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                text = r.read()
                dt = time.time() - t0
                if r.status != 200 or b'"committed"' not in text:
                    with lock:
                        bad.append((r.status, text[:200]))
                elif b'"attempts":1,' not in text and b'"attempts":1}' not in text:
                    with lock:
                        reruns[0] += 1
                mine.append(dt)
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    bad.append((0, str(e)))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.close()
        with lock:
            lat.extend(mine)

    t0 = time.time()
    ts = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    ts.append(threading.Thread(target=probe, args=(port, stop_at, alive)))
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return lat, bad, time.time() - t0, reruns[0], alive


def pct(sorted_lat, p):
    if not sorted_lat:
        return float("nan")
    i = min(len(sorted_lat) - 1, int(round(p / 100.0 * (len(sorted_lat) - 1))))
    return sorted_lat[i] * 1000.0


def main():
    u1, u2 = os.environ.get("XDBTX_TEST_URI"), os.environ.get("XDBTX_TEST_URI2")
    if not u1 or not u2:
        print("bench/openresty.py: set XDBTX_TEST_URI and XDBTX_TEST_URI2 "
              "(run under spec/server/with-servers)")
        return 2
    shop, pay = nf.Mongo(u1), nf.Mongo(u2)
    shop.reset(DB, ("stock", "orders", "requests", "journal", "journal_markers"),
               {"stock": [SON([("_id", "mug%d" % k), ("price", 1), ("available", 10 ** 9)])
                          for k in range(max(CLIENTS))]})
    pay.reset(DB, ("cards", "payments", "journal_markers"),
              {"cards": [SON([("_id", "bench%d" % k), ("balance", 10 ** 12)])
                         for k in range(max(CLIENTS))]})
    ng = nf.Nginx(u1, u2, DB, workers=1, threads=16, env={"XDBTX_POOL_SIZE": "64"}).start()
    v = nf.subprocess.run([nf.NGINX, "-v"], stderr=nf.subprocess.PIPE,
                          universal_newlines=True).stderr.strip()
    print("# %s, 1 worker, thread_pool threads=16, max_pool_size 64; %d CPUs; %g s rounds, "
          "%d rounds per path and client count, interleaved" % (v, os.cpu_count(), SECONDS, ROUNDS))
    results = {}
    failures = 0
    try:
        round_(ng.port, "/checkout", 4, 1.0, "warm-t")
        round_(ng.port, "/checkout/direct", 4, 1.0, "warm-d")
        for c in CLIENTS:
            for r in range(ROUNDS):
                for name, path in PATHS:
                    lat, bad, wall, rr, alive = round_(ng.port, path, c, SECONDS,
                                                       "%s-%d-%d" % (name, c, r))
                    acc = results.setdefault((name, c), [[], 0.0, 0, []])
                    acc[0].extend(lat)
                    acc[1] += wall
                    acc[2] += rr
                    acc[3].extend(alive)
                    failures += len(bad)
                    if bad:
                        print("# %s, %d clients: %d failed, e.g. %r" % (name, c, len(bad), bad[0]))
        log = ng.error_log()
    finally:
        ng.stop()
    print("POST /checkout (rerun: checkouts whose tree ran more than once); GET /alive "
          "probed every 20 ms meanwhile")
    print("%-7s %7s %8s %7s %8s %8s %8s %8s %6s | %9s %9s" % (
        "path", "clients", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms",
        "rerun", "alive p50", "alive max"))
    for c in CLIENTS:
        for name, _ in PATHS:
            lat, wall, rr, alive = results[(name, c)]
            s, a = sorted(lat), sorted(alive)
            print("%-7s %7d %8d %7.1f %8.2f %8.2f %8.2f %8.1f %6d | %9.2f %9.1f" % (
                name, c, len(s), len(s) / wall, pct(s, 50), pct(s, 90), pct(s, 99),
                pct(s, 100), rr, pct(a, 50), pct(a, 100)))
    print()
    print("thread / direct: %-7s %14s %14s" % ("clients", "req/s ratio", "p50 ratio"))
    for c in CLIENTS:
        t, d = results[("thread", c)], results[("direct", c)]
        rt, rd = len(t[0]) / t[1], len(d[0]) / d[1]
        print("                 %-7d %14.2f %14.2f" % (c, rt / rd, pct(sorted(t[0]), 50) /
                                                       pct(sorted(d[0]), 50)))
    crashes = [l for l in log.splitlines() if "exited on signal" in l]
    print("\nfailed requests: %d; worker crashes in error.log: %d" % (failures, len(crashes)))
    return 1 if failures or crashes else 0


if __name__ == "__main__":
    sys.exit(main())
