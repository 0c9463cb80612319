"""Every numeric flag of `shoal serve` refuses a value outside its range with a message naming the
flag and exit status 64 (EX_USAGE): NaN, infinities, negatives, huge values, never a crash."""

import os
import re
import signal
import subprocess

import pytest

from conftest import free_port, shoal_bin

DURATIONS = ["idle-timeout", "pong-timeout", "request-timeout", "close-timeout", "drain-timeout", "watchdog-timeout"]
INTEGERS = ["port", "workers", "registry-capacity", "receive-buffers", "max-message-size", "max-fragments",
            "max-connections", "cluster-connections", "max-connections-per-address", "max-backpressure", "compression-window-bits",
            "compression-memory-level", "compression-threshold", "compression-level", "max-topics-per-connection",
            "tls-ticket-rotation", "defer-accept"]
BAD = ["nan", "inf", "-inf", "-1", "1e300", "99999999999999999999", "9223372036854775807"]


NOT_NUMERIC = ["host", "handler", "path", "data-type", "refuse-address", "public", "log-level", "log-format", "allow-origin",
               "trusted-proxy", "config", "metrics-listen",
               "slow-consumer", "compression", "redis", "cluster-name", "tls-cert", "tls-key"]


def test_every_flag_is_classified():
    """A new flag must join one of the lists above, so a numeric one gets this test."""
    out = subprocess.run([shoal_bin(), "serve", "--help"], capture_output=True, text=True, timeout=30).stdout
    flags = set(re.findall(r"^  --([a-z-]+) <", out, re.M))
    assert flags, out
    assert flags == set(DURATIONS + INTEGERS + NOT_NUMERIC), flags ^ set(DURATIONS + INTEGERS + NOT_NUMERIC)


@pytest.mark.parametrize("flag", DURATIONS + INTEGERS)
def test_bad_numbers_exit_64_naming_the_flag(flag):
    for value in BAD:
        args = [shoal_bin(), "serve", "--host", "127.0.0.1"]
        if flag != "port":
            args += ["--port", str(free_port())]
        if flag != "workers":
            args += ["--workers", "1"]
        args.append(f"--{flag}={value}")
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            _, stderr = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # it started serving: the supervisor and its workers
            proc.communicate()
            raise AssertionError(f"--{flag}={value} was accepted: the server started")
        done = subprocess.CompletedProcess(args, proc.returncode, "", stderr)
        assert done.returncode >= 0, f"--{flag}={value}: killed by {signal.Signals(-done.returncode).name}\n{done.stderr[-400:]}"
        assert done.returncode == 64, f"--{flag}={value}: exit {done.returncode}\n{done.stderr[-400:]}"
        assert f"--{flag}" in done.stderr, f"--{flag}={value}: message does not name the flag: {done.stderr[:300]}"
