#!/usr/bin/env python3
"""Draw the scaling curves into PNGs and print their tables (markdown).

usage:
  plot.py SCALING.json [--compare DIR] [--img-dir docs/img] [--tables-only]

SCALING.json is what `cargo run --release --example scaling -- --out FILE` writes.
With --compare DIR (the OUT_DIR of benches/compare.sh), the check-vs-size plot also shows
arbiter's in-process p50 on the peer workloads (arbiter-SIZE-sSEED.json) and SpiceDB's
(spicedb-SIZE-sSEED.json) where it was run.

Plotting needs matplotlib (not part of CI):
  python3 -m venv /tmp/plotvenv && /tmp/plotvenv/bin/pip install matplotlib
  /tmp/plotvenv/bin/python scripts/plot.py docs/img/scaling.json --compare /tmp/arbiter-compare
"""

import argparse
import glob
import json
import os
import re
import sys


def series(points, case_filter):
    pts = [p for p in points if case_filter(p)]
    pts.sort(key=lambda p: p["x"])
    return [p["x"] for p in pts], [p["latency"]["p50_us"] for p in pts], [p["latency"]["p99_us"] for p in pts]


def fmt(v):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.2f}" if v < 100 else f"{v:,.0f}"
    return f"{v:,}"


def compare_points(directory):
    arb, sdb = [], []
    if not directory:
        return arb, sdb
    for path in sorted(glob.glob(os.path.join(directory, "arbiter-[0-9]*-s*.json"))):
        r = json.load(open(path))
        i = r.get("inproc") or {}
        if i.get("check"):
            arb.append((i["relationships"], i["check"]["p50_us"], i["check"]["p99_us"]))
    for path in sorted(glob.glob(os.path.join(directory, "spicedb-[0-9]*-s*.json"))):
        r = json.load(open(path))
        if r.get("ffi_check"):
            sdb.append((r["load"]["relationships"], r["ffi_check"]["p50_us"], r["ffi_check"]["p99_us"]))
    return sorted(arb), sorted(sdb)


def tables(data, arb, sdb):
    out = []
    out.append("#### Check latency vs relationship count (scenario generator, in-process, cache off)\n")
    out.append("| relationships | p50 µs | p90 µs | p99 µs | checks/s | allowed | load s | RSS MiB |")
    out.append("|---|---|---|---|---|---|---|---|")
    for p in data.get("size", []):
        l = p["latency"]
        out.append(f"| {fmt(p['x'])} | {fmt(l['p50_us'])} | {fmt(l['p90_us'])} | {fmt(l['p99_us'])} | "
                   f"{fmt(l.get('per_s'))} | {p['allowed_share']} | {fmt(p['load_s'])} | {fmt(p['rss_mib'])} |")
    if arb or sdb:
        out.append("\n#### Check latency on the peer workloads (in-process p50 / p99, µs)\n")
        out.append("| relationships | arbiter p50 | arbiter p99 | SpiceDB p50 | SpiceDB p99 |")
        out.append("|---|---|---|---|---|")
        s = {round(n, -3): (p50, p99) for n, p50, p99 in sdb}
        for n, p50, p99 in arb:
            sp = s.get(round(n, -3), (None, None))
            out.append(f"| {fmt(n)} | {fmt(p50)} | {fmt(p99)} | {fmt(sp[0])} | {fmt(sp[1])} |")
    for key, title, unit in (("depth", "Check latency vs group depth", "levels"),
                             ("fan_out", "Check latency vs fan-out", "members"),
                             ("width", "Check latency vs intersection/exclusion width", "operands"),
                             ("fan_in", "Check latency vs subject fan-in", "relationships held by the subject")):
        out.append(f"\n#### {title}\n")
        out.append(f"| {unit} | case | p50 µs | p90 µs | p99 µs | calls |")
        out.append("|---|---|---|---|---|---|")
        for p in data.get(key, []):
            l = p["latency"]
            out.append(f"| {fmt(p['x'])} | `{p['case']}` | {fmt(l['p50_us'])} | {fmt(l['p90_us'])} | "
                       f"{fmt(l['p99_us'])} | {l['n']} |")
    out.append("\n#### Lookup resources latency vs result size\n")
    out.append("| resources returned | p50 µs | p90 µs | p99 µs | µs per resource (p50) | calls |")
    out.append("|---|---|---|---|---|---|")
    for p in data.get("lookup", []):
        l = p["latency"]
        out.append(f"| {fmt(p['x'])} | {fmt(l['p50_us'])} | {fmt(l['p90_us'])} | {fmt(l['p99_us'])} | "
                   f"{l['p50_us'] / p['x']:.3f} | {l['n']} |")
    return "\n".join(out)


