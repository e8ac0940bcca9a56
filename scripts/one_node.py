#!/usr/bin/env python3
"""Restart time and resident memory of `arbiter serve --db` against the dataset size
(issue 14; docs/BENCHMARKS.md, "One node at 1M and 10M").

usage:
  one_node.py --bin target/release/arbiter --label after [--runs 3] DIR/10000 DIR/1000000 ...

Each argument is a directory made by `examples/scaling --dataset N --dataset-dir DIR/N`
into which `arbiter import --db DIR/N/db DIR/N/relationships.txt` loaded the dataset (the
schema written first, see BENCHMARKS.md). For each, the server is started `--runs` times:
the time from process start to the first `/readyz` 200 (polled every 20 ms) and the
resident set once ready are recorded, then the server is stopped with SIGINT (a graceful
stop, which saves the index image). Prints one JSON document: {label, points: [...]}.

  one_node.py --plot FILE.json [FILE.json ...] --out docs/img/one_node.png
draws restart time and resident memory against size for each labelled run (needs
matplotlib, not part of CI: python3 -m venv /tmp/plotvenv && /tmp/plotvenv/bin/pip install
matplotlib).
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request


def ready(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def measure(binary, directory, runs, port):
    size = sum(1 for _ in open(os.path.join(directory, "relationships.txt")))
    restarts, rss = [], []
    for _ in range(runs):
        started = time.monotonic()
        server = subprocess.Popen(
            [binary, "serve", "--db", os.path.join(directory, "db"), "--addr", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while not ready(port):
            if server.poll() is not None:
                sys.exit(f"the server at {directory} exited with {server.returncode}")
            time.sleep(0.02)
        restarts.append(time.monotonic() - started)
        time.sleep(0.5)
        rss.append(rss_mib(server.pid))
        server.send_signal(signal.SIGINT)
        server.wait(timeout=600)
    return {
        "relationships": size,
        "restart_s": restarts,
        "restart_median_s": statistics.median(restarts),
        "rss_mib": rss,
        "rss_median_mib": statistics.median(rss),
    }


def plot(files, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for path in files:
        with open(path) as f:
            run = json.load(f)
        xs = [p["relationships"] for p in run["points"]]
        left.plot(xs, [p["restart_median_s"] for p in run["points"]], marker="o", label=run["label"])
        right.plot(xs, [p["rss_median_mib"] for p in run["points"]], marker="o", label=run["label"])
    for axis, title, unit in ((left, "restart to /readyz", "seconds"), (right, "RSS once ready", "MiB")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("relationships")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dirs", nargs="*")
    parser.add_argument("--bin")
    parser.add_argument("--label", default="arbiter")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port", type=int, default=18990)
    parser.add_argument("--plot", nargs="*")
    parser.add_argument("--out", default="docs/img/one_node.png")
    args = parser.parse_args()
    if args.plot:
        plot(args.plot, args.out)
        return
    if not args.bin or not args.dirs:
        parser.error("--bin and at least one dataset directory are needed")
    points = [measure(args.bin, d, args.runs, args.port) for d in args.dirs]
    print(json.dumps({"label": args.label, "points": points}, indent=1))


if __name__ == "__main__":
    main()
