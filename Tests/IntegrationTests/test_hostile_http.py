"""Hostile clients before the upgrade (issue 5): garbage, huge and slow request heads,
half-open handshakes, the Origin allow-list, and the per-address / per-worker connection
limits. Each case checks the status, then (through `Guard`) that the worker is alive and the
same, a well-behaved echo client kept echoing with nothing lost, and memory came back.

Every wait is bounded; no duration decides an outcome except generous deadlines."""

from __future__ import annotations

import os
import resource

import pytest

from cluster_helpers import wait_until
from hostile_helpers import MiB, Guard, HalfOpen, metric_present, send_while_reading, serve, slow_sender
from helpers import T, RawConn, RawWS, upgrade_request

REQUEST_TIMEOUT = "1.5"  # --request-timeout for the slow cases: small, so the suite stays short


def echo_server(shoal, *extra: str, workers: int = 1):
    return serve(shoal, "--handler", "echo", "--workers", str(workers), *extra)


def assert_ends(c: RawConn) -> None:
    """After an error response the server closes the connection (EOF or reset, no more bytes)."""
    try:
        rest = c.read_until_close()
    except OSError:
        rest = b""
    assert rest == b"", f"bytes after the error response: {rest[:200]!r}"


# ---------------------------------------------------------------- garbage and big heads

GARBAGE = {
    "tls-client-hello": bytes.fromhex("160301020001000200fc0303") + os.urandom(32) + b"\x00\x02\x13\x01",
    "nul-bytes": b"\0" * 64 + b"\r\n",
    "all-bytes": bytes(range(1, 256)),
    "not-http": b"HELLO THERE\r\n",
}


