"""shoal-bench as a load tester (docs/shoal-bench.md): --threads, the open model (--rate, --stages,
--connect-rate), CI thresholds (--threshold) and the HTML report (--report), run for a few seconds
with a handful of connections against the real `shoal serve` and against an independent echo
server written with Python's `websockets` (its own process, so it can be stopped with SIGSTOP).

Counts, exit statuses and the stall's effect on the percentiles decide; rates only within wide
tolerances (the machine is shared).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import pytest

from conftest import free_port
from test_bench_smoke import TIMEOUT, bench, bench_bin

PY_ECHO = """
import asyncio, sys, time
from websockets.asyncio.server import serve

async def echo(ws):
    # CLOCK_MONOTONIC (--connect-rate's pacing is checked with it) and the client's address
    print("open", time.monotonic(), ws.remote_address[0], flush=True)
    async for message in ws:
        await ws.send(message)

async def main():
    async with serve(echo, "127.0.0.1", int(sys.argv[1]), compression=None, max_queue=None):
        await asyncio.get_running_loop().create_future()

asyncio.run(main())
"""


def python_server(tmp_path, source: str, name: str = "server.py") -> tuple[str, subprocess.Popen]:
    """Starts `source` (a websockets server taking its port as argv[1]) with this Python, its stdout
    a text pipe; returns (url, process) once the port accepts."""
    script = tmp_path / name
    script.write_text(source)
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(script), str(port)], stdout=subprocess.PIPE, text=True,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited {proc.returncode}: {proc.stderr.read()}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return f"ws://127.0.0.1:{port}/", proc
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"{name} did not listen")
            time.sleep(0.05)


@contextmanager
def running_python_server(tmp_path, source: str, name: str):
    """python_server for the duration of a `with`; killed (resumed first, if stopped) at its end."""
    url, proc = python_server(tmp_path, source, name)
    try:
        yield url, proc
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait(5)


@pytest.fixture
def py_echo(tmp_path):
    """An echo server in Python's websockets (one process); yields (url, Popen)."""
    with running_python_server(tmp_path, PY_ECHO, "py_echo.py") as server:
        yield server


def run_bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([bench_bin(), *args], capture_output=True, text=True, timeout=TIMEOUT)


def check_threads_add_up(report: dict, threads: int) -> None:
    """Each run: one entry per thread, the threads' counts add up to the run's count exactly, and
    the merged latency histogram holds every message once."""
    assert report["threads"] == threads
    assert report["parameters"]["threads"] == str(threads)
    for r in report["runs"]:
        parts = r["per_thread"]
        assert sorted(p["thread"] for p in parts) == list(range(1, threads + 1)), parts
        assert sum(p["count"] for p in parts) == r["count"], (parts, r["count"])
        assert all(p["count"] > 0 and p["cpu_seconds"] > 0 for p in parts), parts
        if r.get("latency"):
            assert r["latency"]["count"] == r["count"]
    assert report["latency"]["count"] == sum(r["count"] for r in report["runs"])


# --- --threads ---

def test_threads_split_connections_and_merge_exactly(shoal):
    srv = shoal("--handler", "echo", "--workers", "2")
    report = bench("echo", "--url", srv.url(), "--threads", "2", "--connections", "6", "--in-flight", "2",
                   "--warmup", "0.3", "--runs", "2", "--duration", "0.6", "--server-pid", str(srv.proc.pid))
    assert report["errors"] == {}, report["error_samples"]
    assert report["connections_opened"] == 6
    check_threads_add_up(report, 2)
    for r in report["runs"]:
        # the generator's CPU covers both threads' loops
        assert r["client_cpu_seconds"] >= max(p["cpu_seconds"] for p in r["per_thread"])


