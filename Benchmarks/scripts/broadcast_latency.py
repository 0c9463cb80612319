#!/usr/bin/env python3
"""Broadcast latency at size (issue 15, goal 2), servers side by side in one run.

Each server speaks the protocol of `shoal serve --handler topics` (Shoal with --handler topics,
uWebSockets' pub/sub with Benchmarks/scripts/uws_topics.cpp). Per configuration, a fresh server
pinned to --server-cpus, then, on --bench-cpus:

  - `shoal-bench topics --topics 1 --subscribers-per-topic N --publishers 1`: every publish
    reaches all N subscribers; each delivery is timed from the publisher's send (the stamp in the
    payload) to its arrival, so p99/max are the last deliveries of a broadcast;
  - an echo probe (this script with --probe, on the server's CPU unless --probe-cpus): --probe-clients
    connections that never subscribe, each with a request due every --probe-interval ms, timed from
    when it was due to the server's answer (servers answer an unknown command with an error message
    on the same connection, through the handler).
    Samples inside the bench's measured windows count; the probe also runs alone for a few
    seconds first (with the N clients not yet connected) as the reference.

Configurations are interleaved round by round; each bench invocation measures --runs windows,
the table shows medians of runs over all rounds with (min..max).

usage: broadcast_latency.py --server LABEL=COMMAND [--server ...] [--subscribers 10000]
         [--rate 1] [--size 1024] [--duration 5] [--runs 3] [--rounds 1] [--deflate-for LABEL ...]
COMMAND has {port}; e.g. "shoal-1=.build/release/shoal serve --host 127.0.0.1 --port {port}
--handler topics --workers 1 --compression off --log-level error".
"""
import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pinned_server import pinned_server  # noqa: E402


async def probe(url, clients, interval, seconds):
    """Request/answer round trips; prints one line per answer: monotonic_ns latency_us (flushed, so
    what was measured survives the SIGTERM that ends the probe)."""
    import websockets

    async def one(index):
        async with websockets.connect(url, max_size=None, compression=None) as ws:
            # Requests are due every `interval` ms and timed from when they were due: a stalled
            # server is charged for every request that came due meanwhile (no coordinated omission).
            due = time.monotonic_ns() + index * int(interval * 1e6) // clients
            deadline = time.monotonic() + seconds
            seq = 0
            while time.monotonic() < deadline:
                seq += 1
                wait = (due - time.monotonic_ns()) / 1e9
                if wait > 0:
                    await asyncio.sleep(wait)
                await ws.send('{"echo":%d}' % seq)
                await ws.recv()
                end = time.monotonic_ns()
                print(end, (end - due) / 1000, flush=True)
                due += int(interval * 1e6)

    await asyncio.gather(*(one(i) for i in range(clients)))


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def measure(args, label, command, deflate):
    with pinned_server(command, args.server_cpus) as (server, port):
        url = f"ws://127.0.0.1:{port}/"
        # The probe runs until the bench is done (it is stopped then): 10,000 handshakes with
        # permessage-deflate can take minutes on a loaded machine.
        probe_seconds = 3600
        probe_proc = subprocess.Popen(
            ["taskset", "-c", args.probe_cpus or args.server_cpus, sys.executable, os.path.abspath(__file__), "--probe", url,
             "--probe-clients", str(args.probe_clients), "--probe-interval", str(args.probe_interval),
             "--probe-seconds", str(probe_seconds)], stdout=subprocess.PIPE, text=True)
        time.sleep(args.reference)
        bench_start = time.monotonic_ns()
        bench = subprocess.run(
            ["taskset", "-c", args.bench_cpus, args.bench, "topics", "--url", url, "--topics", "1",
             "--subscribers-per-topic", str(args.subscribers), "--publishers", "1", "--rate", str(args.rate),
             "--size", str(args.size), "--payload", args.payload, "--duration", str(args.duration),
             "--warmup", str(args.warmup), "--runs", str(args.runs), "--server-pid", str(server.pid), "--json"]
            + (["--deflate"] if deflate else []), capture_output=True, text=True, timeout=900)
        probe_proc.terminate()
        out, _ = probe_proc.communicate(timeout=30)
    try:
        report = json.loads(bench.stdout)
    except json.JSONDecodeError:
        print(f"{label}: bench failed: {bench.stderr[-2000:]}", file=sys.stderr)
        return None
    samples = [(int(line.split()[0]), float(line.split()[1])) for line in out.splitlines() if len(line.split()) == 2]
    reference = [lat for t, lat in samples if t < bench_start]
    runs = []
    for run in report["runs"]:
        if "latency" not in run:
            continue
        start = bench_start + int(run["start_seconds"] * 1e9)
        end = start + int(run["seconds"] * 1e9)
        during = [lat for t, lat in samples if start <= t <= end]
        runs.append({"p50": run["latency"]["p50"], "p99": run["latency"]["p99"], "max": run["latency"]["max"],
                     "fanout": run["extra"]["fanout"], "server_cpu": run.get("server_cpu_share"),
                     "echo_p50": percentile(during, 50), "echo_p99": percentile(during, 99), "echo_n": len(during)})
    return {"label": label, "runs": runs, "reference_echo_p99": percentile(reference, 99),
            "reference_echo_n": len(reference), "errors": report.get("errors", {})}


