#!/usr/bin/env python3
"""Connect storms: N WebSocket clients connect to a server at the same instant, servers compared in one run.

For each round, each server and each worker count: a fresh server, a warm-up of --warmup handshakes
(code pages and first arenas are not the storm's), then --processes client processes that have
created and bound all their sockets beforehand start every connect() at once on a common signal,
write each upgrade request as its connection completes and wait for the answers. Per storm:

  in       clients that got their 101 (every other answer is counted by status, every failure
           by its error);
  wall     seconds from the signal until the last 101: N / wall = handshakes per wall second;
  cpu      the server's CPU seconds (every thread of its whole process tree, /proc schedstat) over the
           storm: N / cpu = handshakes per server CPU-second, the figure that compares servers on
           a shared machine whatever the clients cost;
  p50/p99  handshake time of one client, from the signal to its 101;
  clients  the client processes' CPU seconds (they share the two cores with the server).

Rounds interleave the servers and worker counts (a noisy machine hits them all alike); the tables
give the median of the rounds with every round in brackets. {port} and {workers} in a server
command are filled in.

usage: connect_storm.py [--clients 10000] [--workers 1 2] [--rounds 3] [--processes 4]
                        --server NAME='CMD {port} {workers}' [--server ...]
e.g.   connect_storm.py --server "shoal=.build/release/shoal serve --host 127.0.0.1 --port {port}
                        --handler echo --workers {workers} --log-level warning" \\
                        --server "uWebSockets=/path/to/uws_echo_mt {port} {workers}"
"""
from __future__ import annotations

import argparse
import base64
import collections
import json
import os
import resource
import selectors
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time

UPGRADE = ("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


# ---------------------------------------------------------------- one client process

def storm_client(port: int, sources: list[str], count: int, limit: float) -> None:
    """Binds `count` sockets, says `ready`, and on the parent's `go` connects them all at once.
    Answers one JSON line (times are time.time()), then holds the connections until stdin closes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    socks = []
    for i in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # the port is picked at connect(): a plain bind() searches a port free for every destination
        s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind((sources[i % len(sources)], 0))
        s.setblocking(False)
        socks.append(s)
    requests = [UPGRADE.format(key=base64.b64encode(os.urandom(16)).decode()).encode() for _ in socks]
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    go = time.time()
    sel = selectors.EpollSelector()
    errors: collections.Counter = collections.Counter()
    statuses: collections.Counter = collections.Counter()
    done_at = []
    pending = 0
    for i, s in enumerate(socks):
        err = s.connect_ex(("127.0.0.1", port))
        if err not in (0, 115):  # 115: EINPROGRESS
            errors[os.strerror(err)] += 1
            continue
        sel.register(s, selectors.EVENT_WRITE, [i, b""])
        pending += 1
    while pending and time.time() - go < limit:
        for key, _ in sel.select(0.5):
            s, state = key.fileobj, key.data
            if state[1] == b"" and key.events == selectors.EVENT_WRITE:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    errors[os.strerror(err)] += 1
                    sel.unregister(s)
                    pending -= 1
                    continue
                s.send(requests[state[0]])
                sel.modify(s, selectors.EVENT_READ, state)
                continue
            try:
                data = s.recv(4096)
            except OSError as e:
                errors[e.strerror or str(e)] += 1
                sel.unregister(s)
                pending -= 1
                continue
            if not data:
                errors["closed before an answer"] += 1
                sel.unregister(s)
                pending -= 1
                continue
            state[1] += data
            if b"\r\n" not in state[1]:
                continue
            status = state[1].split(b"\r\n", 1)[0].split(b" ")[1].decode()
            if status == "101":
                done_at.append(time.time())
            statuses[status] += 1
            sel.unregister(s)
            pending -= 1
    if pending:
        errors[f"no answer within {limit:.0f} s"] += pending
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"go": go, "in": len(done_at), "done_at": done_at, "statuses": statuses, "errors": errors,
                      "cpu": usage.ru_utime + usage.ru_stime}), flush=True)
    sys.stdin.read()  # hold until the parent has read the server's CPU
    for s in socks:
        s.close()


# ---------------------------------------------------------------- the server and the storm

def tree_cpu_seconds(pid: int) -> float:
    """CPU time of `pid` and every descendant still running, every thread of each, in nanoseconds
    from /proc/PID/task/TID/schedstat (the clock-tick counters of /proc/PID/stat are 10 ms coarse,
    and a storm of 10,000 handshakes costs a server about 0.1 s)."""
    ns, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/schedstat") as f:
                    ns += int(f.read().split()[0])
        except OSError:
            continue
        kids = subprocess.run(["pgrep", "-P", str(p)], capture_output=True, text=True).stdout.split()
        todo += [int(k) for k in kids]
    return ns / 1e9


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def handshake(port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(UPGRADE.format(key=base64.b64encode(os.urandom(16)).decode()).encode())
            return s.recv(64).startswith(b"HTTP/1.1 101")
    except OSError:
        return False


def start_server(command: str, workers: int):
    port = free_port()
    argv = shlex.split(command.format(port=port, workers=workers))
    log = open(f"/tmp/connect-storm-{port}.log", "w")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while not handshake(port, 0.5):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_server(proc)
            raise RuntimeError(f"{argv[0]} did not answer an upgrade on port {port}: see {log.name}")
        time.sleep(0.1)
    return proc, port, log.name


def stop_server(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def ready_clients(port: int, args, children: list) -> None:
    """After --warmup handshakes one at a time, starts the client processes (appended to `children`,
    which the caller ends with `end_clients`) and waits until each has bound its sockets."""
    for _ in range(args.warmup):
        handshake(port)
    time.sleep(0.5)
    per = [args.clients // args.processes + (i < args.clients % args.processes) for i in range(args.processes)]
    sources = [f"127.0.{1 + i // 250}.{2 + i % 250}" for i in range(max(args.processes, args.clients // 2000))]
    for i, count in enumerate(per):
        mine = sources[i::args.processes]
        children.append(subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--child", str(port), ",".join(mine), str(count),
             str(args.limit)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1))
    for c in children:
        assert c.stdout.readline().strip() == "ready"


def release_clients(children: list) -> list[dict]:
    """Signals every client at once; returns their reports when all answers are in."""
    for c in children:
        c.stdin.write("go\n")
        c.stdin.flush()
    return [json.loads(c.stdout.readline()) for c in children]


def end_clients(children: list) -> None:
    """Lets the clients close their connections and exit (killed after 30 s)."""
    for c in children:
        try:
            c.stdin.close()
        except OSError:
            pass
    for c in children:
        try:
            c.wait(timeout=30)
        except subprocess.TimeoutExpired:
            c.kill()
            c.wait()


def storm(command: str, workers: int, args) -> dict:
    proc, port, log = start_server(command, workers)
    children = []
    try:
        ready_clients(port, args, children)
        cpu0 = tree_cpu_seconds(proc.pid)
        reports = release_clients(children)
        cpu = tree_cpu_seconds(proc.pid) - cpu0
        go = min(r["go"] for r in reports)
        done = sorted(t - go for r in reports for t in r["done_at"])
        statuses = sum((collections.Counter(r["statuses"]) for r in reports), collections.Counter())
        errors = sum((collections.Counter(r["errors"]) for r in reports), collections.Counter())
        n_in = len(done)
        return {"in": n_in, "wall": done[-1] if done else float("nan"), "cpu": cpu,
                "p50": done[len(done) // 2] if done else float("nan"),
                "p99": done[min(len(done) - 1, len(done) * 99 // 100)] if done else float("nan"),
                "clients": sum(r["cpu"] for r in reports), "refused": dict(statuses - collections.Counter({"101": n_in})),
                "errors": dict(errors), "log": log}
    finally:
        end_clients(children)
        stop_server(proc)


def median_cell(values: list[float], fmt: str = "{:,.0f}") -> str:
    """A table cell: the median of the rounds, then every round in brackets."""
    return fmt.format(statistics.median(values)) + " (" + ", ".join(fmt.format(v) for v in values) + ")"


def storm_arguments(description: str, rounds: int) -> argparse.ArgumentParser:
    """The options of a storm, its clients and the servers compared (shared with storm_cpu_split.py)."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--processes", type=int, default=4, help="client processes sharing the clients")
    ap.add_argument("--warmup", type=int, default=200, help="handshakes one at a time before each storm")
    ap.add_argument("--limit", type=float, default=60, help="seconds a client waits for its answer")
    ap.add_argument("--server", action="append", required=True, help="NAME=CMD with {port} and {workers}")
    return ap


