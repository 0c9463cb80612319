"""The real client address behind a proxy: PROXY protocol v1/v2 headers sent by hand over raw
sockets (--proxy-protocol), forwarding headers from a trusted peer (--trusted-proxy), spoofed
headers from an untrusted peer, and per-address limits and --refuse-address applied to the client
named, not to the proxy. The probe handler's "remote" command shows request.remoteAddress."""

from __future__ import annotations

import subprocess
import time

from conftest import shoal_bin
from helpers import RawConn, RawWS, upgrade_request
from hostile_helpers import metric_present, serve, slow_sender
from proxy_helpers import V2_SIGNATURE, proxied_metric, v1, v2
from test_hostile_http import assert_ends

def proxied_ws(port: int, header: bytes, extra=None, source: str | None = None) -> RawWS:
    """A WebSocket whose first bytes are `header` then the upgrade (in one segment, as proxies send them)."""
    c = RawConn(port, source=source)
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    c.send(header + upgrade_request(port, "/", key=key, extra=extra))
    r = c.read_response()
    assert r.status == 101, r
    ws = RawWS.adopt(c)
    hello = ws.recv_json()
    assert hello.get("event") == "hello", hello
    return ws


def remote(ws: RawWS) -> str:
    """request.remoteAddress as the probe handler saw it (events about other clients skipped)."""
    ws.send_text("remote")
    while "remote" not in (answer := ws.recv_json()):
        assert "event" in answer, answer
    return answer["remote"]


def upgrade_status(port: int, header: bytes, extra=None, source: str | None = None) -> int:
    with RawConn(port, source=source) as c:
        c.send(header + upgrade_request(port, "/", extra=extra))
        return c.read_response().status


def close(*conns) -> None:
    for c in conns:
        c.close()


# ---------------------------------------------------------------- PROXY protocol


def test_proxy_v1_and_v2_name_the_client(shoal):
    srv = serve(shoal, "--handler", "probe", "--proxy-protocol", "--workers", "1")
    a = proxied_ws(srv.port, v1("198.51.100.7"))
    b = proxied_ws(srv.port, v1("2001:db8::7", family="TCP6", dest="::1"))
    c = proxied_ws(srv.port, v2("203.0.113.9", tlvs=b"\x01\x00\x08http/1.1\x02\x00\x0bexample.com"))
    d = proxied_ws(srv.port, v2("2001:db8:cafe::17"))
    e = proxied_ws(srv.port, v2("::ffff:192.0.2.5"))
    try:
        assert remote(a) == "198.51.100.7"
        assert remote(b) == "2001:db8::7"
        assert remote(c) == "203.0.113.9"
        assert remote(d) == "2001:db8:cafe::17"
        assert remote(e) == "192.0.2.5"
    finally:
        close(a, b, c, d, e)


