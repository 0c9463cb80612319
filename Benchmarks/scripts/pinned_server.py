"""A server under test for the benchmark scripts: started on a free loopback port, pinned to
chosen CPUs, in its own session so that stopping it stops its whole process tree."""
import os
import shlex
import signal
import socket
import subprocess
import time
from contextlib import contextmanager


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not come up")


@contextmanager
def pinned_server(command, cpus):
    """Runs `command` (with {port} filled in) under `taskset -c cpus`; yields (process, port)
    once the port accepts; SIGTERMs the tree afterwards (SIGKILL if it lingers)."""
    port = free_port()
    server = subprocess.Popen(["taskset", "-c", cpus] + shlex.split(command.format(port=port)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(port)
        yield server, port
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
