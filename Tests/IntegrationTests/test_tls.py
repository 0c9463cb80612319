"""TLS in the worker (`shoal serve --tls-cert FILE --tls-key FILE`): https:// and wss:// on one
listener, checked with independent clients (Python's ssl + websockets, `openssl s_client`,
headless Chromium) against a certificate made with `openssl req` for the run.

- start-up errors: a missing, unreadable or mismatched certificate or key exits 64 naming it;
- wss:// echo (a 200 KB message too) and https GET of /healthz, the demo page and /metrics;
- wss:// chat across 2 workers;
- `openssl s_client`: TLS 1.3 and 1.2 accepted, 1.1 refused (counted), ALPN http/1.1, session
  resumption ("Reused") on every try with 2 workers, TLS 1.3 and 1.2;
- PROXY v2 header before the ClientHello: written by hand, and by a real haproxy passing TLS
  through in TCP mode with send-proxy-v2;
- hostile: plain HTTP and a plain WebSocket upgrade to the TLS port, garbage before a
  ClientHello, a ClientHello dribbled slowly (closed by the request deadline), 2,000 half-open
  handshakes then a normal client served with bounded memory;
- SIGHUP: new certificate files served by the new workers; a bad new file refuses the reload
  and the old workers keep serving;
- headless Chromium on the https:// demo page, chat between two tabs over wss://.
Run on both loop backends (SHOAL_BACKEND=epoll for the fallback).
"""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import free_port, group_members, shoal_bin
from helpers import run
from proxy_helpers import v2

T = 10.0
WELCOME = "Welcome on the chat!"
JOINED = "New client connected"


# ---------------------------------------------------------------- certificates and clients


def make_certificate(directory, name: str, cn: str = "localhost") -> tuple[str, str]:
    cert, key = str(directory / f"{name}.pem"), str(directory / f"{name}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={cn}",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=T)
    return cert, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    return {"main": make_certificate(d, "main"), "other": make_certificate(d, "other", cn="renewed"), "dir": d}


def client_context(cafile: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cafile)
    return ctx


def tls_serve(shoal, certs, *args: str):
    cert, key = certs["main"]
    return shoal("--tls-cert", cert, "--tls-key", key, *args)


def https_get(port: int, path: str, cafile: str) -> tuple[int, str]:
    c = http.client.HTTPSConnection("127.0.0.1", port, timeout=T, context=client_context(cafile))
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        c.close()


def metric(port: int, cafile: str, name: str, **labels: str) -> float:
    status, body = https_get(port, "/metrics", cafile)
    assert status == 200, body
    total, seen = 0.0, False
    for line in body.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
            seen = True
    assert seen, f"/metrics has no {name} {labels}"
    return total


def wait_metric(port: int, cafile: str, name: str, at_least: float, **labels: str) -> float:
    deadline = time.monotonic() + T
    while (value := metric(port, cafile, name, **labels)) < at_least and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


async def wss(port: int, cafile: str, path: str = "/", **kw):
    import websockets
    return await websockets.connect(f"wss://127.0.0.1:{port}{path}", ssl=client_context(cafile),
                                    open_timeout=T, close_timeout=T, **kw)


def s_client(port: int, *args: str, stdin: bytes = b"", sleep: float = 0.0) -> str:
    """`openssl s_client` output (stdout and stderr). `sleep`: keep stdin open that long, so that
    TLS 1.3 tickets (sent after the handshake) arrive before it quits."""
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost", *args]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        if sleep:
            p.stdin.write(stdin)
            p.stdin.flush()
            time.sleep(sleep)
            out, _ = p.communicate(timeout=T)
        else:
            out, _ = p.communicate(stdin, timeout=T)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    return out.decode(errors="replace")


def client_hello() -> bytes:
    """A real ClientHello, as Python's ssl writes it."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def ends_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Reads until the server closes (True) or `seconds` pass (False); returns what it sent."""
    sock.settimeout(0.2)
    got = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return True, got
        if not chunk:
            return True, got
        got += chunk
    return False, got


def rss_kib(pid: int) -> int:
    """Resident memory of a server's whole process group (supervisor and workers), in KiB."""
    total = 0
    for member in group_members(pid):
        try:
            with open(f"/proc/{member.split()[0]}/status") as f:
                total += int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        except (OSError, AttributeError):
            pass
    return total


# ---------------------------------------------------------------- start-up errors


def serve_status(*args: str) -> tuple[int, str]:
    p = subprocess.run([shoal_bin(), "serve", "--host", "127.0.0.1", "--port", "1", *args],
                       capture_output=True, text=True, timeout=T)
    return p.returncode, p.stderr


