#!/usr/bin/env python3
"""C1M: hold many WebSocket connections on one host, and check the cluster stays usable while it does.

Starts `shoal serve --handler broadcast --workers auto --cluster-connections N` on 127.0.0.1 (as many
workers as the open-files limit needs), opens N connections from several client processes spread
over many 127.0.x.y source addresses (one per 5,000 connections, each client process its own), and prints:

  1. open count and time to open;
  2. server PSS per connection (supervisor + workers, /proc/PID/smaps_rollup, held minus before),
     and the kernel's slab per connection (/proc/meminfo, both ends, whole machine);
  3. /healthz and /metrics latency while the connections are held;
  4. one broadcast from one client to all of them: first and last delivery, count delivered;
  5. a reload (SIGHUP) while held: the old workers close their clients with 1001, the clients
     reconnect at once on that close frame (a reconnect storm): how many are back and how long it took;
  6. all clients leaving at once: time until /metrics shows 0 connections, and that no worker was
     killed (`shoal_worker_restarts_total`, `shoal_watchdog_kills_total` if the build has it, and
     no "killing it" or "restarting" line in the supervisor's log, from the start to the end).
Exit status 0 only if every connection opened, every one got the broadcast, every one came back
after the reload, and no worker was killed.

usage: c1m.py [--connections 1000000] [--shoal .build/release/shoal] [--port 0]
              [--per-process 0 (auto)] [--per-source 5000] [--timeout 300]

A million needs the kernel settings of Deploy/sysctl/90-shoal.conf, an open-files hard limit of at
least 1048576 for this shell (`ulimit -n 1048576`, Deploy/limits) and about 10 GB of kernel memory
(10.5 KB of slab per connection, both ends, measured at 100,000) plus the Python clients; run it
small first: --connections 20000. Figures and the command: docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import base64
import errno
import http.client
import json
import math
import os
import resource
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOKEN = b"c1m-broadcast-token"
# The first byte of a close frame. The only other frames these clients get are the broadcast's text
# frames (0x81, length 19, TOKEN), which hold no 0x88 byte, so finding it anywhere is finding a close.
CLOSE_OPCODE = b"\x88"
STALL_S = 30.0  # a handshake not done after this long is counted as stalled and started again
REQUEST = ("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")


# ---------------------------------------------------------------- client process

class Conn:
    __slots__ = ("sock", "state", "tail", "source", "since")

    def __init__(self, sock, source):
        self.sock = sock
        self.source = source
        self.state = "connecting"  # connecting -> upgrading -> open (-> closed)
        self.tail = b""
        self.since = time.monotonic()


def child(port: int, sources: list[str], count: int) -> None:
    """Opens `count` connections, then obeys commands on stdin (one word a line) and answers one
    JSON line each: `open` (wait until all are open), `watch` (count broadcast deliveries until
    `report`), `leave` (close all at once). Reconnects a connection the server closes."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    sel = selectors.DefaultSelector()
    conns: dict[int, Conn] = {}
    stats = {"opened": 0, "failed": 0, "stalled": 0, "delivered": 0, "first": None, "last": None}
    swept = [time.monotonic()]
    in_flight_max = 256
    upgrading = [0]  # connections started and not open yet
    pending = []  # source addresses of connections still to start
    for i in range(count):
        pending.append(sources[i % len(sources)])

    def start(source):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        # the port is picked at connect(), per destination: without this, bind() looks for a port
        # free for every destination and slows down as thousands are taken
        s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24), 1)
        try:
            s.bind((source, 0))
            s.setblocking(False)
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        except OSError as e:  # no port left for this source address: counted, not retried
            s.close()
            stats["failed"] += 1
            stats["error"] = str(e)
            return
        c = Conn(s, source)
        conns[s.fileno()] = c
        upgrading[0] += 1
        sel.register(s, selectors.EVENT_WRITE, c)

    def drop(c):
        """The connection failed or the server closed it (reload): start another."""
        sel.unregister(c.sock)
        del conns[c.sock.fileno()]
        c.sock.close()
        if c.state != "open":
            upgrading[0] -= 1
        pending.append(c.source)

    def in_flight():
        return upgrading[0]

    def sweep_stalled():
        """A connection neither open nor failed after STALL_S is counted and started again, so one
        lost handshake (a SYN, or an accepted socket never answered) shows up in the figures
        instead of holding the whole run until its time limit."""
        now = time.monotonic()
        if now - swept[0] < 1:
            return
        swept[0] = now
        for c in [c for c in conns.values() if c.state != "open" and now - c.since > STALL_S]:
            stats["stalled"] += 1
            drop(c)

    def pump(timeout):
        sweep_stalled()
        while pending and in_flight() < in_flight_max:
            start(pending.pop())
        for key, ev in sel.select(timeout):
            c = key.data
            s = c.sock
            if c.state == "connecting":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    stats["failed"] += 1
                    drop(c)
                    continue
                key_b64 = base64.b64encode(os.urandom(16)).decode()
                try:
                    s.send(REQUEST.format(key=key_b64).encode())
                except OSError:  # reset between connect and request: counted, started again
                    stats["failed"] += 1
                    drop(c)
                    continue
                c.state = "upgrading"
                sel.modify(s, selectors.EVENT_READ, c)
                continue
            try:
                data = s.recv(65536)
            except BlockingIOError:
                data = None
            except OSError:  # reset (or timed out): as a close, started again
                data = b""
            if data is None:
                continue
            if not data:
                drop(c)
                continue
            if c.state == "upgrading":
                buf = c.tail + data
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    c.tail = buf
                    continue
                if b" 101 " not in buf[:buf.find(b"\r\n")]:
                    stats["failed"] += 1
                    drop(c)
                    continue
                c.state = "open"
                upgrading[0] -= 1
                stats["opened"] += 1
                data = buf[end + 4:]
                c.tail = b""
            buf = c.tail + data
            if CLOSE_OPCODE in buf:
                # the server's close (1001 on a reload): reconnect at once, as a browser's client code
                # does on onclose, instead of waiting for the server to drop TCP after its drain time
                drop(c)
                continue
            n = buf.count(TOKEN)
            if n:
                now = time.time()
                stats["delivered"] += n
                stats["first"] = stats["first"] or now
                stats["last"] = now
            c.tail = buf[-(len(TOKEN) - 1):]

    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "open":
            t0 = time.monotonic()
            while (pending or in_flight()) and time.monotonic() - t0 < 600:
                pump(0.05)
            stats["open"] = sum(1 for c in conns.values() if c.state == "open")
        elif cmd in ("watch", "resume"):
            # keeps receiving (and reconnecting) until the parent writes the next line, `report`;
            # `watch` counts deliveries from 0, `resume` goes on counting after a `report`
            if cmd == "watch":
                stats.update(delivered=0, first=None, last=None)
            stdin_sel = selectors.DefaultSelector()
            stdin_sel.register(sys.stdin, selectors.EVENT_READ)
            while not stdin_sel.select(0):
                pump(0.02)
            continue
        elif cmd == "leave":
            for c in list(conns.values()):
                c.sock.close()
            conns.clear()
            stats["open"] = 0
        elif cmd == "report":
            stats["open"] = sum(1 for c in conns.values() if c.state == "open")
        else:
            continue
        print(json.dumps({"cmd": cmd, **stats}), flush=True)


