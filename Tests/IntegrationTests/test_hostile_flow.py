"""Hostile clients that stop reading or go silent (issue 5): slow consumers of a broadcast
stream (closed 1008, or kept with their messages dropped and counted), an echo client that
never reads (paused by TCP, not closed), and idle connections (ping, then close 1001 if
nothing comes back). Well-behaved clients beside them must get every message, in order.

Every wait is bounded; no duration decides an outcome except generous deadlines."""

from __future__ import annotations

import asyncio
import selectors
import struct
import threading
import time

from cluster_helpers import await_until
from hostile_helpers import MiB, Guard, expect_close_code, metric_present, metric_total, serve, tree_rss
from helpers import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, T, RawWS, client_frame, connect, read_frame, recv, run

BACKPRESSURE = 1 * MiB  # --max-backpressure in the broadcast cases
N, SIZE, WINDOW = 1000, 16 * 1024, 16  # 16 MiB of broadcast; at most 256 KiB unread by a good reader
SMALL_RCVBUF = 4096  # the non-reading client's receive buffer (the kernel then holds little for it)


def stream_message(i: int) -> str:
    return f"{i:08d}".ljust(SIZE, "m")


def seq_of(payload: bytes) -> int:
    assert len(payload) == SIZE and payload == stream_message(int(payload[:8])).encode(), payload[:40]
    return int(payload[:8])


async def broadcast_stream(port: int):
    """Two good clients; the first sends N messages, never more than WINDOW ahead of what both
    have received (so neither is ever a slow consumer); both must get all N, in order."""
    a = await connect(port, max_size=None, max_queue=None)
    b = await connect(port, max_size=None, max_queue=None)
    got = [0, 0]

    async def reader(k, ws):
        while got[k] < N:
            m = await recv(ws)
            assert m == stream_message(got[k]), f"reader {k}: message {got[k]} wrong or out of order: {m[:40]!r}"
            got[k] += 1
    readers = [asyncio.create_task(reader(0, a)), asyncio.create_task(reader(1, b))]
    try:
        for i in range(N):
            deadline = time.monotonic() + T
            while i - min(got) >= WINDOW:
                done = [t for t in readers if t.done()]
                if done:
                    done[0].result()
                assert time.monotonic() < deadline, f"good readers stuck at {got} (message {i} to send)"
                await asyncio.sleep(0.001)
            await a.send(stream_message(i))
        await asyncio.wait_for(asyncio.gather(*readers), 3 * T)
        return a, b
    except BaseException:
        for t in readers:
            t.cancel()
        await a.close()
        await b.close()
        raise


def drain(ws: RawWS, until) -> tuple[list[int], list]:
    """Read the non-reader's backlog: stream message numbers in order, plus what ended it
    (the frame for which until(frame) is true)."""
    seqs = []
    for _ in range(10 * N):
        f = read_frame(ws)
        if until(f):
            return seqs, f
        assert f.opcode == OP_TEXT and f.fin, f"unexpected frame {f.opcode} {f.payload[:40]!r}"
        seqs.append(seq_of(f.payload))
    raise AssertionError("no end of the backlog")


def test_broadcast_slow_consumer_closed_1008(shoal):
    """A client that never reads while two others receive a 16 MiB broadcast stream: once its
    queue would pass --max-backpressure it is closed 1008 "slow consumer"; what it gets, when it
    finally reads, is a whole-frame prefix of the stream and the close frame. The others get
    every message in order. (--close-timeout 30: the server waits for the slow client's answer
    long enough for it to read its backlog; the default would drop TCP after 2 s.)"""
    srv = serve(shoal, "--handler", "broadcast", "--workers", "1", "--max-backpressure", str(BACKPRESSURE),
                "--close-timeout", "30")
    with Guard(srv, echo=False):
        slow = RawWS(srv.port, rcvbuf=SMALL_RCVBUF)  # upgraded, then never reads
        slow.sock.settimeout(3 * T)

        async def main():
            a, b = await broadcast_stream(srv.port)
            assert metric_present(srv.port, "shoal_slow_consumer_total", action="close") == 1
            assert metric_present(srv.port, "shoal_slow_consumer_total", action="drop") == 0
            seqs, close = await asyncio.to_thread(drain, slow, lambda f: f.opcode == OP_CLOSE)
            assert close.close_code == 1008 and "slow" in close.close_reason.lower(), \
                f"close {close.close_code} {close.close_reason!r}"
            assert seqs == list(range(len(seqs))) and len(seqs) < N, (len(seqs), seqs[:5], seqs[-5:])
            slow.send(client_frame(OP_CLOSE, close.payload[:2]))
            assert await asyncio.to_thread(slow.read_until_close) == b""
            slow.close()  # the server lingers (up to --close-timeout) for our FIN after its own
            await await_until(lambda: metric_total(srv.port, "shoal_connections") == 2, T,
                              what="the slow consumer gone from shoal_connections")
            await a.close()
            await b.close()
        try:
            run(main(), timeout=120)
        finally:
            slow.close()