def test_bad_certificates_and_keys_stop_the_start_with_64_naming_the_file(certs, tmp_path):
    cert, key = certs["main"]
    other_cert, other_key = certs["other"]
    missing = str(tmp_path / "missing.pem")
    rc, err = serve_status("--tls-cert", missing, "--tls-key", key)
    assert rc == 64 and f"certificate {missing}: No such file or directory" in err, err
    rc, err = serve_status("--tls-cert", cert, "--tls-key", missing)
    assert rc == 64 and f"private key {missing}: No such file or directory" in err, err
    rc, err = serve_status("--tls-cert", cert, "--tls-key", other_key)
    assert rc == 64 and f"private key {other_key} does not belong to certificate {cert}" in err, err
    rc, err = serve_status("--tls-cert", key, "--tls-key", key)
    assert rc == 64 and f"certificate {key} is not a PEM certificate chain" in err, err
    rc, err = serve_status("--tls-cert", cert)
    assert rc == 64 and "--tls-cert and --tls-key come in pairs" in err, err
    if os.geteuid() != 0:  # root reads any file
        unreadable = str(tmp_path / "unreadable.key")
        shutil.copy(key, unreadable)
        os.chmod(unreadable, 0)
        rc, err = serve_status("--tls-cert", cert, "--tls-key", unreadable)
        assert rc == 64 and f"private key {unreadable}: Permission denied" in err, err


# ---------------------------------------------------------------- serving


def test_wss_echo_and_https_pages_on_one_port(shoal, certs):
    cafile = certs["main"][0]
    srv = tls_serve(shoal, certs, "--handler", "echo")

    async def main():
        ws = await wss(srv.port, cafile)
        await ws.send("hello over TLS")
        assert await asyncio.wait_for(ws.recv(), T) == "hello over TLS"
        big = os.urandom(200_000)
        await ws.send(big)
        assert await asyncio.wait_for(ws.recv(), T) == big
        await ws.close()
    run(main())
    assert https_get(srv.port, "/healthz", cafile) == (200, "ok\n")
    status, page = https_get(srv.port, "/", cafile)
    assert status == 200 and "<!doctype html>" in page.lower(), page[:200]
    status, body = https_get(srv.port, "/metrics", cafile)
    assert status == 200 and "shoal_tls_handshake_failures_total" in body
    assert "kernel TLS: unavailable" in srv.log(200) or "kernel TLS: offered" in srv.log(200), srv.log()


def test_wss_chat_across_two_workers(shoal, certs):
    cafile = certs["main"][0]
    srv = tls_serve(shoal, certs, "--handler", "chat", "--path", "/chat", "--workers", "2")
    n = 8  # enough that both workers hold some

    async def main():
        clients = []
        for _ in range(n):
            c = await wss(srv.port, cafile, "/chat")
            assert await asyncio.wait_for(c.recv(), T) == WELCOME
            for earlier in clients:
                assert await asyncio.wait_for(earlier.recv(), T) == JOINED
            clients.append(c)
        for i, sender in enumerate(clients):
            await sender.send(f"from {i}")
            for j, other in enumerate(clients):
                if j != i:
                    assert await asyncio.wait_for(other.recv(), T) == f"from {i}"
        for c in clients:
            await c.close()
    run(main(), timeout=60)
    status, body = https_get(srv.port, "/metrics", cafile)
    per_worker = [float(v) for v in re.findall(r'shoal_messages_received_total\{worker="\d+"\} (\S+)', body)]
    assert sum(1 for v in per_worker if v > 0) == 2, f"the clients did not reach both workers: {per_worker}"


