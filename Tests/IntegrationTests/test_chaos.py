"""Chaos: 500 chat clients over 2 workers while a script (at most 60 s) kills workers with -9,
sends three SIGHUPs within a second, SIGSTOPs a worker for 12 s (the supervisor's watchdog must
replace it), then leaves the cluster quiet. It must show (the issue's list):

- the supervisor never dies;
- /healthz is 200 within 3 s after the last fault, and every slot runs a worker;
- between clients whose workers survived, no message is lost, duplicated or reordered;
- `wss.connections` counts match the clients really connected;
- no descriptor leaks (/proc/PID/fd), and worker RSS back within 10 % of its start once the
  clients leave (the start measured after a first wave of 100 clients came and went, so the
  code pages a first request faults in are not counted as kept memory).

Clients use the probe handler with `?silent` (no lifecycle events) and its `say TEXT` command,
which relays TEXT to every other connection through `wss.connections` exactly as the chat
handler does; `count` answers `wss.connections.count`. Every connection (an incarnation of a
client: clients reconnect when dropped) sends numbered bursts "m TAG SEQ"; receivers keep, per
sender connection, the sequence numbers in arrival order. Which worker serves a connection is
read from /proc (server-side socket inode in the worker's fd table).

Loss is judged per message, with the sender's and receiver's connections as witnesses of their
workers: a message must reach every other connection that was open from SETTLE before it was
sent until WINDOW after (or the end), when its sender's connection also stayed open that long.
A connection on a killed or stopped worker ends within the watchdog's 10 s, one on a reloaded
worker gets 1001 within the drain timeout: WINDOW covers both, so dropped clients are never
counted, and survivors are never excused."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import resource
import signal
import socket
import time

from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from cluster_helpers import fd_count, metrics, owners_of, rss_bytes, wait_until, workers_by_slot
from helpers import http_get, run, upgrade_request

CLIENTS = 500
WORKERS = 2
SEND_EVERY = 30.0  # seconds between two bursts of one connection (500 clients: ~33 messages/s in all)
BURST = 2  # messages sent back to back: reordering within a burst shows
SETTLE = 0.5  # a new connection is in every worker's wss.connections well within this
WINDOW = 20.0  # longer than the watchdog (10 s) and the drain (5 s) plus reconnection
HEALTHY_WITHIN = 3.0  # the bound after the last fault
RSS_SLACK = 0.10
MUTE = 8  # clients that stop reading before the reloads


class Conn:
    """One connection of a client, from its hello to its close."""

    def __init__(self, tag: str, ws, opened: float):
        self.tag = tag
        self.ws = ws
        self.opened = opened
        self.closed: float | None = None
        self.close_code: int | None = None  # None: no close frame (TCP closed under it)
        self.worker: int | None = None
        self.sent: list[float] = []  # send time of each sequence number
        self.got: dict[str, list[int]] = {}
        self.replies: asyncio.Queue = asyncio.Queue()


class Chaos:
    def __init__(self, port: int, sup: int):
        self.port = port
        self.sup = sup
        self.conns: list[Conn] = []
        self.live: dict[int, Conn] = {}  # client index -> its open connection
        self.stop_traffic = asyncio.Event()
        self.stop_connecting = asyncio.Event()
        self.failed_connects = 0
        self.stopped_or_killed: set[int] = set()
        self.first_hup = float("inf")
        self.last_hup = 0.0
        self.max_lag = 0.0

    async def open(self, i: int, incarnation: int) -> Conn | None:
        try:
            # No client pings: a stopped worker must be found by the supervisor, not by clients.
            ws = await ws_connect(f"ws://127.0.0.1:{self.port}/?silent", open_timeout=5, close_timeout=2,
                                  ping_interval=None, max_queue=None)
        except (OSError, asyncio.TimeoutError, EOFError, InvalidHandshake, ConnectionClosed):
            # refused or reset by a dying worker, or stuck on a stopped one: try again
            self.failed_connects += 1
            return None
        try:
            hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert hello.get("event") == "hello", hello
        except (ConnectionClosed, asyncio.TimeoutError):
            self.failed_connects += 1
            await ws.close()
            return None
        conn = Conn(f"{i}.{incarnation}", ws, time.monotonic())
        self.conns.append(conn)
        return conn

    async def client(self, i: int):
        incarnation = 0
        while not self.stop_connecting.is_set():
            conn = await self.open(i, incarnation)
            incarnation += 1
            if conn is None:
                await asyncio.sleep(0.2)
                continue
            self.live[i] = conn
            sender = asyncio.create_task(self.send(conn))
            await self.read(conn)
            sender.cancel()
            self.live.pop(i, None)
            await asyncio.sleep(random.uniform(0.05, 0.3))  # reconnect, spread out

    async def read(self, conn: Conn):
        try:
            while True:
                m = await conn.ws.recv()
                if m.startswith("m "):
                    _, tag, seq = m.split()
                    conn.got.setdefault(tag, []).append(int(seq))
                else:
                    conn.replies.put_nowait(json.loads(m))
        except ConnectionClosed as e:
            conn.closed = time.monotonic()
            conn.close_code = e.rcvd.code if e.rcvd is not None else None

    async def send(self, conn: Conn):
        try:
            await asyncio.sleep(random.uniform(0, SEND_EVERY))
            while not self.stop_traffic.is_set():
                for _ in range(BURST):
                    t = time.monotonic()
                    await conn.ws.send(f"say m {conn.tag} {len(conn.sent)}")
                    conn.sent.append(t)
                try:
                    await asyncio.wait_for(self.stop_traffic.wait(), SEND_EVERY)
                except asyncio.TimeoutError:
                    pass
        except ConnectionClosed:
            pass

    async def watch(self):
        """Notes which worker holds each open connection, and how late
        this client process runs its timers (it must not be the bottleneck)."""
        last = time.monotonic()
        while not self.stop_connecting.is_set():
            now = time.monotonic()
            self.max_lag = max(self.max_lag, now - last - 0.3)
            pids = list(workers_by_slot(self.sup).values())
            pending = [c for c in self.live.values() if c.worker is None and c.closed is None]
            if pending:
                ports = {c.ws.local_address[1]: c for c in pending}
                for port, pid in owners_of(self.port, list(ports), pids).items():
                    if pid is not None:
                        ports[port].worker = pid
            last = time.monotonic()
            await asyncio.sleep(0.3)

    @staticmethod
    async def settle(pred, timeout: float, interval: float = 0.1) -> bool:
        """Waits (bounded) until pred() holds; whether it did."""
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(interval)
        return True

    async def until(self, pred, timeout: float, what: str):
        assert await self.settle(pred, timeout), f"timed out after {timeout}s waiting for {what}"


async def healthy_within(port: int, sup: int, since: float, gone: int | None = None):
    """(seconds after `since` when /healthz answered 200 while every slot ran a live worker
    other than `gone`, or None; what was seen while waiting)."""
    seen = []
    while True:
        try:
            status = http_get(port, "/healthz").status
        except OSError as e:
            status = repr(e)
        workers = workers_by_slot(sup)
        ok = status == 200 and len(workers) == WORKERS and gone not in workers.values()
        if not seen or seen[-1][1:] != (status, workers):
            seen.append((round(time.monotonic() - since, 2), status, workers))
        if ok:
            return time.monotonic() - since, seen
        if time.monotonic() >= since + HEALTHY_WITHIN:
            seen.append(("up", metrics(port).get("shoal_worker_up", {})))
            return None, seen
        await asyncio.sleep(0.1)


def mute_client(port: int) -> socket.socket:
    """A WebSocket client that shakes hands, then never reads again (so never answers a close)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(upgrade_request(port, "/?silent"))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, "mute client: connection closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head[:100]
    return sock


