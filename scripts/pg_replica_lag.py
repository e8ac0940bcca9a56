#!/usr/bin/env python3
"""Write latency over HTTP and replica lag between two servers on one PostgreSQL database.

usage:
  pg_replica_lag.py WRITER_URL FOLLOWER_URL [N_WRITES]

Each write (one touch) goes to WRITER_URL; its latency is the HTTP round trip. The lag is
the time from the write's acknowledgement to the moment FOLLOWER_URL's watch stream
(`/v1/watch`, which emits a revision once that server's index has applied it) delivers
the same revision. Prints p50/p99 of both, in milliseconds. Only the standard library.
"""

import http.client
import json
import sys
import threading
import time
import urllib.parse


def connect(url):
    parsed = urllib.parse.urlparse(url)
    return http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)


def percentile(values, pct):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def main():
    writer_url, follower_url = sys.argv[1], sys.argv[2]
    n_writes = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    writer = connect(writer_url)
    # The store's head (a full read answers at it); the schema's revision is older and
    # would make the follower stream every revision since the schema first.
    writer.request("POST", "/v1/relationships/read",
                   json.dumps({"filter": {"resource_type": "document"}, "limit": 1}),
                   {"Content-Type": "application/json"})
    head = json.loads(writer.getresponse().read())["revision"]

    seen = {}
    ready = threading.Event()

    def watch():
        conn = connect(follower_url)
        conn.request("GET", f"/v1/watch?since={head}")
        response = conn.getresponse()
        ready.set()
        while True:
            line = response.readline()
            if not line:
                return
            try:
                event = json.loads(line)
            except ValueError:
                continue
            revision = event.get("revision")
            if revision is not None:
                seen.setdefault(int(revision), time.perf_counter())

    threading.Thread(target=watch, daemon=True).start()
    ready.wait()
    time.sleep(0.5)

    # New tuples every run: touching a live tuple changes nothing, and a revision that
    # changed nothing is not in the change log, so the watch would never show it.
    run = int(time.time() * 1000)
    latencies, acked = [], {}
    for idx in range(n_writes):
        body = json.dumps({"updates": [{"op": "touch",
                                        "relationship": f"document:lag{run}_{idx}#viewer@user:u{idx}"}]})
        started = time.perf_counter()
        writer.request("POST", "/v1/relationships/write", body,
                       {"Content-Type": "application/json"})
        answer = json.loads(writer.getresponse().read())
        done = time.perf_counter()
        latencies.append((done - started) * 1000)
        acked[int(answer["revision"])] = done
        time.sleep(0.005)
    time.sleep(2)
    lags = [(seen[rev] - at) * 1000 for rev, at in acked.items() if rev in seen]
    missing = len(acked) - len(lags)
    print(f"writes: {n_writes}, write p50 {percentile(latencies, 50):.2f} ms, "
          f"p99 {percentile(latencies, 99):.2f} ms")
    print(f"replica lag: p50 {percentile(lags, 50):.2f} ms, p99 {percentile(lags, 99):.2f} ms, "
          f"max {max(lags):.2f} ms, not seen {missing}")


if __name__ == "__main__":
    main()
