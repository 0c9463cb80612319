"""Helpers for Shoal's integration tests: raw HTTP/WebSocket over sockets, websockets
client wrappers, node scripts. Every wait is bounded; nothing asserts on durations."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
import struct
import subprocess
from dataclasses import dataclass

from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

HERE = os.path.dirname(os.path.abspath(__file__))
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
T = 10.0  # default bound for one wait, seconds (generous: 2-core CI box)


def run(coro, timeout: float = 60.0):
    """Run a coroutine to completion with an overall bound."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def accept_for(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


# ---------------------------------------------------------------- raw HTTP


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def __repr__(self) -> str:
        return f"Response({self.status} {self.reason!r}, {self.headers!r}, body={self.body[:200]!r})"


class RawConn:
    """A TCP connection with a receive buffer, for hand-written HTTP and frames."""

    def __init__(self, port: int, host: str = "127.0.0.1", source: str | None = None, timeout: float = T,
                 rcvbuf: int | None = None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if rcvbuf is not None:  # before connect, so the advertised window stays small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError(f"connection closed after {len(self.buf)} of {n} bytes")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_until_close(self) -> bytes:
        try:
            while self._fill():
                pass
        except ConnectionResetError:
            pass
        out, self.buf = self.buf, b""
        return out

    def read_response(self, head_only: bool = False) -> Response:
        """Read one HTTP response. Body by Content-Length, chunked, or until close."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise EOFError(f"connection closed before end of response head: {self.buf!r}")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        assert parts[0] in ("HTTP/1.1", "HTTP/1.0"), f"bad status line {lines[0]!r}"
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append((k.strip(), v.strip()))
        resp = Response(status, reason, headers)
        if head_only or status == 101 or status == 204 or status == 304:
            return resp
        cl = resp.header("Content-Length")
        te = resp.header("Transfer-Encoding")
        if cl is not None:
            resp.body = self.read_exact(int(cl))
        elif te and "chunked" in te.lower():
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    if not self._fill():
                        raise EOFError("closed inside chunked body")
                size_line, self.buf = self.buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    # trailers until empty line
                    while b"\r\n" not in self.buf:
                        self._fill()
                    _, self.buf = self.buf.split(b"\r\n", 1)
                    break
                body += self.read_exact(size)
                self.read_exact(2)
            resp.body = body
        else:
            resp.body = self.read_until_close()
        return resp

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def reset(self) -> None:
        """Abort with RST (SO_LINGER 0), no close frame."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def http_get(port: int, path: str, headers: dict[str, str] | None = None, source: str | None = None) -> Response:
    with RawConn(port, source=source) as c:
        req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
        for k, v in (headers or {}).items():
            req += f"{k}: {v}\r\n"
        c.send((req + "\r\n").encode())
        return c.read_response()


def http_raw(port: int, data: bytes) -> Response:
    with RawConn(port) as c:
        c.send(data)
        return c.read_response()


def upgrade_request(port: int, path: str = "/", key: str = "dGhlIHNhbXBsZSBub25jZQ==", version: str = "13",
                    extra: list[tuple[str, str]] | None = None, connection: str = "Upgrade") -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        f"Connection: {connection}",
    ]
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    for k, v in extra or []:
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# ---------------------------------------------------------------- raw frames

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def client_frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv1: bool = False) -> bytes:
    mask = os.urandom(4)
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    return head + mask + apply_mask(payload, mask)


def apply_mask(payload: bytes, mask: bytes) -> bytes:
    """XOR with the 4-byte mask, as one big-integer operation (fast for large payloads)."""
    n = len(payload)
    if n == 0:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def close_payload(code: int | None = None, reason: str = "") -> bytes:
    if code is None:
        return b""
    return struct.pack("!H", code) + reason.encode()


@dataclass
class Frame:
    fin: bool
    opcode: int
    payload: bytes
    rsv1: bool = False

    @property
    def close_code(self) -> int | None:
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    @property
    def close_reason(self) -> str:
        return self.payload[2:].decode()


def read_frame(c: RawConn, deflate: bool = False) -> Frame:
    """The next frame; `deflate`: permessage-deflate was negotiated, so RSV1 may be set."""
    b0, b1 = c.read_exact(2)
    assert not (b1 & 0x80), "server frames must not be masked"
    assert not (b0 & (0x30 if deflate else 0x70)), f"RSV bits set without extension: {b0:#x}"
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", c.read_exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", c.read_exact(8))[0]
    return Frame(bool(b0 & 0x80), b0 & 0x0F, c.read_exact(n), rsv1=bool(b0 & 0x40))


