"""The operator metrics of /metrics, caused for real on a 2-worker cluster and read back: closes
by code (each code made by a client or a limit), refusals by reason (404, 408, a bad request),
the handshake and message-size histograms, the send-queue gauge under a client that does not
read, process figures per worker and supervisor compared with /proc, and shoal_build_info
against `shoal --version`; and the operator listener (--metrics-listen). Every exposition also
passes `promtool check metrics`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

from conftest import free_port, shoal_bin
from cluster_helpers import fd_count, rss_bytes, wait_until, wait_workers
from helpers import OP_CLOSE, RawConn, RawWS, client_frame, http_get, upgrade_request
from hostile_helpers import metric_samples, serve
from test_metrics_format import promtool_check
from test_version import version

CLOSE_CODES = ["1000", "1001", "1002", "1003", "1005", "1006", "1007", "1008", "1009", "1011", "other"]


def snapshot(port: int) -> dict[tuple[str, frozenset], float]:
    return {(name, frozenset(labels.items())): value for name, labels, value in metric_samples(port)}


def value(snap, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in snap, f"/metrics has no {name}{labels}"
    return snap[key]


def check_promtool(port: int) -> None:
    body = http_get(port, "/metrics").body
    p = promtool_check(body)
    assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), \
        f"promtool check metrics:\n{p.stdout.decode()}{p.stderr.decode()}\n--- exposition ---\n{body.decode()}"


def closes(port: int) -> dict[str, float]:
    snap = snapshot(port)
    return {code: value(snap, "shoal_closes_total", code=code) for code in CLOSE_CODES}


def test_closes_refusals_and_histograms_count_what_happened(shoal):
    srv = serve(shoal, "--handler", "echo", "--workers", "2", "--max-message-size", "1000", "--request-timeout", "0.5")
    wait_workers(srv.proc.pid, {0, 1})
    before = snapshot(srv.port)
    closes_before = closes(srv.port)

    # Five handshakes, each ending its connection a different way.
    ws = RawWS(srv.port)
    ws.send_text("hi")  # 2 bytes: the 16-byte bucket
    assert ws.recv_frame().payload == b"hi"
    ws.send_text("x" * 100)  # the 256-byte bucket
    assert ws.recv_frame().payload == b"x" * 100
    ws.send_close(1000)
    assert ws.recv_frame().close_code == 1000
    ws.close()

    ws = RawWS(srv.port)
    ws.send_close(4001)  # an application's code: "other"
    assert ws.recv_frame().close_code == 4001
    ws.close()

    ws = RawWS(srv.port)
    ws.reset()  # no close frame at all: 1006

    ws = RawWS(srv.port)
    ws.send_text("y" * 2000)  # above --max-message-size: the server closes with 1009
    assert ws.recv_frame().close_code == 1009
    ws.send(client_frame(OP_CLOSE, b"\x03\xf1"))
    ws.close()

    ws = RawWS(srv.port)
    ws.send(client_frame(0x3))  # a reserved opcode: the server fails the connection with 1002
    assert ws.recv_frame().close_code == 1002
    ws.close()

    # Refusals: a 404, a 408 (a head that never completes), a 405 (counted as bad_request).
    assert http_get(srv.port, "/no-such-file").status == 404
    with RawConn(srv.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert c.read_response().status == 408
    with RawConn(srv.port) as c:
        c.send(b"DELETE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert c.read_response().status == 405

    expected = dict(closes_before)
    for code in ("1000", "other", "1006", "1009", "1002"):
        expected[code] += 1
    wait_until(lambda: closes(srv.port) == expected, 10, what=f"closes {expected}")

    after = snapshot(srv.port)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("shoal_http_refusals_total", reason="404") == 1
    assert delta("shoal_http_refusals_total", reason="408") == 1
    assert delta("shoal_http_refusals_total", reason="bad_request") == 1
    for reason in ("403", "429", "503", "proxy_header"):
        assert delta("shoal_http_refusals_total", reason=reason) == 0, reason

    assert delta("shoal_handshake_duration_seconds_count") == 5
    assert delta("shoal_handshake_duration_seconds_bucket", le="+Inf") == 5
    # Loopback handshakes take far less than a second each (the sum is in seconds).
    assert 0 < delta("shoal_handshake_duration_seconds_sum") < 5
    assert delta("shoal_handshake_duration_seconds_bucket", le="16.777216") == 5

    assert delta("shoal_received_message_bytes_count") == 2, "the 2,000-byte message was refused, not received"
    assert delta("shoal_received_message_bytes_sum") == 102
    assert delta("shoal_received_message_bytes_bucket", le="16") == 1
    assert delta("shoal_received_message_bytes_bucket", le="64") == 1
    assert delta("shoal_received_message_bytes_bucket", le="256") == 2
    check_promtool(srv.port)


def test_send_queue_bytes_rise_under_a_client_that_does_not_read(shoal):
    srv = serve(shoal, "--handler", "echo", "--workers", "2")
    wait_workers(srv.proc.pid, {0, 1})

    def queued() -> float:
        return sum(v for n, _, v in metric_samples(srv.port) if n == "shoal_send_queue_bytes")

    # Sampled once a second: the first sample may hold the workers' start-up messages to each other.
    wait_until(lambda: queued() == 0, 10, what="shoal_send_queue_bytes at 0 with no client")
    ws = RawWS(srv.port, rcvbuf=4096)
    ws.sock.settimeout(2)
    frame = client_frame(0x2, b"z" * 65536)
    sent = 0
    try:
        for _ in range(256):  # at most 16 MiB; the server stops reading long before
            ws.send(frame)
            sent += 1
    except (socket.timeout, TimeoutError):
        pass
    assert sent > 0
    wait_until(lambda: queued() > 0, 10, what="shoal_send_queue_bytes above 0")
    check_promtool(srv.port)
    ws.reset()
    wait_until(lambda: queued() == 0, 10, what="shoal_send_queue_bytes back at 0 once the client left")


def test_process_figures_match_proc_and_build_info_matches_version(shoal):
    started = time.time()
    srv = serve(shoal, "--handler", "echo", "--workers", "2")
    workers = wait_workers(srv.proc.pid, {0, 1})
    # The supervisor's series carry process="supervisor", a worker's process="worker" and its slot.
    pids = {(("process", "supervisor"),): srv.proc.pid,
            (("process", "worker"), ("worker", "0")): workers[0], (("process", "worker"), ("worker", "1")): workers[1]}

    def complete():
        snap = snapshot(srv.port)
        return snap if all(("process_start_time_seconds", frozenset(w)) in snap for w in pids) else None
    snap = wait_until(complete, 10, what="process metrics of the supervisor and both workers")
    time.sleep(1.2)  # one more sample each, after the start-up descriptors settled
    snap = snapshot(srv.port)
    for labels, pid in pids.items():
        worker = dict(labels)
        start = value(snap, "process_start_time_seconds", **worker)
        assert started - 2 <= start <= time.time() + 1, (worker, start, started)
        assert value(snap, "process_cpu_seconds_total", **worker) > 0, worker
        rss = value(snap, "process_resident_memory_bytes", **worker)
        assert 0.5 * rss_bytes(pid) <= rss <= 2 * rss_bytes(pid), (worker, rss, rss_bytes(pid))
        fds = value(snap, "process_open_fds", **worker)
        assert abs(fds - fd_count(pid)) <= 2, (worker, fds, fd_count(pid))

    lines = version()
    info = [labels for name, labels, v in metric_samples(srv.port) if name == "shoal_build_info" and v == 1]
    assert info == [{"version": lines[0].split()[1], "commit": lines[1].split(": ")[1], "swift": lines[2].split(": ")[1]}]
    check_promtool(srv.port)


def test_metrics_listen_serves_metrics_and_healthz_beside_a_proxy_protocol_port(shoal):
    """--proxy-protocol: the public port drops anything without a PROXY header, /metrics included;
    the operator listener answers /metrics (promtool-clean, every worker) and /healthz, 404 for
    the rest, and counts the public port's refusal under proxy_header."""
    mport = free_port()
    srv = serve(shoal, "--handler", "echo", "--workers", "2", "--proxy-protocol", "--metrics-listen", f"127.0.0.1:{mport}")
    wait_workers(srv.proc.pid, {0, 1})
    wait_until(lambda: all(f"worker={s} [Shoal] /metrics and /healthz also on http://127.0.0.1:{mport}" in srv.log(200)
                           for s in (0, 1)), 10, what="both workers on the operator listener")

    with RawConn(srv.port) as c:  # no PROXY header: closed without an answer
        c.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert c.read_until_close() == b""
    wait_until(lambda: value(snapshot(mport), "shoal_http_refusals_total", reason="proxy_header") == 1, 10,
               what="the refused public request counted under proxy_header")

    samples = metric_samples(mport)
    assert sorted(lab["worker"] for n, lab, v in samples if n == "shoal_worker_up" and v == 1) == ["0", "1"]
    check_promtool(mport)
    health = http_get(mport, "/healthz")
    assert (health.status, health.body) == (200, b"ok\n")
    assert http_get(mport, "/").status == 404
    with RawConn(mport) as c:
        c.send(upgrade_request(mport))
        assert c.read_response().status == 404, "no WebSocket on the operator listener"
    with RawConn(mport) as c:
        c.send(b"GET /metrics HTTP/1.1\r\n\r\n")  # no Host: 400
        assert c.read_response().status == 400
    snap = snapshot(mport)
    assert value(snap, "shoal_http_refusals_total", reason="404") == 0, "the operator's own requests are not refusals"
    assert value(snap, "shoal_http_refusals_total", reason="bad_request") == 0


