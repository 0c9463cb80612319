"""Helpers for the hostile-client suite (test_hostile*.py): what every hostile case checks
afterwards (the `Guard`), a well-behaved echo client running beside the attack, server memory
from /proc, labelled /metrics samples, and raw sockets that misbehave.

Every loop has a count and a deadline; nothing here asserts on durations."""

from __future__ import annotations

import functools
import os
import re
import selectors
import socket
import struct
import subprocess
import threading
import time

import pytest

from cluster_helpers import wait_until, workers_by_slot
from conftest import group_members, shoal_bin
from helpers import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, T, Frame, RawConn, RawWS, client_frame,
                     close_payload, http_get, read_frame)

MiB = 1024 * 1024
# Server memory must come back under baseline + this once the hostile sockets are gone
# (generous: allocator caches, a receive-buffer ring touched for the first time).
RSS_TOLERANCE = 32 * MiB

# ---------------------------------------------------------------- the binary's options


@functools.cache
def _serve_help() -> str:
    p = subprocess.run([shoal_bin(), "serve", "--help"], capture_output=True, text=True, timeout=30)
    return p.stdout + p.stderr


def serve(shoal, *args: str):
    """shoal(*args), failing with one clear line (instead of a start-up error and a teardown
    error) when this binary does not have one of the --options used yet."""
    missing = [a for a in dict.fromkeys(args) if a.startswith("--") and not re.search(re.escape(a) + r"(?![\w-])", _serve_help())]
    if missing:
        pytest.fail(f"this shoal binary has no {', '.join(missing)} option (server side not there yet)", pytrace=False)
    return shoal(*args)


# ---------------------------------------------------------------- processes and memory


def group_pids(pgid: int) -> list[int]:
    """Live processes of a process group (the fixture starts each server in its own session)."""
    return [int(m.split()[0]) for m in group_members(pgid)]


def tree_rss(pgid: int) -> int:
    """VmRSS summed over the server's process group, in bytes."""
    total = 0
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


def healthz(port: int) -> int:
    return http_get(port, "/healthz").status


# ---------------------------------------------------------------- /metrics with labels

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)$')


def metric_samples(port: int) -> list[tuple[str, dict[str, str], float]]:
    r = http_get(port, "/metrics")
    assert r.status == 200, r
    out = []
    for line in r.body.decode().splitlines():
        m = _SAMPLE.match(line.strip())
        if not m or line.startswith("#"):
            continue
        name, labels, value = m.groups()
        out.append((name, dict(re.findall(r'(\w+)="([^"]*)"', labels or "")), float(value)))
    return out


def metric_total(port: int, name: str, **labels: str) -> float | None:
    """Sum over workers of `name` samples carrying at least `labels`; None when no such sample
    exists (so a missing counter fails loudly instead of reading as 0)."""
    found = [v for n, lab, v in metric_samples(port)
             if n == name and all(lab.get(k) == v2 for k, v2 in labels.items())]
    return sum(found) if found else None


def metric_present(port: int, name: str, **labels: str) -> float:
    v = metric_total(port, name, **labels)
    names = sorted({n for n, _, _ in metric_samples(port)})
    assert v is not None, f"/metrics has no {name}{labels or ''}; it has: {names}"
    return v


# ---------------------------------------------------------------- a well-behaved client


