"""Fixtures: start the real `shoal` binary ($SHOAL_BIN) on a free loopback port.

    def test_x(shoal):
        srv = shoal("--handler", "echo")   # waits until the port accepts
        ... srv.port ...
    # teardown: SIGTERM, assert exit status 0 and no leftover worker processes

Set SHOAL_PIDFILE to have every started server's process group id appended there
(scripts/test.sh kills leftovers from it if pytest itself is killed).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0


def shoal_bin() -> str:
    b = os.environ.get("SHOAL_BIN") or os.path.join(REPO, ".build", "release", "shoal")
    if not os.access(b, os.X_OK):
        pytest.exit(f"shoal binary not found at {b}: build it (swift build -c release --product shoal) "
                    f"or set SHOAL_BIN", returncode=2)
    return b


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_members(pgid: int) -> list[str]:
    """Live (non-zombie) processes of a process group, as 'pid comm' strings."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        state, pgrp = rest[0], int(rest[2])
        if pgrp == pgid and state not in ("Z", "X"):
            out.append(f"{d} {stat[stat.find('(') + 1:stat.rfind(')')]}")
    return out


class Server:
    def __init__(self, args: list[str], log_path: str, poll: float = 0.05, address=None, env=None):
        self.args = args
        # address(host, port): the arguments that make it listen there (--host/--port by default;
        # test_config.py writes them into a configuration file instead). env: variables to add,
        # or env(port) giving them (SHOAL_PORT).
        self.address = address or (lambda host, port: ["--host", host, "--port", str(port)])
        self.env = env
        self.poll = poll  # seconds between two connection attempts while waiting for the port
        self.log_path = log_path
        self.host = "127.0.0.1"
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.stopped = False
        self.exit_checked = False  # the test itself waited for the exit and checked the status

    def url(self, path: str = "/") -> str:
        return f"ws://{self.host}:{self.port}{path}"

    def log(self, tail: int = 60) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-tail:])
        except OSError:
            return ""

    def start(self) -> None:
        for attempt in range(3):
            self.port = free_port()
            cmd = [shoal_bin(), "serve", *self.address(self.host, self.port), *self.args]
            logf = open(self.log_path, "ab")
            logf.write(f"$ {' '.join(cmd)}\n".encode())
            logf.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         start_new_session=True, env=self._environment())
            logf.close()
            pidfile = os.environ.get("SHOAL_PIDFILE")
            if pidfile:
                with open(pidfile, "a") as f:
                    f.write(f"{self.proc.pid}\n")
            if self._wait_ready():
                return
            # exited early (port taken by someone else?) -> retry on another port
            self.proc.wait(timeout=5)
        raise AssertionError(f"shoal did not start (exit {self.proc.returncode}):\n{self.log()}")

    def _environment(self) -> dict[str, str] | None:
        added = self.env(self.port) if callable(self.env) else self.env
        return {**os.environ, **added} if added else None

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0):
                    return True
            except OSError:
                time.sleep(self.poll)
        self.kill()
        raise AssertionError(f"shoal did not accept on port {self.port} within {START_TIMEOUT}s:\n{self.log()}")

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        self.exit_checked = True
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def stop(self) -> None:
        """SIGTERM, then check: exit status 0, no worker left behind."""
        if self.stopped or self.proc is None:
            return
        self.stopped = True
        problems = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append(f"did not exit within {STOP_TIMEOUT}s of SIGTERM")
                self.kill()
        rc = self.proc.returncode
        if rc != 0 and not problems and not self.exit_checked:
            problems.append(f"exit status {rc} after SIGTERM (expected 0)")
        deadline = time.monotonic() + 5
        left = group_members(self.proc.pid)
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = group_members(self.proc.pid)
        if left:
            problems.append(f"processes left behind after the supervisor exited: {left}")
            self.kill()
        if problems:
            raise AssertionError(f"shoal {' '.join(self.args)}: " + "; ".join(problems) + f"\n--- log ---\n{self.log()}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, "rep_" + rep.when, rep)
    return rep


@pytest.fixture
def shoal(request, tmp_path):
    servers: list[Server] = []

    def start(*args: str, poll: float = 0.05, address=None, env=None) -> Server:
        s = Server(list(args), str(tmp_path / f"shoal-{len(servers)}.log"), poll=poll, address=address, env=env)
        servers.append(s)
        s.start()
        return s

    yield start
    errors = []
    for s in servers:
        try:
            s.stop()
        except AssertionError as e:
            errors.append(str(e))
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for s in servers:
            sys.stderr.write(f"\n--- shoal {' '.join(s.args)} (port {s.port}) log tail ---\n{s.log()}\n")
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)
