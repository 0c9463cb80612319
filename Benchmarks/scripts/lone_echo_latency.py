#!/usr/bin/env python3
"""Echo latency of one lone client, and the wake-ups of an idle server, servers compared in one run.

For each cycle and each server (interleaved, so a noisy machine hits them all alike): a fresh
server (pinned_server.py, CPU 0 by default), then

  idle   : its context switches (voluntary + involuntary, every thread of its process tree,
           /proc) over --idle seconds with nothing connected: how often an idle worker wakes;
  lone   : one client (CPU 1) makes --rounds sequential round trips of a --size-byte text
           message, each sent as soon as the previous echo arrived;
  paused : the same, with --pause ms of silence before each message (a lone request after a
           quiet period).

The client is Python over a raw socket (hostile_latency.Client): a round trip includes some
20-40 µs of interpreter time, the same for every server; compare servers, not these figures
with shoal-bench's. Prints a markdown table (percentiles over all cycles) and one JSON line.

usage: lone_echo_latency.py --server NAME='CMD with {port}' [--server ...] [--cycles 3]
                            [--rounds 2000] [--size 16] [--pause 2] [--idle 5]
"""
import argparse
import json
import os
import time

from hostile_latency import Client, percentiles
from pinned_server import pinned_server


def context_switches(root_pid: int) -> int:
    """Context switches so far of every thread of every process in root_pid's session."""
    total = 0
    sid = os.getsid(root_pid)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getsid(int(pid)) != sid:
                continue
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                            total += int(line.split()[1])
        except (OSError, ProcessLookupError):
            continue
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", action="append", required=True, help="NAME=COMMAND with {port}")
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--pause", type=float, default=2.0, help="ms of silence before each paused message")
    ap.add_argument("--idle", type=float, default=5.0, help="seconds of idle wake-up counting")
    ap.add_argument("--server-cpus", default="0")
    ap.add_argument("--client-cpu", type=int, default=1)
    args = ap.parse_args()
    servers = [s.split("=", 1) for s in args.server]
    os.sched_setaffinity(0, {args.client_cpu})
    lone = {name: [] for name, _ in servers}
    paused = {name: [] for name, _ in servers}
    idle = {name: [] for name, _ in servers}
    for cycle in range(args.cycles):
        for name, command in servers:
            with pinned_server(command, args.server_cpus) as (server, port):
                time.sleep(0.5)  # past start-up
                before = context_switches(server.pid)
                time.sleep(args.idle)
                idle[name].append((context_switches(server.pid) - before) / args.idle)
                client = Client(port, args.size)
                lone[name] += client.round_trips(args.rounds, timeout=60)
                times = []
                for i in range(args.rounds):
                    time.sleep(args.pause / 1000)
                    times += client.round_trips(1, timeout=10)
                paused[name] += times
                client.sock.close()
            print(f"cycle {cycle + 1}, {name}: idle {idle[name][-1]:.1f} switches/s", flush=True)
    print()
    print("| server | idle context switches per s | lone p50 / p99 µs | paused p50 / p99 µs |")
    print("|---|---|---|---|")
    result = {}
    for name, _ in servers:
        a, b = percentiles(lone[name]), percentiles(paused[name])
        result[name] = {"idle_switches_per_s": idle[name], "lone": a, "paused": b}
        per_cycle = ", ".join(f"{x:.1f}" for x in idle[name])
        print(f"| {name} | {per_cycle} | {a['p50_us']} / {a['p99_us']} | {b['p50_us']} / {b['p99_us']} |")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