def test_openssl_s_client_versions_alpn_and_resumption_across_workers(shoal, certs):
    cafile = certs["main"][0]
    srv = tls_serve(shoal, certs, "--handler", "echo", "--workers", "2")
    out = s_client(srv.port, "-tls1_3", "-alpn", "http/1.1")
    assert "New, TLSv1.3" in out and "ALPN protocol: http/1.1" in out, out
    out = s_client(srv.port, "-tls1_2")
    assert re.search(r"New, TLSv1\.2, Cipher is ECDHE-ECDSA-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305)", out), out
    refused_before = metric(srv.port, cafile, "shoal_tls_handshake_failures_total", reason="protocol")
    out = s_client(srv.port, "-tls1_1")
    assert "New, TLSv1.1" not in out and ("alert protocol version" in out or "no protocols available" in out), out
    if "alert protocol version" in out:  # this client sent a ClientHello; the server refused it
        assert wait_metric(srv.port, cafile, "shoal_tls_handshake_failures_total", refused_before + 1,
                           reason="protocol") >= refused_before + 1
    out = s_client(srv.port, "-alpn", "h2")
    assert "no application protocol" in out, out

    for version in ("-tls1_3", "-tls1_2"):
        session = str(certs["dir"] / f"session{version}.pem")
        out = s_client(srv.port, version, "-sess_out", session, sleep=0.5)
        assert "New, TLSv1" in out, out
        # SO_REUSEPORT spreads connections over both workers: 8 in a row all resumed means the
        # other worker opened the first one's ticket too (all 8 on one worker: 1 in 256).
        for attempt in range(8):
            out = s_client(srv.port, version, "-sess_in", session, sleep=0.2)
            assert "Reused, TLSv1" in out, f"{version} attempt {attempt}: {out}"


def test_proxy_v2_header_before_the_client_hello(shoal, certs):
    cafile = certs["main"][0]
    srv = tls_serve(shoal, certs, "--handler", "probe", "--proxy-protocol")
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=T)
    sock.sendall(v2("203.0.113.7"))
    tls = client_context(cafile).wrap_socket(sock, server_hostname="localhost")
    tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    answer = b""
    while chunk := tls.recv(4096):
        answer += chunk
    tls.close()
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok\n"), answer

    async def main():
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=T)
        s.sendall(v2("203.0.113.9"))
        s.setblocking(False)
        ws = await wss(srv.port, cafile, sock=s, server_hostname="localhost")
        import json
        hello = json.loads(await asyncio.wait_for(ws.recv(), T))
        assert hello.get("event") == "hello", hello
        await ws.send("remote")
        while "remote" not in (answer := json.loads(await asyncio.wait_for(ws.recv(), T))):
            pass
        assert answer["remote"] == "203.0.113.9", answer
        await ws.close()
    run(main())


def test_haproxy_in_tcp_mode_sends_proxy_v2_before_the_client_hello(shoal, certs, tmp_path):
    """Real haproxy passing TLS through (mode tcp, `send-proxy-v2`) to the TLS port: the PROXY
    header comes first, then the client's own ClientHello; the handler sees the client's address."""
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.access(haproxy, os.X_OK):
        pytest.skip("haproxy is not installed (scripts/install-deps.sh installs it)")
    cafile = certs["main"][0]
    srv = tls_serve(shoal, certs, "--handler", "probe", "--proxy-protocol")
    port = free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(f"""
global
    maxconn 200
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend tls_passthrough
    bind 127.0.0.1:{port}
    default_backend shoal
backend shoal
    server shoal1 127.0.0.1:{srv.port} send-proxy-v2
""")
    log = open(tmp_path / "haproxy.log", "wb")
    proxy = subprocess.Popen([haproxy, "-db", "-f", str(cfg)], stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + T
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proxy.poll() is None, (tmp_path / "haproxy.log").read_text()
                time.sleep(0.05)

        async def main():
            import json
            s = socket.socket()
            s.bind(("127.0.0.7", 0))
            s.connect(("127.0.0.1", port))
            s.setblocking(False)
            ws = await wss(port, cafile, sock=s, server_hostname="localhost")
            assert json.loads(await asyncio.wait_for(ws.recv(), T)).get("event") == "hello"
            await ws.send("remote")
            while "remote" not in (answer := json.loads(await asyncio.wait_for(ws.recv(), T))):
                pass
            assert answer["remote"] == "127.0.0.7", answer
            await ws.close()
        run(main())
    finally:
        os.killpg(proxy.pid, signal.SIGTERM)
        proxy.wait(timeout=10)
        log.close()


# ---------------------------------------------------------------- hostile


def test_plain_http_and_a_plain_upgrade_to_the_tls_port_end_and_are_counted(shoal, certs):
    cafile = certs["main"][0]
    srv = tls_serve(shoal, certs, "--handler", "probe", "--workers", "1")
    requests = [b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
                b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"]
    for request in requests:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=T) as s:
            s.sendall(request)
            ended, got = ends_within(s, 5)
            assert ended, "the server kept a plain-HTTP connection to its TLS port open"
            assert b"HTTP/1.1" not in got, got
    assert wait_metric(srv.port, cafile, "shoal_tls_handshake_failures_total", 2, reason="plain_http") >= 2

    async def server_errors():  # what the server's onError heard
        import json
        ws = await wss(srv.port, cafile)
        assert json.loads(await asyncio.wait_for(ws.recv(), T)).get("event") == "hello"
        await ws.send("server-errors")
        while "serverErrors" not in (answer := json.loads(await asyncio.wait_for(ws.recv(), T))):
            pass
        await ws.close()
        return [e["message"] for report in answer["serverErrors"] for e in report["errors"]]
    messages = run(server_errors())
    tls_reports = [m for m in messages if m.startswith("TLS handshake from 127.0.0.1 failed") and "http request" in m]
    assert len(tls_reports) == 2, messages


def test_garbage_before_a_client_hello_gets_an_alert_and_a_close(shoal, certs):
    cafile = certs["main"][0]
    srv = tls_serve(shoal, certs, "--handler", "echo", "--workers", "1")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=T) as s:
        s.sendall(b"\x16\x03\x01\x00\x08\x01\x00\x00\x04\x03\x03\xaa\xbb" + client_hello())
        ended, got = ends_within(s, 5)
        assert ended and got[:1] == b"\x15", f"expected an alert record then the end: {got!r}"
    with socket.create_connection(("127.0.0.1", srv.port), timeout=T) as s:
        s.sendall(os.urandom(64) + client_hello())
        ended, _ = ends_within(s, 5)
        assert ended
    assert wait_metric(srv.port, cafile, "shoal_tls_handshake_failures_total", 2) >= 2
    assert https_get(srv.port, "/healthz", cafile)[0] == 200  # and the worker serves on


