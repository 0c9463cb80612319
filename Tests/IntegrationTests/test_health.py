"""/healthz's 503 answers, caused for real: a worker that died while its supervisor could not
replace it (the supervisor is stopped), and a worker whose loop does not turn (SIGSTOP), which
the supervisor's watchdog then replaces, and a worker whose registry share is full. Each turns
back to 200 once the cluster is whole again. Every wait is bounded."""

from __future__ import annotations

import os
import signal
import time

from cluster_helpers import wait_until, wait_workers
from helpers import RawConn, RawWS

T = 20.0


def healthz(port: int) -> tuple[int, str] | None:
    """(status, body) of one /healthz, or None when no answer came within 0.3 s (the kernel may
    hand the connection to the listener of the worker that does not run)."""
    try:
        with RawConn(port, timeout=0.3) as c:
            c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            r = c.read_response()
            return r.status, r.body.decode()
    except OSError:
        return None


def wait_health(port: int, status: int, body: str, timeout: float = T) -> None:
    wait_until(lambda: healthz(port) == (status, body), timeout, interval=0.05, what=f"/healthz {status} {body!r}")


def wait_stuck(port: int, timeout: float = T) -> str:
    """Waits for a 503 that names a worker without progress; returns its body."""
    def stuck():
        answer = healthz(port)
        if answer and answer[0] == 503 and answer[1].startswith("unhealthy: worker slot ") \
                and "has made no progress for" in answer[1]:
            return answer[1]
        return None
    return wait_until(stuck, timeout, interval=0.05, what="/healthz 503 naming a worker without progress")


def serving_cluster(shoal, *args: str) -> tuple[object, dict[int, int]]:
    """Two workers whose loops both run and have published a heartbeat. A worker publishes it at
    the end of each loop turn, an idle one at least every second (its idle sweep); one stopped
    before its first turn ended has none yet and counts as starting, not stuck."""
    srv = shoal("--handler", "echo", "--workers", "2", *args)
    workers = wait_workers(srv.proc.pid, {0, 1})
    wait_until(lambda: all(f"worker={s} [Shoal] listening" in srv.log(200) for s in (0, 1)), 10,
               what="both workers listening")
    time.sleep(1.5)
    assert healthz(srv.port) in ((200, "ok\n"), None)
    return srv, workers


def test_healthz_503_while_a_dead_worker_is_not_replaced(shoal):
    srv, workers = serving_cluster(shoal)
    os.kill(srv.proc.pid, signal.SIGSTOP)  # the supervisor cannot reap or replace the worker meanwhile
    try:
        os.kill(workers[1], signal.SIGKILL)
        # Nobody sees the dead worker progress (the stopped supervisor stamps what it saw):
        # 503 once that is as old as the watchdog time.
        wait_stuck(srv.port)
    finally:
        os.kill(srv.proc.pid, signal.SIGCONT)
    wait_health(srv.port, 200, "ok\n")


def test_healthz_503_while_a_worker_loop_is_stuck(shoal):
    # Watchdog off, so the stuck worker stays stuck: 503 once it has made no progress for 10 s.
    srv, workers = serving_cluster(shoal, "--watchdog-timeout", "0")
    os.kill(workers[1], signal.SIGSTOP)
    try:
        body = wait_stuck(srv.port, timeout=T)
        assert f"worker slot 1 (pid {workers[1]})" in body, body
    finally:
        try:
            os.kill(workers[1], signal.SIGCONT)
        except ProcessLookupError:
            pass  # the watchdog killed it already
    wait_health(srv.port, 200, "ok\n")


def test_healthz_503_while_a_worker_registry_share_is_full(shoal):
    # 4 entries for 2 × 2 slots: one connection fills a worker's share.
    srv, _ = serving_cluster(shoal, "--registry-capacity", "4")
    ws = RawWS(srv.port)
    try:
        body = wait_until(lambda: (a := healthz(srv.port)) and a[0] == 503 and a[1], T, interval=0.05,
                          what="/healthz 503 while a registry share is full")
        assert "has its registry share full (1 of 1 entries)" in body, body
    finally:
        ws.close()
    wait_health(srv.port, 200, "ok\n")