class RawWS(RawConn):
    """A hand-made WebSocket client (handshake + frames), for what libraries won't send."""

    def __init__(self, port: int, path: str = "/", extra: list[tuple[str, str]] | None = None,
                 source: str | None = None, rcvbuf: int | None = None):
        super().__init__(port, source=source, rcvbuf=rcvbuf)
        key = base64.b64encode(os.urandom(16)).decode()
        self.send(upgrade_request(port, path, key=key, extra=extra))
        self.response = self.read_response()
        assert self.response.status == 101, self.response
        assert self.response.header("Sec-WebSocket-Accept") == accept_for(key), self.response

    @classmethod
    def adopt(cls, conn: RawConn) -> "RawWS":
        """A RawWS over a RawConn whose handshake the caller did by hand."""
        ws = cls.__new__(cls)
        ws.sock, ws.buf = conn.sock, conn.buf
        return ws

    def send_text(self, text: str) -> None:
        self.send(client_frame(OP_TEXT, text.encode()))

    def send_close(self, code: int | None = None, reason: str = "") -> None:
        self.send(client_frame(OP_CLOSE, close_payload(code, reason)))

    def recv_frame(self, skip_control: bool = True) -> Frame:
        while True:
            f = read_frame(self)
            if skip_control and f.opcode == OP_PING:
                self.send(client_frame(OP_PONG, f.payload))
                continue
            if skip_control and f.opcode == OP_PONG:
                continue
            return f

    def recv_json(self):
        f = self.recv_frame()
        assert f.opcode == OP_TEXT, f
        return json.loads(f.payload.decode())


# ---------------------------------------------------------------- websockets client


def ws_url(port: int, path: str = "/") -> str:
    return f"ws://127.0.0.1:{port}{path}"


def source_socket(port: int, source: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(T)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    return s


async def connect(port: int, path: str = "/", source: str | None = None, **kw):
    """Open a websockets client connection (bounded)."""
    kw.setdefault("open_timeout", T)
    kw.setdefault("close_timeout", T)
    if source is not None:
        kw["sock"] = source_socket(port, source)
    return await ws_connect(ws_url(port, path), **kw)


async def recv(ws, timeout: float = T):
    return await asyncio.wait_for(ws.recv(), timeout)


async def recv_json(ws, timeout: float = T):
    msg = await recv(ws, timeout)
    assert isinstance(msg, str), f"expected a text message, got {msg!r:.200}"
    return json.loads(msg)


async def chat_pair(port: int, path: str = "/chat"):
    """A websockets client and a raw client joined to the chat handler, greetings consumed:
    (a, raw) once `a` has seen the raw client arrive."""
    a = await connect(port, path)
    assert await recv(a) == "Welcome on the chat!"
    raw = RawWS(port, path)
    assert raw.recv_frame().payload == b"Welcome on the chat!"
    assert await recv(a) == "New client connected"
    return a, raw


async def expect_refused(port: int, path: str = "/", source: str | None = None, status: int = 403):
    try:
        ws = await connect(port, path, source=source)
    except InvalidStatus as e:
        assert e.response.status_code == status, e
        return
    await ws.close()
    raise AssertionError(f"connection to {path} from {source or '127.0.0.1'} was accepted, expected HTTP {status}")


async def expect_closed(ws, timeout: float = T) -> tuple[int | None, str]:
    """Wait until the server closes; returns (code, reason) of the server's close frame
    as the client received it (code 1005 when the frame had no status).
    Messages still arriving before the close are discarded."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except ConnectionClosed as e:
        if e.rcvd is None:
            return (1006, "")
        return (e.rcvd.code, e.rcvd.reason)


# ---------------------------------------------------------------- node


def run_node(script: str, *args: str, timeout: float = 60.0) -> dict:
    env = dict(os.environ)
    env["NODE_PATH"] = "/usr/share/nodejs" + (":" + env["NODE_PATH"] if env.get("NODE_PATH") else "")
    p = subprocess.run(["node", os.path.join(HERE, "node", script), *args], capture_output=True, text=True,
                       timeout=timeout, env=env)
    assert p.returncode == 0, f"node {script} exited {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    assert lines, f"node {script} printed nothing; stderr: {p.stderr}"
    return json.loads(lines[-1])

