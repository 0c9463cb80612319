#!/usr/bin/env python3
"""The cost of the Redis hop per broadcast (docs/benchmarks.md, "Across hosts through Redis").

Part 1, the sending instance (shoal-bench, ROUNDS interleaved rounds): `shoal-bench broadcast`
against instance A of `shoal serve --handler broadcast --workers W`, once with A alone and once
with A and B linked through a loopback redis-server (`--redis`; B has no clients but each of its
workers receives every message). Reports deliveries/s, latency, and the CPU seconds per published
message of A, of B and of redis-server (/proc, user + sys of each process tree).

Part 2, the hop itself (Python clients, a low rate so the client is not the limit): one publisher on
A sends COUNT stamped messages at RATE per second; SUBS subscribers on A (local: the bus) and SUBS
on B (through Redis) timestamp what they receive; latency percentiles per side.

    python3 Benchmarks/scripts/redis_hop.py --shoal .build/release/shoal --bench .build/release/shoal-bench

Bounded: fixed durations and counts, a 60 s deadline per phase; every process it starts is stopped."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import os
import shutil
import signal
import socket
import subprocess
import time

import websockets


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of pid and its children still alive (the workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    pids.append(int(entry))
            except OSError:
                pass
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


def start_shoal(binary: str, workers: int, redis_port: int | None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd = [binary, "serve", "--host", "127.0.0.1", "--port", str(port), "--handler", "broadcast",
           "--workers", str(workers), "--log-level", "error"]
    if redis_port:
        cmd += ["--redis", f"redis://127.0.0.1:{redis_port}", "--cluster-name", "hop"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
    wait_port(port)
    return proc, port


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else float("nan")


async def measure(ports: list[int], subs: int, count: int, rate: float) -> tuple[dict[int, list[float]], int]:
    """Latencies (ms) per port of the subscribers, from one publisher on ports[0]; and deliveries missing."""
    latencies: dict[int, list[float]] = {p: [] for p in ports}
    clients = [(p, await websockets.connect(f"ws://127.0.0.1:{p}/", max_queue=None)) for p in ports for _ in range(subs)]
    publisher = await websockets.connect(f"ws://127.0.0.1:{ports[0]}/")
    await asyncio.sleep(1.0)  # let Redis links come up and subscriptions settle
    received = 0

    async def reader(port: int, ws) -> None:
        nonlocal received
        try:
            while True:
                message = await asyncio.wait_for(ws.recv(), 5.0)
                if message.startswith("t"):
                    latencies[port].append((time.perf_counter_ns() - int(message[1:])) / 1e6)
                    received += 1
        except (asyncio.TimeoutError, websockets.ConnectionClosed):
            pass

    readers = [asyncio.create_task(reader(p, ws)) for p, ws in clients]
    interval = 1.0 / rate
    start = time.perf_counter()
    for i in range(count):
        await publisher.send(f"t{time.perf_counter_ns()}")
        delay = start + (i + 1) * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    await asyncio.wait_for(asyncio.gather(*readers), 60)
    for _, ws in clients:
        await ws.close()
    await publisher.close()
    return latencies, count * len(clients) - received


def report(name: str, latencies: dict[int, list[float]], missing: int, cpu: float, count: int) -> None:
    for port, values in latencies.items():
        print(f"{name:28} port {port}: {len(values):7} deliveries  p50 {percentile(values, 50):6.2f} ms  "
              f"p99 {percentile(values, 99):6.2f} ms  max {max(values, default=float('nan')):7.2f} ms")
    print(f"{name:28} missing deliveries: {missing}; server CPU {cpu:.2f} s = {cpu / count * 1e6:.0f} µs per message")


def start_redis() -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port), "--bind",
                             "127.0.0.1", "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL,
                            start_new_session=True)
    wait_port(port)
    return proc, port


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def bench_round(args, with_redis: bool) -> dict:
    """One shoal-bench broadcast run against instance A; CPU of every server process over it."""
    procs: list[subprocess.Popen] = []
    try:
        redis_port = None
        if with_redis:
            redis, redis_port = start_redis()
            procs.append(redis)
        a, port = start_shoal(args.shoal, args.workers, redis_port)
        procs.append(a)
        if with_redis:
            b, _ = start_shoal(args.shoal, args.workers, redis_port)
            procs.append(b)
        time.sleep(1.0)
        before = [cpu_seconds(p.pid) for p in procs]
        out = subprocess.run([args.bench, "broadcast", "--url", f"ws://127.0.0.1:{port}/", "--subscribers",
                              str(args.bench_subscribers), "--publishers", "2", "--rate", str(args.bench_rate),
                              "--duration", "3", "--runs", "1", "--warmup", "1", "--server-pid", str(a.pid), "--json"],
                             capture_output=True, text=True, timeout=120)
        cpu = [cpu_seconds(p.pid) - b0 for p, b0 in zip(procs, before)]
        report = json.loads(out.stdout)
        sent = report["summary"]["sent"]["median"]
        # The bench's own window (warm-up included in CPU): per published message over the whole run.
        sent_total = sent * 4 / 3
        names = (["redis"] if with_redis else []) + ["A"] + (["B"] if with_redis else [])
        return {"per_second": report["summary"]["per_second"]["median"], "p50": report["latency"]["p50"],
                "p99": report["latency"]["p99"],
                "cpu_us_per_message": {n: c / sent_total * 1e6 for n, c in zip(names, cpu)}}
    finally:
        stop(procs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shoal", default=".build/release/shoal")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--subs", type=int, default=50, help="subscribers per instance")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--bench", default=".build/release/shoal-bench")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bench-subscribers", type=int, default=200)
    parser.add_argument("--bench-rate", type=float, default=500.0, help="messages/s per publisher (2 publishers)")
    args = parser.parse_args()
    results: dict[str, list[dict]] = {"alone": [], "redis": []}
    for _ in range(args.rounds):
        results["alone"].append(bench_round(args, False))
        results["redis"].append(bench_round(args, True))
    for name, rounds in results.items():
        median = lambda key: statistics.median(r[key] for r in rounds)
        cpu = {n: statistics.median(r["cpu_us_per_message"][n] for r in rounds) for n in rounds[0]["cpu_us_per_message"]}
        print(f"shoal-bench, {'A alone' if name == 'alone' else 'A and B on Redis'}: {median('per_second'):,.0f} deliveries/s "
              f"(runs {', '.join(format(r['per_second'], ',.0f') for r in rounds)}), latency p50 {median('p50') / 1000:.2f} ms "
              f"p99 {median('p99') / 1000:.2f} ms; CPU per published message: "
              + ", ".join(f"{n} {v:.0f} µs" for n, v in cpu.items()))
    started: list[subprocess.Popen] = []
    try:
        # Baseline: one instance, no Redis; the same subscribers (2 × subs) on it.
        alone, port = start_shoal(args.shoal, args.workers, None)
        started.append(alone)
        before = cpu_seconds(alone.pid)
        lat, missing = asyncio.run(measure([port, port], args.subs, args.count, args.rate))
        merged = {port: lat[port]}
        report("one instance, no Redis", merged, missing, cpu_seconds(alone.pid) - before, args.count)
        alone.send_signal(signal.SIGTERM)
        alone.wait(20)

        redis, redis_port = start_redis()
        started.append(redis)
        a, port_a = start_shoal(args.shoal, args.workers, redis_port)
        b, port_b = start_shoal(args.shoal, args.workers, redis_port)
        started += [a, b]
        cpu_before = cpu_seconds(a.pid) + cpu_seconds(b.pid)
        redis_before = cpu_seconds(redis.pid)
        lat, missing = asyncio.run(measure([port_a, port_b], args.subs, args.count, args.rate))
        cpu = cpu_seconds(a.pid) + cpu_seconds(b.pid) - cpu_before
        report("two instances on Redis", lat, missing, cpu, args.count)
        print(f"{'':28} redis-server CPU {cpu_seconds(redis.pid) - redis_before:.2f} s")
    finally:
        stop(started)


if __name__ == "__main__":
    main()
