#!/usr/bin/env python3
"""A connect storm's server CPU per handshake, split into user space and kernel.

connect_storm.py gives a server's CPU-seconds per storm; on a shared machine its rounds spread by
about ±10 %, which hides a change to the few microseconds of user space in a handshake. This runs
the same storm (connect_storm's server start, warm-up and client processes) with `perf record`
attached to the server's processes for the storm window only, and splits the CPU per handshake
by where the samples fell: the kernel, or anything else (the program, the Swift runtime, libc).

usage: storm_cpu_split.py [--clients 10000] [--rounds 5] [--frequency 4000]
                          --server NAME='CMD {port} {workers}' [--server ...]
Needs perf and the right to attach it (root, or kernel.perf_event_paranoid <= 1). One worker.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import connect_storm  # noqa: E402


def process_tree(root: int) -> list[int]:
    """`root` and its descendants (the supervisor and its workers)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    tree = [root]
    for pid in sorted(parents):
        if parents[pid] in tree:
            tree.append(pid)
    return tree


def kernel_share(data: str) -> float:
    """Share of the samples in `data` taken in the kernel."""
    report = subprocess.run(["perf", "report", "-i", data, "--stdio", "--sort", "dso", "-g", "none", "-q"],
                            capture_output=True, text=True, check=True).stdout
    shares = [(float(line.split()[0].rstrip("%")), "[kernel" in line) for line in report.splitlines() if line.strip()]
    total = sum(share for share, _ in shares)
    return sum(share for share, in_kernel in shares if in_kernel) / total


def storm(command: str, args) -> dict:
    proc, port, _ = connect_storm.start_server(command, 1)
    children = []
    try:
        connect_storm.ready_clients(port, args, children)
        with tempfile.TemporaryDirectory() as folder:
            data = os.path.join(folder, "perf.data")
            perf = subprocess.Popen(["perf", "record", "-q", "-F", str(args.frequency), "-o", data,
                                     "-p", ",".join(map(str, process_tree(proc.pid)))], stderr=subprocess.DEVNULL)
            time.sleep(0.5)  # perf attached before the signal
            cpu0 = connect_storm.tree_cpu_seconds(proc.pid)
            reports = connect_storm.release_clients(children)
            cpu = connect_storm.tree_cpu_seconds(proc.pid) - cpu0
            perf.send_signal(signal.SIGINT)
            perf.wait()
            kernel = kernel_share(data)
        handshakes = sum(len(r["done_at"]) for r in reports)
        micros = cpu * 1e6 / handshakes
        return {"in": handshakes, "cpu_us": micros, "user_us": micros * (1 - kernel), "kernel_us": micros * kernel}
    finally:
        connect_storm.end_clients(children)
        connect_storm.stop_server(proc)


def main() -> int:
    ap = connect_storm.storm_arguments(__doc__, rounds=5)
    ap.add_argument("--frequency", type=int, default=4000, help="perf samples per second")
    args = ap.parse_args()
    servers = [tuple(s.split("=", 1)) for s in args.server]
    rows: dict[str, list[dict]] = {name: [] for name, _ in servers}
    for r in range(args.rounds):
        for name, command in servers:
            result = storm(command, args)
            rows[name].append(result)
            print(f"# round {r + 1} {name}: " + json.dumps(result), flush=True)
            time.sleep(1)
    print(f"\nCPU per handshake in µs, {args.clients:,} clients at once, medians of {args.rounds} (each round in brackets)\n")
    print("| server | in (min) | CPU | user space | kernel |")
    print("|---|---|---|---|---|")
    for name, results in rows.items():
        def cell(key):
            return connect_storm.median_cell([x[key] for x in results], "{:.2f}")
        print(f"| {name} | {min(x['in'] for x in results):,} | {cell('cpu_us')} | {cell('user_us')} | {cell('kernel_us')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