class EchoClient(threading.Thread):
    """A well-behaved client of the echo handler in a thread: one 32-byte text message in
    flight, every echo checked (content and order); answers pings. `wait_more(n)` waits until
    n more round trips completed; `finish()` stops it, closes cleanly and raises what went wrong."""

    MAX_ROUND_TRIPS = 1_000_000

    def __init__(self, port: int, path: str = "/", pause: float = 0.002, source: str | None = None,
                 warm_up: int = 0):
        super().__init__(daemon=True)
        self.ws = RawWS(port, path, source=source)
        self.ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.warm_up(warm_up)
        self.pause = pause
        self.count = 0
        self.error: BaseException | None = None
        self._stop_evt = threading.Event()
        self.start()

    def warm_up(self, nbytes: int, size: int = 64 * 1024) -> None:
        """Echo `nbytes` in `size` messages first: the worker's receive-buffer ring is then all
        touched (resident), so a later RSS comparison measures what an attack left behind,
        not the first use of the ring."""
        payload = os.urandom(size)
        for _ in range(-(-nbytes // size)):
            self.ws.send(client_frame(OP_BINARY, payload))
            f = self.ws.recv_frame()
            assert (f.opcode, f.payload) == (OP_BINARY, payload), f"warm-up echo: {f.opcode} {len(f.payload)} bytes"

    def run(self) -> None:
        try:
            while not self._stop_evt.is_set() and self.count < self.MAX_ROUND_TRIPS:
                msg = f"good {self.count:09d} ".ljust(32, "x").encode()
                self.ws.send(client_frame(OP_TEXT, msg))
                f = self.ws.recv_frame()  # T-second socket timeout: the generous deadline per echo
                if (f.opcode, f.payload) != (OP_TEXT, msg):
                    raise AssertionError(f"echo #{self.count}: expected {msg!r}, got {f!r}")
                self.count += 1
                if self.pause:
                    self._stop_evt.wait(self.pause)
        except BaseException as e:  # noqa: BLE001 - reported by finish()
            self.error = e

    def check(self) -> None:
        if self.error is not None:
            raise AssertionError(f"well-behaved client failed after {self.count} echoes: {self.error!r}")

    def wait_more(self, n: int = 20, timeout: float = 3 * T) -> None:
        """Wait (bounded) until n more echoes came back: the good client is not starved."""
        start = self.count
        wait_until(lambda: self.error is not None or self.count >= start + n, timeout,
                   what=f"{n} more echoes for the well-behaved client (had {start})")
        self.check()

    def finish(self) -> int:
        self._stop_evt.set()
        self.join(2 * T)
        assert not self.is_alive(), "well-behaved client thread did not stop"
        self.check()
        self.ws.send(client_frame(OP_CLOSE, close_payload(1000)))
        f = self.ws.recv_frame()
        assert f.opcode == OP_CLOSE and f.close_code == 1000, f
        self.ws.close()
        return self.count


class Guard:
    """What every hostile case checks around the attack:

        with Guard(srv) as g:          # baseline RSS, worker pids, a well-behaved echo client
            ... attack ...
            g.good.wait_more()         # its echoes keep coming during the attack
        # hostile sockets must be closed by now (close them inside the block)

    On exit: the good client saw every echo in order, /healthz answers 200, the same worker
    processes run, and the process tree's RSS comes back under baseline + RSS_TOLERANCE.
    The baseline is taken after the good client echoed WARM_UP bytes (the receive ring, 16 MiB
    by default, becomes resident on first use: that is not what an attack leaves behind)."""

    WARM_UP = 20 * MiB

    def __init__(self, srv, echo: bool = True, path: str = "/", workers: int = 1,
                 tolerance: int = RSS_TOLERANCE, settle: float = 20.0, warm_up: int | None = None):
        self.srv = srv
        self.warm_up = self.WARM_UP if warm_up is None else warm_up
        self.echo = echo
        self.path = path
        self.workers = workers
        self.tolerance = tolerance
        self.settle = settle
        self.good: EchoClient | None = None

    def __enter__(self) -> "Guard":
        self.pids = wait_until(lambda: (lambda m: m if len(m) == self.workers else None)(
            workers_by_slot(self.srv.proc.pid)), T, what=f"{self.workers} workers")
        assert healthz(self.srv.port) == 200
        if self.echo:
            self.good = EchoClient(self.srv.port, self.path, warm_up=self.warm_up)
            self.good.wait_more(50)
        self.baseline = tree_rss(self.srv.proc.pid)
        return self

    def __exit__(self, typ, exc, tb) -> None:
        if typ is not None:
            if self.good is not None:
                self.good._stop_evt.set()
                self.good.ws.close()
            return
        assert self.srv.proc.poll() is None, f"server exited ({self.srv.proc.returncode}):\n{self.srv.log()}"
        if self.good is not None:
            self.good.wait_more(20)  # still echoing after the attack
            self.good.finish()
        assert healthz(self.srv.port) == 200
        now = workers_by_slot(self.srv.proc.pid)
        assert now == self.pids, f"workers changed during the attack: {self.pids} -> {now}\n{self.srv.log()}"
        limit = self.baseline + self.tolerance
        rss = wait_until(lambda: (lambda r: r if r <= limit else None)(tree_rss(self.srv.proc.pid)),
                         self.settle, interval=0.25,
                         what=f"server RSS back under baseline {self.baseline >> 20} MiB + {self.tolerance >> 20} MiB "
                              f"(now {tree_rss(self.srv.proc.pid) >> 20} MiB)")
        self.final_rss = rss


# ---------------------------------------------------------------- hostile sockets


def send_while_reading(conn: RawConn, data: bytes, read, chunk: int = 1 << 16):
    """Send `data` from a thread (the server may stop reading, answer and close before the
    end) while `read(conn)` runs here; returns read's result. Send errors are expected."""
    sent = [0]

    def pump():
        try:
            for i in range(0, len(data), chunk):
                conn.sock.sendall(data[i:i + chunk])
                sent[0] = i + chunk
        except OSError:
            pass
    t = threading.Thread(target=pump, daemon=True)
    t.start()
    try:
        return read(conn)
    finally:
        t.join(2 * T)


def read_close(ws: RawConn, limit: int = 100_000, data_ok: bool = True) -> Frame:
    """Read frames (answering pings, skipping data unless data_ok is False) until the server's
    close frame; fails saying what came instead when the connection ends or the socket timeout
    passes first."""
    skipped: list[Frame] = []
    try:
        for _ in range(limit):
            f = read_frame(ws)
            if f.opcode == OP_CLOSE:
                return f
            if f.opcode == OP_PING:
                ws.send(client_frame(OP_PONG, f.payload))
            elif not data_ok:
                raise AssertionError(f"the server answered with a data frame (opcode {f.opcode}, {len(f.payload)} "
                                     f"bytes: {f.payload[:40]!r}) instead of closing")
            skipped.append(f)
    except (OSError, EOFError) as e:
        raise AssertionError(f"no close frame from the server ({e!r}); before that it sent {len(skipped)} "
                             f"frame(s): {[(x.opcode, len(x.payload), x.payload[:40]) for x in skipped[:5]]}") from None
    raise AssertionError(f"no close frame within {limit} frames")


def expect_close_code(ws: RawConn, code: int, data_ok: bool = True) -> Frame:
    """The server's next close frame has `code`; answer it and see TCP closed."""
    f = read_close(ws, data_ok=data_ok)
    assert f.close_code == code, f"expected close {code}, got {f.close_code} {f.payload[2:]!r}"
    try:
        ws.send(client_frame(OP_CLOSE, f.payload[:2]))
    except OSError:
        pass
    try:
        rest = ws.read_until_close()
    except OSError:
        rest = b""
    assert rest == b"", f"bytes after the close frame: {rest[:100]!r}"
    return f


def raw_frame(b0: int, payload: bytes = b"", masked: bool = True, length: int | None = None) -> bytes:
    """A client frame with any first byte and, if given, a lying length field."""
    n = len(payload) if length is None else length
    mbit = 0x80 if masked else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def fragments(count: int, size: int = 1, opcode: int = 0x2) -> bytes:
    """One message as `count` data frames of `size` bytes (last one FIN), built fast: a zero
    mask keeps the payload as is (legal: the key is random in spirit, any value is valid)."""
    head0 = struct.pack("!BB", opcode, 0x80 | size) + b"\0\0\0\0" + b"a" * size
    cont = struct.pack("!BB", OP_CONT, 0x80 | size) + b"\0\0\0\0" + b"a" * size
    last = struct.pack("!BB", 0x80 | OP_CONT, 0x80 | size) + b"\0\0\0\0" + b"a" * size
    return head0 + cont * (count - 2) + last


class HalfOpen:
    """Many raw TCP connections held open without finishing their request head, watched with
    one selector. `close_all()` in a finally block."""

    def __init__(self, port: int, count: int, partial: bytes | None, source: str = "127.0.0.1"):
        self.sel = selectors.DefaultSelector()
        self.socks: list[socket.socket] = []
        self.data: dict[int, bytes] = {}
        self.ended: set[int] = set()
        for i in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.bind((source, 0))
            s.settimeout(T)
            s.connect(("127.0.0.1", port))
            if partial:
                s.sendall(partial)
            s.setblocking(False)
            self.socks.append(s)
            self.data[i] = b""
            self.sel.register(s, selectors.EVENT_READ, i)

    def poll(self, timeout: float = 0.1) -> None:
        for key, _ in self.sel.select(timeout):
            i = key.data
            try:
                chunk = key.fileobj.recv(1 << 16)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if chunk:
                self.data[i] += chunk
            else:
                self.ended.add(i)
                self.sel.unregister(key.fileobj)

    def wait_all_ended(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.ended) < len(self.socks) and time.monotonic() < deadline:
            self.poll(0.2)
        assert len(self.ended) == len(self.socks), \
            f"{len(self.socks) - len(self.ended)} of {len(self.socks)} half-open connections still open after {timeout}s"

    def close_all(self) -> None:
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
        self.sel.close()


def slow_sender(conn: RawConn, data: bytes, interval: float, deadline: float) -> tuple[int, bytes]:
    """Send `data` one byte per `interval` seconds until the server answers, closes, or the
    deadline passes; returns (bytes sent, what the server sent back, up to EOF)."""
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sel = selectors.DefaultSelector()
    sel.register(conn.sock, selectors.EVENT_READ)
    sent = 0
    try:
        end = time.monotonic() + deadline
        for b in data:
            if time.monotonic() > end:
                break
            if sel.select(interval):  # the server spoke (or closed): stop feeding it
                break
            try:
                conn.sock.send(bytes([b]))
            except OSError:
                break
            sent += 1
        conn.sock.settimeout(T)
        return sent, conn.read_until_close()
    finally:
        sel.close()
