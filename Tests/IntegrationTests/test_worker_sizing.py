"""`--workers auto` and `--cluster-connections` (issue 19): the supervisor starts as many workers
as the connections the cluster should hold need, says so in its log, and warns when fixed
workers cannot hold them; a bad value is refused with exit status 64."""

from __future__ import annotations

import os
import resource
import subprocess

import pytest

from cluster_helpers import wait_until, wait_workers, workers_by_slot
from conftest import shoal_bin


def test_auto_starts_enough_workers_for_the_cluster_connections(shoal):
    # --max-connections 1000 makes each worker's share exact whatever the open-files limit is:
    # 2,500 connections need 3 workers of 1,000 (or one per CPU, if more)
    expected = max(3, os.sysconf("SC_NPROCESSORS_ONLN"))
    srv = shoal("--handler", "echo", "--workers", "auto", "--max-connections", "1000",
                "--cluster-connections", "2500")
    wait_workers(srv.proc.pid, range(expected))
    assert len(workers_by_slot(srv.proc.pid)) == expected
    assert f"supervisor: {expected} workers, each holding up to 1000 connections" in srv.log()
    assert not [line for line in srv.log().splitlines() if "warning" in line and "supervisor:" in line]


def test_without_a_target_auto_is_one_worker_per_cpu(shoal):
    cpus = os.sysconf("SC_NPROCESSORS_ONLN")
    srv = shoal("--handler", "echo", "--workers", "auto")
    wait_workers(srv.proc.pid, range(cpus))
    assert len(workers_by_slot(srv.proc.pid)) == cpus
    assert f"supervisor: {cpus} workers" in srv.log()


def test_fixed_workers_that_cannot_hold_the_cluster_connections_are_warned_about(shoal):
    srv = shoal("--handler", "echo", "--workers", "2", "--max-connections", "1000", "--cluster-connections", "5000")
    wait_workers(srv.proc.pid, range(2))
    wait_until(lambda: "2 workers hold at most 2000 connections" in srv.log(), what="the capacity warning")
    assert "fewer than --cluster-connections 5000" in srv.log()
    assert len(workers_by_slot(srv.proc.pid)) == 2  # a warning, not a refusal


@pytest.mark.parametrize("args", [["--workers", "many"], ["--workers", "0"], ["--workers", "257"],
                                  ["--cluster-connections", "0"], ["--cluster-connections", "lots"]])
def test_bad_values_exit_64(args):
    out = subprocess.run([shoal_bin(), "serve", "--host", "127.0.0.1", "--port", "1", *args],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 64, (out.returncode, out.stderr)
    assert ("--workers" in out.stderr) or ("--cluster-connections" in out.stderr), out.stderr


def test_more_workers_than_the_supervisors_descriptors_allow_are_explained():
    # the supervisor holds both ends of a bus channel between every two of the 2N slots
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    workers = next((w for w in range(1, 257) if 2 * w * (2 * w - 1) + w + 256 > hard), None)
    if workers is None:
        pytest.skip(f"an open-files limit of {hard} holds 256 workers' bus channels")
    out = subprocess.run([shoal_bin(), "serve", "--host", "127.0.0.1", "--port", "1", "--workers", str(workers)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert f"{workers} workers need" in out.stderr and f"at most {workers - 1} workers fit" in out.stderr, out.stderr