def summary(values):
    values = [v for v in values if v == v]
    if not values:
        return "-"
    return f"{statistics.median(values) / 1000:.1f} ({min(values) / 1000:.1f}..{max(values) / 1000:.1f})"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--probe")
    parser.add_argument("--probe-clients", type=int, default=4)
    parser.add_argument("--probe-interval", type=float, default=20)
    parser.add_argument("--probe-seconds", type=float, default=60)
    parser.add_argument("--server", action="append", default=[], help="LABEL=COMMAND with {port}")
    parser.add_argument("--deflate-for", action="append", default=[], help="labels whose bench offers permessage-deflate")
    parser.add_argument("--bench", default=".build/release/shoal-bench")
    parser.add_argument("--subscribers", type=int, default=10000)
    parser.add_argument("--rate", type=float, default=1)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--payload", default="json")
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--reference", type=float, default=3, help="seconds of probe alone before the bench")
    parser.add_argument("--server-cpus", default="0")
    parser.add_argument("--bench-cpus", default="1")
    parser.add_argument("--probe-cpus", help="default: the server's, so that the bench's work on its own CPU (10,000 "
                        "deliveries per broadcast) does not delay the probe")
    args = parser.parse_args()
    if args.probe:
        asyncio.run(probe(args.probe, args.probe_clients, args.probe_interval, args.probe_seconds))
        return
    servers = [s.split("=", 1) for s in args.server]
    results = {label: [] for label, _ in servers}
    for round_index in range(args.rounds):
        for label, command in servers:
            result = measure(args, label, command, label in args.deflate_for)
            if result:
                results[label].append(result)
                print(f"round {round_index + 1} {label}: " + json.dumps(result), file=sys.stderr)
    print(f"{args.subscribers} subscribers, 1 publisher, {args.rate}/s, {args.size} B {args.payload}; "
          f"ms, median of runs (min..max)\n")
    print("| server | p50 delivery | p99 delivery | max delivery | fan-out | echo p99 alone | echo p99 during |")
    print("|---|---|---|---|---|---|---|")
    for label, _ in servers:
        runs = [run for result in results[label] for run in result["runs"]]
        fanouts = [run["fanout"] for run in runs]
        print(f"| {label} | {summary([r['p50'] for r in runs])} | {summary([r['p99'] for r in runs])} | "
              f"{summary([r['max'] for r in runs])} | {statistics.median(fanouts) if fanouts else '-'} | "
              f"{summary([r['reference_echo_p99'] for r in results[label]])} | "
              f"{summary([r['echo_p99'] for r in runs])} |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