def random_worker(sup: int) -> int:
    return random.choice(list(wait_until(lambda: workers_by_slot(sup), 10, what="a worker").values()))


async def warm_up(port: int, clients: int) -> None:
    """`clients` probe clients that connect, relay one message to the others and leave."""
    conns = [await ws_connect(f"ws://127.0.0.1:{port}/?silent", max_queue=None) for _ in range(clients)]
    for ws in conns:
        await ws.send("say warm")
    await asyncio.sleep(0.5)
    for ws in conns:
        await ws.close()


def test_chaos(shoal):
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    srv = shoal("--handler", "probe", "--workers", str(WORKERS), "--drain-timeout", "5")
    sup = srv.proc.pid
    start = wait_until(lambda: (lambda w: w if len(w) == WORKERS else None)(workers_by_slot(sup)), 10,
                       what="both workers")
    time.sleep(0.5)
    sup_fds = fd_count(sup)
    worker_fds = max(fd_count(p) for p in start.values())
    # The baseline is a worker that has served once: the first clients fault in code pages of the
    # binary and its libraries (measured: ~2 MiB of file-backed RssFile per worker for a first wave
    # of chat clients, RssAnon +0.3 MiB heap), which are not memory the storm kept.
    run(warm_up(srv.port, 100))
    wait_until(lambda: sum(metrics(srv.port).get("shoal_connections", {}).values()) == 0, 10, what="warm-up clients gone")
    time.sleep(2.5)  # the workers' once-a-second heap trim runs after the count settles
    worker_rss = max(rss_bytes(p) for p in start.values())
    chaos = Chaos(srv.port, sup)
    report: dict = {}

    async def main():
        watcher = asyncio.create_task(chaos.watch())
        clients = [asyncio.create_task(chaos.client(i)) for i in range(CLIENTS)]
        await chaos.until(lambda: len(chaos.live) == CLIENTS, 60, f"{CLIENTS} clients connected")
        await chaos.until(lambda: all(c.worker for c in chaos.live.values()), 15, "every client's worker")
        per = {}
        for c in chaos.live.values():
            per[c.worker] = per.get(c.worker, 0) + 1
        assert len(per) == WORKERS, f"clients not spread over both workers: {per}"

        # ---- the script: at most 60 s
        t0 = time.monotonic()
        for at in (2.0, 5.0):
            await asyncio.sleep(t0 + at - time.monotonic())
            victim = random_worker(sup)
            chaos.stopped_or_killed.add(victim)
            os.kill(victim, signal.SIGKILL)
        await asyncio.sleep(t0 + 8.5 - time.monotonic())
        # Clients slow to answer the 1001 (a bad mobile link) keep the old generation draining
        # while the next SIGHUPs arrive, as in production.
        mute = [mute_client(srv.port) for _ in range(MUTE)]
        await asyncio.sleep(t0 + 9.0 - time.monotonic())
        # Three within a second: the second finds the first's old generation still draining, the
        # third follows it at once (an operator's reload run twice), so the supervisor merges it
        # with the second or ignores it while the second generation starts: two reloads in a row,
        # every time. (Spaced out, a third reload hides what the second left broken.)
        chaos.first_hup = first_hup = time.monotonic()
        for pause in (0.4, 0.0, None):
            srv.signal(signal.SIGHUP)
            chaos.last_hup = time.monotonic()
            if pause:
                # A blocking sleep: the 500 clients' tasks must not stretch the pause past the
                # issue's second (an await here took over 1 s on a loaded machine).
                time.sleep(pause)
        report["hup_spread"] = chaos.last_hup - first_hup
        # The same bound after the reloads: the cluster must be whole again before the next fault.
        report["healthz_after_reloads"] = await healthy_within(srv.port, sup, chaos.last_hup)
        await asyncio.sleep(t0 + 17.0 - time.monotonic())
        stopped = random_worker(sup)
        chaos.stopped_or_killed.add(stopped)
        os.kill(stopped, signal.SIGSTOP)
        await asyncio.sleep(12.0)
        report["stopped_replaced"] = stopped not in workers_by_slot(sup).values()
        try:
            os.kill(stopped, signal.SIGCONT)  # if the watchdog has not killed it, it resumes
        except ProcessLookupError:
            pass
        last_fault = time.monotonic()

        # ---- /healthz within 3 s, every slot running a worker
        report["healthz"] = await healthy_within(srv.port, sup, last_fault, gone=stopped)

        # ---- quiet: everyone back, traffic goes on, then the counts
        await asyncio.sleep(max(0.0, t0 + 45.0 - time.monotonic()))
        await chaos.settle(lambda: len(chaos.live) == CLIENTS, 20)  # checked below
        report["script_seconds"] = last_fault - t0
        chaos.stop_traffic.set()
        chaos.stop_connecting.set()
        end = time.monotonic()
        await watcher
        report["end_live"] = len(chaos.live)
        live = list(chaos.live.values())
        # every message to a connection open at the end has arrived (bounded wait)
        expected = expected_deliveries(chaos.conns, end)
        await chaos.settle(lambda: all(missing(r, expected) == 0 for r in live), 20, interval=1.0)  # checked below
        # wss.connections, asked on each worker, against the clients really connected
        counts = {}
        for c in live:
            if c.worker is not None and c.worker not in counts:
                await c.ws.send("count")
                reply = await asyncio.wait_for(c.replies.get(), 10)
                counts[c.worker] = reply["count"]
        report["counts"] = counts
        report["metrics_connections"] = sum(metrics(srv.port).get("shoal_connections", {}).values())
        report["expected"] = expected
        report["end"] = end
        for sock in mute:
            sock.close()
        await asyncio.gather(*(c.ws.close() for c in live), return_exceptions=True)
        await asyncio.gather(*clients)
        # the clients are gone once their workers hold no more sockets than at start
        await chaos.settle(lambda: all(fd_count(p) <= worker_fds for p in workers_by_slot(sup).values()), 15)

    run(main(), timeout=200)

    problems = []
    if srv.proc.poll() is not None:
        problems.append(f"the supervisor died (exit {srv.proc.returncode})")
    for fault in ("healthz_after_reloads", "healthz"):
        seconds, seen = report[fault]
        if seconds is None:
            problems.append(f"{fault}: /healthz not 200 with every slot running a worker within {HEALTHY_WITHIN}s; "
                            f"seen: {seen}")
    if report["hup_spread"] >= 1.0:
        problems.append(f"the three SIGHUPs took {report['hup_spread']:.2f}s (this client process is overloaded)")
    if not report["stopped_replaced"]:
        problems.append("the worker stopped for 12 s was still a worker of the supervisor (not replaced)")
    if report["end_live"] != CLIENTS:
        problems.append(f"only {report['end_live']} of {CLIENTS} clients connected at the end")
    problems += sequence_problems(chaos.conns)
    problems += loss_problems(chaos.conns, report["expected"])
    problems += close_problems(chaos, report["end"])
    wrong_counts = {w: n for w, n in report["counts"].items() if n != report["end_live"]}
    if wrong_counts or not report["counts"]:
        problems.append(f"wss.connections.count per worker {report['counts']}, clients connected {report['end_live']}")
    if report["metrics_connections"] != report["end_live"]:
        problems.append(f"/metrics shoal_connections {report['metrics_connections']}, clients connected {report['end_live']}")

    # descriptors and memory once the clients left
    if fd_count(sup) != sup_fds:
        problems.append(f"supervisor descriptors {fd_count(sup)}, {sup_fds} at start")
    now = workers_by_slot(sup)
    for slot, pid in now.items():
        if fd_count(pid) > worker_fds:
            problems.append(f"worker slot {slot} holds {fd_count(pid)} descriptors, a worker at start {worker_fds}")
        if rss_bytes(pid) > worker_rss * (1 + RSS_SLACK):
            problems.append(f"worker slot {slot} RSS {rss_bytes(pid) / 2**20:.1f} MiB after the clients left, "
                            f"{worker_rss / 2**20:.1f} MiB at start")
    with open(srv.log_path, errors="replace") as f:
        log = f.read()
    closes = collections.Counter(c.close_code for c in chaos.conns if c.closed and c.closed <= report["end"])
    print(f"chaos: {log.count('reload: starting')} reloads, {log.count('SIGHUP ignored')} SIGHUP ignored; "
          f"script {report['script_seconds']:.1f}s; client loop lag up to {chaos.max_lag:.2f}s, client CPU "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_utime:.0f}s; {len(chaos.conns)} connections, "
          f"{chaos.failed_connects} failed connects, closes {dict(closes)}; {sum(len(c.sent) for c in chaos.conns)} "
          f"messages sent, {sum(len(v) for c in chaos.conns for v in c.got.values())} received, "
          f"{sum(len(v) for e in report['expected'].values() for v in e.values())} deliveries required; "
          f"/healthz 200 after {report['healthz_after_reloads'][0]} / {report['healthz'][0]} s; "
          f"wss.connections.count {report['counts']}")
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- the checks


