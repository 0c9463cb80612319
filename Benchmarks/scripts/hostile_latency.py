#!/usr/bin/env python3
"""Echo latency of a well-behaved client with and without hostile connections present, in one run.

A fresh `shoal serve --handler echo --workers 1` is pinned to CPU 0 (pinned_server.py). One
client (pinned to CPU 1) keeps one 32-byte text message in flight over a raw blocking socket
and times every round trip (time.perf_counter_ns), on the same connection, in --cycles
alternated pairs of phases (so a noisy machine hits both alike):

  without : --rounds round trips, nothing else connected
  with    : the same while a helper process (also on CPU 1) holds --hostile connections:
            half slow-loris handshakes (an unfinished request head, one more byte per
            connection every --trickle seconds, reopened whenever the server times one out),
            half upgraded WebSocket connections that stay idle and never read;
            they are all closed before the next cycle

The client is Python: a round trip includes some 20-40 µs of interpreter time, the same in
every phase; compare the phases, not these figures with shoal-bench's. Prints a markdown table
and, last, one JSON line. Every phase is bounded (--phase-timeout).

usage: hostile_latency.py [--shoal .build/release/shoal] [--rounds 20000] [--cycles 3] [--size 32]
                          [--hostile 2000] [--trickle 1.0] [--server-cpus 0] [--client-cpu 1]
                          [--realtime PRIORITY]
"""
import argparse
import base64
import json
import multiprocessing as mp
import os
import socket
import struct
import subprocess
import sys
import time

from pinned_server import pinned_server

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))


def upgrade_head(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


def read_head(sock: socket.socket) -> bytes:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError(f"closed during the handshake: {buf!r}")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"upgrade refused: {head[:200]!r}")
    return rest


def mask_frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    key = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big") if n else b""
    assert n < 126
    return struct.pack("!BB", 0x80 | opcode, 0x80 | n) + mask + masked


# ---------------------------------------------------------------- the hostile side (own process)


def hostile(port: int, count: int, trickle: float, cpu: int, conn):
    """Holds count//2 slow-loris handshakes and count - count//2 idle upgraded connections until
    told to stop. Reports ("ready", figures) once all are open, ("done", figures) at the end."""
    os.sched_setaffinity(0, {cpu})
    n_slow, n_idle = count // 2, count - count // 2
    idle = []
    for i in range(n_idle):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(upgrade_head(port))
        read_head(s)  # the 101; from here on this connection never reads
        idle.append(s)
    head = upgrade_head(port)
    slow = []  # [socket, bytes sent]

    def open_slow():
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(head[:1])
        s.setblocking(False)
        return [s, 1]
    for i in range(n_slow):
        slow.append(open_slow())
    stats = {"slowloris": n_slow, "idle_upgraded": n_idle, "slowloris_reopened": 0, "idle_closed_by_server": 0}
    conn.send(("ready", stats))
    # one trickle pass every `trickle` seconds: one more byte on each slow-loris connection
    # (never the last ones of the head), reopen those the server closed (408 after its timeout)
    deadline = time.monotonic() + 3600
    while not conn.poll(trickle) and time.monotonic() < deadline:
        for i, (s, sent) in enumerate(slow):
            try:
                if s.recv(4096, socket.MSG_DONTWAIT) is not None:
                    raise OSError("answered")  # a 408 (or EOF): the server gave up on it
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                slow[i] = open_slow()
                stats["slowloris_reopened"] += 1
                continue
            if sent < len(head) - 4:
                try:
                    s.send(head[sent:sent + 1])
                    slow[i][1] += 1
                except OSError:
                    pass
    for s in idle:
        s.setblocking(False)
        try:
            if s.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b"":
                stats["idle_closed_by_server"] += 1
        except BlockingIOError:
            pass
        except OSError:
            stats["idle_closed_by_server"] += 1
        s.close()
    for s, _ in slow:
        s.close()
    conn.send(("done", stats))