def test_threads_default_to_one_per_cpu_and_never_exceed_connections(shoal):
    srv = shoal("--handler", "echo", "--workers", "1")
    report = bench("echo", "--url", srv.url(), "--connections", "1", "--warmup", "0.2", "--runs", "1",
                   "--duration", "0.4")
    assert report["threads"] == 1  # one connection: one thread, whatever the CPU count
    cpus = len(os.sched_getaffinity(0))
    report = bench("echo", "--url", srv.url(), "--connections", "8", "--warmup", "0.2", "--runs", "1",
                   "--duration", "0.4")
    assert report["threads"] == min(cpus, 8)
    check_threads_add_up(report, min(cpus, 8))


def test_threads_against_python_websockets(py_echo):
    url, proc = py_echo
    report = bench("echo", "--url", url, "--threads", "2", "--connections", "4", "--warmup", "0.3",
                   "--runs", "1", "--duration", "0.8", "--server-pid", str(proc.pid))
    assert report["errors"] == {}, report["error_samples"]
    check_threads_add_up(report, 2)


def test_broadcast_threads_time_and_count_across_threads(shoal):
    # 2 publishers and 4 subscribers over 2 threads: each thread's subscribers also receive the
    # other thread's publisher, the stamps share one clock, and the fan-out is over all of them
    srv = shoal("--handler", "chat", "--workers", "1")
    report = bench("broadcast", "--url", srv.url(), "--threads", "2", "--publishers", "2", "--subscribers", "4",
                   "--rate", "50", "--size", "24", "--warmup", "0.3", "--runs", "1", "--duration", "1",
                   "--server-pid", str(srv.proc.pid))
    assert report["errors"] == {}, report["error_samples"]
    check_threads_add_up(report, 2)
    r = report["runs"][0]
    assert r["extra"]["own_deliveries"] == 0
    assert 4.5 <= r["extra"]["fanout"] <= 5.5, r["extra"]  # relayed to the 5 others
    assert report["latency"]["max"] < 5_000_000  # µs: one clock for both threads (no wild stamps)


def test_connect_threads(shoal):
    srv = shoal("--handler", "echo", "--workers", "1")
    report = bench("connect", "--url", srv.url(), "--threads", "2", "--close-immediately", "--concurrency", "4",
                   "--warmup", "0.2", "--runs", "1", "--duration", "0.6")
    assert report["errors"] == {}, report["error_samples"]
    check_threads_add_up(report, 2)


def test_bad_thread_count_is_a_usage_error():
    proc = run_bench("echo", "--threads", "0")
    assert proc.returncode == 64
    assert "--threads" in proc.stderr


# --- open model: --rate, --stages, --connect-rate ---

def check_rate(report: dict, rate: float) -> None:
    # wide enough for a machine other jobs load: the server or the bench may lose the CPU a while
    for r in report["runs"]:
        assert r["target_per_second"] == pytest.approx(rate, rel=0.02), r
        assert 0.9 <= r["achieved_share"] <= 1.1, r
        assert r["per_second"] == pytest.approx(rate, rel=0.15), r
        # the report says so exactly when a run fell short of 99 %
        short = [w for w in report["warnings"] if w.startswith(f"run {r['run']}: target rate not achieved")]
        assert bool(short) == (r["achieved_share"] < 0.99), (r, report["warnings"])
    assert report["parameters"]["model"] == "open"
    assert report["latency_uncorrected"]["count"] == report["latency"]["count"]


def test_rate_is_achieved_against_shoal(shoal):
    srv = shoal("--handler", "echo", "--workers", "2")
    report = bench("echo", "--url", srv.url(), "--rate", "400", "--threads", "2", "--connections", "4",
                   "--warmup", "0.3", "--runs", "2", "--duration", "1", "--server-pid", str(srv.proc.pid))
    assert report["errors"] == {}, report["error_samples"]
    check_rate(report, 400)
    check_threads_add_up(report, 2)


def test_rate_is_achieved_against_python_websockets(py_echo):
    url, _ = py_echo
    report = bench("echo", "--url", url, "--rate", "300", "--connections", "3", "--warmup", "0.3",
                   "--runs", "1", "--duration", "1.5")
    assert report["errors"] == {}, report["error_samples"]
    check_rate(report, 300)