@pytest.mark.parametrize("garbage", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_before_request(shoal, garbage):
    srv = echo_server(shoal)
    with Guard(srv) as g:
        with RawConn(srv.port) as c:
            r = send_while_reading(c, garbage + upgrade_request(srv.port), lambda c: c.read_response())
            assert r.status == 400, r
            assert_ends(c)
        g.good.wait_more()


def test_ten_thousand_headers(shoal):
    srv = echo_server(shoal)
    with Guard(srv) as g:
        head = upgrade_request(srv.port)[:-2]  # without the final empty line
        data = head + b"".join(b"X-H%d: v\r\n" % i for i in range(10_000)) + b"\r\n"
        with RawConn(srv.port) as c:
            r = send_while_reading(c, data, lambda c: c.read_response())
            assert r.status == 431, r
            assert_ends(c)
        g.good.wait_more()


def test_one_mebibyte_header(shoal):
    srv = echo_server(shoal)
    with Guard(srv) as g:
        head = upgrade_request(srv.port)[:-2]
        data = head + b"X-Big: " + b"a" * MiB + b"\r\n\r\n"
        with RawConn(srv.port) as c:
            r = send_while_reading(c, data, lambda c: c.read_response())
            assert r.status == 431, r
            assert_ends(c)
        g.good.wait_more()


def test_header_one_byte_per_100ms(shoal):
    """Slowloris: the deadline runs from accept to a complete head; trickling bytes does not
    extend it. The server answers 408 long before the head is complete."""
    srv = echo_server(shoal, "--request-timeout", REQUEST_TIMEOUT)
    with Guard(srv) as g:
        req = upgrade_request(srv.port)
        with RawConn(srv.port) as c:
            sent, answer = slow_sender(c, req, interval=0.1, deadline=float(REQUEST_TIMEOUT) + 3 * T)
        assert answer.startswith(b"HTTP/1.1 408 "), (sent, answer[:200])
        assert sent < len(req), "the whole head went through: the request was never timed out"
        g.good.wait_more()


def test_half_open_handshakes_while_echoing(shoal):
    """2,000 connections hold an unfinished request head (1,000) or say nothing at all (1,000)
    on two workers while a well-behaved client keeps echoing; after the request timeout the
    first get 408, the others are closed (408 or silently), and all are gone."""
    srv = echo_server(shoal, "--request-timeout", REQUEST_TIMEOUT, workers=2)
    with Guard(srv, workers=2) as g:
        partial = HalfOpen(srv.port, 1000, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
        silent = HalfOpen(srv.port, 1000, None)
        try:
            g.good.wait_more(50)  # echoes keep coming while 2,000 handshakes hang
            partial.wait_all_ended(float(REQUEST_TIMEOUT) + 6 * T)
            silent.wait_all_ended(float(REQUEST_TIMEOUT) + 3 * T)
            wrong = {i: d[:80] for i, d in partial.data.items() if not d.startswith(b"HTTP/1.1 408 ")}
            assert not wrong, f"{len(wrong)} half-open heads without a 408, e.g. {list(wrong.items())[:3]}"
            wrong = {i: d[:80] for i, d in silent.data.items() if d and not d.startswith(b"HTTP/1.1 408 ")}
            assert not wrong, f"{len(wrong)} silent connections got something else than 408, e.g. {list(wrong.items())[:3]}"
            g.good.wait_more(20)
        finally:
            partial.close_all()
            silent.close_all()


def test_half_open_beyond_the_open_files_limit(shoal):
    """The worker's open-files limit lowered to 256 (prlimit on the running worker), then 600
    silent connections: accept meets EMFILE, the rest waits in the listen backlog; the
    established good client keeps echoing, every silent connection is closed after its
    request timeout (those accepted late included), and new clients are served afterwards."""
    srv = echo_server(shoal, "--request-timeout", REQUEST_TIMEOUT)
    with Guard(srv) as g:
        (worker,) = g.pids.values()
        resource.prlimit(worker, resource.RLIMIT_NOFILE, (256, 256))
        flood = HalfOpen(srv.port, 600, None)
        try:
            g.good.wait_more(50)
            flood.wait_all_ended(3 * float(REQUEST_TIMEOUT) + 6 * T)
            wrong = {i: d[:80] for i, d in flood.data.items() if d and not d.startswith(b"HTTP/1.1 408 ")}
            assert not wrong, f"{len(wrong)} silent connections got something else than 408: {list(wrong.items())[:3]}"
        finally:
            flood.close_all()
        ws = eventually_accepted(srv.port, "127.0.0.1")
        ws.send_text("after the flood")
        assert ws.recv_frame().payload == b"after the flood"
        close_all([ws])
        g.good.wait_more()


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_silent_connections_wait_in_the_kernel_with_defer_accept(shoal):
    """--defer-accept 5: 300 connections that say nothing are not handed to the worker (its open
    descriptors do not grow) while a client that speaks is answered at once; once the kernel
    hands them over (its third SYN-ACK retransmission, 7 s) each is closed after the request
    timeout like any silent connection."""
    srv = echo_server(shoal, "--request-timeout", REQUEST_TIMEOUT, "--defer-accept", "5")
    with Guard(srv) as g:
        (worker,) = g.pids.values()
        before = open_descriptors(worker)
        silent = HalfOpen(srv.port, 300, None)
        try:
            ws = eventually_accepted(srv.port, "127.0.0.1")
            ws.send_text("while 300 are silent")
            assert ws.recv_frame().payload == b"while 300 are silent"
            held = open_descriptors(worker) - before
            assert held < 10, f"the worker holds {held} descriptors more with 300 silent connections deferred"
            close_all([ws])
            silent.wait_all_ended(7 + float(REQUEST_TIMEOUT) + 6 * T)
            assert len(silent.ended) == 300, f"{300 - len(silent.ended)} silent connections were never closed"
            wrong = {i: d[:80] for i, d in silent.data.items() if d and not d.startswith(b"HTTP/1.1 408 ")}
            assert not wrong, f"{len(wrong)} silent connections got something else than 408: {list(wrong.items())[:3]}"
        finally:
            silent.close_all()
        g.good.wait_more()


def test_silent_connections_reach_the_worker_without_defer_accept(shoal):
    """--defer-accept 0: the worker accepts 300 silent connections at once (one descriptor each)."""
    srv = echo_server(shoal, "--request-timeout", "30", "--defer-accept", "0")
    with Guard(srv) as g:
        (worker,) = g.pids.values()
        before = open_descriptors(worker)
        silent = HalfOpen(srv.port, 300, None)
        try:
            wait_until(lambda: open_descriptors(worker) - before >= 300, timeout=5 * T)
        finally:
            silent.close_all()
        g.good.wait_more()


# ---------------------------------------------------------------- Origin


def upgrade_status(port: int, origin: str | None, path: str = "/") -> tuple[int, RawConn | None]:
    """Status of an upgrade with this Origin (None: no Origin header); the open RawWS on 101."""
    c = RawConn(port)
    c.send(upgrade_request(port, path, extra=[("Origin", origin)] if origin is not None else []))
    r = c.read_response()
    if r.status == 101:
        return 101, RawWS.adopt(c)
    c.close()
    return r.status, None


# allowed: --allow-origin https://app.example.com, *.example.org, *.example.net:8443
ALLOWED = ["https://app.example.com", "https://a.example.org", "http://b.c.example.org", "https://a.example.org:8443",
           "https://a.example.net:8443"]
FOREIGN = ["https://evil.com", "http://app.example.com", "https://app.example.com:8443", "https://app.example.com.evil.com",
           "https://app.example.com/path", "https://evilexample.org", "https://example.org",
           "https://a.example.org.evil.com", "https://a.example.net", "https://a.example.net:9443", "null"]


def test_origin_allow_list(shoal):
    """Exact origins and *.domain patterns (any scheme, any subdomain; a port in the pattern
    must match). A foreign Origin gets 403 before onConnection runs (the probe handler reports
    every open to the other clients: the observer sees only the allowed ones). No Origin
    (a non-browser client) is allowed."""
    srv = serve(shoal, "--handler", "probe", "--workers", "1", "--allow-origin", "https://app.example.com",
                "--allow-origin", "*.example.org", "--allow-origin", "*.example.net:8443")
    with Guard(srv, echo=False):
        obs = RawWS(srv.port)  # no Origin header
        try:
            assert obs.recv_json()["event"] == "hello"
            for origin in FOREIGN:
                status, _ = upgrade_status(srv.port, origin)
                assert status == 403, f"Origin {origin}: HTTP {status}, expected 403"
            for origin in ALLOWED + [None]:
                status, ws = upgrade_status(srv.port, origin)
                assert status == 101, f"Origin {origin}: HTTP {status}, expected 101"
                try:
                    me = ws.recv_json()
                    assert me["event"] == "hello", me
                    # the next event the observer sees is this open: no refused client got one
                    assert obs.recv_json() == {"event": "open", "id": me["id"]}
                finally:
                    ws.send_close(1000)
                    ws.close()
                assert obs.recv_json()["event"] == "terminate"
            assert metric_present(srv.port, "shoal_rejected_upgrades_total", reason="origin") == len(FOREIGN)
        finally:
            obs.close()


def test_without_allow_origin_every_origin_is_allowed(shoal):
    srv = echo_server(shoal)
    for origin in ["https://evil.com", "null", None]:
        status, ws = upgrade_status(srv.port, origin)
        assert status == 101, f"Origin {origin}: HTTP {status}"
        ws.send_text("hi")
        assert ws.recv_frame().payload == b"hi"
        ws.close()


# ---------------------------------------------------------------- connection limits


def open_ws(port: int, n: int, source: str) -> list[RawWS]:
    out = []
    for _ in range(n):
        out.append(RawWS(port, source=source))
    return out


def refused(port: int, source: str) -> int:
    """Upgrade from `source` that must be refused: returns the status, checks Retry-After."""
    with RawConn(port, source=source) as c:
        c.send(upgrade_request(port))
        r = c.read_response()
        assert r.status != 101, f"upgrade from {source} accepted over the limit"
        ra = r.header("Retry-After")
        assert ra is not None and ra.strip().isdigit(), f"Retry-After missing or not seconds: {r}"
        assert_ends(c)
        return r.status


def close_all(conns) -> None:
    for ws in conns:
        try:
            ws.send_close(1000)
            ws.recv_frame()
        except OSError:
            pass
        ws.close()


def eventually_accepted(port: int, source: str, timeout: float = T) -> RawWS:
    """A closed connection frees its place (asynchronously): retry, bounded, until 101."""
    last = [None]

    def attempt():
        try:
            return RawWS(port, source=source)
        except AssertionError as e:  # RawWS asserts on the 101
            last[0] = e
            return None
    return wait_until(attempt, timeout, interval=0.1, what=f"an upgrade from {source} accepted again ({last[0]})")


def test_per_address_limit_429(shoal):
    """--max-connections-per-address 3: a fourth connection from 127.0.0.2 gets 429 with
    Retry-After before any 101; 127.0.0.3 is not affected; closing one frees a place."""
    srv = echo_server(shoal, "--max-connections-per-address", "3")
    with Guard(srv) as g:
        two = open_ws(srv.port, 3, "127.0.0.2")
        three = []
        try:
            assert refused(srv.port, "127.0.0.2") == 429
            assert refused(srv.port, "127.0.0.2") == 429
            three = open_ws(srv.port, 3, "127.0.0.3")
            for ws in two + three:
                ws.send_text("still here")
                assert ws.recv_frame().payload == b"still here"
            g.good.wait_more()
            assert metric_present(srv.port, "shoal_rejected_upgrades_total", reason="per_address") == 2
            close_all(two[:1])
            two[0] = eventually_accepted(srv.port, "127.0.0.2")
        finally:
            close_all(two + three)


def test_per_worker_limit_503(shoal):
    """--max-connections 5 on one worker: the sixth WebSocket gets 503 with Retry-After
    before any 101; the five (the good client among them) keep working; a freed place is
    taken again."""
    srv = echo_server(shoal, "--max-connections", "5")
    with Guard(srv) as g:
        conns = open_ws(srv.port, 4, "127.0.0.1")  # + the good client = 5
        try:
            assert refused(srv.port, "127.0.0.1") == 503
            assert refused(srv.port, "127.0.0.4") == 503
            for ws in conns:
                ws.send_text("still here")
                assert ws.recv_frame().payload == b"still here"
            g.good.wait_more()
            assert metric_present(srv.port, "shoal_rejected_upgrades_total", reason="max_connections") == 2
            close_all(conns[:1])
            conns[0] = eventually_accepted(srv.port, "127.0.0.1")
        finally:
            close_all(conns)