def test_broadcast_slow_consumer_dropped(shoal):
    """--slow-consumer drop: the client that does not read stays connected; what would overflow
    its queue is dropped and counted; when it reads again it gets whole messages, in order,
    with gaps, and its connection still works."""
    srv = serve(shoal, "--handler", "broadcast", "--workers", "1", "--max-backpressure", str(BACKPRESSURE),
                "--slow-consumer", "drop")
    with Guard(srv, echo=False):
        slow = RawWS(srv.port, rcvbuf=SMALL_RCVBUF)
        slow.sock.settimeout(3 * T)

        async def main():
            a, b = await broadcast_stream(srv.port)
            dropped = metric_present(srv.port, "shoal_slow_consumer_total", action="drop")
            assert dropped > 0
            assert metric_present(srv.port, "shoal_slow_consumer_total", action="close") == 0
            assert metric_total(srv.port, "shoal_connections") == 3
            # the slow client reads again; markers are sent until one reaches it (its queue
            # must drain first, until then they may be dropped too)
            task = asyncio.create_task(asyncio.to_thread(drain, slow, lambda f: f.payload.startswith(b"end")))
            for k in range(200):
                if task.done():
                    break
                await a.send(f"end {k}")
                await asyncio.sleep(0.05)
            seqs, end = await asyncio.wait_for(task, 3 * T)
            assert end.opcode == OP_TEXT, end
            assert seqs == sorted(set(seqs)) and len(seqs) < N, (len(seqs), seqs[:5], seqs[-5:])
            assert metric_present(srv.port, "shoal_slow_consumer_total", action="drop") >= N - len(seqs)
            slow.send_close(1000)
            expect_close_code(slow, 1000)
            await a.close()
            await b.close()
        try:
            run(main(), timeout=120)
        finally:
            slow.close()