def expected_deliveries(conns: list[Conn], end: float) -> dict[str, dict[str, set[int]]]:
    """{receiver tag: {sender tag: seqs}}: the messages a receiver must have, by the rule in
    the module's doc."""
    out: dict[str, dict[str, set[int]]] = {c.tag: {} for c in conns}
    for s in conns:
        s_until = s.closed if s.closed is not None else end
        for seq, t in enumerate(s.sent):
            horizon = min(t + WINDOW, end)
            if s_until < horizon:
                continue
            for r in conns:
                if r is s or r.opened + SETTLE > t:
                    continue
                if (r.closed if r.closed is not None else end) >= horizon:
                    out[r.tag].setdefault(s.tag, set()).add(seq)
    return out


def missing(r: Conn, expected) -> int:
    return sum(len(seqs.difference(r.got.get(tag, ()))) for tag, seqs in expected[r.tag].items())


def sequence_problems(conns: list[Conn]) -> list[str]:
    """Whatever a connection got from one sender is one unbroken run: no gap, repeat or swap."""
    problems = []
    for r in conns:
        for tag, seqs in r.got.items():
            if seqs != list(range(seqs[0], seqs[0] + len(seqs))):
                problems.append(f"{r.tag} got {tag}'s messages as {seqs[:30]} (not one run in order)")
    return problems[:20] + ([f"... {len(problems) - 20} more"] if len(problems) > 20 else [])


