"""HTTP side of the listener: the opening handshake, errors, static files, keep-alive."""

import os

import pytest

from helpers import (OP_CLOSE, OP_TEXT, RawConn, accept_for, client_frame, close_payload, http_get,
                     http_raw, read_frame, upgrade_request)

WS = "/ws"


@pytest.fixture
def srv(shoal):
    return shoal("--handler", "echo", "--path", WS)


def test_upgrade_101_with_rfc_accept(srv):
    # the key/accept pair of RFC 6455 section 1.3
    r = http_raw(srv.port, upgrade_request(srv.port, WS, key="dGhlIHNhbXBsZSBub25jZQ=="))
    assert r.status == 101, r
    assert r.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", r
    assert (r.header("Upgrade") or "").lower() == "websocket", r
    assert "upgrade" in (r.header("Connection") or "").lower(), r


def test_upgrade_then_frames_on_the_same_socket(srv):
    key = "AQIDBAUGBwgJCgsMDQ4PEA=="
    with RawConn(srv.port) as c:
        c.send(upgrade_request(srv.port, WS, key=key))
        r = c.read_response()
        assert r.status == 101 and r.header("Sec-WebSocket-Accept") == accept_for(key), r
        c.send(client_frame(OP_TEXT, "raw hello".encode()))
        f = read_frame(c)
        assert (f.fin, f.opcode, f.payload) == (True, OP_TEXT, b"raw hello")
        c.send(client_frame(OP_CLOSE, close_payload(1000, "done")))
        f = read_frame(c)
        assert f.opcode == OP_CLOSE and f.close_code == 1000, f


def test_upgrade_header_variants(srv):
    # browsers send "Connection: keep-alive, Upgrade"; header names and tokens are case-insensitive
    key = "ZmVkY2JhOTg3NjU0MzIxMA=="
    req = (f"GET {WS} HTTP/1.1\r\nhost: 127.0.0.1:{srv.port}\r\nupgrade: WebSocket\r\n"
           f"connection: keep-alive, Upgrade\r\nsec-websocket-key: {key}\r\nsec-websocket-version: 13\r\n"
           f"Origin: http://127.0.0.1:{srv.port}\r\nUser-Agent: test\r\n\r\n").encode()
    r = http_raw(srv.port, req)
    assert r.status == 101, r
    assert r.header("Sec-WebSocket-Accept") == accept_for(key), r


@pytest.mark.parametrize("data", [
    b"garbage\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",  # TLS ClientHello-ish bytes
    b"GET /ws HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n",  # header line without a colon
    b"GET /ws HTTP/9.9\r\nHost: x\r\n\r\n",
], ids=["garbage", "binary", "header-without-colon", "bad-version"])
def test_malformed_request_400_with_reason(srv, data):
    r = http_raw(srv.port, data)
    expected = (400, 505) if b"HTTP/9.9" in data else (400,)
    assert r.status in expected, r
    assert r.body.strip(), f"{r.status} without a reason in the body: {r}"


def test_missing_key_400(srv):
    r = http_raw(srv.port, upgrade_request(srv.port, WS, key=None))
    assert r.status == 400, r
    assert r.body.strip(), r


@pytest.mark.parametrize("key", ["not base64 !!", "aGVsbG8=", "AQIDBAUGBwgJCgsMDQ4PEBES"],
                         ids=["not-base64", "5-bytes", "18-bytes"])
def test_bad_key_400(srv, key):
    r = http_raw(srv.port, upgrade_request(srv.port, WS, key=key))
    assert r.status == 400, r
    assert r.body.strip(), r


def test_plain_get_on_ws_path_426(srv):
    r = http_get(srv.port, WS)
    assert r.status == 426, r


def test_version_8_426_with_version_header(srv):
    r = http_raw(srv.port, upgrade_request(srv.port, WS, version="8"))
    assert r.status == 426, r
    assert r.header("Sec-WebSocket-Version") == "13", r


def test_unknown_path_404(srv):
    assert http_get(srv.port, "/no/such/thing").status == 404


def test_upgrade_on_other_path_not_101(srv):
    # with --path /ws, an upgrade on another path must not reach the WebSocket server
    r = http_raw(srv.port, upgrade_request(srv.port, "/other"))
    assert r.status == 404, r


def test_healthz(srv):
    r = http_get(srv.port, "/healthz")
    assert r.status == 200, r
    assert r.body.strip() == b"ok", r


def test_root_serves_demo_html(srv):
    r = http_get(srv.port, "/")
    assert r.status == 200, r
    assert "text/html" in (r.header("Content-Type") or ""), r
    assert b"<html" in r.body.lower(), r


