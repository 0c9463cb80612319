"""PROXY protocol headers as proxies send them, and reading /metrics on a --proxy-protocol port
(which needs a header too: the proxy's own LOCAL one)."""

from __future__ import annotations

import socket
import struct

from helpers import RawConn

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(source: str, family: str = "TCP4", dest: str = "127.0.0.1", sport: int = 40000, dport: int = 443) -> bytes:
    """A v1 line as haproxy's send-proxy and nginx's proxy_protocol write it."""
    return f"PROXY {family} {source} {dest} {sport} {dport}\r\n".encode()


def v2(source: str | None, command: int = 1, tlvs: bytes = b"") -> bytes:
    """A v2 header as haproxy's send-proxy-v2 writes it; source None gives LOCAL/UNSPEC."""
    if source is None:
        return V2_SIGNATURE + bytes([0x20 | command, 0x00]) + struct.pack("!H", 0)
    if ":" in source:
        family, body = 0x21, socket.inet_pton(socket.AF_INET6, source) + socket.inet_pton(socket.AF_INET6, "::1")
    else:
        family, body = 0x11, socket.inet_pton(socket.AF_INET, source) + socket.inet_pton(socket.AF_INET, "127.0.0.1")
    body += struct.pack("!HH", 40000, 443) + tlvs
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(body)) + body


def proxied_metric(port: int, name: str) -> float:
    """A /metrics sample (`name` with or without its labels, summed over workers), asked with a
    LOCAL header as a proxy's own check would."""
    with RawConn(port) as c:
        c.send(v2(None, command=0) + b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        r = c.read_response()
    assert r.status == 200, r
    values = [float(line.rsplit(" ", 1)[1]) for line in r.body.decode().splitlines()
              if line.startswith(name + "{") or line.startswith(name + " ")]
    assert values, f"/metrics has no {name}"
    return sum(values)
