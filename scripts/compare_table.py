#!/usr/bin/env python3
"""Print the side-by-side table of one comparison run (markdown).

usage:
  compare_table.py --arbiter ARBITER.json [--spicedb SPICEDB-RESULTS.json]
  compare_table.py --sizes ARBITER-10k.json ARBITER-100k.json ...

ARBITER.json is what `examples/replay --out` writes; SPICEDB-RESULTS.json is what the
peer harness's `bench.py --workload W --results R` writes. Ratios are SpiceDB / arbiter for
times and memory (how many times lower arbiter is) and arbiter / SpiceDB for rates.
`--sizes` prints arbiter's in-process check latency per workload size, each against the
first (the issue's "within 2x of the 10k figure" target).
"""

import argparse
import json
import sys


def get(d, *path):
    for key in path:
        if d is None:
            return None
        if isinstance(key, int):
            d = d[key] if isinstance(d, list) and len(d) > key else None
        else:
            d = d.get(key) if isinstance(d, dict) else None
    return d


def fmt(v, unit=""):
    if v is None:
        return "—"
    if isinstance(v, float) and v >= 100:
        v = round(v)
    if isinstance(v, (int, float)) and abs(v) >= 1000:
        return f"{v:,.0f}{unit}"
    if isinstance(v, float):
        return f"{v:.3g}{unit}"
    return f"{v}{unit}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    r = a / b
    return f"{r:,.0f}×" if r >= 100 else f"{r:.3g}×"


def concurrent(arb, n):
    for run in get(arb, "http", "check_concurrent") or []:
        if run.get("connections") == n:
            return run
    return None