def test_echo_client_that_never_reads_is_paused_not_closed(shoal):
    """A client floods the echo handler and never reads: once its send queue is full the
    server stops reading from it (TCP then stops the client), it does not close it, does not
    buffer the flood, and the good client keeps echoing. When it reads again it gets every
    echo, in order."""
    srv = serve(shoal, "--handler", "echo", "--workers", "1", "--max-backpressure", str(256 * 1024))
    frame_size, cap = 64 * 1024, 1024  # at most 64 MiB: far more than kernel buffers + backpressure
    # Tolerance 48 MiB, not 32: while a pause takes effect, what the receive ring already holds
    # for the socket (up to the ring, 16 MiB) is kept as pending input, copied again when reading
    # pauses anew during the drain, and glibc keeps the freed heap; measured: up to +33 MiB after
    # one hog (no growth over ten hogs in a row, so not a leak).
    with Guard(srv, tolerance=48 * MiB) as g:
        hog = RawWS(srv.port, rcvbuf=SMALL_RCVBUF)

        def frame(i: int) -> bytes:
            return client_frame(OP_BINARY, struct.pack("!Q", i) * (frame_size // 8))

        hog.sock.setblocking(False)
        sel = selectors.DefaultSelector()
        sel.register(hog.sock, selectors.EVENT_WRITE)
        sent, pending, stalled = 0, memoryview(frame(0)), False
        deadline = time.monotonic() + 6 * T
        while sent < cap and time.monotonic() < deadline:
            try:
                pending = pending[hog.sock.send(pending):]
            except BlockingIOError:
                if not sel.select(1.0):  # nothing accepted for a second: the server stopped reading
                    stalled = True
                    break
                continue
            if not pending:
                sent += 1
                pending = memoryview(frame(sent))
        sel.close()
        assert stalled, f"{sent} x 64 KiB sent and the server kept reading: it buffers the flood"
        try:
            g.good.wait_more(50)
            rss = tree_rss(srv.proc.pid)
            assert rss < g.baseline + 32 * MiB, f"server RSS {rss >> 20} MiB while the hog waits (baseline {g.baseline >> 20})"
            assert metric_total(srv.port, "shoal_connections") == 2, "the hog was closed"
            # read again: every echo, in order, then the rest of the half-sent frame, then a last one
            hog.sock.settimeout(3 * T)
            partial = len(pending) < len(frame(sent))
            want = sent + (1 if partial else 0)
            result = {}

            def reader():
                try:
                    for i in range(want):
                        f = read_frame(hog)
                        assert f.opcode == OP_BINARY and f.payload == struct.pack("!Q", i) * (frame_size // 8), \
                            f"echo {i}: opcode {f.opcode}, {f.payload[:16]!r}"
                    f = read_frame(hog)
                    assert (f.opcode, f.payload) == (OP_TEXT, b"last"), f
                    result["ok"] = True
                except BaseException as e:  # noqa: BLE001 - reported below
                    result["error"] = e
            t = threading.Thread(target=reader, daemon=True)
            t.start()
            if partial:
                hog.sock.sendall(pending)
            hog.send(client_frame(OP_TEXT, b"last"))
            t.join(6 * T)
            assert not t.is_alive(), "the hog's echoes did not all come back"
            if "error" in result:
                raise result["error"]
            hog.send_close(1000)
            expect_close_code(hog, 1000)
        finally:
            hog.close()
        g.good.wait_more()


IDLE, PONG = 1, 3  # a 3 s pong deadline: the answering clients are never late by accident


def test_idle_timeout(shoal):
    """--idle-timeout 1 --pong-timeout 3 on two workers: a raw client that never answers gets a
    ping, then close 1001 (reason about idleness); a raw client that answers pings and a
    websockets client (which answers them itself) stay through several idle periods and
    still echo; only the first is counted in shoal_idle_timeouts_total."""
    srv = serve(shoal, "--handler", "echo", "--workers", "2", "--idle-timeout", str(IDLE), "--pong-timeout", str(PONG))
    with Guard(srv, workers=2):
        silent = RawWS(srv.port)
        ponger = RawWS(srv.port)
        silent.sock.settimeout(IDLE + PONG + T)
        ponger.sock.settimeout(IDLE + T)

        def silent_case():
            f = read_frame(silent)
            assert f.opcode == OP_PING, f"expected a ping first, got {f}"
            f = read_frame(silent)
            assert f.opcode == OP_CLOSE and f.close_code == 1001, f"expected close 1001, got {f.close_code} {f.payload!r}"
            assert "idle" in f.close_reason.lower(), f.close_reason
            silent.send(client_frame(OP_CLOSE, f.payload[:2]))
            assert silent.read_until_close() == b""

        def ponger_case():
            pings = 0
            for _ in range(100):
                f = read_frame(ponger)
                assert f.opcode == OP_PING, f"answering client got {f.opcode} {f.payload!r}"
                ponger.send(client_frame(OP_PONG, f.payload))
                pings += 1
                if pings == 3:
                    break
            ponger.send_text("still here")
            assert ponger.recv_frame().payload == b"still here"
            ponger.send_close(1000)
            expect_close_code(ponger, 1000)

        async def main():
            async with await connect(srv.port) as w:
                await asyncio.gather(asyncio.to_thread(silent_case), asyncio.to_thread(ponger_case))
                # three idle periods went by (three pings): w stayed because websockets answered
                await w.send("websockets client")
                assert await recv(w) == "websockets client"
        try:
            run(main(), timeout=60)
        finally:
            silent.close()
            ponger.close()
        assert metric_present(srv.port, "shoal_idle_timeouts_total") == 1
