#!/usr/bin/env python3
"""Memory per idle connection on a fresh multi-worker server, with more clients than one process may
open: `race.py --scenario idle` drives one shoal-bench process (at most the open-files limit, 20,000
here); this one runs several at once.

For each run and each server (interleaved, a fresh server each time): starts the server, reads the
VmRSS of its process tree (supervisor and workers) one second after its port answers, starts
--processes `shoal-bench idle` processes with --connections / --processes connections each (every
one over --source-addresses 127.0.0.x addresses), waits until the server holds them all (counted
with `ss`, so the server itself is never asked), holds them --hold seconds, reads the VmRSS again,
and prints (after − before) ÷ connections. Kernel socket buffers are not in VmRSS.

usage: idle_many.py --bench PATH --connections 50000 --processes 4 [--hold 4] [--runs 3]
                    [--source-addresses 8] --server NAME='CMD with {port}' [--server ...]
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

from pinned_server import pinned_server


def tree(pid):
    """pid and all its descendants."""
    out = [pid]
    for child in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split():
        out += tree(int(child))
    return out


def rss_bytes(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) * 1024
        except (FileNotFoundError, StopIteration):
            pass
    return total


def established(port):
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True).stdout
    return out.count("\n")


def measure(args, command):
    with pinned_server(command, "0-1") as (server, port):
        time.sleep(1)
        before = rss_bytes(server.pid)
        per = args.connections // args.processes
        benches = [subprocess.Popen([args.bench, "idle", "--url", f"ws://127.0.0.1:{port}/", "--connections", str(per),
                                     "--source-addresses", str(args.source_addresses), "--duration", "600", "--runs", "1"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
                   for _ in range(args.processes)]
        try:
            deadline = time.time() + 120
            while established(port) < per * args.processes:
                if time.time() > deadline or any(b.poll() is not None for b in benches):
                    raise RuntimeError(f"only {established(port)} of {per * args.processes} connections opened")
                time.sleep(0.5)
            time.sleep(args.hold)
            after = rss_bytes(server.pid)
            held = established(port)
        finally:
            for b in benches:
                os.killpg(b.pid, signal.SIGTERM)
            for b in benches:
                b.wait(30)
        return (after - before) / held, before, after, held


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", required=True)
    for flag, kind, default in (("--connections", int, 50000), ("--processes", int, 4), ("--source-addresses", int, 8),
                                ("--hold", float, 4), ("--runs", int, 3)):
        p.add_argument(flag, type=kind, default=default)
    p.add_argument("--server", action="append", required=True, help="NAME='CMD with {port}'")
    args = p.parse_args()
    servers = [s.split("=", 1) for s in args.server]
    results = {name: [] for name, _ in servers}
    for run in range(args.runs):
        for name, command in servers:
            per_conn, before, after, held = measure(args, command)
            results[name].append(per_conn)
            print(f"run {run + 1} {name}: {held} held, RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MiB, "
                  f"{per_conn:.0f} B/conn", file=sys.stderr)
    print(f"\n{args.connections:,} idle connections from {args.processes} shoal-bench processes, server tree VmRSS "
          f"per connection (fresh server each run, read after {args.hold:g} s held), median (min..max) of {args.runs}:\n")
    print("| server | RSS per idle connection |")
    print("|---|---|")
    for name, values in results.items():
        print(f"| {name} | {statistics.median(values):.0f} B ({min(values):.0f}..{max(values):.0f}) |")


if __name__ == "__main__":
    main()