def side_by_side(arb, sdb):
    rows = []
    sdb = sdb or {}
    c1 = concurrent(arb, 1)
    c64 = concurrent(arb, 64)
    rows.append(("relationships", get(sdb, "load", "relationships"), get(arb, "inproc", "relationships"),
                 get(arb, "http", "relationships"), None))
    rows.append(("load time, s", get(sdb, "load", "write_s"), get(arb, "inproc", "load_s"),
                 get(arb, "http", "load_s"), "time"))
    rows.append(("resident memory after load, MiB", get(sdb, "load", "rss_mb_after"),
                 get(arb, "inproc", "rss_mib_after_load"), get(arb, "http", "server_rss_mib_after_load"), "time"))
    for p in ("p50", "p90", "p99"):
        rows.append((f"check {p}, µs", get(sdb, "ffi_check", f"{p}_us"), get(arb, "inproc", "check", f"{p}_us"),
                     get(arb, "http", "check_sequential", f"{p}_us"), "time"))
    rows.append(("check mean, µs", get(sdb, "ffi_check", "mean_us"), get(arb, "inproc", "check", "mean_us"),
                 get(arb, "http", "check_sequential", "mean_us"), "time"))
    rows.append(("checks/s, one caller (one call at a time)", get(sdb, "ffi_check", "per_s"),
                 get(arb, "inproc", "check", "per_s"), get(arb, "http", "check_sequential", "per_s"), "rate"))
    rows.append(("checks/s, 1 connection for a fixed time", None, None, get(c1, "checks_per_s"), "rate"))
    rows.append(("checks/s, 64 connections", None, None, get(c64, "checks_per_s"), "rate"))
    rows.append(("check p50 / p99 at 64 connections, µs", None, None,
                 f"{fmt(get(c64, 'latency', 'p50_us'))} / {fmt(get(c64, 'latency', 'p99_us'))}" if c64 else None, None))
    rows.append(("lookup resources p50, µs", get(sdb, "grpc_lookup_resources", "p50_us"),
                 get(arb, "inproc", "lookup", "p50_us"), get(arb, "http", "lookup", "p50_us"), "time"))
    rows.append(("lookup resources max, µs", get(sdb, "grpc_lookup_resources", "max_us"),
                 get(arb, "inproc", "lookup", "max_us"), get(arb, "http", "lookup", "max_us"), "time"))

    out = ["| | SpiceDB (embedded, in-process FFI) | arbiter in-process | arbiter HTTP | SpiceDB ÷ arbiter in-process | SpiceDB ÷ arbiter HTTP |",
           "|---|---|---|---|---|---|"]
    for name, s, a, h, kind in rows:
        if kind == "time":
            r1, r2 = ratio(s, a), ratio(s, h)
        elif kind == "rate":
            r1, r2 = ratio(a, s), ratio(h, s)
            r1 = r1 if r1 == "—" else f"{r1} (arbiter ÷ SpiceDB)"
            r2 = r2 if r2 == "—" else f"{r2} (arbiter ÷ SpiceDB)"
        else:
            r1 = r2 = ""
        out.append(f"| {name} | {fmt(s)} | {fmt(a)} | {h if isinstance(h, str) else fmt(h)} | {r1} | {r2} |")

    if sdb:
        s50 = get(sdb, "ffi_check", "p50_us")
        h50 = get(arb, "http", "check_sequential", "p50_us")
        s_rate = get(sdb, "ffi_check", "per_s")
        t64 = get(c64, "checks_per_s")
        out.append("")
        if s50 and h50:
            r = s50 / h50
            out.append(f"- target: arbiter HTTP p50 ≥ 10× lower than SpiceDB's in-process p50: "
                       f"{r:.1f}× — {'met' if r >= 10 else 'MISSED'}")
        if s_rate and t64:
            r = t64 / s_rate
            out.append(f"- target: arbiter 64-connection checks/s ≥ 30× SpiceDB's single-caller rate: "
                       f"{r:.1f}× — {'met' if r >= 30 else 'MISSED'}")
        est = get(sdb, "engine_estimate", "p50_minus_empty_bulk_us")
        if est is not None:
            out.append(f"- SpiceDB evaluation-only estimate (p50 minus an empty bulk call): {fmt(est)} µs; "
                       f"its fixed in-process gRPC cost (empty bulk p50): {fmt(get(sdb, 'baselines', 'ffi_empty_bulk', 'p50_us'))} µs")
    agree = []
    for label, key in (("SpiceDB", None), ("in-process", "inproc_agreement"), ("HTTP", "http_agreement")):
        a = arb.get(key) if key else None
        if a:
            agree.append(f"{label}: checks {a['checks_agree']}/{a['checks_compared']}, "
                         f"lookups {a['lookups_agree']}/{a['lookups_compared']}")
    if agree:
        out.append("- answers agreeing with SpiceDB: " + "; ".join(agree))
    loads = [("SpiceDB", get(sdb, "ffi_check", "loadavg_1m_before")),
             ("arbiter in-process", get(arb, "inproc", "loadavg_before")),
             ("arbiter HTTP", get(arb, "http", "loadavg_before"))]
    out.append("- 1-minute load average at the start of each part: " +
               ", ".join(f"{n} {fmt(v)}" for n, v in loads if v is not None))
    return "\n".join(out)


def sizes_table(paths):
    reports = [json.load(open(p)) for p in paths]
    out = ["| relationships | load s | RSS MiB | check p50 µs | p90 µs | p99 µs | p50 ÷ first | lookup p50 µs | lookup max µs | load avg |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    base = get(reports[0], "inproc", "check", "p50_us")
    for r in reports:
        i = r.get("inproc") or {}
        p50 = get(i, "check", "p50_us")
        out.append(f"| {fmt(i.get('relationships'))} | {fmt(i.get('load_s'))} | {fmt(i.get('rss_mib_after_load'))} | "
                   f"{fmt(p50)} | {fmt(get(i, 'check', 'p90_us'))} | {fmt(get(i, 'check', 'p99_us'))} | "
                   f"{ratio(p50, base)} | {fmt(get(i, 'lookup', 'p50_us'))} | {fmt(get(i, 'lookup', 'max_us'))} | "
                   f"{fmt(i.get('loadavg_before'))} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arbiter")
    ap.add_argument("--spicedb")
    ap.add_argument("--sizes", nargs="+")
    a = ap.parse_args()
    if a.sizes:
        print(sizes_table(a.sizes))
        return 0
    if not a.arbiter:
        ap.error("--arbiter or --sizes is required")
    arb = json.load(open(a.arbiter))
    sdb = json.load(open(a.spicedb)) if a.spicedb else None
    print(side_by_side(arb, sdb))
    return 0


if __name__ == "__main__":
    sys.exit(main())
