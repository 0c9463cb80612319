"""Storms (issue 19): thousands of chat clients join a 12-worker cluster at once, then all leave
at once. The 4D chat handler sends "New client connected" to every other client on each join, so
one storm of N clients is about N²/2 sends, most of them across the bus.

What a user would notice, and what is asserted:
- every client gets its 101 and its welcome (no 5xx, nobody lost);
- the joins each client sees: when A's welcome arrived before B even sent its upgrade request,
  A was in the registry when B's onOpen looped over `wss.connections`, so A must get B's join
  (a lower bound per client, exact); no client gets more than N - 1; and of two clients at least
  one was registered before the other's onOpen ran, so the total is at least the N(N-1)/2 pairs;
- no worker is killed or restarted, no bus message is dropped (the bus holds a worker's clients
  while a peer is behind instead), the connection count returns to 0;
- the workers' RSS returns within 64 MB of its pre-storm total within 15 s of the last client
  leaving (on failure the message says what holds it, from /proc/PID/smaps).

Raw asyncio clients on 127.0.0.x source addresses (one address's ephemeral ports would not be
the limit, and per-address caps stay far away); each counts the exact bytes of the frames."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import time

from cluster_helpers import metrics, wait_workers
from helpers import run

WORKERS = 12
CLIENTS = int(os.environ.get("SHOAL_STORM_CLIENTS", "5000"))
WELCOME = b"\x81\x14Welcome on the chat!"
JOIN = b"\x81\x14New client connected"
RSS_SLACK_MB = 64
RSS_WAIT_S = 15.0
RECEIVE_BUFFERS_KB = 1024 * 16  # the default --receive-buffers 1024 of 16 KiB


class Client:
    def __init__(self, i: int):
        self.i = i
        self.source = f"127.0.0.{2 + i % 200}"
        self.sent_at = 0.0  # monotonic time the upgrade request was written
        self.welcome_at = 0.0  # monotonic time the welcome frame was read
        self.status = ""
        self.joins = 0
        self.error = ""


async def chat_client(c: Client, port: int, leave: asyncio.Event) -> None:
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, local_addr=(c.source, 0)), 30)
    except (OSError, asyncio.TimeoutError) as e:
        c.error = f"connect: {e!r}"
        return
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        c.sent_at = time.monotonic()
        w.write(f"GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 40)
        c.status = head.split(b"\r\n", 1)[0].decode(errors="replace")
        if " 101 " not in c.status:
            return
        tail = b""
        reader = asyncio.ensure_future(r.read(1 << 16))
        waiter = asyncio.ensure_future(leave.wait())
        while True:
            done, _ = await asyncio.wait({reader, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if reader not in done:
                break
            data = reader.result()
            if not data:
                c.error = "server closed the connection"
                break
            buf = tail + data
            if not c.welcome_at and WELCOME in buf:
                c.welcome_at = time.monotonic()
            c.joins += buf.count(JOIN)
            tail = buf[-(len(JOIN) - 1):]  # shorter than a frame: never counted twice
            reader = asyncio.ensure_future(r.read(1 << 16))
        reader.cancel()
        waiter.cancel()
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
        c.error = f"{type(e).__name__}: {e}"
    finally:
        w.close()  # all leave at once: TCP close without a close handshake, as vanished clients


def rss_mb(pids) -> float:
    total = 0
    for p in pids:
        with open(f"/proc/{p}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def memory_breakdown(pids) -> str:
    """Resident MB of the workers by kind of mapping (heap and anonymous, the receive-buffer
    region, files), to say what holds memory after a storm."""
    kinds: dict[str, int] = {}
    for p in pids:
        with open(f"/proc/{p}/smaps") as f:
            name, size_kb = "", 0
            for line in f:
                parts = line.split()
                if re.match(r"^[0-9a-f]+-[0-9a-f]+$", parts[0]):  # a mapping's header line
                    name = parts[5] if len(parts) > 5 else ""
                elif parts[0] == "Size:":
                    size_kb = int(parts[1])
                elif parts[0] == "Rss:":
                    if name == "[heap]":
                        kind = "heap"
                    elif name.startswith("/"):
                        kind = "files"
                    elif name == "" and size_kb == RECEIVE_BUFFERS_KB:
                        kind = "16 MiB receive buffers"
                    else:
                        kind = name or "other anonymous"
                    kinds[kind] = kinds.get(kind, 0) + int(parts[1])
    return ", ".join(f"{k} {v / 1024:.0f} MB" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))


def kills(port: int) -> dict[str, float]:
    m = metrics(port)
    return {name: sum(m.get(name, {}).values())
            for name in ("shoal_worker_restarts_total", "shoal_watchdog_kills_total") if name in m}


async def warm_up(port: int, n: int) -> None:
    clients = [Client(i) for i in range(n)]
    leave = asyncio.Event()
    tasks = [asyncio.create_task(chat_client(c, port, leave)) for c in clients]
    for _ in range(200):
        if all(c.welcome_at or c.error for c in clients):
            break
        await asyncio.sleep(0.05)
    leave.set()
    await asyncio.gather(*tasks)
    assert all(c.welcome_at for c in clients), [c.error for c in clients if not c.welcome_at][:3]


def test_chat_storm_join_and_leave_at_once(shoal):
    srv = shoal("--handler", "chat", "--path", "/chat", "--workers", str(WORKERS), "--log-level", "notice")
    pids = sorted(wait_workers(srv.proc.pid, range(WORKERS)).values())
    # Baseline after a few clients came and went (as Benchmarks/scripts/race.py's idle warm-up):
    # the code pages of the handshake and chat paths are paged in once, they are not the storm's.
    run(warm_up(srv.port, 4 * WORKERS))
    time.sleep(1.0)
    rss_before = rss_mb(pids)
    resident_before = memory_breakdown(pids)
    assert set(kills(srv.port).values()) <= {0}
    clients = [Client(i) for i in range(CLIENTS)]
    n = CLIENTS

    async def storm():
        leave = asyncio.Event()
        tasks = [asyncio.create_task(chat_client(c, srv.port, leave)) for c in clients]
        t0 = time.monotonic()
        # everyone in: bounded wait for every 101 + welcome (or a failure)
        while time.monotonic() - t0 < 45 and sum(bool(c.welcome_at or c.error or (c.status and " 101 " not in c.status))
                                               for c in clients) < n:
            await asyncio.sleep(0.25)
        t_open = time.monotonic() - t0
        bad = [c for c in clients if not c.welcome_at]
        assert not bad, (f"{len(bad)} of {n} clients without 101 + welcome after {t_open:.0f}s; first: "
                         + "; ".join(f"#{c.i} {c.status!r} {c.error}" for c in bad[:5]))
        # every client's lower bound of joins reached (bounded wait), and the totals settled
        sent = sorted(c.sent_at for c in clients)
        import bisect
        need = {c.i: n - bisect.bisect_right(sent, c.welcome_at) for c in clients}
        last = -1
        while time.monotonic() - t0 < 75:
            total = sum(c.joins for c in clients)
            if total == last and all(c.joins >= need[c.i] for c in clients):
                break
            last = total
            await asyncio.sleep(1.0)
        short = [c for c in clients if c.joins < need[c.i]]
        assert not short, (f"{len(short)} clients missed joins of clients that came after their welcome; first: "
                           + "; ".join(f"#{c.i} got {c.joins}, at least {need[c.i]}" for c in short[:5]))
        over = [c for c in clients if c.joins > n - 1]
        assert not over, f"{len(over)} clients got more joins than there are other clients: #{over[0].i} {over[0].joins}"
        total = sum(c.joins for c in clients)
        assert total >= n * (n - 1) // 2, f"{total} joins delivered for {n * (n - 1) // 2} pairs"
        rss_peak = rss_mb(pids)
        leave.set()
        await asyncio.gather(*tasks)
        lost = [c for c in clients if c.error]
        assert not lost, f"{len(lost)} clients lost before leaving; first: #{lost[0].i} {lost[0].error}"
        return t_open, total, rss_peak, time.monotonic()

    t_open, total, rss_peak, left_at = run(storm(), timeout=150)
    assert set(kills(srv.port).values()) <= {0}, f"workers killed during the storm: {kills(srv.port)}\n{srv.log()}"
    drops = sum(metrics(srv.port).get("shoal_bus_drops_total", {}).values())
    assert drops == 0, f"{drops:.0f} bus messages dropped during the storm"

    def open_connections():
        return sum(metrics(srv.port).get("shoal_connections", {}).values())
    deadline = left_at + 30
    while open_connections() != 0 and time.monotonic() < deadline:
        time.sleep(0.25)
    assert open_connections() == 0
    while rss_mb(pids) > rss_before + RSS_SLACK_MB and time.monotonic() < left_at + RSS_WAIT_S:
        time.sleep(0.5)
    rss_after = rss_mb(pids)
    assert sorted(wait_workers(srv.proc.pid, range(WORKERS)).values()) == pids, "a worker was replaced"
    assert set(kills(srv.port).values()) <= {0}, f"workers killed after the storm: {kills(srv.port)}"
    print(f"\nstorm: {n} clients, {WORKERS} workers: all open in {t_open:.1f}s, {total} joins "
          f"({n * (n - 1) // 2} pairs); workers' RSS {rss_before:.0f} MB before, {rss_peak:.0f} MB at the peak, "
          f"{rss_after:.0f} MB after all left")
    assert rss_after <= rss_before + RSS_SLACK_MB, (
        f"workers' RSS {rss_after:.0f} MB {RSS_WAIT_S:.0f}s after the storm, {rss_before:.0f} MB before "
        f"(peak {rss_peak:.0f} MB); resident before: {resident_before}; now: {memory_breakdown(pids)}")
