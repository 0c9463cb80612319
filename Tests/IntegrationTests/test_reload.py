"""The supervisor's slots under signals, and the progress watchdog, against the real binary:
two SIGHUPs in a row while clients hold their connections, SIGHUP during a crash restart,
SIGTERM during a reload, a SIGSTOPped worker replaced by the watchdog, and workers that are
busy or short of CPU but progressing left alone.

Every test is bounded (< 30 s). Where a bound comes from the design (a 2 s watchdog) it is
polled with slack for a loaded 2-core machine, said at each place."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time

import pytest

from cluster_helpers import await_until, metrics, owners_of_clients, wait_until, wait_workers, workers_by_slot
from conftest import shoal_bin
from helpers import RawConn, RawWS, connect, recv, run


def healthz(port: int, attempts: int = 20) -> tuple[int, str]:
    """(status, body) of /healthz. A request whose connection lands in a stopped worker's accept
    queue is never answered, so each try waits 1 s and the next one comes from another port."""
    last = None
    for _ in range(attempts):
        try:
            with RawConn(port, timeout=1.0) as c:
                c.send(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
                r = c.read_response()
                return r.status, r.body.decode()
        except (OSError, EOFError) as e:
            last = e
    raise AssertionError(f"/healthz not answered in {attempts} tries: {last!r}")


def serving_slots(port: int) -> dict[int, float]:
    return {s: v for s, v in metrics(port).get("shoal_worker_up", {}).items() if v}


def stays_healthy(port: int, seconds: float) -> None:
    """/healthz answers 200 every quarter second for `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        status, body = healthz(port)
        assert status == 200, body
        time.sleep(0.25)


def wait_for_only_slots(srv, slots: set[int], timeout: float) -> dict[int, int]:
    """Waits until workers run in exactly `slots` and /healthz answers 200; returns {slot: pid}."""
    def only():
        status, _ = healthz(srv.port)
        now = workers_by_slot(srv.proc.pid)
        return now if status == 200 and set(now) == slots else None
    return wait_until(only, timeout, interval=0.2, what=f"workers in slots {sorted(slots)} only, /healthz 200")


def hold_clients(port: int, count: int) -> list[RawWS]:
    """WebSocket clients that never read again: they never answer the 1001 close, so a worker
    draining them waits for its whole drain timeout."""
    return [RawWS(port, "/hold") for _ in range(count)]


def test_two_reloads_in_a_row_keep_every_slot_serving(shoal):
    """The issue's reproduction: 2 workers, 20 held clients, SIGHUP, SIGHUP 1.5 s later. The old
    supervisor cleared a slot of the third generation when it reaped the killed first one:
    /healthz said "worker slot 0 is not running" for good."""
    srv = shoal("--handler", "echo", "--workers", "2", "--drain-timeout", "5")
    sup = srv.proc.pid
    first = wait_workers(sup, [0, 1])
    held = hold_clients(srv.port, 20)
    srv.signal(signal.SIGHUP)
    time.sleep(1.5)
    srv.signal(signal.SIGHUP)

    seen = {}

    def third_generation_serves():
        status, body = healthz(srv.port)
        now = workers_by_slot(sup)
        seen.update(healthz=(status, body), workers=now)
        ok = status == 200 and set(now) == {0, 1} and not set(now.values()) & set(first.values())
        return now if ok else None
    # the second set drains (no clients) and the first one was killed: a few seconds at most
    try:
        third = wait_until(third_generation_serves, 10, interval=0.2, what="slots 0,1 of a third generation only")
    except AssertionError as e:
        raise AssertionError(f"{e}; last seen {seen}") from None
    stays_healthy(srv.port, 6)
    assert workers_by_slot(sup) == third
    assert serving_slots(srv.port) == {0: 1, 1: 1}
    for c in held:
        c.close()

    async def echo():
        ws = await connect(srv.port, "/after")
        await ws.send("after")
        assert await recv(ws) == "after"
        await ws.close()
    run(echo(), timeout=20)


def test_sighup_during_a_crash_restart(shoal):
    """kill -9 of a worker and SIGHUP at once: the new set comes up, the crashed slot's set
    drains, and the cluster ends with exactly the new set serving."""
    srv = shoal("--handler", "echo", "--workers", "2", "--drain-timeout", "2")
    sup = srv.proc.pid
    old = wait_workers(sup, [0, 1])
    os.kill(old[0], signal.SIGKILL)
    srv.signal(signal.SIGHUP)
    wait_for_only_slots(srv, {2, 3}, 12)
    stays_healthy(srv.port, 3)
    assert set(workers_by_slot(sup)) == {2, 3}
    assert set(serving_slots(srv.port)) == {2, 3}


def test_sighup_while_a_slot_waits_out_its_restart_back_off(shoal):
    """Slot 1 killed five times within 10 s waits 1 s before its next start; a SIGHUP in that
    second brings up the new set, which serves alone in the end."""
    srv = shoal("--handler", "echo", "--workers", "2", "--drain-timeout", "2")
    sup = srv.proc.pid
    pids = wait_workers(sup, [0, 1])
    for kill in range(5):
        victim = pids[1]
        os.kill(victim, signal.SIGKILL)
        if kill < 4:
            pids = wait_until(lambda: (lambda m: m if m.get(1) not in (None, victim) else None)(workers_by_slot(sup)),
                              5, what="slot 1 restarted")
    srv.signal(signal.SIGHUP)
    wait_for_only_slots(srv, {2, 3}, 12)
    log = open(srv.log_path, errors="replace").read()
    assert "restarting in 1 s" in log, log[-3000:]
    stays_healthy(srv.port, 2)
    assert set(workers_by_slot(sup)) == {2, 3}


def test_sigterm_during_a_reload_exits_cleanly(shoal):
    """SIGTERM while a reload brings up the new set: every worker of both sets stops and the
    supervisor exits 0 (the fixture then checks that no process is left)."""
    drain = 2
    srv = shoal("--handler", "echo", "--workers", "2", "--drain-timeout", str(drain))
    wait_workers(srv.proc.pid, [0, 1])
    held = hold_clients(srv.port, 4)
    srv.signal(signal.SIGHUP)
    time.sleep(0.05)
    srv.signal(signal.SIGTERM)
    # drain time + the supervisor's 2 s grace + slack for a loaded machine
    rc = srv.wait(drain + 12)
    assert rc == 0, srv.log()
    for c in held:
        c.close()


def test_stopped_worker_is_replaced_by_the_watchdog_once(shoal):
    """SIGSTOP one of two workers with --watchdog-timeout 2: it is killed once (one log line,
    shoal_watchdog_kills_total 1), a new worker takes its slot within a few seconds, and the other
    worker's clients keep echoing all along."""
    srv = shoal("--handler", "echo", "--workers", "2", "--watchdog-timeout", "2")
    sup = srv.proc.pid
    pids = wait_workers(sup, [0, 1])

    async def main():
        clients = []
        while True:
            ws = await connect(srv.port, "/w", max_queue=None)
            clients.append(ws)
            owners = await owners_of_clients(srv.port, clients, list(pids.values()))
            if owners.count(pids[0]) >= 2 and owners.count(pids[1]) >= 1:
                break
            assert len(clients) < 40, owners
        others = [c for c, o in zip(clients, owners) if o == pids[0]]
        victim = pids[1]
        os.kill(victim, signal.SIGSTOP)
        stopped_at = time.monotonic()
        replaced = None
        k = 0
        # 2 s without progress, then the kill, reap and spawn; 8 s is slack for a loaded machine
        while time.monotonic() - stopped_at < 8:
            for c in others:
                await c.send(f"still {k}")
                assert await recv(c) == f"still {k}"
            k += 1
            now = workers_by_slot(sup)
            if now.get(1) not in (None, victim):
                replaced = time.monotonic() - stopped_at
                break
            await asyncio.sleep(0.1)
        assert replaced is not None, f"slot 1 still {workers_by_slot(sup)} 8 s after SIGSTOP\n{srv.log()}"
        # its last progress was its idle timer, at most 0.5 s (a quarter of the watchdog time) before
        # the SIGSTOP; the kill comes 2 s after that
        assert replaced >= 1.4, f"replaced {replaced:.1f} s after SIGSTOP, before the 2 s watchdog time"
        await await_until(lambda: healthz(srv.port)[0] == 200, 5, what="/healthz 200 after the replacement")
        kills = metrics(srv.port).get("shoal_watchdog_kills_total", {})
        assert kills == {0: 0, 1: 1}, kills
        for c in others:
            await c.send("after")
            assert await recv(c) == "after"
        await asyncio.gather(*(c.close() for c in others))
        return replaced, victim

    replaced, victim = run(main(), timeout=40)
    time.sleep(1)  # more supervisor turns: a repeated log line would show now
    lines = [l for l in open(srv.log_path, errors="replace") if "made no progress" in l]
    assert len(lines) == 1 and f"pid {victim} " in lines[0], lines
    print(f"stopped worker replaced {replaced:.2f} s after SIGSTOP (watchdog 2 s)")


def test_slow_worker_is_named_by_healthz_and_left_alone(shoal):
    """A worker without progress for more than 3 s but less than the watchdog time: /healthz
    still answers 200 and names it; once it runs again the note goes and nothing was killed."""
    # A watchdog far beyond the check: a /healthz try that lands in the stopped worker's accept
    # queue waits 1 s before the next, and with 8 s the tries could outlast the worker (it was
    # replaced, and the answer was a plain "ok").
    srv = shoal("--handler", "echo", "--workers", "2", "--watchdog-timeout", "30")
    sup = srv.proc.pid
    pids = wait_workers(sup, [0, 1])
    os.kill(pids[1], signal.SIGSTOP)
    try:
        time.sleep(4)
        status, body = healthz(srv.port)
        assert status == 200 and f"worker slot 1 (pid {pids[1]}) has made no progress for" in body, (status, body)
    finally:
        os.kill(pids[1], signal.SIGCONT)
    wait_until(lambda: healthz(srv.port) == (200, "ok\n"), 5, what="/healthz back to plain ok")
    assert workers_by_slot(sup) == pids
    assert metrics(srv.port).get("shoal_watchdog_kills_total", {}) == {0: 0, 1: 0}


def test_busy_or_starved_workers_that_progress_are_not_killed(shoal):
    """--watchdog-timeout 1, 1,000 clients closing at once while both workers get the CPU only
    in slices (stopped 0.4 s, running 0.2 s: a machine shared by many workers): the loops keep
    progressing between the pauses, so nothing is killed."""
    srv = shoal("--handler", "echo", "--workers", "2", "--watchdog-timeout", "1")
    sup = srv.proc.pid
    pids = wait_workers(sup, [0, 1])
    clients = []
    for _ in range(1000):
        c = RawConn(srv.port)
        c.send(b"GET /busy HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        clients.append(c)
    for c in clients:
        assert c.read_response().status == 101
    wait_until(lambda: sum(metrics(srv.port).get("shoal_connections", {}).values()) == 1000, 10,
               what="1,000 connections in /metrics")
    end = time.monotonic() + 6
    closed = False
    while time.monotonic() < end:
        for p in pids.values():
            os.kill(p, signal.SIGSTOP)
        if not closed:
            for c in clients:  # every client goes at once, while the workers cannot run
                c.reset()
            closed = True
        time.sleep(0.4)
        for p in pids.values():
            os.kill(p, signal.SIGCONT)
        time.sleep(0.2)
    wait_until(lambda: sum(metrics(srv.port).get("shoal_connections", {}).values()) == 0, 10,
               what="every connection gone")
    assert workers_by_slot(sup) == pids
    assert metrics(srv.port).get("shoal_watchdog_kills_total", {}) == {0: 0, 1: 0}
    assert "made no progress" not in open(srv.log_path, errors="replace").read()


@pytest.mark.parametrize("value", ["-1", "0.5", "3601", "nan", "soon"])
def test_bad_watchdog_timeout_exits_64(value):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.run([shoal_bin(), "serve", "--host", "127.0.0.1", "--port", str(port), "--watchdog-timeout", value],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 64, (p.returncode, p.stderr)
    assert "watchdog-timeout" in p.stderr, p.stderr