def plots(data, arb, sdb, img_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(img_dir, exist_ok=True)
    written = []

    def save(fig, name):
        path = os.path.join(img_dir, name)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    # relationship count
    fig, ax = plt.subplots(figsize=(7, 4.2))
    pts = sorted(data.get("size", []), key=lambda p: p["x"])
    xs = [p["x"] for p in pts]
    ax.plot(xs, [p["latency"]["p50_us"] for p in pts], "o-", label="arbiter p50 (scenario generator)")
    ax.plot(xs, [p["latency"]["p99_us"] for p in pts], "o--", label="arbiter p99 (scenario generator)")
    if arb:
        ax.plot([a[0] for a in arb], [a[1] for a in arb], "s-", label="arbiter p50 (peer workload)")
    if sdb:
        ax.plot([s[0] for s in sdb], [s[1] for s in sdb], "^-", color="tab:red", label="SpiceDB p50 (peer workload, memdb)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("relationships")
    ax.set_ylabel("check latency, µs (log)")
    ax.set_title("Check latency vs relationship count (in-process, cache off)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, "check_vs_relationships.png")

    # depth
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for allowed, label in ((True, "member at the bottom (allowed)"), (False, "non-member (denied)")):
        x, p50, p99 = series(data.get("depth", []), lambda p, a=allowed: p["allowed"] == a)
        ax.plot(x, p50, "o-", label=f"p50, {label}")
        ax.plot(x, p99, "o--", label=f"p99, {label}", alpha=0.6)
    ax.set_xlabel("nested group levels")
    ax.set_ylabel("check latency, µs")
    ax.set_title("Check latency vs group depth")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, "check_vs_depth.png")

    # fan-out
    fig, ax = plt.subplots(figsize=(7, 4.2))
    cases = (("direct members, member", lambda p: not p["case"].startswith("nested") and p["allowed"]),
             ("direct members, non-member", lambda p: not p["case"].startswith("nested") and not p["allowed"]),
             ("nested groups, member (last group)", lambda p: p["case"].startswith("nested") and p["allowed"]),
             ("nested groups, non-member", lambda p: p["case"].startswith("nested") and not p["allowed"]))
    for label, f in cases:
        x, p50, _ = series(data.get("fan_out", []), f)
        ax.plot(x, p50, "o-", label=f"p50, {label}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("members of the group (direct users, or nested groups)")
    ax.set_ylabel("check latency, µs (log)")
    ax.set_title("Check latency vs fan-out")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, "check_vs_fanout.png")

    # width
    fig, ax = plt.subplots(figsize=(7, 4.2))
    cases = (("intersection, allowed (all operands)", lambda p: "#all_" in p["case"] and p["allowed"]),
             ("intersection, denied at the last operand", lambda p: "#all_" in p["case"] and not p["allowed"]),
             ("exclusion, allowed (all excluded tested)", lambda p: "#but_" in p["case"] and p["allowed"]),
             ("exclusion, denied at the first", lambda p: "#but_" in p["case"] and not p["allowed"]))
    for label, f in cases:
        x, p50, _ = series(data.get("width", []), f)
        ax.plot(x, p50, "o-", label=f"p50, {label}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("operands")
    ax.set_ylabel("check latency, µs")
    ax.set_title("Check latency vs intersection / exclusion width")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, "check_vs_width.png")

    # fan-in
    if data.get("fan_in"):
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for allowed, label in ((True, "one of its documents (allowed)"), (False, "a document it cannot view (denied)")):
            x, p50, _ = series(data["fan_in"], lambda p, a=allowed: p["allowed"] == a)
            ax.plot(x, p50, "o-", label=f"p50, {label}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("direct relationships held by the subject")
        ax.set_ylabel("check latency, µs (log)")
        ax.set_title("Check latency vs subject fan-in")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        save(fig, "check_vs_fanin.png")

    # lookup
    fig, ax = plt.subplots(figsize=(7, 4.2))
    x, p50, p99 = series(data.get("lookup", []), lambda p: True)
    ax.plot(x, [v / 1000 for v in p50], "o-", label="p50")
    ax.plot(x, [v / 1000 for v in p99], "o--", label="p99")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("resources returned")
    ax.set_ylabel("lookup latency, ms (log)")
    ax.set_title("Lookup resources latency vs result size (in-process)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, "lookup_vs_results.png")
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scaling")
    ap.add_argument("--compare", help="benches/compare.sh OUT_DIR with arbiter-*/spicedb-* reports")
    ap.add_argument("--img-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "img"))
    ap.add_argument("--tables-only", action="store_true")
    a = ap.parse_args()
    data = json.load(open(a.scaling))
    arb, sdb = compare_points(a.compare)
    print(tables(data, arb, sdb))
    if not a.tables_only:
        for path in plots(data, arb, sdb, a.img_dir):
            print(f"wrote {os.path.normpath(path)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