def loss_problems(conns: list[Conn], expected) -> list[str]:
    lost = []
    for r in conns:
        for tag, seqs in expected[r.tag].items():
            lost += [(r, tag, seq) for seq in sorted(seqs.difference(r.got.get(tag, ())))]
    if not lost:
        return []
    by_conn = {c.tag: c for c in conns}
    lines = [f"{len(lost)} messages lost between connections that both stayed open for {WINDOW}s after the send"]
    for r, tag, seq in lost[:10]:
        s = by_conn[tag]
        lines.append(f"  {tag}#{seq} (worker {s.worker}, sent at +{s.sent[seq] - s.opened:.1f}s of it) "
                     f"never reached {r.tag} (worker {r.worker})")
    return lines


def close_problems(chaos: Chaos, end: float) -> list[str]:
    """A connection ends only with its worker: with 1001 once reloads began (a reload drains with
    1001), or without a close frame on a worker this test killed or stopped."""
    problems = []
    for c in chaos.conns:
        if c.closed is None or c.closed > end:
            continue
        if c.close_code == 1001:
            if c.closed < chaos.first_hup:
                problems.append(f"{c.tag} (worker {c.worker}) closed with 1001 before any reload")
        elif c.close_code is not None:
            problems.append(f"{c.tag} (worker {c.worker}) closed with {c.close_code}")
        elif c.worker is not None and c.worker not in chaos.stopped_or_killed:
            problems.append(f"{c.tag} lost its TCP connection (no close frame) at +{c.closed - c.opened:.1f}s "
                            f"though its worker {c.worker} was neither killed nor stopped")
    return problems[:20]
