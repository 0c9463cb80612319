"""Helpers for the cluster tests (`shoal serve --workers N`): per-worker figures from
/metrics, the supervisor's worker processes and their slots, and which worker process
holds the server side of a given client connection (from /proc, exact, no guessing).

Every wait is bounded; nothing here asserts on durations."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time

from helpers import T, connect, http_get, recv_json

# ---------------------------------------------------------------- /metrics

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)$')


def metrics(port: int) -> dict[str, dict[int, float]]:
    """GET /metrics → {metric name: {worker slot: value}} (samples with a worker label)."""
    r = http_get(port, "/metrics")
    assert r.status == 200, r
    out: dict[str, dict[int, float]] = {}
    for line in r.body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line.strip())
        if not m:
            continue
        name, labels, value = m.groups()
        lab = dict(re.findall(r'(\w+)="([^"]*)"', labels or ""))
        if "worker" not in lab:
            continue
        out.setdefault(name, {})[int(lab["worker"])] = float(value)
    return out


def connections_per_worker(port: int) -> dict[int, int]:
    return {k: int(v) for k, v in metrics(port).get("shoal_connections", {}).items()}


def wait_until(pred, timeout: float = T, interval: float = 0.05, what: str = "condition"):
    """Poll pred() until it returns a truthy value (returned) or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value {last!r})")
        time.sleep(interval)


async def await_until(pred, timeout: float = T, interval: float = 0.05, what: str = "condition"):
    """Async wait_until: pred is a plain function (run in a thread) or a coroutine function."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        if asyncio.iscoroutinefunction(pred):
            last = await pred()
        else:
            last = await asyncio.to_thread(pred)
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value {last!r})")
        await asyncio.sleep(interval)


# ---------------------------------------------------------------- processes


def children(pid: int) -> list[int]:
    """Live (non-zombie) child processes of pid."""
    kids: set[int] = set()
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    kids.update(int(x) for x in f.read().split())
            except OSError:
                pass
    except OSError:
        return []
    live = []
    for k in sorted(kids):
        try:
            with open(f"/proc/{k}/stat") as f:
                stat = f.read()
            if stat[stat.rfind(")") + 2] not in "ZX":
                live.append(k)
        except OSError:
            pass
    return live


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def fd_count(pid: int) -> int:
    """Descriptors a process holds."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def worker_slot(pid: int) -> int | None:
    """The slot a worker was spawned for (SHOAL_WORKER_SLOT in its environment)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:
        return None
    for kv in env:
        if kv.startswith(b"SHOAL_WORKER_SLOT="):
            return int(kv.split(b"=", 1)[1])
    return None


def workers_by_slot(sup_pid: int) -> dict[int, int]:
    """{slot: pid} of the supervisor's live workers."""
    out = {}
    for k in children(sup_pid):
        s = worker_slot(k)
        if s is not None:
            out[s] = k
    return out


def wait_workers(sup_pid: int, slots, timeout: float = T) -> dict[int, int]:
    """Wait until a live worker runs in each of `slots`; returns {slot: pid}."""
    want = set(slots)
    return wait_until(lambda: (lambda m: m if want <= set(m) else None)(workers_by_slot(sup_pid)),
                      timeout, what=f"workers in slots {sorted(want)}")


# ---------------------------------------------------------------- who holds a connection


def _server_socket_inodes(server_port: int) -> dict[int, str]:
    """{client port: inode of the server-side socket} for established loopback connections."""
    out = {}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != "01":  # 01 = ESTABLISHED
                continue
            lport = int(fields[1].rsplit(":", 1)[1], 16)
            rport = int(fields[2].rsplit(":", 1)[1], 16)
            if lport == server_port:
                out[rport] = fields[9]
    return out


def _socket_owners(pids) -> dict[str, int]:
    owners = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                owners[target] = pid
    return owners


def owners_of(server_port: int, client_ports, worker_pids) -> dict[int, int | None]:
    """{client port: pid of the worker holding its server-side socket, or None}."""
    inodes = _server_socket_inodes(server_port)
    owners = _socket_owners(worker_pids)
    return {p: owners.get(f"socket:[{inodes.get(p)}]") for p in client_ports}


def local_port(ws) -> int:
    return ws.local_address[1]


async def owners_of_clients(server_port: int, clients, worker_pids, timeout: float = T) -> list[int]:
    """Worker pid for each websockets client (in order); waits (bounded) until every
    client's server socket is found in some worker."""
    ports = [local_port(c) for c in clients]

    def probe():
        m = owners_of(server_port, ports, worker_pids)
        return [m[p] for p in ports] if all(m[p] is not None for p in ports) else None
    return await await_until(probe, timeout, what="every client's server socket in a worker's fd table")


# ---------------------------------------------------------------- probe handler


async def probe_join(port: int, path: str = "/", **kw):
    """Connect to the probe handler and read the hello event; returns (ws, id)."""
    kw.setdefault("max_queue", None)
    ws = await connect(port, path, **kw)
    hello = await recv_json(ws)
    assert hello.get("event") == "hello", hello
    return ws, hello["id"]


async def probe_ask(ws, command: str, timeout: float = T):
    """Send a probe command; return its reply, skipping the other clients' events."""
    await ws.send(command)
    deadline = time.monotonic() + timeout
    while True:
        m = await recv_json(ws, max(0.01, deadline - time.monotonic()))
        if isinstance(m, dict) and "event" in m:
            continue
        return m


def dumps(x) -> str:
    return json.dumps(x, sort_keys=True)
