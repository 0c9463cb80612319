"""/metrics checked by Prometheus' own linter, `promtool check metrics` (Debian package
`prometheus`), on a 2-worker cluster that has carried traffic and refused upgrades, so every
family has samples. Skipped, loudly, only when promtool is not installed
(scripts/install-deps.sh installs it)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from helpers import RawConn, RawWS, http_get, upgrade_request
from hostile_helpers import metric_present, serve

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def promtool_check(text: bytes) -> subprocess.CompletedProcess:
    if not os.access(PROMTOOL, os.X_OK):
        pytest.skip(f"LOUD SKIP: promtool is not installed ({PROMTOOL}): /metrics is NOT validated in this run; "
                    f"scripts/install-deps.sh installs it (Debian package prometheus)")
    return subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, timeout=60)


def test_promtool_can_fail():
    """The linter really checks: a counter without _total and a family typed twice are reported."""
    bad = b"# HELP x_sent things\n# TYPE x_sent counter\nx_sent 1\n# TYPE x_sent counter\nx_sent 2\n"
    p = promtool_check(bad)
    assert p.returncode != 0, (p.stdout, p.stderr)


def test_metrics_pass_promtool_check(shoal):
    srv = serve(shoal, "--handler", "echo", "--workers", "2", "--max-connections-per-address", "1")
    held = [RawWS(srv.port, source="127.0.0.2")]
    try:
        held[0].send_text("hello")
        assert held[0].recv_frame().payload == b"hello"
        # One connection per worker from the address; admitted ones are held, so by the third
        # attempt at the latest one lands on a worker that has its one: 429.
        refusals = 0
        for _ in range(3):
            c = RawConn(srv.port, source="127.0.0.2")
            c.send(upgrade_request(srv.port))
            status = c.read_response().status
            if status == 101:
                held.append(RawWS.adopt(c))
                continue
            c.close()
            assert status == 429
            refusals += 1
            break
        assert refusals == 1
        assert metric_present(srv.port, "shoal_rejected_upgrades_total", reason="per_address") == refusals
        r = http_get(srv.port, "/metrics")
        assert r.status == 200 and r.header("Content-Type").startswith("text/plain; version=0.0.4"), r
        p = promtool_check(r.body)
        assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), \
            f"promtool check metrics:\n{p.stdout.decode()}{p.stderr.decode()}\n--- exposition ---\n{r.body.decode()}"
    finally:
        for ws in held:
            ws.close()
