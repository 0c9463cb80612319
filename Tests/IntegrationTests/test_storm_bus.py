"""The bus under pressure (issue 19): a worker that produces bus messages faster than a peer takes
them holds its clients' input (flow control) instead of dropping what passes the channel's 64 MiB
cap. What a user would notice: every broadcast reaches every client, `shoal_bus_drops_total` stays
0, and the sender is slowed down (`shoal_bus_holds_total` counts the holds), not cut off.

The peer is made slow for sure by stopping it (SIGSTOP) for 3 s, shorter than the watchdog time
(10 s), after which a peer that takes nothing is replaced and stops holding anyone. Before flow
control the sender's worker queued 64 MiB for the stopped one and dropped the rest."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import struct

from cluster_helpers import metrics, owners_of, owners_of_clients, wait_workers
from helpers import connect, run

MESSAGE = 1 << 20  # one broadcast: 1 MiB, 64 bus fragments
COUNT = 160  # 160 MiB for a peer that does not read: past the 64 MiB cap
STOPPED_S = 3.0


def totals(port: int) -> dict[str, float]:
    m = metrics(port)
    return {k: sum(m.get(k, {}).values()) for k in ("shoal_bus_drops_total", "shoal_bus_holds_total",
                                                     "shoal_watchdog_kills_total", "shoal_worker_restarts_total")}


async def raw_sender(port: int):
    """A client that writes prebuilt frames (mask key 0, so no masking cost: a Python client masking
    1 MiB frames could not outrun the server) and reads back what it is sent."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    w.write(f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
    assert b" 101 " in head.split(b"\r\n", 1)[0], head
    return r, w


def test_a_stopped_peer_holds_the_sender_instead_of_losing_broadcasts(shoal):
    # The clients may fall behind by all of it: the slow-consumer policy is not what is tested here.
    srv = shoal("--handler", "broadcast", "--workers", "2", "--max-backpressure", str(2 * COUNT * MESSAGE),
                "--log-level", "notice")
    pids = wait_workers(srv.proc.pid, range(2))

    async def scenario():
        r, w = await raw_sender(srv.port)
        sender_pid = owners_of(srv.port, [w.get_extra_info("sockname")[1]], list(pids.values()))
        sender_pid = next(iter(sender_pid.values()))
        receivers = [await connect(srv.port, max_queue=None, max_size=None) for _ in range(16)]
        owners = await owners_of_clients(srv.port, receivers, list(pids.values()))
        others = [c for c, p in zip(receivers, owners) if p != sender_pid]
        assert others and sender_pid, f"every client on one worker: sender {sender_pid}, receivers {owners}"
        receiver, receiver_pid = others[0], next(p for p in owners if p != sender_pid)
        for c in receivers:
            if c is not receiver:
                await c.close()
        payload = os.urandom(MESSAGE)
        frame = b"\x82\xff" + struct.pack(">Q", MESSAGE) + b"\x00\x00\x00\x00" + payload
        echoed = asyncio.create_task(r.readexactly(COUNT * (10 + MESSAGE)))  # its own broadcasts

        async def send_all():
            for _ in range(COUNT):
                w.write(frame)
                await w.drain()

        os.kill(receiver_pid, signal.SIGSTOP)
        try:
            sending = asyncio.create_task(send_all())
            # (no /metrics here: the stopped worker's listener may be the one to get the request)
            await asyncio.wait({sending}, timeout=STOPPED_S)
        finally:
            os.kill(receiver_pid, signal.SIGCONT)
        await asyncio.wait_for(sending, 60)
        got = 0
        while got < COUNT:
            try:
                message = await asyncio.wait_for(receiver.recv(), 20)
            except asyncio.TimeoutError:
                break
            assert message == payload, f"broadcast {got + 1} arrived changed ({len(message)} bytes)"
            got += 1
        await asyncio.wait_for(echoed, 60)
        w.close()
        await receiver.close()
        return got

    got = run(scenario(), timeout=150)
    t = totals(srv.port)
    print(f"\nbus flow: {got} of {COUNT} broadcasts of 1 MiB reached the stopped worker's client; {t}")
    assert t["shoal_bus_drops_total"] == 0, f"bus messages dropped: {t}"
    assert got == COUNT, f"the client of the stopped worker got {got} of {COUNT} broadcasts; {t}"
    assert t["shoal_bus_holds_total"] >= 1, f"the sender was never held: {t}"
    assert t["shoal_watchdog_kills_total"] == 0 and t["shoal_worker_restarts_total"] == 0, t
