"""The WebSocket client class (`WebSocket(url:handler:)`) from outside: the 4D client example
(`shoal-client-example`, built beside `shoal`) against the real shoal binary, a Python `websockets`
server and a Node `ws` server, and the ways a connection fails (bad URL, refused, a server that
answers the handshake wrongly, a server that drops the connection), and wss:// against a Python
TLS server with a test certificate.

The example prints each message and "Connection closed" (4D's ALERTs) on stdout, and with --trace
every callback as a JSON line on stderr; each line of its stdin is sent.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
import subprocess
import threading

import pytest
import websockets

from conftest import REPO, free_port, shoal_bin

HERE = os.path.dirname(os.path.abspath(__file__))
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def example_bin() -> str:
    """Beside the shoal binary under test, else the release build of this checkout."""
    for b in (os.path.join(os.path.dirname(shoal_bin()), "shoal-client-example"),
              os.path.join(REPO, ".build", "release", "shoal-client-example")):
        if os.access(b, os.X_OK):
            return b
    pytest.fail("shoal-client-example not found: swift build -c release --product shoal-client-example")


class Run:
    """One run of the example: its stdout lines, its callbacks (JSON lines) and exit status."""

    def __init__(self, proc: subprocess.CompletedProcess):
        self.status = proc.returncode
        self.lines = proc.stdout.splitlines()
        self.events = [json.loads(l) for l in proc.stderr.splitlines() if l.startswith("{")]
        self.stderr = proc.stderr

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["event"] == kind]

    @property
    def terminate(self) -> dict:
        ends = self.of("terminate")
        assert len(ends) == 1, f"onTerminate ran {len(ends)} times: {self.events}\n{self.stderr}"
        return ends[0]

    def __repr__(self) -> str:
        return f"exit {self.status}, stdout {self.lines}, events {self.events}, stderr {self.stderr[-2000:]}"


def run_example(url: str, *lines: str, options: tuple[str, ...] = (), keep_open: float = 0.0, timeout: float = 30) -> Run:
    """Runs the example against `url`, sending `lines`; with `keep_open`, stdin stays open that many
    seconds after them (the server ends the connection), else it ends at once (the client terminates)."""
    import tempfile
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([example_bin(), "--trace", *options, url], stdin=subprocess.PIPE, stdout=out, stderr=err,
                                text=True)
        try:
            for line in lines:
                proc.stdin.write(line + "\n")
            proc.stdin.flush()
            if keep_open:
                proc.wait(keep_open)  # the server ends it, or the wait times out
        except subprocess.TimeoutExpired:
            pass
        except BrokenPipeError:
            pass  # the client ended first
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"the client did not end within {timeout}s")
        out.seek(0)
        err.seek(0)
        return Run(subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read()))


class ThreadServer:
    """An asyncio server (websockets, or raw streams) on a thread of its own, on 127.0.0.1."""

    def __init__(self, start):
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stop_event: asyncio.Event | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(start,), daemon=True)
        self.thread.start()
        assert self.ready.wait(10), f"test server did not start: {self.error}"

    def _run(self, start):
        async def main():
            self.stop_event = asyncio.Event()
            server = await start(self.port)
            self.ready.set()
            await self.stop_event.wait()
            server.close()
            await server.wait_closed()
        try:
            self.loop.run_until_complete(main())
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
            self.ready.set()

    def close(self):
        if self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(10)


@pytest.fixture
def thread_server():
    servers: list[ThreadServer] = []
    def start(factory):
        s = ThreadServer(factory)
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.close()


async def websockets_echo(ws):
    """Echo in kind; "close CODE REASON" closes with them; "headers" answers the request's X-Token."""
    async for message in ws:
        if isinstance(message, str) and message.startswith("close "):
            _, code, reason = message.split(" ", 2)
            await ws.close(int(code), reason)
        elif message == "headers":
            await ws.send(json.dumps({"token": ws.request.headers.get("X-Token"),
                                      "extensions": ws.request.headers.get("Sec-WebSocket-Extensions")}))
        else:
            await ws.send(message)


def raw_server(answer):
    """A server that reads a request head and answers `answer(key)` (bytes), then holds the socket."""
    async def start(port):
        async def handle(reader, writer):
            head = await reader.readuntil(b"\r\n\r\n")
            key = ""
            for line in head.decode().split("\r\n"):
                if line.lower().startswith("sec-websocket-key:"):
                    key = line.split(":", 1)[1].strip()
            writer.write(answer(key))
            await writer.drain()
            await asyncio.sleep(3)
            writer.close()
        return await asyncio.start_server(handle, "127.0.0.1", port)
    return start


