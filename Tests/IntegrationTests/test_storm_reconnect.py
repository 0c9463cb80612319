"""Reconnect storms (issue 19, item 6): N clients held by a 2-worker cluster all reconnect at the
same instant, once after a reload (SIGHUP: the old workers close every client with 1001) and once
after a crash (kill -9 of one worker: its clients see their TCP connection die). What a user
would notice, and what is asserted:

- every client is back in after each storm, and its echo answers (nobody left out);
- no client ever gets an answer other than 101 (no 5xx, no 429): nothing the configured limits
  would explain is set anywhere near N, so any refusal is a bug;
- the reload kills no worker (the watchdog stays quiet); the crash costs exactly the one.

A client reconnects at once, without back-off, whenever its connection ends: a close frame, an
EOF, a reset, or a connect that fails while the crashed worker's listener goes away (counted,
and retried; a refusal by HTTP status is never retried). Raw asyncio clients from 127.0.0.1 (the
per-address cap, 8,192 per worker, is 4x N). Bounded: about 20 s on an idle machine, at most 60 s."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import time

from cluster_helpers import metrics, owners_of, wait_workers
from helpers import run

CLIENTS = int(os.environ.get("SHOAL_RECONNECT_CLIENTS", "2000"))
PHASE_S = 15.0  # bound of each storm; on an idle machine each takes 1-3 s


class Client:
    def __init__(self, i: int):
        self.opens = 0  # 101s received
        self.open = False
        self.refusals: list[str] = []  # status lines other than 101
        self.connect_errors = 0
        self.writer: asyncio.StreamWriter | None = None


async def upgrade(c: Client, port: int):
    """One connection: returns (reader, writer) after a 101, or None after a refusal or an error."""
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        c.connect_errors += 1
        return None
    key = base64.b64encode(os.urandom(16)).decode()
    w.write(f"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    try:
        head = await r.readuntil(b"\r\n\r\n")
    except (OSError, asyncio.IncompleteReadError):
        c.connect_errors += 1  # the worker died between accept and answer
        w.close()
        return None
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    if " 101 " not in status:
        c.refusals.append(status)
        w.close()
        return None
    return r, w


async def reconnecting_client(c: Client, port: int, stop: asyncio.Event) -> None:
    """Stays connected until `stop`: reconnects at once whenever the connection ends."""
    while not stop.is_set():
        conn = await upgrade(c, port)
        if conn is None:
            if c.refusals:
                return  # refused by status: a failure the test reports, not retried
            await asyncio.sleep(0.01)
            continue
        r, w = conn
        c.writer, c.open = w, True
        c.opens += 1
        try:
            # any frame from the server here is its close (1001) or the TCP end: reconnect
            reading = asyncio.ensure_future(r.read(1 << 16))
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
            reading.cancel()
            stopping.cancel()
        finally:
            c.open = False
            w.close()


async def echo_once(port: int) -> bytes:
    """A fresh client's masked text frame comes back: the cluster serves after the storm."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    await r.readuntil(b"\r\n\r\n")
    w.write(bytes([0x81, 0x84, 0, 0, 0, 0]) + b"ping")
    frame = await r.readexactly(6)
    w.close()
    return frame[2:]


def connections(port: int) -> int:
    return int(sum(metrics(port).get("shoal_connections", {}).values()))


def kills(port: int) -> tuple[float, float]:
    m = metrics(port)
    return (sum(m.get("shoal_watchdog_kills_total", {}).values()), sum(m.get("shoal_worker_restarts_total", {}).values()))


def test_clients_reconnecting_at_once_after_a_reload_and_a_crash_all_get_in(shoal):
    srv = shoal("--handler", "echo", "--workers", "2", "--drain-timeout", "5", "--idle-timeout", "0",
                "--log-level", "notice")
    sup = srv.proc.pid
    first = wait_workers(sup, [0, 1])
    clients = [Client(i) for i in range(CLIENTS)]

    async def all_in(what: str, opens_at_least, t0: float) -> float:
        """Waits (bounded) until every client is open with enough opens and /metrics counts them."""
        while time.monotonic() - t0 < PHASE_S:
            refused = [c for c in clients if c.refusals]
            assert not refused, (f"{what}: {len(refused)} clients refused, first: {refused[0].refusals[:3]}\n"
                                 f"{srv.log(20)}")
            if all(c.open and c.opens >= opens_at_least(c) for c in clients) and \
                    await asyncio.to_thread(connections, srv.port) == CLIENTS:
                return time.monotonic() - t0
            await asyncio.sleep(0.2)
        out = [c for c in clients if not (c.open and c.opens >= opens_at_least(c))]
        raise AssertionError(f"{what}: {len(out)} of {CLIENTS} clients not back in within {PHASE_S:.0f} s "
                             f"(connect errors: {sum(c.connect_errors for c in clients)}); "
                             f"/metrics counts {connections(srv.port)}\n{srv.log(20)}")

    async def storms():
        stop = asyncio.Event()
        tasks = [asyncio.create_task(reconnecting_client(c, srv.port, stop)) for c in clients]
        try:
            await all_in("first connect", lambda c: 1, time.monotonic())
            assert kills(srv.port) == (0, 0)

            # 1. reload: the old workers close every client with 1001; all reconnect at once
            t0 = time.monotonic()
            srv.signal(signal.SIGHUP)
            await all_in("after the reload", lambda c: 2, t0)
            now = await asyncio.to_thread(wait_workers, sup, [2, 3])
            assert not set(now.values()) & set(first.values())
            assert kills(srv.port) == (0, 0), f"workers killed by the reload: {kills(srv.port)}\n{srv.log(20)}"
            assert await echo_once(srv.port) == b"ping"

            # 2. crash: kill -9 of one worker; its clients reconnect at once (to the survivor until
            # the slot's new worker listens)
            ports = {id(c): c.writer.get_extra_info("sockname")[1] for c in clients}
            owner = await asyncio.to_thread(owners_of, srv.port, list(ports.values()), list(now.values()))
            victims = [c for c in clients if owner[ports[id(c)]] == now[2]]
            assert victims and len(victims) < CLIENTS, f"{len(victims)} of {CLIENTS} clients on the worker to kill"
            hit = {id(c) for c in victims}
            before = {id(c): c.opens + (id(c) in hit) for c in clients}
            t0 = time.monotonic()
            os.kill(now[2], signal.SIGKILL)
            await all_in("after the crash", lambda c: before[id(c)], t0)
            watchdog, restarts = kills(srv.port)
            assert (watchdog, restarts) == (0, 1), f"watchdog kills, restarts: {watchdog, restarts}\n{srv.log(20)}"
            assert await echo_once(srv.port) == b"ping"
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)

    run(storms(), timeout=60)
    reconnected = sum(c.opens for c in clients)
    assert reconnected >= 2 * CLIENTS, reconnected