def test_demo_assets(srv):
    for path, ctype in (("/app.js", "javascript"), ("/style.css", "text/css")):
        r = http_get(srv.port, path)
        assert r.status == 200, (path, r)
        assert ctype in (r.header("Content-Type") or ""), (path, r)
        assert len(r.body) > 0


def test_path_traversal_refused(srv):
    for path in ("/../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2f..%2fetc/passwd"):
        r = http_get(srv.port, path)
        assert r.status in (400, 403, 404), (path, r)
        assert b"root:" not in r.body, (path, r)


def test_public_dir_option(shoal, tmp_path):
    pub = tmp_path / "pub"
    pub.mkdir()
    (pub / "index.html").write_text("<html><body>custom page</body></html>")
    (pub / "hello.txt").write_text("hello file\n")
    srv = shoal("--handler", "echo", "--path", WS, "--public", str(pub))
    r = http_get(srv.port, "/")
    assert r.status == 200 and b"custom page" in r.body, r
    r = http_get(srv.port, "/hello.txt")
    assert r.status == 200 and r.body == b"hello file\n", r
    assert http_get(srv.port, "/missing.txt").status == 404


def test_keep_alive_two_requests_one_connection(srv):
    with RawConn(srv.port) as c:
        for _ in range(2):
            c.send(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n\r\n".encode())
            r = c.read_response()
            assert r.status == 200 and r.body.strip() == b"ok", r
            assert (r.header("Connection") or "").lower() != "close", r


def test_pipelined_requests(srv):
    with RawConn(srv.port) as c:
        req = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n\r\n"
        c.send((req + f"GET /nope HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n\r\n" + req).encode())
        statuses = [c.read_response().status for _ in range(3)]
        assert statuses == [200, 404, 200]


def test_keep_alive_then_upgrade(srv):
    key = "MDEyMzQ1Njc4OWFiY2RlZg=="
    with RawConn(srv.port) as c:
        c.send(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n\r\n".encode())
        assert c.read_response().status == 200
        c.send(upgrade_request(srv.port, WS, key=key))
        r = c.read_response()
        assert r.status == 101 and r.header("Sec-WebSocket-Accept") == accept_for(key), r
        c.send(client_frame(OP_TEXT, b"after keep-alive"))
        assert read_frame(c).payload == b"after keep-alive"


def test_connection_close_honoured(srv):
    with RawConn(srv.port) as c:
        c.send(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nConnection: close\r\n\r\n".encode())
        r = c.read_response()
        assert r.status == 200, r
        assert c.read_until_close() == b""


def test_server_survives_bad_clients(srv):
    # half a request, then a reset; then a normal request still works
    c = RawConn(srv.port)
    c.send(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgr")
    c.reset()
    c = RawConn(srv.port)
    c.send(os.urandom(4096))
    c.close()
    assert http_get(srv.port, "/healthz").status == 200


def test_head_has_no_body_and_keeps_the_stream_in_sync(srv):
    with RawConn(srv.port) as c:
        c.send((f"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                f"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                f"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
                f"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").encode())
        r = c.read_response(head_only=True)
        assert r.status == 200 and r.header("Content-Length") == "3", r
        r = c.read_response()
        assert r.status == 200 and r.body.strip() == b"ok", r
        r = c.read_response(head_only=True)
        assert r.status == 200 and "text/html" in (r.header("Content-Type") or ""), r
        r = c.read_response()
        assert r.status == 200 and r.body.strip() == b"ok", r


def test_http11_without_host_400(srv):
    # RFC 9112 section 3.2: a server MUST respond 400 to an HTTP/1.1 request without Host
    r = http_raw(srv.port, b"GET /healthz HTTP/1.1\r\n\r\n")
    assert r.status == 400, r


def test_method_not_allowed_on_ws_path(srv):
    r = http_raw(srv.port, upgrade_request(srv.port, WS).replace(b"GET", b"POST", 1))
    assert r.status in (400, 405), r


def test_without_path_every_path_upgrades_and_http_still_works(shoal):
    srv = shoal("--handler", "echo")
    for path in ("/", "/anything", "/a/b?c=d"):
        r = http_raw(srv.port, upgrade_request(srv.port, path))
        assert r.status == 101, (path, r)
    assert http_get(srv.port, "/healthz").status == 200
    assert http_get(srv.port, "/no/such/file").status == 404
    r = http_get(srv.port, "/")
    assert r.status == 200 and b"<html" in r.body.lower(), r