def accept_for(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def switching_protocols(accept: str) -> bytes:
    return ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode()


# ---------------------------------------------------------------- against shoal


def test_example_against_shoal_probe_open_messages_headers_and_server_close(shoal):
    srv = shoal("--handler", "probe")
    run = run_example(srv.url("/probe?x=1"), "status", "header X-Token", "terminate 4000 bye",
                      options=("--header", "X-Token:secret-1"), keep_open=10)
    assert run.status == 0, run
    opened = run.of("open")
    assert len(opened) == 1 and opened[0]["status"] == "Connected" and opened[0]["url"] == srv.url("/probe?x=1"), run
    assert opened[0]["id"] >= 1 and opened[0]["dataType"] == "text"
    replies = [json.loads(e["data"]) for e in run.of("message")]
    assert replies[0]["event"] == "hello", run
    assert replies[1] == {"echo": "Hello world"}, run  # 4D: send("Hello world") right after new()
    assert replies[2] == {"status": "Connected"}
    assert replies[3] == {"header": "X-Token", "values": ["secret-1"]}
    # The server's close code and reason reach onTerminate; status is then "Closed".
    assert run.terminate == {"event": "terminate", "code": 4000, "reason": "bye", "status": "Closed"}, run
    assert run.lines[-1] == "Connection closed"
    assert not run.of("error")


def test_example_object_data_type_parses_json(shoal):
    srv = shoal("--handler", "probe")
    run = run_example(srv.url("/"), "id", options=("--data-type", "object"), keep_open=2)
    assert run.status == 0, run
    assert run.of("open")[0]["dataType"] == "object"
    assert json.loads(run.of("message")[2]["data"]).keys() == {"id"}, run


# ---------------------------------------------------------------- against other servers


def test_against_python_websockets_with_compression_and_server_close(thread_server):
    srv = thread_server(lambda port: websockets.serve(websockets_echo, "127.0.0.1", port))
    big = "x" * 200_000
    run = run_example(f"ws://127.0.0.1:{srv.port}/any", "héllo wörld", big, "headers", "close 4001 done",
                      options=("--header", "X-Token:py"), keep_open=10)
    assert run.status == 0, run
    texts = [e["data"] for e in run.of("message")]
    assert texts[:3] == ["Hello world", "héllo wörld", big], run
    headers = json.loads(texts[3])
    assert headers["token"] == "py"
    assert headers["extensions"].startswith("permessage-deflate")
    assert run.terminate["code"] == 4001 and run.terminate["reason"] == "done", run


def test_against_node_ws(tmp_path):
    env = dict(os.environ)
    env["NODE_PATH"] = "/usr/share/nodejs" + (":" + env["NODE_PATH"] if env.get("NODE_PATH") else "")
    node = subprocess.Popen(["node", os.path.join(HERE, "node", "echo_server.js")], stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = node.stdout.readline()
        assert line.startswith("listening "), line
        port = int(line.split()[1])
        run = run_example(f"ws://127.0.0.1:{port}/", "one", "two", "headers", "close 4002 node says bye",
                          options=("--header", "X-Token:node"), keep_open=10)
    finally:
        node.kill()
        node.wait(5)
    assert run.status == 0, run
    texts = [e["data"] for e in run.of("message")]
    assert texts[:3] == ["Hello world", "one", "two"], run
    assert json.loads(texts[3]) == {"token": "node", "extensions": "permessage-deflate; client_max_window_bits"}
    assert run.terminate["code"] == 4002 and run.terminate["reason"] == "node says bye", run


def test_terminate_sends_1000_and_the_server_answers(thread_server):
    seen: list[tuple[int | None, str | None]] = []
    async def record(ws):
        async for message in ws:
            await ws.send(message)
        seen.append((ws.close_code, ws.close_reason))
    srv = thread_server(lambda port: websockets.serve(record, "127.0.0.1", port))
    # Standard input ends after 2 s: the example calls terminate() (no code: 1000).
    run = run_example(f"ws://127.0.0.1:{srv.port}/", "bye", keep_open=2)
    assert [e["data"] for e in run.of("message")] == ["Hello world", "bye"], run
    assert run.status == 0, run
    assert run.terminate["code"] == 1000, run  # the server's echo of our close
    for _ in range(50):
        if seen:
            break
        threading.Event().wait(0.1)
    assert seen == [(1000, "")], seen


# ---------------------------------------------------------------- failures


@pytest.mark.parametrize("url, problem", [
    ("http://127.0.0.1/", "is not a ws:// or wss:// URL"),
    ("ws://127.0.0.1:70000/", "port \"70000\" is not 1…65535"),
    ("ws://host/#frag", "fragment"),
])
def test_bad_url_reaches_on_error_then_on_terminate(url, problem):
    run = run_example(url, keep_open=5)
    assert run.status == 1, run
    [error] = run.of("error")
    assert error["errCode"] == 10 and problem in error["message"], run
    assert run.terminate["code"] == 1006 and run.terminate["status"] == "Closed"
    assert run.lines == ["Connection closed"]


def test_refused_connection_reaches_on_error_then_on_terminate():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = run_example(f"ws://127.0.0.1:{port}/", keep_open=5)
    assert run.status == 1, run
    [error] = run.of("error")
    assert error["errCode"] == 11 and "Connection refused" in error["message"], run
    assert run.terminate["code"] == 1006


def test_unknown_host_reaches_on_error():
    run = run_example("ws://no-such-host.invalid/", keep_open=10)
    assert run.status == 1, run
    [error] = run.of("error")
    assert error["errCode"] == 11 and "cannot resolve no-such-host.invalid" in error["message"], run
    assert run.terminate["code"] == 1006


def test_wrong_sec_websocket_accept_fails_the_handshake(thread_server):
    srv = thread_server(raw_server(lambda key: switching_protocols(accept_for(key + "x"))))
    run = run_example(f"ws://127.0.0.1:{srv.port}/", keep_open=5)
    assert run.status == 1, run
    [error] = run.of("error")
    assert error["errCode"] == 12 and "Sec-WebSocket-Accept" in error["message"], run
    assert not run.of("open") and not run.of("message")
    assert run.terminate["code"] == 1006


def test_a_status_other_than_101_fails_the_handshake(thread_server):
    srv = thread_server(raw_server(lambda key: b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"))
    run = run_example(f"ws://127.0.0.1:{srv.port}/", keep_open=5)
    [error] = run.of("error")
    assert error["errCode"] == 12 and "status 403 Forbidden instead of 101" in error["message"], run
    assert run.terminate["code"] == 1006


def test_a_valid_handshake_from_a_raw_server_opens(thread_server):
    # The same raw server with the right accept value: proves the two tests above fail for their reason.
    srv = thread_server(raw_server(lambda key: switching_protocols(accept_for(key))))
    run = run_example(f"ws://127.0.0.1:{srv.port}/", keep_open=5)
    assert len(run.of("open")) == 1, run
    # The raw server closes TCP after 3 s without a close frame: 1006, and no error.
    assert run.terminate["code"] == 1006 and run.status == 0, run


# ---------------------------------------------------------------- wss://


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    d = tmp_path_factory.mktemp("cert")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return str(cert), str(key)


def tls_server(thread_server, certificate):
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return thread_server(lambda port: websockets.serve(websockets_echo, "127.0.0.1", port, ssl=context))


def test_wss_against_python_websockets_with_a_test_certificate(thread_server, certificate):
    srv = tls_server(thread_server, certificate)
    run = run_example(f"wss://localhost:{srv.port}/", "secure", "close 4003 tls bye",
                      options=("--ca", certificate[0]), keep_open=10)
    assert run.status == 0, run
    assert [e["data"] for e in run.of("message")] == ["Hello world", "secure"], run
    assert run.terminate["code"] == 4003 and run.terminate["reason"] == "tls bye"


@pytest.mark.parametrize("host, sni", [("127.0.0.1", None), ("localhost", "localhost")])
def test_wss_sends_the_host_name_as_sni_and_no_sni_for_an_address(thread_server, certificate, host, sni):
    # RFC 6066 section 3: "Literal IPv4 and IPv6 addresses are not permitted in HostName." The
    # certificate covers both (DNS:localhost, IP:127.0.0.1), so both open.
    import ssl
    seen = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    context.sni_callback = lambda _socket, name, _context: seen.append(name)
    srv = thread_server(lambda port: websockets.serve(websockets_echo, "127.0.0.1", port, ssl=context))
    run = run_example(f"wss://{host}:{srv.port}/", "close 4003 seen", options=("--ca", certificate[0]), keep_open=10)
    assert run.status == 0, run
    assert seen == [sni], run
    assert run.terminate["code"] == 4003, run


def test_wss_refuses_a_certificate_the_system_does_not_trust(thread_server, certificate):
    srv = tls_server(thread_server, certificate)
    run = run_example(f"wss://localhost:{srv.port}/", keep_open=5)
    assert run.status == 1, run
    [error] = run.of("error")
    assert error["errCode"] == 11 and "certificate verify failed" in error["message"], run
    assert not run.of("open")
    assert run.terminate["code"] == 1006
