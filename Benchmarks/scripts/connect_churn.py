#!/usr/bin/env python3
"""Short-lived WebSocket clients, a few at a time: handshake latency and server CPU per handshake.

The other side of a connect storm: clients that keep arriving a few at a time (a page that opens
a socket per view, a probe that reconnects), where a batched wake-up could hold a request back.
Per server and round: a fresh server, then --clients threads that each, for --seconds, connect,
send an upgrade request, read the 101 and close, one after another. Prints per server the
handshake time (connect to 101, µs; median and p99 over every handshake of the round), the
handshakes per second, and the handshakes per server CPU-second (its whole process tree).
Rounds interleave the servers. {port} in a server command is filled in.

usage: connect_churn.py [--clients 4] [--seconds 5] [--rounds 3] --server NAME='CMD {port}' [...]
"""
from __future__ import annotations

import argparse
import base64
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import connect_storm  # noqa: E402

UPGRADE = ("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")


def churn(port: int, seconds: float, times: list[float], failures: list[str]) -> None:
    """Handshakes one after another until `seconds` have passed; appends each one's time, or
    the failure that ended this client (a round with any is not a measurement)."""
    try:
        handshakes(port, seconds, times)
    except (OSError, RuntimeError) as error:
        failures.append(repr(error))


def handshakes(port: int, seconds: float, times: list[float]) -> None:
    request = UPGRADE.format(key=base64.b64encode(os.urandom(16)).decode()).encode()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        start = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(request)
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = s.recv(4096)
                if not chunk:
                    raise RuntimeError("closed before the 101")
                answer += chunk
            if not answer.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(answer[:60])
            times.append(time.perf_counter() - start)


def round_of(command: str, args) -> dict:
    proc, port, _ = connect_storm.start_server(command, 1)
    try:
        times: list[float] = []
        failures: list[str] = []
        threads = [threading.Thread(target=churn, args=(port, args.seconds, times, failures)) for _ in range(args.clients)]
        cpu0 = connect_storm.tree_cpu_seconds(proc.pid)
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - started
        cpu = connect_storm.tree_cpu_seconds(proc.pid) - cpu0
        if failures:
            raise RuntimeError(f"{len(failures)} of {args.clients} clients failed, e.g. {failures[0]}")
        times.sort()
        return {"handshakes": len(times), "per_s": len(times) / wall, "per_cpu_s": len(times) / cpu,
                "p50_us": times[len(times) // 2] * 1e6, "p99_us": times[int(len(times) * 0.99)] * 1e6}
    finally:
        connect_storm.stop_server(proc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--server", action="append", required=True, help="NAME='CMD {port}'")
    args = ap.parse_args()
    servers = [tuple(s.split("=", 1)) for s in args.server]
    rows: dict[str, list[dict]] = {name: [] for name, _ in servers}
    for r in range(args.rounds):
        for name, command in servers:
            result = round_of(command, args)
            rows[name].append(result)
            print(f"# round {r + 1} {name}: " + ", ".join(f"{k} {v:,.1f}" for k, v in result.items()), flush=True)
    print(f"\n{args.clients} clients, each connecting again as soon as its 101 came, {args.seconds:g} s per round; "
          f"medians of {args.rounds} rounds (each round in brackets)\n")
    print("| server | handshakes per s | per server CPU-s | p50 µs | p99 µs |")
    print("|---|---|---|---|---|")
    for name, results in rows.items():
        def cell(key):
            return connect_storm.median_cell([x[key] for x in results])
        print(f"| {name} | {cell('per_s')} | {cell('per_cpu_s')} | {cell('p50_us')} | {cell('p99_us')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