def test_a_forged_record_after_the_upgrade_ends_that_connection_only(shoal, certs):
    """Bytes written under TLS on an open wss:// connection (a record that fails its MAC): that
    connection ends, the worker lives on and serves the next client. At debug level, where the
    failure is logged with the client's address."""
    cafile = certs["main"][0]
    srv = tls_serve(shoal, certs, "--handler", "echo", "--workers", "1", "--log-level", "debug")
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=T)
    tls = client_context(cafile).wrap_socket(sock, server_hostname="localhost")
    tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += tls.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    workers = group_members(srv.proc.pid)
    raw = socket.socket(fileno=os.dup(tls.fileno()))  # the TCP socket under TLS
    raw.sendall(b"\x17\x03\x03\x00\x40" + os.urandom(64))
    ended, _ = ends_within(raw, 5)
    assert ended, "the connection stayed open after a forged record"
    raw.close()
    tls.close()

    async def main():
        ws = await wss(srv.port, cafile)
        await ws.send("next client")
        assert await asyncio.wait_for(ws.recv(), T) == "next client"
        await ws.close()
    run(main())
    assert group_members(srv.proc.pid) == workers, "a worker was replaced: it crashed"
    assert "crash" not in srv.log(200).lower() and "Fatal error" not in srv.log(200), srv.log()


def test_a_dribbled_client_hello_is_closed_by_the_request_deadline(shoal, certs):
    cafile = certs["main"][0]
    srv = tls_serve(shoal, certs, "--handler", "echo", "--workers", "1", "--request-timeout", "2")
    hello = client_hello()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=T) as s:
        started, sent, ended = time.monotonic(), 0, False
        while sent < len(hello) and time.monotonic() - started < 8:
            try:
                s.sendall(hello[sent:sent + 1])
            except (BrokenPipeError, ConnectionResetError):
                ended = True
                break
            sent += 1
            s.settimeout(0.25)
            try:
                if s.recv(4096) == b"":
                    ended = True
                    break
            except socket.timeout:
                pass
            except ConnectionResetError:
                ended = True
                break
        took = time.monotonic() - started
    assert ended and sent < len(hello), f"sent {sent} of {len(hello)} bytes in {took:.1f}s without being closed"
    assert 1.5 < took < 5, f"closed after {took:.1f}s with --request-timeout 2"
    assert wait_metric(srv.port, cafile, "shoal_tls_handshake_failures_total", 1, reason="timeout") >= 1