def test_a_rate_the_server_cannot_reach_is_reported(py_echo):
    # one Python process echoes a few thousand messages a second at most
    url, _ = py_echo
    report = bench("echo", "--url", url, "--rate", "500000", "--threads", "1", "--connections", "2",
                   "--warmup", "0.2", "--runs", "1", "--duration", "1")
    r = report["runs"][0]
    assert r["target_per_second"] == pytest.approx(500000, rel=0.02)
    assert r["achieved_share"] < 0.5, r
    warning = [w for w in report["warnings"] if "target rate not achieved" in w]
    assert warning and "500,000" in warning[0] and "short" in warning[0], report["warnings"]


def check_stall_shows(url: str, signal_server) -> None:
    """200 messages/s for 3 s; `signal_server(SIGSTOP)` stops the server for 1 s in the middle.
    Messages due meanwhile wait (one in flight per connection), and their latency runs from when
    they were due: about a third of them are late by up to a second. Timed from the actual send
    they look fast."""
    bench_proc = subprocess.Popen([bench_bin(), "echo", "--url", url, "--rate", "200", "--connections", "2",
                                   "--threads", "1", "--in-flight", "1", "--warmup", "0.3", "--runs", "1",
                                   "--duration", "3", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.3)
    signal_server(signal.SIGSTOP)
    time.sleep(1.0)
    signal_server(signal.SIGCONT)
    out, err = bench_proc.communicate(timeout=TIMEOUT)
    assert bench_proc.returncode == 0, err
    report = json.loads(out)
    assert report["errors"] == {}, report["error_samples"]
    corrected, uncorrected = report["latency"], report["latency_uncorrected"]
    assert corrected["p99"] >= 500_000, corrected  # µs
    assert uncorrected["p99"] < 200_000, uncorrected
    assert corrected["count"] == uncorrected["count"]
    # the backlog went out once the server woke: the target was still (nearly) met
    assert report["runs"][0]["achieved_share"] >= 0.85


def test_a_stalled_python_server_shows_in_the_corrected_p99(py_echo):
    url, server = py_echo
    check_stall_shows(url, server.send_signal)


def test_a_stalled_shoal_shows_in_the_corrected_p99(shoal):
    srv = shoal("--handler", "echo", "--workers", "1")
    # the supervisor and its worker: the whole process group
    check_stall_shows(srv.url(), lambda sig: os.killpg(srv.proc.pid, sig))


def test_stages_ramp_up_hold_and_down(shoal):
    srv = shoal("--handler", "echo", "--workers", "1")
    report = bench("echo", "--url", srv.url(), "--stages", "1s:200,1s:200,500ms:0", "--connections", "4",
                   "--threads", "2")
    assert report["errors"] == {}, report["error_samples"]
    assert report["parameters"]["stages"] == "1s:200,1s:200,0.5s:0"
    assert len(report["runs"]) == 1
    r = report["runs"][0]
    # 0→200 over 1 s (100), 200 for 1 s (200), 200→0 over 0.5 s (50)
    assert r["target"] == pytest.approx(350, abs=3), r
    assert 0.9 <= r["achieved_share"] <= 1.05, r
    check_threads_add_up(report, 2)


def test_connect_rate_paces_the_opening(py_echo):
    url, server = py_echo
    report = bench("echo", "--url", url, "--connect-rate", "10", "--connections", "6", "--warmup", "0",
                   "--runs", "1", "--duration", "0.3")
    assert report["connections_opened"] == 6
    assert report["parameters"]["connect_rate"] == "10.0"
    server.kill()
    opened = sorted(float(line.split()[1]) for line in server.stdout.read().splitlines() if line.startswith("open "))
    assert len(opened) == 6
    # one every 100 ms: the sixth opens about 0.5 s after the first
    assert 0.4 <= opened[-1] - opened[0] <= 2.0, opened
    assert all(b - a >= 0.05 for a, b in zip(opened, opened[1:])), opened


@pytest.mark.parametrize("args, message", [
    (["--rate", "100", "--stages", "1s:100"], "exclude each other"),
    (["--stages", "10s"], "stage 1"),
    (["--stages", "1s:100,fast:200"], "stage 2"),
    (["--stages", "1s:0"], "rate 0"),
    (["--rate", "-5"], "--rate"),
    (["--connect-rate", "0"], "--connect-rate"),
])
def test_bad_open_model_flags_are_usage_errors(args, message):
    proc = run_bench("echo", *args)
    assert proc.returncode == 64, proc.stderr
    assert message in proc.stderr


# --- --threshold ---

def bench_status(*args: str) -> tuple[int, dict, str]:
    proc = run_bench(*args, "--json")
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def test_thresholds_that_hold_exit_0_and_list_their_values(shoal):
    srv = shoal("--handler", "echo", "--workers", "1")
    status, report, err = bench_status("echo", "--url", srv.url(), "--connections", "2", "--warmup", "0.2",
                                       "--runs", "1", "--duration", "0.5", "--threshold", "p99<10s",
                                       "--threshold", "errors<1%", "--threshold", "errors <= 0", "--threshold", "max>=1ns")
    assert status == 0, err
    results = {t["threshold"]: t for t in report["thresholds"]}
    assert list(results) == ["p99<10s", "errors<1%", "errors <= 0", "max>=1ns"]
    assert all(t["passed"] for t in results.values())
    # measured in the threshold's unit, from the same histogram as the report's percentiles
    assert results["p99<10s"]["unit"] == "s"
    assert results["p99<10s"]["measured"] == pytest.approx(report["latency"]["p99"] / 1e6, rel=1e-6)
    assert results["max>=1ns"]["measured"] == pytest.approx(report["latency"]["max"] * 1000, rel=1e-6)
    assert results["errors<1%"]["measured"] == 0 and results["errors<1%"]["unit"] == "%"


def test_a_threshold_that_fails_exits_99(shoal):
    srv = shoal("--handler", "echo", "--workers", "1")
    status, report, err = bench_status("echo", "--url", srv.url(), "--connections", "2", "--warmup", "0.2",
                                       "--runs", "1", "--duration", "0.5", "--threshold", "p50<1ns",
                                       "--threshold", "errors<1%")
    assert status == 99, err
    assert [t["passed"] for t in report["thresholds"]] == [False, True]
    assert report["thresholds"][0]["measured"] > 1
    assert "1 of 2 threshold(s) failed: p50<1ns" in err
    # the table lists them too
    proc = run_bench("echo", "--url", srv.url(), "--connections", "2", "--warmup", "0.2", "--runs", "1",
                     "--duration", "0.3", "--threshold", "p50<1ns")
    assert proc.returncode == 99
    assert "threshold p50<1ns: " in proc.stdout and "FAILED" in proc.stdout


def test_rate_threshold_against_python_websockets(py_echo):
    url, _ = py_echo
    status, report, err = bench_status("echo", "--url", url, "--rate", "200", "--connections", "2", "--warmup", "0.2",
                                       "--runs", "1", "--duration", "1", "--threshold", "rate>=0.9")
    assert status == 0, (err, report["thresholds"])
    assert 0.9 <= report["thresholds"][0]["measured"] <= 1.1
    status, report, err = bench_status("echo", "--url", url, "--rate", "500000", "--connections", "2", "--threads", "1",
                                       "--warmup", "0.2", "--runs", "1", "--duration", "1", "--threshold", "rate>=99%")
    assert status == 99, err
    t = report["thresholds"][0]
    assert not t["passed"] and t["unit"] == "%" and t["measured"] < 50


CLOSING_SERVER = """
import asyncio, sys
from websockets.asyncio.server import serve

async def echo_three_then_close(ws):
    for _ in range(3):
        await ws.send(await ws.recv())
    await ws.close(1011, "going away")

async def main():
    async with serve(echo_three_then_close, "127.0.0.1", int(sys.argv[1])):
        await asyncio.get_running_loop().create_future()

asyncio.run(main())
"""


def test_errors_threshold_counts_connections_the_server_closed(tmp_path):
    with running_python_server(tmp_path, CLOSING_SERVER, "closing.py") as (url, _):
        status, report, err = bench_status("echo", "--url", url, "--connections", "3",
                                           "--warmup", "0", "--runs", "1", "--duration", "0.5",
                                           "--threshold", "errors<0.1%", "--threshold", "errors>=3")
    assert report["errors"].get("closed_by_server") == 3, report["errors"]
    assert status == 99, err
    assert [t["passed"] for t in report["thresholds"]] == [False, True]
    assert report["thresholds"][1]["measured"] == 3


@pytest.mark.parametrize("threshold, message", [
    ("p99<5", "needs a unit"),
    ("p99=5ms", "expected METRIC<VALUE"),
    ("latency<5ms", "unknown metric 'latency'"),
    ("p101<5ms", "unknown metric"),
    ("errors<abc", "not a non-negative number"),
    ("rate>=0.99x", "achieved share"),
])
def test_malformed_threshold_is_exit_64(threshold, message):
    proc = run_bench("echo", "--threshold", threshold)
    assert proc.returncode == 64, proc.stderr
    assert message in proc.stderr and threshold in proc.stderr


def test_threshold_on_a_figure_the_run_does_not_have_is_exit_64():
    proc = run_bench("echo", "--threshold", "rate>=0.99")  # closed model: no target rate
    assert proc.returncode == 64 and "--rate or --stages" in proc.stderr
    proc = run_bench("idle", "--threshold", "p99<5ms")
    assert proc.returncode == 64 and "no latency" in proc.stderr


def test_source_addresses_are_shared_out_between_threads(py_echo):
    url, server = py_echo
    report = bench("echo", "--url", url, "--source-addresses", "3", "--connections", "6", "--threads", "2",
                   "--warmup", "0.2", "--runs", "1", "--duration", "0.3")
    assert report["connections_opened"] == 6
    assert report["parameters"]["source_addresses"] == "127.0.0.1-127.0.0.3"
    server.kill()
    peers = [line.split()[2] for line in server.stdout.read().splitlines() if line.startswith("open ")]
    # connection g from 127.0.0.(1 + g mod 3): two connections from each address, over both threads
    assert sorted(peers) == ["127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"], peers


def test_stages_and_connect_rate_against_python_websockets(py_echo):
    url, _ = py_echo
    report = bench("echo", "--url", url, "--stages", "500ms:100,1s:100", "--connect-rate", "20", "--connections", "4",
                   "--threads", "2")
    assert report["errors"] == {}, report["error_samples"]
    assert report["connections_opened"] == 4
    r = report["runs"][0]
    assert r["target"] == pytest.approx(125, abs=2), r  # 25 on the ramp, 100 at the plateau
    assert 0.9 <= r["achieved_share"] <= 1.1, r
    # the thread that waited at the start line for the other's slower opening starts (and ends)
    # its window with it, not a wait later
    starts = [t["start_seconds"] for t in r["per_thread"]]
    lengths = [t["seconds"] for t in r["per_thread"]]
    assert max(starts) - min(starts) < 0.025 and max(lengths) - min(lengths) < 0.025, r["per_thread"]


def test_connect_rate_against_shoal(shoal):
    srv = shoal("--handler", "echo", "--workers", "1")
    started = time.monotonic()
    report = bench("echo", "--url", srv.url(), "--connect-rate", "10", "--connections", "5", "--warmup", "0",
                   "--runs", "1", "--duration", "0.2")
    # the fifth connection opens 0.4 s after the first, and the run starts once all are open
    assert time.monotonic() - started >= 0.6
    assert report["connections_opened"] == 5 and report["errors"] == {}
