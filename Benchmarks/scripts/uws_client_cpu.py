#!/usr/bin/env python3
"""Server throughput and server CPU per message, measured with an independent load client.

The clients are uWebSockets' benchmarks programs, not part of this repository (build them
from the public uWebSockets + uSockets sources in a scratch folder, pass the path):
  --scenario echo       load_test.c: one message in flight per connection, prints
                        "Msg/sec: N" every 4 s; figure = echoed messages.
  --scenario broadcast  broadcast_test.c: every client sends one 20-byte message, waits for
                        the N*N deliveries, repeats; prints "Iterations/second (N clients): X"
                        every 4 s; figure = deliveries = X * N * N. The server must send each
                        message to every client, the sender included (shoal: --handler broadcast).

Each server runs pinned to CPU 0 and the client to CPU 1 (--server-cpus/--client-cpus change
that, e.g. to compare 1 and 2 workers with both CPUs open to everyone). After one warm-up window the
script reads the server's CPU time (user+sys of its whole process tree, from /proc) and the
client's, collects --windows windows of Msg/sec, and reads both CPU times again. A figure is
messages per server CPU-second plus wall-clock messages per second; every server is measured
--runs times, interleaved, and the median and spread are printed. When the client used more
than 90 % of its core the row is flagged: the client, not the server, was the limit.

usage: uws_client_cpu.py --client PATH [--scenario echo|broadcast] [--connections 100] [--size 32]
                         [--windows 3] [--runs 3] --server NAME='CMD with {port}' [--server ...]
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

from pinned_server import pinned_server

TICK = os.sysconf("SC_CLK_TCK")
WINDOW_SECONDS = 4  # LIBUS_TIMEOUT_GRANULARITY in uSockets


def tree_cpu_seconds(pid):
    """user+sys CPU seconds of pid and all its descendants."""
    return sum(tree_cpu_split(pid))


def tree_cpu_split(pid):
    """(user, sys) CPU seconds of pid and all its descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry))
            except OSError:
                pass
    user, system, stack = 0, 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
        except OSError:
            pass
        stack.extend(children.get(p, []))
    return user / TICK, system / TICK


def measure(name, command, args):
    with pinned_server(command, args.server_cpus) as (server, port):
        if args.scenario == "echo":
            argv = [args.client, str(args.connections), "127.0.0.1", str(port), "1" if args.tls else "0", "0", str(args.size)]
            marker, per_window = "Msg/sec:", 1
        else:
            argv = [args.client, str(args.connections), "127.0.0.1", str(port), "1" if args.tls else "0"]
            marker, per_window = "Iterations/second", args.connections * args.connections
        client = subprocess.Popen(["taskset", "-c", args.client_cpus, "stdbuf", "-oL"] + argv,
                                  stdout=subprocess.PIPE, text=True, start_new_session=True)
        try:
            rates, start = [], None
            # load_test opens its connections one after another; over TLS each waits for its
            # handshake (measured: about 30 per second on this loaded machine, for every server).
            setup = args.connections * 0.15 if args.tls else 0
            deadline = time.time() + 30 + setup + WINDOW_SECONDS * (args.windows + 2)
            for line in client.stdout:
                if time.time() > deadline:
                    raise RuntimeError("load client produced no figures in time")
                if not line.startswith(marker):
                    continue
                now = time.time()
                if start is None:  # end of the warm-up window
                    start = (now, tree_cpu_split(server.pid), tree_cpu_seconds(client.pid))
                    continue
                rates.append(float(line.split()[-1]) * per_window)
                if len(rates) == args.windows:
                    end = (now, tree_cpu_split(server.pid), tree_cpu_seconds(client.pid))
                    break
        finally:
            os.killpg(client.pid, signal.SIGKILL)
            client.wait()
    wall = end[0] - start[0]
    messages = statistics.mean(rates) * wall
    server_user = end[1][0] - start[1][0]
    server_cpu = sum(end[1]) - sum(start[1])
    client_cpu = end[2] - start[2]
    return {
        "msgs_per_s": messages / wall,
        "msgs_per_server_cpu_s": messages / server_cpu if server_cpu > 0 else float("inf"),
        "server_cpu_s_per_million": server_cpu / messages * 1e6,
        "server_cpu_share": server_cpu / wall,
        # clock ticks (10 ms) of user time: coarse over a few windows, a median of runs steadies it
        "server_user_us_per_msg": server_user / messages * 1e6,
        "server_sys_us_per_msg": (server_cpu - server_user) / messages * 1e6,
        "client_cpu_share": client_cpu / wall,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--client", required=True, help="path of load_test or broadcast_test")
    parser.add_argument("--scenario", choices=["echo", "broadcast"], default="echo")
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--server-cpus", default="0", help="taskset list for the server tree (default 0)")
    parser.add_argument("--client-cpus", default="1", help="taskset list for the client (default 1)")
    parser.add_argument("--server", action="append", required=True, help="NAME=COMMAND with {port}")
    parser.add_argument("--tls", action="store_true",
                        help="the client speaks wss:// (a load_test built with OpenSSL: LIBUS_USE_OPENSSL)")
    args = parser.parse_args()
    servers = [s.split("=", 1) for s in args.server]
    results = {name: [] for name, _ in servers}
    for run in range(args.runs):
        for name, command in servers:
            r = measure(name, command, args)
            results[name].append(r)
            print(f"run {run + 1} {name}: {r['msgs_per_s']:.0f} msg/s, {r['msgs_per_server_cpu_s']:.0f} msg/server-CPU-s, "
                  f"server CPU {r['server_cpu_share']:.0%} (user {r['server_user_us_per_msg']:.2f} µs/msg), "
                  f"client CPU {r['client_cpu_share']:.0%}", file=sys.stderr)

    what = (f"echo, {args.connections} connections, {args.size}-byte messages, one in flight per connection"
            if args.scenario == "echo" else
            f"broadcast, {args.connections} clients each sending one 20-byte message per round to all; msgs = deliveries")
    print(f"\n{what}; median of {args.runs} runs (min..max)")
    print(f"| server | msgs/s (wall) | msgs per server CPU-s | server CPU-s per 1M msgs | server user µs/msg | server sys µs/msg | server CPU | client CPU |")
    print("|---|---|---|---|---|---|---|---|")
    baseline = None
    for name, _ in servers:
        rs = results[name]
        med = lambda k: statistics.median(r[k] for r in rs)
        span = lambda k: f"{min(r[k] for r in rs):.0f}..{max(r[k] for r in rs):.0f}"
        flag = " (client-bound!)" if med("client_cpu_share") > 0.9 else ""
        print(f"| {name}{flag} | {med('msgs_per_s'):.0f} ({span('msgs_per_s')}) | {med('msgs_per_server_cpu_s'):.0f} "
              f"({span('msgs_per_server_cpu_s')}) | {med('server_cpu_s_per_million'):.2f} | {med('server_user_us_per_msg'):.2f} "
              f"| {med('server_sys_us_per_msg'):.2f} | {med('server_cpu_share'):.0%} "
              f"| {med('client_cpu_share'):.0%} |")
        baseline = baseline or med("msgs_per_server_cpu_s")
    if len(servers) > 1:
        first = servers[0][0]
        for name, _ in servers[1:]:
            ratio = statistics.median(r["msgs_per_server_cpu_s"] for r in results[first]) / \
                statistics.median(r["msgs_per_server_cpu_s"] for r in results[name])
            print(f"{first} / {name} (msgs per server CPU-s): {ratio:.2f}x")


if __name__ == "__main__":
    main()