def test_two_thousand_half_open_handshakes_cost_bounded_memory_and_a_client_is_served(shoal, certs):
    cafile = certs["main"][0]
    srv = tls_serve(shoal, certs, "--handler", "echo", "--workers", "2", "--request-timeout", "30")
    hello = client_hello()
    assert https_get(srv.port, "/healthz", cafile)[0] == 200
    before = rss_kib(srv.proc.pid)
    socks = []
    try:
        for _ in range(2000):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=T)
            s.sendall(hello[: len(hello) // 2])  # half a ClientHello: a partial record held
            socks.append(s)
        time.sleep(1)

        async def main():
            ws = await wss(srv.port, cafile)
            await ws.send("still served")
            assert await asyncio.wait_for(ws.recv(), T) == "still served"
            await ws.close()
        run(main())
        during = rss_kib(srv.proc.pid)
        per_handshake = (during - before) * 1024 / 2000
        print(f"RSS {before} KiB before, {during} KiB with 2,000 half-open handshakes: {per_handshake:.0f} B each")
        assert per_handshake < 64 * 1024, f"{per_handshake:.0f} bytes per half-open handshake"
    finally:
        for s in socks:
            s.close()
    assert https_get(srv.port, "/healthz", cafile)[0] == 200


def test_the_operator_listener_stays_plain_http_beside_a_tls_port(shoal, certs):
    """--metrics-listen is plain HTTP (Prometheus, health probes) while the public port speaks
    TLS; before, its sessions started TLS too, every scrape failed and counted as plain_http."""
    operator = free_port()
    srv = tls_serve(shoal, certs, "--handler", "echo", "--workers", "1", "--metrics-listen", f"127.0.0.1:{operator}")
    deadline = time.monotonic() + T
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", operator, timeout=T)
            c.request("GET", "/metrics")
            r = c.getresponse()
            body = r.read().decode()
            c.close()
            break
        except (OSError, http.client.HTTPException):
            assert time.monotonic() < deadline, srv.log()
            time.sleep(0.1)
    assert r.status == 200 and "shoal_connections" in body, body[:300]
    assert 'shoal_tls_handshake_failures_total{worker="0",reason="plain_http"} 0' in body, body
    assert https_get(srv.port, "/healthz", certs["main"][0])[0] == 200


# ---------------------------------------------------------------- reload


def peer_subject(port: int) -> str:
    out = s_client(port, "-tls1_3")
    m = re.search(r"subject=(.*)", out)
    assert m, out
    return m.group(1).strip()


def test_sighup_serves_renewed_files_and_a_bad_file_keeps_the_old_workers(shoal, certs, tmp_path):
    cert, key = str(tmp_path / "live.pem"), str(tmp_path / "live.key")
    shutil.copy(certs["main"][0], cert)
    shutil.copy(certs["main"][1], key)
    srv = shoal("--tls-cert", cert, "--tls-key", key, "--handler", "echo", "--workers", "1", "--drain-timeout", "1")
    assert "CN = localhost" in peer_subject(srv.port) or "CN=localhost" in peer_subject(srv.port)

    # certbot renews: both files replaced, then a reload
    shutil.copy(certs["other"][0], cert)
    shutil.copy(certs["other"][1], key)
    srv.signal(signal.SIGHUP)
    # The old generation drains after the switch; until its worker is gone, a new connection may
    # still land in its listener's queue and get the old certificate.
    deadline = time.monotonic() + 20
    while "worker slot 0 pid" not in srv.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "worker slot 0 pid" in srv.log(), srv.log()
    assert "renewed" in peer_subject(srv.port), srv.log()

    # a broken renewal: the key no longer matches; the reload is refused, the workers serve on,
    # and a client connected before it keeps its connection
    async def refused_reload():
        ws = await wss(srv.port, certs["other"][0])
        await ws.send("before")
        assert await asyncio.wait_for(ws.recv(), T) == "before"
        shutil.copy(certs["main"][1], key)
        srv.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "reload refused" not in srv.log(200) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert f"private key {key} does not belong to certificate {cert}" in srv.log(200), srv.log()
        await asyncio.sleep(1)
        await ws.send("after")
        assert await asyncio.wait_for(ws.recv(), T) == "after"
        await ws.close()
    run(refused_reload())
    assert "renewed" in peer_subject(srv.port)
    assert https_get(srv.port, "/healthz", certs["other"][0])[0] == 200


# ---------------------------------------------------------------- a real browser


def test_chromium_chats_on_the_https_demo_page(shoal, certs):
    from cdp import CHROMIUM, Chromium
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is not installed")
    from test_browser import browser, chat_two_tabs
    cert, key = certs["main"]
    srv = shoal("--tls-cert", cert, "--tls-key", key, "--handler", "chat", "--path", "/chat", "--workers", "2")

    async def main():
        with Chromium(extra_args=["--ignore-certificate-errors"]).start(timeout=15.0) as chromium:
            async with browser(chromium) as new_page:
                await chat_two_tabs(new_page, f"https://127.0.0.1:{srv.port}/")
    run(main(), timeout=60)
