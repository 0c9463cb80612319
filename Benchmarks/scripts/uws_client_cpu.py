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

--kernel-counts also counts, over the same windows and for the server's whole process tree
(`perf stat -p`, needs root or perf_event_paranoid <= 1), per message: system calls entered
(raw_syscalls:sys_enter), io_uring completions posted (io_uring:io_uring_complete), runs of the
ring's deferred task work (io_uring:io_uring_local_work_run: each is one batch of wake-up work
done in io_uring_enter) and context switches (each a sleep the server was woken from), and
splits the server's CPU into user and system time per message.

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


KERNEL_EVENTS = {
    "raw_syscalls:sys_enter": "syscalls",
    "io_uring:io_uring_complete": "CQEs",
    "io_uring:io_uring_local_work_run": "task-work runs",
    "context-switches": "context switches",
}


def tree_pids(pid):
    """pid and all its descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry))
            except OSError:
                pass
    found, stack = [], [pid]
    while stack:
        p = stack.pop()
        found.append(p)
        stack.extend(children.get(p, []))
    return found


def start_kernel_counts(pid):
    """perf stat on every process of the server tree (all their threads), until stopped."""
    pids = ",".join(str(p) for p in tree_pids(pid))
    return subprocess.Popen(["perf", "stat", "-x", ",", "-e", ",".join(KERNEL_EVENTS), "-p", pids],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop_kernel_counts(perf):
    """Totals per event name (KERNEL_EVENTS' labels) from a perf stat started above."""
    perf.send_signal(signal.SIGINT)
    _, err = perf.communicate(timeout=30)
    counts = {}
    for line in err.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2] in KERNEL_EVENTS and fields[0].strip().isdigit():
            counts[KERNEL_EVENTS[fields[2]]] = int(fields[0])
    return counts


def tree_cpu_split(pid):
    """(user, sys) CPU seconds of pid and all its descendants."""
    user = system = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
        except OSError:
            pass
    return user / TICK, system / TICK


def tree_cpu_seconds(pid):
    """user+sys CPU seconds of pid and all its descendants."""
    return sum(tree_cpu_split(pid))


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
                    start = (now, tree_cpu_seconds(server.pid), tree_cpu_seconds(client.pid), tree_cpu_split(server.pid))
                    perf = start_kernel_counts(server.pid) if args.kernel_counts else None
                    continue
                rates.append(float(line.split()[-1]) * per_window)
                if len(rates) == args.windows:
                    end = (now, tree_cpu_seconds(server.pid), tree_cpu_seconds(client.pid), tree_cpu_split(server.pid))
                    counts = stop_kernel_counts(perf) if perf else {}
                    break
        finally:
            os.killpg(client.pid, signal.SIGKILL)
            client.wait()
    wall = end[0] - start[0]
    messages = statistics.mean(rates) * wall
    server_cpu = end[1] - start[1]
    client_cpu = end[2] - start[2]
    per_message = {f"{label} per msg": counts.get(label, 0) / messages for label in counts}
    return per_message | {
        "user CPU ns per msg": (end[3][0] - start[3][0]) / messages * 1e9,
        "sys CPU ns per msg": (end[3][1] - start[3][1]) / messages * 1e9,
        "msgs_per_s": messages / wall,
        "msgs_per_server_cpu_s": messages / server_cpu if server_cpu > 0 else float("inf"),
        "server_cpu_s_per_million": server_cpu / messages * 1e6,
        "server_cpu_share": server_cpu / wall,
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
    parser.add_argument("--kernel-counts", action="store_true",
                        help="also count syscalls, io_uring completions, task-work runs and context switches per message (perf stat)")
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
                  f"server CPU {r['server_cpu_share']:.0%}, client CPU {r['client_cpu_share']:.0%}", file=sys.stderr)

    what = (f"echo, {args.connections} connections, {args.size}-byte messages, one in flight per connection"
            if args.scenario == "echo" else
            f"broadcast, {args.connections} clients each sending one 20-byte message per round to all; msgs = deliveries")
    print(f"\n{what}; median of {args.runs} runs (min..max)")
    print(f"| server | msgs/s (wall) | msgs per server CPU-s | server CPU-s per 1M msgs | server CPU | client CPU |")
    print("|---|---|---|---|---|---|")
    baseline = None
    for name, _ in servers:
        rs = results[name]
        med = lambda k: statistics.median(r[k] for r in rs)
        span = lambda k: f"{min(r[k] for r in rs):.0f}..{max(r[k] for r in rs):.0f}"
        flag = " (client-bound!)" if med("client_cpu_share") > 0.9 else ""
        print(f"| {name}{flag} | {med('msgs_per_s'):.0f} ({span('msgs_per_s')}) | {med('msgs_per_server_cpu_s'):.0f} "
              f"({span('msgs_per_server_cpu_s')}) | {med('server_cpu_s_per_million'):.2f} | {med('server_cpu_share'):.0%} "
              f"| {med('client_cpu_share'):.0%} |")
        baseline = baseline or med("msgs_per_server_cpu_s")
    per_message = [k for k in results[servers[0][0]][0] if k.endswith("per msg")]
    if per_message:
        print(f"\nper message, median of {args.runs} runs (min..max), over the measured windows")
        print("| server | " + " | ".join(per_message) + " |")
        print("|---" * (len(per_message) + 1) + "|")
        for name, _ in servers:
            rs = results[name]
            cells = []
            for k in per_message:
                values = [r.get(k, 0) for r in rs]
                digits = 0 if "CPU ns" in k else 2
                cells.append(f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}..{max(values):.{digits}f})")
            print(f"| {name} | " + " | ".join(cells) + " |")
    if len(servers) > 1:
        first = servers[0][0]
        for name, _ in servers[1:]:
            ratio = statistics.median(r["msgs_per_server_cpu_s"] for r in results[first]) / \
                statistics.median(r["msgs_per_server_cpu_s"] for r in results[name])
            print(f"{first} / {name} (msgs per server CPU-s): {ratio:.2f}x")


if __name__ == "__main__":
    main()