def main() -> int:
    ap = storm_arguments(__doc__, rounds=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    servers = [tuple(s.split("=", 1)) for s in args.server]
    rows: dict[tuple, list[dict]] = collections.defaultdict(list)
    for r in range(args.rounds):
        for w in args.workers:
            for name, command in servers:
                res = storm(command, w, args)
                rows[(w, name)].append(res)
                print(f"# round {r + 1} workers={w} {name}: " + json.dumps(res), flush=True)
                time.sleep(1)
    print(f"\n{args.clients:,} clients at once, {args.processes} client processes, medians of {args.rounds} "
          f"(each round in brackets)\n")
    print("| workers | server | in | handshakes/s (wall) | handshakes per server CPU-s | server CPU (s) | "
          "p50 (s) | p99 (s) | client CPU (s) | refused or failed |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (w, name), rs in rows.items():
        def cell(f, fmt="{:,.0f}"):
            return median_cell([f(x) for x in rs], fmt)
        bad = collections.Counter()
        for x in rs:
            bad.update(x["refused"])
            bad.update(x["errors"])
        print(f"| {w} | {name} | {min(x['in'] for x in rs):,} of {args.clients:,} (min) | "
              f"{cell(lambda x: x['in'] / x['wall'])} | {cell(lambda x: x['in'] / max(x['cpu'], 0.01))} | "
              f"{cell(lambda x: x['cpu'], '{:.2f}')} | {cell(lambda x: x['p50'], '{:.2f}')} | "
              f"{cell(lambda x: x['p99'], '{:.2f}')} | {cell(lambda x: x['clients'], '{:.2f}')} | "
              f"{dict(bad) or 'none'} |")
    for w in args.workers:
        first = servers[0][0]
        for name, _ in servers[1:]:
            a = statistics.median(x["in"] / max(x["cpu"], 0.01) for x in rows[(w, first)])
            b = statistics.median(x["in"] / max(x["cpu"], 0.01) for x in rows[(w, name)])
            c = statistics.median(x["in"] / x["wall"] for x in rows[(w, first)])
            d = statistics.median(x["in"] / x["wall"] for x in rows[(w, name)])
            print(f"\n{w} worker(s): {first} / {name} = {a / b:.2f}x per server CPU-second, {c / d:.2f}x per wall second")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        storm_client(int(sys.argv[2]), sys.argv[3].split(","), int(sys.argv[4]), float(sys.argv[5]))
        sys.exit(0)
    sys.exit(main())