# ---------------------------------------------------------------- measuring the server


def pss_kb(pids) -> int:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def kernel_slab_kb() -> int:
    """The kernel's slab memory (sockets, dentries...): whole machine, so other load adds noise."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Slab:"):
                return int(line.split()[1])
    return 0


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def get(port: int, path: str) -> tuple[float, bytes]:
    t = time.monotonic()
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30).read()
    return (time.monotonic() - t) * 1000, body


def metric_sum(port: int, name: str) -> float | None:
    try:
        _, body = get(port, "/metrics")
    except (OSError, http.client.HTTPException):  # a worker that went away mid-answer (its log says why)
        return None
    values = [float(l.split()[-1]) for l in body.decode().splitlines() if l.startswith(name + "{") or l.startswith(name + " ")]
    return sum(values) if values else None


def metric_by_worker(port: int, name: str) -> dict[str, float] | None:
    """`name`'s value per `worker` label (a worker slot: a reload's new generation has slots of its own)."""
    try:
        _, body = get(port, "/metrics")
    except (OSError, http.client.HTTPException):
        return None
    values = {}
    for line in body.decode().splitlines():
        if line.startswith(name + "{") and 'worker="' in line:
            values[line.split('worker="', 1)[1].split('"', 1)[0]] = float(line.split()[-1])
    return values


def wait_metric(port, name, pred, timeout):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = metric_sum(port, name)
        if v is not None and pred(v):
            return time.monotonic() - t0
        time.sleep(0.2)
    return None


def send_broadcast(port: int):
    """One client sends TOKEN as a masked text frame; returns the wall time it was sent and its socket."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(REQUEST.format(key=base64.b64encode(os.urandom(16)).decode()).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert b" 101 " in head.split(b"\r\n")[0], head
    mask = os.urandom(4)
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(TOKEN))
    sent = time.time()
    s.sendall(bytes([0x81, 0x80 | len(TOKEN)]) + mask + payload)
    return sent, s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=1_000_000)
    ap.add_argument("--shoal", default=os.path.join(REPO, ".build", "release", "shoal"))
    ap.add_argument("--port", type=int, default=0, help="0: a free port")
    ap.add_argument("--per-process", type=int, default=0,
                    help="connections per client process (0: the open-files hard limit - 100)")
    ap.add_argument("--per-source", type=int, default=5_000,
                    help="connections per 127.0.x.y source address (one address has ~28,000 ports to one "
                         "destination, fewer while earlier runs' sockets sit in TIME-WAIT)")
    ap.add_argument("--drain-timeout", type=float, default=0,
                    help="shoal's --drain-timeout (0: 30 s per 100,000 connections, at least 30 s): on a reload the "
                         "old workers wait for every client to answer its 1001, and the clients here answer at "
                         "their own pace on the cores they share with the server (a million's old workers still "
                         "held every client at a 30 s deadline and were killed)")
    ap.add_argument("--timeout", type=float, default=300, help="bound of each phase, seconds")
    args = ap.parse_args()
    # `timeout 900 c1m.py ...` (or ^C) still stops the server and the clients, in the finally below
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    n = args.connections
    drain_timeout = args.drain_timeout or max(30.0, 30.0 * n / 100_000)
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    port = args.port
    if port == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    registry = max(262_144, 1 << math.ceil(math.log2(2 * n + 1)))
    cmd = [args.shoal, "serve", "--host", "127.0.0.1", "--port", str(port), "--handler", "broadcast", "--path", "/",
           "--workers", "auto", "--cluster-connections", str(n), "--registry-capacity", str(registry),
           "--idle-timeout", "0", "--drain-timeout", f"{drain_timeout:g}", "--log-level", "notice"]
    print("$ " + " ".join(cmd), flush=True)
    log = open(f"/tmp/c1m-shoal-{port}.log", "w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    procs = []
    try:
        for _ in range(600):
            try:
                get(port, "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(1)
        workers = children_of(server.pid)
        pss0 = pss_kb([server.pid] + workers)
        slab0 = kernel_slab_kb()
        print(f"workers: {len(workers)}; server PSS before: {pss0 / 1024:.0f} MB", flush=True)

        per_process = args.per_process or resource.getrlimit(resource.RLIMIT_NOFILE)[1] - 100
        k = max(1, math.ceil(n / per_process))
        # Each client process gets source addresses of its own, at most --per-source connections on
        # each: the kernel's search for a free source port at connect() slows down as one address's
        # ports fill up. (Dealing one shared list out round-robin left the last processes of a
        # million-client run with one address for 19,608 connections: they took minutes of kernel
        # time while the others were done in seconds.)
        me = os.path.abspath(__file__)
        next_source = 0
        for i in range(k):
            count = n // k + (1 if i < n % k else 0)
            mine = [f"127.0.{1 + j // 250}.{2 + j % 250}"
                    for j in range(next_source, next_source + math.ceil(count / args.per_source))]
            next_source += len(mine)
            procs.append(subprocess.Popen([sys.executable, me, "--child", str(port), ",".join(mine), str(count)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1))

        def ask(cmd):
            for p in procs:
                p.stdin.write(cmd + "\n")
                p.stdin.flush()
            return [json.loads(p.stdout.readline()) for p in procs]

        # 1. open
        t0 = time.monotonic()
        replies = ask("open")
        opened = sum(r["open"] for r in replies)
        errors = {r["error"] for r in replies if r.get("error")}
        if errors:
            print(f"client errors: {sum(r['failed'] for r in replies)} connections not started: {sorted(errors)[:3]}", flush=True)
        t_open = time.monotonic() - t0
        retried = sum(r["failed"] for r in replies), sum(r["stalled"] for r in replies)
        if any(retried):
            print(f"handshakes started again: {retried[0]} failed, {retried[1]} stalled over {STALL_S:.0f} s", flush=True)
        held = wait_metric(port, "shoal_connections", lambda v: v >= opened, 60)
        shown = "/metrics shows them" if held is not None else "/metrics does not show them all"
        print(f"open: {opened} of {n} in {t_open:.1f} s ({opened / t_open:.0f}/s); {shown}", flush=True)

        # 2. memory
        time.sleep(2)
        workers = children_of(server.pid)
        pss1 = pss_kb([server.pid] + workers)
        print(f"server PSS held: {pss1 / 1024:.0f} MB, {(pss1 - pss0) * 1024 / max(1, opened):.0f} B per connection", flush=True)
        slab1 = kernel_slab_kb()
        print(f"kernel slab: {slab0 / 1024:.0f} MB before, {slab1 / 1024:.0f} MB held, "
              f"{(slab1 - slab0) * 1024 / max(1, opened):.0f} B per connection (both ends, whole machine)", flush=True)

        # 3. latency while held
        for path in ("/healthz", "/metrics"):
            ms = [get(port, path)[0] for _ in range(10)]
            print(f"{path} while held: median {statistics.median(ms):.1f} ms, max {max(ms):.1f} ms", flush=True)

        # 4. one broadcast to all
        for p in procs:
            p.stdin.write("watch\n")
            p.stdin.flush()
        time.sleep(0.5)
        sent, sender = send_broadcast(port)
        # the clients note each delivery's time; asked every 2 s until all have it, or the count
        # has not grown for 20 s, or --timeout
        t_b, grown_at, delivered = time.monotonic(), time.monotonic(), 0
        while True:
            time.sleep(2)
            reports = ask("report")
            now_delivered = sum(r["delivered"] for r in reports)
            if now_delivered > delivered:
                delivered, grown_at = now_delivered, time.monotonic()
            if delivered >= opened or time.monotonic() - grown_at > 20 or time.monotonic() - t_b > args.timeout:
                break
            for p in procs:
                p.stdin.write("resume\n")
                p.stdin.flush()
        firsts = [r["first"] for r in reports if r["first"]]
        lasts = [r["last"] for r in reports if r["last"]]
        if firsts:
            print(f"broadcast: delivered to {delivered} of {opened} clients; first after {(min(firsts) - sent) * 1000:.0f} ms, "
                  f"last after {(max(lasts) - sent) * 1000:.0f} ms", flush=True)
        else:
            print(f"broadcast: delivered to 0 of {opened}", flush=True)
        sender.close()

        # 5. reload while held
        before = set(children_of(server.pid))
        for p in procs:
            p.stdin.write("watch\n")
            p.stdin.flush()
        old_slots = set((metric_by_worker(port, "shoal_connections") or {}).keys())
        t_r = time.monotonic()
        server.send_signal(signal.SIGHUP)
        back = None
        timeline = []  # (seconds, old workers alive, clients on old workers, clients on new workers)
        while time.monotonic() - t_r < args.timeout:
            time.sleep(1)
            now = set(children_of(server.pid))
            per_worker = metric_by_worker(port, "shoal_connections") or {}
            on_new = sum(v for k, v in per_worker.items() if k not in old_slots)
            on_old = sum(v for k, v in per_worker.items() if k in old_slots)
            timeline.append((time.monotonic() - t_r, len(now & before), on_old, on_new))
            if not (now & before) and on_new >= opened:
                back = time.monotonic() - t_r
                break
        # where a reload's time goes: the new workers filling up, the old ones draining
        marks = [row for i, row in enumerate(timeline) if i % max(1, len(timeline) // 10) == 0 or row is timeline[-1]]
        print("reload timeline (s: old workers, clients on old, clients on new): "
              + ", ".join(f"{t:.0f}: {w}, {o:.0f}, {n:.0f}" for t, w, o, n in marks), flush=True)
        reports = ask("report")
        reopened = sum(r["open"] for r in reports)
        again = sum(r["failed"] for r in reports) - retried[0], sum(r["stalled"] for r in reports) - retried[1]
        if any(again):
            print(f"reconnects started again: {again[0]} failed, {again[1]} stalled over {STALL_S:.0f} s", flush=True)
        print(f"reload (SIGHUP): {reopened} of {opened} clients open again on the new workers"
              + (f" after {back:.1f} s" if back is not None else f" (not all within {args.timeout:.0f} s)"), flush=True)

        # 6. all leave at once
        has_watchdog_metric = metric_sum(port, "shoal_watchdog_kills_total") is not None
        killed_before = (metric_sum(port, "shoal_worker_restarts_total") or 0, metric_sum(port, "shoal_watchdog_kills_total") or 0)
        workers = set(children_of(server.pid))
        t_l = time.monotonic()
        ask("leave")
        gone = wait_metric(port, "shoal_connections", lambda v: v == 0, args.timeout)
        time.sleep(2)
        killed = (metric_sum(port, "shoal_worker_restarts_total") or 0, metric_sum(port, "shoal_watchdog_kills_total") or 0)
        same = set(children_of(server.pid)) == workers
        print(f"all left at once: 0 connections after {gone:.1f} s" if gone is not None else "all left: connections not back to 0",
              flush=True)
        kills = f"{killed[1] - killed_before[1]:.0f}" if has_watchdog_metric else "not counted by this build"
        print(f"workers restarted: {killed[0] - killed_before[0]:.0f}, watchdog kills: {kills}, "
              f"same worker processes: {same}", flush=True)
        # the supervisor's own word: a watchdog kill, a drain cut short or a crash is logged (once each)
        log.flush()
        with open(log.name, errors="replace") as f:
            kill_lines = [l.strip() for l in f if "killing it" in l or "restarting" in l]
        print(f"supervisor log ({log.name}): {len(kill_lines)} lines of a worker killed or restarted"
              + (f", first: {kill_lines[0]}" if kill_lines else ""), flush=True)
        ok = (opened == n and delivered >= opened and reopened == opened and gone is not None and same
              and killed == killed_before and not kill_lines)
        print("PASS" if ok else "FAIL", flush=True)
        return 0 if ok else 1
    finally:
        for p in procs:
            try:
                p.stdin.close()
            except OSError:
                pass
            p.kill()
            p.wait()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), sys.argv[3].split(","), int(sys.argv[4]))
        sys.exit(0)
    sys.exit(main())