def test_metrics_listen_refuses_a_bad_address_and_a_taken_port():
    for bad in ("localhost:9100", "127.0.0.1", "127.0.0.1:0", "[::1]9100"):
        done = subprocess.run([shoal_bin(), "serve", "--metrics-listen", bad], capture_output=True, text=True, timeout=30)
        assert done.returncode == 64 and "--metrics-listen" in done.stderr, (bad, done.returncode, done.stderr)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        done = subprocess.run([shoal_bin(), "serve", "--host", "127.0.0.1", "--port", str(free_port()), "--workers", "1",
                               "--metrics-listen", f"127.0.0.1:{taken.getsockname()[1]}"],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode != 0 and "Address already in use" in done.stderr, (done.returncode, done.stderr[-600:])
    finally:
        taken.close()


def test_handler_metrics_through_swift_metrics_are_cluster_wide_and_bounded(shoal):
    """--handler metered records through swift-metrics (Counter, Meter, Recorder, Timer); /metrics
    shows them next to Shoal's families, promtool-clean, and a worker takes at most 64 series."""
    srv = serve(shoal, "--handler", "metered", "--workers", "2")
    wait_workers(srv.proc.pid, {0, 1})
    wait_until(lambda: all(f"worker={s} [Shoal] listening" in srv.log(200) for s in (0, 1)), 10, what="both workers listening")
    held = RawWS(srv.port)
    ws = RawWS(srv.port)
    for text in ("a", "bb", "ccc"):
        ws.send_text(text)
        assert ws.recv_frame().payload == text.encode()
    ws.send(client_frame(0x2, b"\x00" * 10))
    assert ws.recv_frame().payload == b"\x00" * 10
    snap = snapshot(srv.port)
    assert value(snap, "demo_messages_total", type="text") == 3
    assert value(snap, "demo_messages_total", type="binary") == 1
    assert value(snap, "demo_message_bytes_count") == 4 and value(snap, "demo_message_bytes_sum") == 16
    assert value(snap, "demo_echo_seconds_count") == 4 and 0 < value(snap, "demo_echo_seconds_sum") < 1
    gauges = {lab["worker"]: v for n, lab, v in metric_samples(srv.port) if n == "demo_open_connections"}
    assert sorted(gauges) == ["0", "1"] and sum(gauges.values()) == 2, gauges
    assert value(snap, "shoal_handler_metric_series_refused_total") == 0
    check_promtool(srv.port)

    # One connection, one worker: its table holds the handler's 5 series, so 59 of 100 new labels fit.
    for i in range(100):
        ws.send_text(f"label:v{i}")
        ws.recv_frame()
    samples = metric_samples(srv.port)
    labelled = [lab["value"] for n, lab, v in samples if n == "demo_labelled_total" and v == 1]
    assert len(labelled) == 59 and labelled == [f"v{i}" for i in range(59)], labelled
    assert value(snapshot(srv.port), "shoal_handler_metric_series_refused_total") == 41
    check_promtool(srv.port)
    ws.send_close(1000)
    ws.recv_frame()
    ws.close()
    held.close()
    wait_until(lambda: sum(v for n, _, v in metric_samples(srv.port) if n == "demo_open_connections") == 0, 10,
               what="demo_open_connections back at 0")


def test_metrics_listen_answers_every_scrape_through_a_reload(shoal):
    """The operator sockets are the supervisor's, shared by both generations: while the old
    workers drain held clients after SIGHUP, every scrape of the operator listener is answered
    and the new slots show up in it."""
    mport = free_port()
    srv = serve(shoal, "--handler", "echo", "--workers", "2", "--drain-timeout", "3", "--metrics-listen", f"127.0.0.1:{mport}")
    wait_workers(srv.proc.pid, {0, 1})
    held = [RawWS(srv.port) for _ in range(4)]  # they never answer the 1001: the old workers drain for 3 s
    srv.signal(signal.SIGHUP)
    answered, end = 0, time.monotonic() + 4
    while time.monotonic() < end:
        with RawConn(mport, timeout=1.5) as c:
            c.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert c.read_response().status == 200, f"scrape {answered + 1} during the reload"
        answered += 1
        time.sleep(0.05)
    assert answered >= 20
    wait_until(lambda: sorted(lab["worker"] for n, lab, v in metric_samples(mport) if n == "shoal_worker_up" and v == 1)
               == ["2", "3"], 10, what="the new generation's slots on the operator listener")
    for ws in held:
        ws.close()


def test_handler_counters_carry_over_a_worker_restart_and_gauges_start_again(shoal):
    srv = serve(shoal, "--handler", "metered", "--workers", "1")
    first = wait_workers(srv.proc.pid, {0})[0]
    ws = RawWS(srv.port)
    ws.send_text("before")
    assert ws.recv_frame().payload == b"before"
    snap = snapshot(srv.port)
    assert value(snap, "demo_open_connections", worker="0") == 1
    assert value(snap, "demo_messages_total", type="text") == 1
    os.kill(first, signal.SIGKILL)  # the client's connection dies with it, onTerminate never runs
    wait_until(lambda: wait_workers(srv.proc.pid, {0})[0] != first, 10, what="a new worker in slot 0")
    wait_until(lambda: ("demo_open_connections", frozenset({("worker", "0")})) in snapshot(srv.port), 10,
               what="the new worker's gauge")
    snap = snapshot(srv.port)
    assert value(snap, "demo_open_connections", worker="0") == 0, "the new worker's gauge starts at 0"
    assert value(snap, "demo_messages_total", type="text") == 1, "the slot's counter carries over"
    ws.close()
