#!/usr/bin/env python3
"""Shoal against its peers, with shoal-bench, in one run.

For each scenario every server is started fresh, pinned to CPU 0 (the bench to CPU 1), and
measured with `shoal-bench ... --json --server-pid <its pid>`; scenarios are interleaved server
by server, so a noisy machine hits them all alike. Prints one markdown table per scenario with
each server's median and the ratio of the first server to each other one.

  echo  : messages per server CPU-second (shoal-bench refuses the figure when it was itself
          the bottleneck; the row then says client-bound)
  topics: topic deliveries per server CPU-second (`shoal-bench topics`: --topics N topics,
          --subscribers-per-topic M, --publishers P at --rate R messages/s each), against
          servers speaking the `shoal serve --handler topics` commands
  idle  : server RSS per idle connection (VmRSS of the process tree, fresh server per run).
          With --idle-warmup N (default 200) each fresh server first serves N connections that
          open and close, and only then is its baseline read: what a server pages in or sets up
          once, on its first connections (code pages of the handshake path, first arenas), is
          not memory per connection. --idle-warmup 0 gives the cold figure. --idle-hold S (default
          2) is how long the connections are held before the server's RSS is read: a worker hands
          a burst's memory back at its first quiet heap-trim sample, 1 to 2 s after the burst.

usage: race.py --bench PATH [--scenario echo|idle|topics ...] [--connections 100] [--size 16]
               [--in-flight 1] [--idle-connections 10000] [--idle-warmup 200] [--runs 3]
               [--topics 10] [--subscribers-per-topic 100] [--publishers 10] [--rate 100]
               --server NAME='CMD with {port}' [--server ...]
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

from pinned_server import pinned_server


def run_bench(args, server, port, bench_args):
    out = subprocess.run(["taskset", "-c", "1", args.bench] + bench_args +
                         ["--url", f"ws://127.0.0.1:{port}/", "--server-pid", str(server.pid), "--json"],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0 and not out.stdout.strip():
        raise RuntimeError(f"shoal-bench failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


def bench(args, server_cmd, bench_args, warmup_args=None):
    """Starts a fresh server, runs shoal-bench once with --json (after a discarded warm-up run when
    warmup_args is given), stops the server."""
    with pinned_server(server_cmd, "0") as (server, port):
        time.sleep(0.3)
        if warmup_args:
            run_bench(args, server, port, warmup_args)
            time.sleep(0.5)
        return run_bench(args, server, port, bench_args)


def echo_row(report):
    runs = report["runs"]
    per_cpu = [r["per_server_cpu_second"] for r in runs if "per_server_cpu_second" in r]
    rates = [r["per_second"] for r in runs if "per_second" in r]
    bound = sum(1 for r in runs if r.get("client_bound"))
    return per_cpu, rates, bound, report.get("latency") or {}


def idle_row(report):
    return [r["extra"]["server_rss_per_connection"] for r in report["runs"]
            if "server_rss_per_connection" in r.get("extra", {})]


def rate_race(args, servers, scenario, unit, what, bench_args, title):
    """Runs `bench_args` against every server, `args.runs` rounds interleaved, and prints the table of
    `unit` per server CPU-second and the ratios of the first server to the others."""
    results = {name: ([], [], 0, {}) for name, _ in servers}
    for run in range(args.runs):
        for name, cmd in servers:
            report = bench(args, cmd, bench_args + ["--duration", str(args.duration), "--runs", "1"])
            per_cpu, rates, bound, latency = echo_row(report)
            old = results[name]
            results[name] = (old[0] + per_cpu, old[1] + rates, old[2] + bound, latency)
            print(f"{scenario} run {run + 1} {name}: {per_cpu} {unit}/server-CPU-s, {rates} {unit}/s, "
                  f"client-bound {bound}", file=sys.stderr)
    print(f"\n{title}, {args.runs} runs of {args.duration:g} s (fresh server each), median (min..max):\n")
    print(f"| server | {unit} per server CPU-s | {unit}/s (wall) | p99 µs (last run) | client-bound runs |")
    print("|---|---|---|---|---|")
    medians = {}
    for name, _ in servers:
        per_cpu, rates, bound, latency = results[name]
        if per_cpu:
            medians[name] = statistics.median(per_cpu)
            cpu = f"{medians[name]:,.0f} ({min(per_cpu):,.0f}..{max(per_cpu):,.0f})"
        else:
            cpu = "n/a (client-bound)"
        wall = f"{statistics.median(rates):,.0f}" if rates else "n/a"
        print(f"| {name} | {cpu} | {wall} | {latency.get('p99', 0):,.0f} | {bound} |")
    first = servers[0][0]
    for name, _ in servers[1:]:
        if first in medians and name in medians:
            print(f"\n{first} / {name}: **{medians[first] / medians[name]:.2f}×** {what} per server CPU-second")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", required=True)
    p.add_argument("--scenario", action="append", choices=["echo", "idle", "topics"])
    p.add_argument("--connections", type=int, default=100)
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--in-flight", type=int, default=1)
    p.add_argument("--duration", type=float, default=5)
    p.add_argument("--idle-connections", type=int, default=10000)
    p.add_argument("--idle-hold", type=float, default=2,
                   help="seconds the idle connections are held open before the server's RSS is read")
    p.add_argument("--idle-warmup", type=int, default=200,
                   help="connections each fresh server serves (opened, then closed) before the idle baseline")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--topics", type=int, default=10)
    p.add_argument("--subscribers-per-topic", type=int, default=100)
    p.add_argument("--publishers", type=int, default=10)
    p.add_argument("--rate", type=float, default=100)
    p.add_argument("--server", action="append", required=True, help="NAME=COMMAND with {port}")
    args = p.parse_args()
    servers = [s.split("=", 1) for s in args.server]
    scenarios = args.scenario or ["echo", "idle"]

    if "echo" in scenarios:
        rate_race(args, servers, "echo", "msgs", "messages",
                  ["echo", "--connections", str(args.connections), "--size", str(args.size),
                   "--in-flight", str(args.in_flight)],
                  f"**echo**, {args.connections} connections, {args.size}-byte text, {args.in_flight} in flight")

    if "topics" in scenarios:
        rate_race(args, servers, "topics", "deliveries", "topic deliveries",
                  ["topics", "--topics", str(args.topics), "--subscribers-per-topic", str(args.subscribers_per_topic),
                   "--publishers", str(args.publishers), "--rate", str(args.rate), "--size", str(args.size),
                   "--warmup", "1"],
                  f"**topics**, {args.topics} topics × {args.subscribers_per_topic} subscribers, {args.publishers} "
                  f"publishers at {args.rate:g} msgs/s each, {args.size}-byte data")

    if "idle" in scenarios:
        results = {name: [] for name, _ in servers}
        for run in range(args.runs):
            for name, cmd in servers:
                warmup = (["idle", "--connections", str(args.idle_warmup), "--duration", "0.5", "--runs", "1"]
                          if args.idle_warmup > 0 else None)
                report = bench(args, cmd, ["idle", "--connections", str(args.idle_connections), "--duration", f"{args.idle_hold:g}",
                                           "--runs", "1"], warmup)
                values = idle_row(report)
                results[name] += values
                print(f"idle run {run + 1} {name}: {values} B/conn", file=sys.stderr)
        warmed = f"after {args.idle_warmup:,} warm-up connections" if args.idle_warmup > 0 else "cold, no warm-up"
        print(f"\n**idle**, {args.idle_connections:,} connections, server RSS per connection (process tree VmRSS, "
              f"fresh server each run, {warmed}, read after {args.idle_hold:g} s held), median (min..max) of {args.runs}:\n")
        print("| server | RSS per idle connection |")
        print("|---|---|")
        medians = {}
        for name, _ in servers:
            values = results[name]
            if values:
                medians[name] = statistics.median(values)
                print(f"| {name} | {medians[name]:,.0f} B ({min(values):,.0f}..{max(values):,.0f}) |")
        first = servers[0][0]
        for name, _ in servers[1:]:
            if first in medians and name in medians and medians[first] > 0:
                print(f"\n{name} / {first}: **{medians[name] / medians[first]:.2f}×** the memory per idle connection")


if __name__ == "__main__":
    main()