# ---------------------------------------------------------------- the well-behaved client


class Client:
    def __init__(self, port: int, size: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(upgrade_head(port))
        self.buf = read_head(self.sock)
        self.size = size

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("server closed the well-behaved client")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def round_trips(self, rounds: int, timeout: float) -> list[int]:
        """Round-trip times in ns; every echo is checked."""
        times = []
        deadline = time.monotonic() + timeout
        for i in range(rounds):
            payload = f"{i:08d}".encode().ljust(self.size, b"x")
            frame = mask_frame(0x1, payload)
            t0 = time.perf_counter_ns()
            self.sock.sendall(frame)
            b0, b1 = self._read(2)
            got = self._read(b1 & 0x7F)
            t1 = time.perf_counter_ns()
            if b0 != 0x81 or got != payload:
                raise RuntimeError(f"round trip {i}: unexpected frame {b0:#x} {got!r}")
            times.append(t1 - t0)
            if time.monotonic() > deadline:
                print(f"phase stopped by its deadline after {i + 1} round trips", file=sys.stderr)
                break
        return times


def percentiles(ns: list[int]) -> dict:
    s = sorted(ns)

    def p(q):
        return round(s[min(len(s) - 1, int(q * len(s)))] / 1000, 1)
    return {"round_trips": len(s), "p50_us": p(0.50), "p90_us": p(0.90), "p99_us": p(0.99), "p99_9_us": p(0.999),
            "max_us": round(s[-1] / 1000, 1)}


def tree_rss(pid: int) -> int:
    """VmRSS of the server's process group (it runs in its own session), bytes."""
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            if int(stat[stat.rfind(")") + 2:].split()[2]) != pid:
                continue
            with open(f"/proc/{d}/status") as f:
                total += next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
        except (OSError, StopIteration, ValueError):
            pass
    return total


def make_realtime(pgid: int, priority: int) -> int:
    """SCHED_FIFO for every thread of the server's process group; returns how many threads."""
    n = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            if int(stat[stat.rfind(")") + 2:].split()[2]) != pgid:
                continue
            for tid in os.listdir(f"/proc/{d}/task"):
                os.sched_setscheduler(int(tid), os.SCHED_FIFO, os.sched_param(priority))
                n += 1
        except (OSError, ValueError):
            pass
    return n


def binary_commit(shoal: str) -> str:
    """HEAD of the repository the binary sits in, now (+"-dirty" with local changes): what it was
    built from if nobody committed since (the JSON line also gives the binary's build time)."""
    where = os.path.dirname(os.path.abspath(shoal))
    head = subprocess.run(["git", "-C", where, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return "unknown"
    dirty = subprocess.run(["git", "-C", where, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return head.stdout.strip() + ("-dirty" if dirty else "")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shoal", default=os.path.join(REPO, ".build", "release", "shoal"))
    p.add_argument("--rounds", type=int, default=20000, help="round trips per phase and cycle")
    p.add_argument("--cycles", type=int, default=3, help="without/with pairs, alternated (noise hits both alike)")
    p.add_argument("--warmup", type=int, default=2000)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--hostile", type=int, default=2000)
    p.add_argument("--trickle", type=float, default=1.0, help="seconds between two bytes of one slow-loris head")
    p.add_argument("--server-cpus", default="0")
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--phase-timeout", type=float, default=120.0)
    p.add_argument("--realtime", type=int, default=0, metavar="PRIORITY",
                   help="SCHED_FIFO priority for the server's threads and the client (needs root or "
                        "CAP_SYS_NICE): steadier tails on a shared machine, at the expense of whatever else "
                        "runs on those CPUs during the run (the kernel's RT throttling leaves it at least "
                        "5%%). 0 (default): normal scheduling")
    args = p.parse_args()
    if not 8 <= args.size <= 125:
        p.error("--size must be 8..125 (one small text frame)")

    os.sched_setaffinity(0, {args.client_cpu})
    command = f"{args.shoal} serve --host 127.0.0.1 --port {{port}} --handler echo --workers 1 --log-level warning"
    commit = binary_commit(args.shoal)
    times = {"without": [], "with": []}
    p99s = {"without": [], "with": []}
    rss = {}
    held = {}
    with pinned_server(command, args.server_cpus) as (server, port):
        if args.realtime:
            threads = make_realtime(server.pid, args.realtime)
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(args.realtime))
            print(f"SCHED_FIFO {args.realtime}: {threads} server threads and the client", file=sys.stderr)
        client = Client(port, args.size)
        client.round_trips(args.warmup, args.phase_timeout)
        rss["before"] = tree_rss(server.pid)
        for cycle in range(args.cycles):
            t = client.round_trips(args.rounds, args.phase_timeout)
            times["without"] += t
            p99s["without"].append(percentiles(t)["p99_us"])

            parent, child = mp.Pipe()
            helper = mp.get_context("fork").Process(target=hostile, args=(port, args.hostile, args.trickle,
                                                                          args.client_cpu, child), daemon=True)
            helper.start()
            if not parent.poll(args.phase_timeout):
                helper.kill()
                raise RuntimeError("the hostile connections did not open in time")
            parent.recv()
            rss["with"] = max(rss.get("with", 0), tree_rss(server.pid))
            t = client.round_trips(args.rounds, args.phase_timeout)
            times["with"] += t
            p99s["with"].append(percentiles(t)["p99_us"])
            parent.send("stop")
            if not parent.poll(args.phase_timeout):
                helper.kill()
                raise RuntimeError("the hostile helper did not stop")
            _, stats = parent.recv()
            helper.join(10)
            for k, v in stats.items():
                held[k] = held.get(k, 0) + v if k.endswith(("reopened", "by_server")) else v
            time.sleep(0.5)  # let the server see the hostile sockets close
            print(f"cycle {cycle + 1}: p99 without {p99s['without'][-1]} µs, with {p99s['with'][-1]} µs",
                  file=sys.stderr)
        rss["after"] = tree_rss(server.pid)
        if server.poll() is not None:
            raise RuntimeError(f"the server exited ({server.returncode})")

    results = {phase: percentiles(t) for phase, t in times.items()}
    print(f"\n**echo latency with hostile connections present**: shoal {commit}, `--handler echo --workers 1` "
          f"on CPU {args.server_cpus}; one Python client on CPU {args.client_cpu}"
          f"{f' (both SCHED_FIFO {args.realtime})' if args.realtime else ''}, {args.size}-byte text, one in "
          f"flight; {args.cycles} cycles of {args.rounds:,} round trips without, then {args.rounds:,} with "
          f"{held['slowloris']:,} slow-loris handshakes + {held['idle_upgraded']:,} idle upgraded connections "
          f"that never read ({held['slowloris_reopened']:,} slow-loris reopened after a 408); "
          f"server RSS {rss['before'] / 2**20:.1f} MiB before, {rss['with'] / 2**20:.1f} MiB with, "
          f"{rss['after'] / 2**20:.1f} MiB after\n")
    print("| phase | round trips | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | p99 µs per cycle |")
    print("|---|---|---|---|---|---|---|---|")
    for phase in ("without", "with"):
        r = results[phase]
        print(f"| {phase} | {r['round_trips']:,} | {r['p50_us']:,.1f} | {r['p90_us']:,.1f} | {r['p99_us']:,.1f} | "
              f"{r['p99_9_us']:,.1f} | {r['max_us']:,.1f} | {', '.join(f'{x:,.1f}' for x in p99s[phase])} |")
    built = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(os.path.getmtime(args.shoal)))
    print(json.dumps({"commit": commit, "binary_built": built, "realtime": args.realtime, "rounds": args.rounds, "cycles": args.cycles, "size": args.size,
                      "hostile": held, "server_rss_bytes": rss, "p99_us_per_cycle": p99s, **results}))


if __name__ == "__main__":
    main()