def test_proxy_local_and_unknown_keep_the_tcp_peer(shoal):
    """haproxy's health checks send LOCAL; v1 UNKNOWN: the connection's own peer is the client."""
    srv = serve(shoal, "--handler", "probe", "--proxy-protocol", "--workers", "1")
    a = proxied_ws(srv.port, v2(None, command=0), source="127.0.0.5")
    b = proxied_ws(srv.port, b"PROXY UNKNOWN\r\n", source="127.0.0.6")
    try:
        assert remote(a) == "127.0.0.5"
        assert remote(b) == "127.0.0.6"
    finally:
        close(a, b)
    # Plain HTTP after the header works too (a proxy's HTTP health check).
    with RawConn(srv.port) as h:
        h.send(v2(None, command=0) + f"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert h.read_response().status == 200


def test_proxy_header_missing_or_malformed_closes_and_counts(shoal):
    """A request without the header (a client that bypassed the proxy), a bad v2 signature, a v1
    line over 107 bytes, a v2 length over the limit: closed without an HTTP answer, never seen by
    the handler, counted; clients with a good header are unaffected."""
    srv = serve(shoal, "--handler", "probe", "--proxy-protocol", "--workers", "1")
    good = proxied_ws(srv.port, v1("198.51.100.1"))
    bad_inputs = [
        upgrade_request(srv.port, "/"),
        V2_SIGNATURE[:6] + b"\x0b" + V2_SIGNATURE[7:] + b"\x21\x11\x00\x0c" + bytes(12),
        b"PROXY UNKNOWN " + b"x" * 200 + b"\r\n",
        V2_SIGNATURE + b"\x21\x11\xff\xff" + bytes(4096),
        b"PROXY TCP4 1.2.3.999 127.0.0.1 1 2\r\n" + upgrade_request(srv.port, "/"),
    ]
    try:
        for data in bad_inputs:
            with RawConn(srv.port) as c:
                c.send(data)
                assert_ends(c)  # no HTTP answer at all
        assert remote(good) == "198.51.100.1"
        good.send_text("count")
        while "count" not in (answer := good.recv_json()):
            assert "event" in answer, answer
        assert answer == {"count": 1}, "a refused connection reached the handler"
        assert proxied_metric(srv.port, "shoal_proxy_header_rejections_total") == len(bad_inputs)
    finally:
        good.close()


def test_slow_proxy_header_falls_under_the_request_deadline(shoal):
    """Slowloris through PROXY: a header sent one byte a second is dropped at --request-timeout,
    without an answer; a good client goes on meanwhile."""
    srv = serve(shoal, "--handler", "probe", "--proxy-protocol", "--workers", "1", "--request-timeout", "1")
    good = proxied_ws(srv.port, v1("198.51.100.1"))
    try:
        with RawConn(srv.port) as c:
            start = time.monotonic()
            sent, answer = slow_sender(c, v1("198.51.100.2"), interval=0.3, deadline=8)
            assert answer == b"", answer
            assert sent < len(v1("198.51.100.2")), "the whole header went through: nothing was slow"
            assert time.monotonic() - start < 6
        assert proxied_metric(srv.port, "shoal_proxy_header_rejections_total") == 1
        assert remote(good) == "198.51.100.1"
    finally:
        good.close()


def test_per_address_limits_and_refusals_apply_to_the_proxied_client(shoal):
    """Every connection comes from 127.0.0.1 (the proxy); the caps count the clients the PROXY
    headers name, and --refuse-address refuses a named client."""
    srv = serve(shoal, "--handler", "probe", "--proxy-protocol", "--workers", "1",
                "--max-connections-per-address", "2", "--refuse-address", "192.0.2.66")
    held = [proxied_ws(srv.port, v1("198.51.100.1")) for _ in range(2)]
    try:
        assert upgrade_status(srv.port, v1("198.51.100.1")) == 429
        held += [proxied_ws(srv.port, v2("198.51.100.2")) for _ in range(2)]
        assert upgrade_status(srv.port, v2("198.51.100.2")) == 429
        assert upgrade_status(srv.port, v1("192.0.2.66")) == 403
        assert proxied_metric(srv.port, "shoal_rejected_upgrades_total{worker=\"0\",reason=\"per_address\"}") == 2
        for ws in held:
            assert remote(ws) in ("198.51.100.1", "198.51.100.2")
    finally:
        close(*held)


# ---------------------------------------------------------------- forwarding headers


def test_forwarded_for_from_a_trusted_proxy_names_the_client(shoal):
    srv = serve(shoal, "--handler", "probe", "--workers", "1", "--trusted-proxy", "127.0.0.1/32",
                "--trusted-proxy", "10.0.0.0/8")
    conns = [
        # nginx's $proxy_add_x_forwarded_for: what the client sent, then what nginx saw.
        proxied_ws(srv.port, b"", extra=[("X-Forwarded-For", "6.6.6.6, 198.51.100.7")]),
        proxied_ws(srv.port, b"", extra=[("X-Forwarded-For", "198.51.100.8, 10.1.2.3")]),  # an inner trusted hop
        proxied_ws(srv.port, b"", extra=[("X-Real-IP", "198.51.100.9")]),
        proxied_ws(srv.port, b"", extra=[("X-Forwarded-For", "6.6.6.6"),
                                        ("Forwarded", 'for="[2001:db8::9]:4711";proto=https')]),  # Forwarded wins
        proxied_ws(srv.port, b"", extra=[("Forwarded", "for=unknown"), ("X-Forwarded-For", "6.6.6.6")]),
        proxied_ws(srv.port, b""),
    ]
    try:
        assert [remote(ws) for ws in conns] == ["198.51.100.7", "198.51.100.8", "198.51.100.9", "2001:db8::9",
                                                "127.0.0.1", "127.0.0.1"]
    finally:
        close(*conns)


def test_spoofed_forwarding_headers_from_an_untrusted_peer_are_ignored(shoal):
    """127.0.0.2 is not a trusted proxy: whatever it claims, it is 127.0.0.2, for the handler and
    for the per-address cap (new claimed addresses do not buy it more connections)."""
    srv = serve(shoal, "--handler", "probe", "--workers", "1", "--trusted-proxy", "127.0.0.1",
                "--max-connections-per-address", "2", "--refuse-address", "127.0.0.2")
    spoof = [("X-Forwarded-For", "198.51.100.50"), ("X-Real-IP", "198.51.100.51"), ("Forwarded", "for=198.51.100.52")]
    assert upgrade_status(srv.port, b"", extra=spoof, source="127.0.0.2") == 403, "--refuse-address was escaped"
    held = [proxied_ws(srv.port, b"", extra=[("X-Forwarded-For", f"198.51.100.{i}")], source="127.0.0.3") for i in (1, 2)]
    try:
        assert [remote(ws) for ws in held] == ["127.0.0.3", "127.0.0.3"]
        assert upgrade_status(srv.port, b"", extra=[("X-Forwarded-For", "198.51.100.3")], source="127.0.0.3") == 429
    finally:
        close(*held)


def test_per_address_limits_apply_per_forwarded_client(shoal):
    """All from the trusted proxy 127.0.0.1: two per client named in X-Forwarded-For, not two in all;
    a forwarded client on --refuse-address is refused while the proxy itself is not."""
    srv = serve(shoal, "--handler", "probe", "--workers", "1", "--trusted-proxy", "127.0.0.1",
                "--max-connections-per-address", "2", "--refuse-address", "192.0.2.66")
    xff = lambda a: [("X-Forwarded-For", a)]  # noqa: E731
    held = []
    try:
        for client in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
            held += [proxied_ws(srv.port, b"", extra=xff(client)) for _ in range(2)]
            assert upgrade_status(srv.port, b"", extra=xff(client)) == 429
        assert upgrade_status(srv.port, b"", extra=xff("192.0.2.66")) == 403
        assert metric_present(srv.port, "shoal_rejected_upgrades_total", reason="per_address") == 3
        assert sorted(remote(ws) for ws in held) == sorted(["198.51.100.1", "198.51.100.2", "198.51.100.3"] * 2)
    finally:
        close(*held)


def test_bad_trusted_proxy_is_a_usage_error():
    for value in ("10.0.0.0/33", "example.com", "::/129"):
        p = subprocess.run([shoal_bin(), "serve", "--trusted-proxy", value], capture_output=True, text=True, timeout=30)
        assert p.returncode == 64, (value, p.returncode, p.stderr)
        assert "--trusted-proxy" in p.stderr and value in p.stderr, p.stderr


def metrics_status(port: int, header: bytes = b"", extra: str = "") -> int:
    with RawConn(port) as c:
        c.send(header + f"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n".encode())
        return c.read_response().status


def test_metrics_are_not_served_to_a_client_a_proxy_speaks_for(shoal):
    """haproxy in TCP mode cannot filter paths: shoal itself answers /metrics with 404 to a client
    that a PROXY header or a forwarding header named, and serves the proxy's own checks."""
    srv = serve(shoal, "--handler", "probe", "--workers", "1", "--proxy-protocol")
    assert metrics_status(srv.port, v2("198.51.100.7")) == 404
    assert metrics_status(srv.port, v1("2001:db8::7", family="TCP6", dest="::1")) == 404
    assert metrics_status(srv.port, v2(None, command=0)) == 200
    assert metrics_status(srv.port, v1("127.0.0.1")) == 200, "a scraper behind a proxy on this host"
    srv2 = serve(shoal, "--handler", "probe", "--workers", "1", "--trusted-proxy", "127.0.0.1")
    assert metrics_status(srv2.port, extra="X-Forwarded-For: 198.51.100.7\r\n") == 404
    assert metrics_status(srv2.port) == 200
