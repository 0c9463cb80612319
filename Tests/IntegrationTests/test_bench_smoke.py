"""Smoke runs of shoal-bench (Benchmarks/ShoalBench): every scenario for a second or two with
small numbers, against the real `shoal`, against Node's ws, and against a scripted Python peer
that fragments its messages, pings, and (in one test) answers the handshake wrongly.

Only the JSON's counts and error tallies decide the outcome: timing figures never do.
The bench binary is $SHOAL_BENCH_BIN, or `shoal-bench` next to $SHOAL_BIN (same build dir);
build it with `swift build -c release --product shoal-bench`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import REPO, free_port, shoal_bin

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
NODE_ECHO = os.path.join(REPO, "..", "shared", "autobahn", "servers", "ws_echo.js")
# A few seconds per run at most; generous so a loaded machine does not fail the test.
TIMEOUT = 90


def bench_bin() -> str:
    b = os.environ.get("SHOAL_BENCH_BIN") or os.path.join(os.path.dirname(shoal_bin()), "shoal-bench")
    if not os.access(b, os.X_OK):
        pytest.skip(f"shoal-bench not found at {b}: build it (swift build -c release --product shoal-bench) "
                    f"or set SHOAL_BENCH_BIN")
    return b


def bench(*args: str, expect_ok: bool = True) -> dict | subprocess.CompletedProcess:
    """Runs shoal-bench with --json; returns the parsed report (or the process when expect_ok is False)."""
    proc = subprocess.run([bench_bin(), *args, "--json"], capture_output=True, text=True, timeout=TIMEOUT)
    if not expect_ok:
        return proc
    assert proc.returncode == 0, f"shoal-bench {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON:\n{proc.stdout[:2000]}\n--- stderr ---\n{proc.stderr}")


SHORT = ["--runs", "2", "--duration", "0.6"]


def check_common(report: dict, scenario: str, runs: int = 2, server_cpu: bool = True) -> None:
    assert report["scenario"] == scenario
    assert report["backend"] in ("io_uring", "epoll")
    assert report["errors"] == {}, f"errors: {report['errors']} e.g. {report['error_samples']}"
    assert report["connections_opened"] > 0
    assert len(report["runs"]) == runs
    for r in report["runs"]:
        assert r["count"] > 0, r
        assert r["seconds"] > 0
        assert r["client_cpu_seconds"] >= 0
        if server_cpu:  # JSON leaves out what was not measured
            assert r.get("server_cpu_seconds") is not None and r["server_cpu_seconds"] >= 0
            # the figure is either there or replaced by the client-bound warning
            if r.get("per_second") is not None and r["server_cpu_seconds"] > 0:
                assert (r.get("per_server_cpu_second") is not None) != r["client_bound"]
    for key in ("per_second", "client_cpu_share"):
        if key in report["summary"]:
            s = report["summary"][key]
            assert s["min"] <= s["median"] <= s["max"]


def check_latency(latency: dict | None) -> None:
    assert latency is not None
    assert latency["count"] > 0
    assert 0 < latency["p50"] <= latency["p99"] <= latency["p999"] <= latency["max"]


# --- against shoal ---

def test_echo_text_pipelined(shoal):
    srv = shoal("--handler", "echo", "--workers", "1")
    report = bench("echo", "--url", srv.url(), "--connections", "8", "--in-flight", "4", "--size", "16",
                   "--warmup", "0.3", "--server-pid", str(srv.proc.pid), *SHORT)
    check_common(report, "echo")
    assert report["connections_opened"] == 8
    check_latency(report.get("latency"))
    for r in report["runs"]:
        check_latency(r.get("latency"))
        assert r.get("per_second", 0) > 0


def test_echo_binary_large_messages(shoal):
    # 70,000 bytes: 64-bit length field, larger than one receive buffer and one send chunk
    srv = shoal("--handler", "echo", "--workers", "1")
    report = bench("echo", "--url", srv.url("/"), "--connections", "2", "--binary", "--size", "70000",
                   "--warmup", "0.2", "--server-pid", str(srv.proc.pid), *SHORT)
    check_common(report, "echo")
    assert report["parameters"]["type"] == "binary"


def test_broadcast_against_chat_relays_to_others(shoal):
    srv = shoal("--handler", "chat", "--workers", "1")
    report = bench("broadcast", "--url", srv.url(), "--subscribers", "6", "--publishers", "2", "--rate", "100",
                   "--size", "24", "--warmup", "0.3", "--server-pid", str(srv.proc.pid), *SHORT)
    check_common(report, "broadcast")
    check_latency(report.get("latency"))
    for r in report["runs"]:
        assert r["extra"]["sent_per_second"] > 0
        assert r["extra"]["own_deliveries"] == 0  # chat relays to every other client only
        assert r["extra"]["fanout"] > 0


def test_connect_close_immediately(shoal):
    srv = shoal("--handler", "echo", "--workers", "1")
    report = bench("connect", "--url", srv.url(), "--close-immediately", "--concurrency", "8",
                   "--warmup", "0.2", "--server-pid", str(srv.proc.pid), *SHORT)
    check_common(report, "connect")
    check_latency(report.get("latency"))


def test_connect_keep_open_stops_at_max_open(shoal):
    srv = shoal("--handler", "echo", "--workers", "1")
    report = bench("connect", "--url", srv.url(), "--concurrency", "8", "--max-open", "100",
                   "--server-pid", str(srv.proc.pid), *SHORT)
    check_common(report, "connect")
    for r in report["runs"]:
        assert 0 < r["extra"]["held_open"] <= 100


def test_idle_from_several_source_addresses(shoal):
    srv = shoal("--handler", "echo", "--workers", "1")
    report = bench("idle", "--url", srv.url(), "--connections", "60", "--source-addresses", "3",
                   "--server-pid", str(srv.proc.pid), "--runs", "1", "--duration", "0.5")
    check_common(report, "idle", runs=1)
    r = report["runs"][0]
    assert r["count"] == 60
    assert r.get("per_second") is None
    assert r["extra"]["server_rss_before"] > 0 and r["extra"]["server_rss_after"] > 0
    assert "server_rss_per_connection" in r["extra"]
    assert report["parameters"]["source_addresses"] == "127.0.0.1-127.0.0.3"


def test_idle_refuses_more_connections_than_descriptors():
    proc = bench("idle", "--url", "ws://127.0.0.1:9/", "--connections", "100000000", expect_ok=False)
    assert proc.returncode != 0
    assert "RLIMIT_NOFILE" in proc.stderr


def test_refused_connections_are_reported():
    # nothing listens there: exit status 1, connect errors counted in the JSON
    proc = bench("echo", "--url", f"ws://127.0.0.1:{free_port()}/", "--connections", "2", "--runs", "1",
                 "--duration", "0.2", "--warmup", "0", expect_ok=False)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["errors"].get("connect") == 2
    assert report["connections_opened"] == 0


# --- permessage-deflate (--deflate) ---

def check_deflate(report: dict, negotiated: int, answer_part: str | None = None) -> dict:
    d = report["deflate"]
    assert d["offer"] == "permessage-deflate; client_max_window_bits"
    assert d["negotiated_connections"] == negotiated, d
    if answer_part is not None:
        assert any(answer_part in a for a in d["answers"]), d["answers"]
    return d


def test_deflate_echo_against_shared_compression(shoal):
    # default --compression shared: one compressor per worker, no context takeover either way
    srv = shoal("--handler", "echo", "--workers", "1")
    report = bench("echo", "--url", srv.url(), "--deflate", "--connections", "4", "--size", "700", "--payload", "json",
                   "--warmup", "0.2", "--server-pid", str(srv.proc.pid), *SHORT)
    check_common(report, "echo")
    d = check_deflate(report, 4, "server_no_context_takeover")
    assert d["declined_connections"] == 0
    assert d["compressed_messages_sent"] > 0
    assert d["messages_received"] > 0
    # 700-byte echoes are above the server's 256-byte threshold: they came back compressed
    assert d["wire_bytes_received"] < d["message_bytes_received"], d


def test_deflate_broadcast_against_dedicated_small_window(shoal):
    # per-connection compressors with context takeover; the answer limits the bench's window to 10 bits
    srv = shoal("--handler", "broadcast", "--workers", "1", "--compression", "dedicated",
                "--compression-window-bits", "10", "--compression-memory-level", "4")
    report = bench("broadcast", "--url", srv.url(), "--deflate", "--subscribers", "4", "--publishers", "1",
                   "--rate", "50", "--size", "600", "--payload", "json", "--warmup", "0.3",
                   "--server-pid", str(srv.proc.pid), *SHORT)
    check_common(report, "broadcast")
    d = check_deflate(report, 5, "client_max_window_bits=10")
    assert all("no_context_takeover" not in a for a in d["answers"]), d["answers"]
    assert d["compressed_messages_sent"] > 0
    assert d["wire_bytes_received"] < d["message_bytes_received"], d
    for r in report["runs"]:
        assert r["extra"]["fanout"] > 0


def test_deflate_idle_warmup_message_and_a_server_that_declines(shoal):
    for mode, negotiated in (("dedicated", 12), ("off", 0)):
        srv = shoal("--handler", "echo", "--workers", "1", "--compression", mode)
        report = bench("idle", "--url", srv.url(), "--deflate", "--connections", "12", "--warmup-message", "400",
                       "--server-pid", str(srv.proc.pid), "--runs", "1", "--duration", "0.3")
        check_common(report, "idle", runs=1)
        r = report["runs"][0]
        assert r["count"] == 12
        assert r["extra"]["warmup_replies"] == 12  # every connection's message was echoed
        d = check_deflate(report, negotiated)
        assert d["declined_connections"] == 12 - negotiated
        assert d["messages_received"] == 12
        if negotiated:
            assert d["compressed_messages_sent"] == 12
            assert d["bench_zlib_bytes_peak"] > 0  # one inflater per connection: the server keeps its context
        else:
            assert d["compressed_messages_sent"] == 0
            assert any("declined" in w for w in report["warnings"])


# --- against Node's ws ---

def node_server(script: str, port: int) -> subprocess.Popen:
    env = dict(os.environ, NODE_PATH="/usr/share/nodejs")
    proc = subprocess.Popen(["node", script, str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"node exited {proc.returncode}: {proc.stderr.read().decode(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return proc
        except OSError:
            time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("node server did not listen")


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


needs_node = pytest.mark.skipif(shutil.which("node") is None or not os.path.isdir("/usr/share/nodejs/ws"),
                                reason="node or Debian's node-ws is not installed")


@needs_node
def test_echo_against_node_ws():
    if not os.path.exists(NODE_ECHO):
        pytest.skip(f"{NODE_ECHO} not found")
    port = free_port()
    proc = node_server(NODE_ECHO, port)
    try:
        report = bench("echo", "--url", f"ws://127.0.0.1:{port}/", "--connections", "8", "--in-flight", "2",
                       "--warmup", "0.3", "--server-pid", str(proc.pid), *SHORT)
        check_common(report, "echo")
        check_latency(report.get("latency"))
        report = bench("connect", "--url", f"ws://127.0.0.1:{port}/", "--close-immediately", "--concurrency", "4",
                       "--warmup", "0", "--runs", "1", "--duration", "0.5")
        check_common(report, "connect", runs=1, server_cpu=False)
    finally:
        stop(proc)


ECHO_TO_ALL_JS = """
'use strict';
const WebSocket = require('ws');
const wss = new WebSocket.Server({ host: '127.0.0.1', port: parseInt(process.argv[2], 10) });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    for (const c of wss.clients) if (c.readyState === WebSocket.OPEN) c.send(data, { binary: isBinary });
  });
  ws.on('error', () => {});
});
"""


@needs_node
def test_broadcast_counts_own_deliveries_of_an_echo_to_all_server(tmp_path):
    script = tmp_path / "echo_to_all.js"
    script.write_text(ECHO_TO_ALL_JS)
    port = free_port()
    proc = node_server(str(script), port)
    try:
        report = bench("broadcast", "--url", f"ws://127.0.0.1:{port}/", "--subscribers", "4", "--publishers", "2",
                       "--rate", "100", "--warmup", "0.3", "--server-pid", str(proc.pid), *SHORT)
        check_common(report, "broadcast")
        assert sum(r["extra"]["own_deliveries"] for r in report["runs"]) > 0
    finally:
        stop(proc)


# --- against a scripted peer: fragments, pings, a wrong accept key ---

class ScriptedPeer:
    """A tiny RFC 6455 server on a thread per connection: pings each client once, then echoes every
    message split into two fragments with a ping between them. With wrong_accept it answers the
    handshake with a bad Sec-WebSocket-Accept."""

    def __init__(self, wrong_accept: bool = False, extensions: str | None = None, subprotocol: str | None = None):
        self.wrong_accept = wrong_accept
        self.extensions = extensions
        self.subprotocol = subprotocol
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.pongs = 0
        self.unmasked = 0
        self.lock = threading.Lock()
        self.running = True
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    @staticmethod
    def read_exact(conn, n):
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError
            data += chunk
        return data

    def read_frame(self, conn):
        b0, b1 = self.read_exact(conn, 2)
        length = b1 & 0x7F
        if length == 126:
            length = struct.unpack("!H", self.read_exact(conn, 2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self.read_exact(conn, 8))[0]
        if not b1 & 0x80:
            with self.lock:
                self.unmasked += 1
            key = b"\0\0\0\0"
        else:
            key = self.read_exact(conn, 4)
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(self.read_exact(conn, length)))
        return b0 & 0x0F, payload

    @staticmethod
    def frame(opcode, payload, fin=True):
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | opcode])
        if n < 126:
            head += bytes([n])
        elif n < 65536:
            head += bytes([126]) + struct.pack("!H", n)
        else:
            head += bytes([127]) + struct.pack("!Q", n)
        return head + payload

    def serve(self, conn):
        try:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            key = [line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:")][0].decode()
            accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
            if self.wrong_accept:
                accept = base64.b64encode(b"0" * 20).decode()
            extensions = f"Sec-WebSocket-Extensions: {self.extensions}\r\n" if self.extensions else ""
            if self.subprotocol:
                extensions += f"Sec-WebSocket-Protocol: {self.subprotocol}\r\n"
            conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Accept: {accept}\r\n{extensions}\r\n").encode())
            conn.sendall(self.frame(0x9, b"hello?"))
            while True:
                opcode, payload = self.read_frame(conn)
                if opcode == 0x8:
                    conn.sendall(self.frame(0x8, payload[:2]))
                    return
                if opcode == 0xA:
                    with self.lock:
                        self.pongs += 1
                    continue
                half = len(payload) // 2
                conn.sendall(self.frame(opcode, payload[:half], fin=False) + self.frame(0x9, b"mid")
                             + self.frame(0x0, payload[half:]))
        except (ConnectionError, OSError, IndexError):
            pass
        finally:
            conn.close()

    def close(self):
        self.running = False
        self.sock.close()


def test_echo_handles_fragments_and_answers_pings():
    peer = ScriptedPeer()
    try:
        report = bench("echo", "--url", f"ws://127.0.0.1:{peer.port}/", "--connections", "3", "--size", "40",
                       "--warmup", "0.2", "--runs", "1", "--duration", "0.5")
        check_common(report, "echo", runs=1, server_cpu=False)
        assert peer.pongs >= 3  # every connection answered at least the first ping
        assert peer.unmasked == 0  # every client frame was masked
    finally:
        peer.close()


def test_wrong_accept_key_is_a_handshake_error():
    peer = ScriptedPeer(wrong_accept=True)
    try:
        proc = bench("echo", "--url", f"ws://127.0.0.1:{peer.port}/", "--connections", "2", "--runs", "1",
                     "--duration", "0.2", "--warmup", "0", expect_ok=False)
        assert proc.returncode == 1
        report = json.loads(proc.stdout)
        assert report["errors"].get("handshake") == 2
        assert "Sec-WebSocket-Accept" in " ".join(report["error_samples"])
    finally:
        peer.close()


def test_deflate_answer_we_cannot_honour_is_a_handshake_error():
    # an extension the bench did not offer, and a permessage-deflate parameter that does not exist
    for answer, why in (("x-webkit-deflate-frame", "did not offer"),
                        ("permessage-deflate; server_max_window_bits=16", "server_max_window_bits")):
        peer = ScriptedPeer(extensions=answer)
        try:
            proc = bench("echo", "--url", f"ws://127.0.0.1:{peer.port}/", "--deflate", "--connections", "2",
                         "--runs", "1", "--duration", "0.2", "--warmup", "0", expect_ok=False)
            assert proc.returncode == 1
            report = json.loads(proc.stdout)
            assert report["errors"].get("handshake") == 2, report
            assert why in " ".join(report["error_samples"])
        finally:
            peer.close()
