"""Several Shoal instances as one cluster through a real Redis server (docs/cluster.md,
"Several hosts"): `redis-server` (Debian) on a free loopback port and two `shoal serve`
instances on other ports, 2 workers each, `--handler broadcast` (every message goes to
every client through wss.broadcast).

- a broadcast on either instance reaches every client of both, exactly once, in order per publisher;
- so does a topic publish (`--handler topics`), to the topic's subscribers only;
- Redis killed: each instance still delivers locally, /healthz says degraded (200), the
  broadcasts the other instance missed are counted as dropped; Redis restarted: cross-host
  delivery resumes within 5 s;
- redis-server stopped (SIGSTOP): the loop is never blocked, local delivery goes on, the 8 MiB
  queue bound drops and counts;
- garbage published on the channel with redis-cli is counted and ignored, nothing crashes,
  and a frame written from this file by the documented layout is delivered;
- after a reload (SIGHUP) the new workers are linked with the same instance id: delivery once;
- a bad --redis URL or --cluster-name exits 64 naming the flag.

Run on both backends: SHOAL_BACKEND=epoll selects the fallback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import shutil
import struct
import subprocess
import time
import uuid

import pytest

from cluster_helpers import connections_per_worker, metrics, wait_until
from conftest import free_port, shoal_bin
from helpers import T, connect, http_get, recv, run
from test_metrics_format import promtool_check

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
pytestmark = pytest.mark.skipif(not REDIS_SERVER or not REDIS_CLI,
                                reason="redis-server and redis-cli are needed (Debian: redis-server, redis-tools)")


class Redis:
    """A real redis-server on 127.0.0.1, no persistence; can be killed and restarted on its port."""

    def __init__(self, log_path: str):
        self.port = free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no"],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        wait_until(lambda: self.cli("PING").strip() == b"PONG", what="redis-server answering PING")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def cli(self, *args: str, stdin: bytes | None = None) -> bytes:
        cmd = [REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port)] + (["-x"] if stdin is not None else []) + list(args)
        done = subprocess.run(cmd, input=stdin, capture_output=True, timeout=T)
        return done.stdout


@pytest.fixture
def redis(tmp_path):
    r = Redis(str(tmp_path / "redis.log"))
    r.start()
    yield r
    r.kill()


def redis_url(r: Redis) -> str:
    return f"redis://127.0.0.1:{r.port}"


def health(port: int) -> tuple[int, str]:
    resp = http_get(port, "/healthz")
    return resp.status, resp.body.decode()


def linked(port: int, workers: int = 2) -> bool:
    status, body = health(port)
    return status == 200 and "degraded" not in body and sum(metrics(port).get("shoal_redis_up", {}).values()) == workers


def total(port: int, name: str, **labels) -> float:
    """Sum over workers of a metric, optionally restricted by label values (parsed here: the
    shared parser keeps one sample per worker)."""
    body = http_get(port, "/metrics").body.decode()
    out = 0.0
    for line in body.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            out += float(line.rsplit(" ", 1)[1])
    return out


def start_pair(shoal, r: Redis, name: str, handler: str = "broadcast"):
    args = ["--handler", handler, "--workers", "2", "--redis", redis_url(r), "--cluster-name", name]
    a, b = shoal(*args), shoal(*args)
    for s in (a, b):
        wait_until(lambda: linked(s.port), what=f"instance on {s.port} linked to Redis")
    return a, b


async def clients_on_both_workers(port: int, at_least: int = 4, most: int = 24):
    """Clients of one instance, opened until both of its workers hold some (SO_REUSEPORT spreads them)."""
    clients = []
    while len(clients) < most:
        clients.append(await connect(port))
        if len(clients) >= at_least:
            per = await asyncio.to_thread(connections_per_worker, port)
            if len([n for n in per.values() if n > 0]) >= 2:
                return clients
    raise AssertionError(f"{most} clients all landed on one worker of {port}")


async def collect(ws, expected: int, quiet: float = 0.7) -> list[str]:
    """Messages until `expected` arrived, then whatever else comes within `quiet` s (a duplicate would)."""
    got = []
    while len(got) < expected:
        got.append(await recv(ws))
    try:
        while True:
            got.append(await asyncio.wait_for(ws.recv(), quiet))
    except asyncio.TimeoutError:
        pass
    return got


def frame(instance: int, payload: bytes, *, version: int = 1, kind: int = 1, opcode: int = 1, server: int = 0,
          topic: bytes = b"") -> bytes:
    """A message in the channel's documented layout (Sources/ShoalRedis/RedisEnvelope.swift)."""
    return (b"SHRB" + bytes([version, kind, opcode, 0]) + struct.pack("<QIH", instance, server, len(topic)) + topic
            + struct.pack("<I", len(payload)) + payload)


def test_broadcast_reaches_every_client_of_both_instances_once_in_order(shoal, redis):
    a, b = start_pair(shoal, redis, f"t{uuid.uuid4().hex[:8]}")

    async def go():
        on_a = await clients_on_both_workers(a.port)
        on_b = await clients_on_both_workers(b.port)
        pub_a, pub_b = on_a[0], on_b[0]
        n = 60
        await asyncio.gather(*(pub_a.send(f"A-{i}") for i in range(n)), *(pub_b.send(f"B-{i}") for i in range(n)))
        everyone = on_a + on_b
        results = await asyncio.gather(*(collect(ws, 2 * n) for ws in everyone))
        for index, got in enumerate(results):
            where = f"client {index} ({'A' if index < len(on_a) else 'B'})"
            assert len(got) == 2 * n, f"{where}: {len(got)} messages, expected {2 * n} (duplicates or losses): {got[:10]}"
            assert sorted(got) == sorted([f"A-{i}" for i in range(n)] + [f"B-{i}" for i in range(n)]), where
            for publisher in ("A", "B"):
                mine = [m for m in got if m.startswith(publisher + "-")]
                assert mine == [f"{publisher}-{i}" for i in range(n)], f"{where}: {publisher}'s messages out of order"
        for ws in everyone:
            await ws.close()

    run(go())
    # Each instance published its own 60 once per broadcast and received the other's 60 in each worker.
    assert total(a.port, "shoal_redis_published_total") == 60
    assert total(b.port, "shoal_redis_received_total") == 2 * 60
    assert total(a.port, "shoal_redis_invalid_total") == 0


def test_topic_chat_across_both_instances_once_in_order_to_subscribers_only(shoal, redis):
    a, b = start_pair(shoal, redis, f"t{uuid.uuid4().hex[:8]}", handler="topics")

    async def go():
        on_a = await clients_on_both_workers(a.port)
        on_b = await clients_on_both_workers(b.port)
        # The last client of each instance stays out of the room.
        members, outsiders = on_a[:-1] + on_b[:-1], [on_a[-1], on_b[-1]]
        for ws in members:
            await ws.send(json.dumps({"subscribe": "room"}))
            assert json.loads(await recv(ws)) == {"subscribed": "room"}
        for ws in outsiders:
            await ws.send(json.dumps({"subscribe": "elsewhere"}))
            assert json.loads(await recv(ws)) == {"subscribed": "elsewhere"}
        await asyncio.sleep(0.5)  # subscriber counts reach the other worker of each instance over its bus
        n = 40
        pub_a, pub_b = on_a[0], on_b[0]  # members themselves: they get their own messages too
        await asyncio.gather(*(pub_a.send(json.dumps({"publish": "room", "data": {"from": "A", "i": i}})) for i in range(n)),
                             *(pub_b.send(json.dumps({"publish": "room", "data": {"from": "B", "i": i}})) for i in range(n)))
        results = await asyncio.gather(*(collect(ws, 2 * n) for ws in members))
        for index, got in enumerate(results):
            decoded = [json.loads(m) for m in got]
            assert len(decoded) == 2 * n, f"member {index}: {len(decoded)} messages, expected {2 * n}: {decoded[:6]}"
            for publisher in ("A", "B"):
                assert [d["i"] for d in decoded if d["from"] == publisher] == list(range(n)), \
                    f"member {index}: {publisher}'s publishes missing, doubled or out of order"
        for ws in outsiders:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.3)
        for ws in on_a + on_b:
            await ws.close()

    run(go())
    assert total(b.port, "shoal_redis_received_total") == 2 * 40, "each worker of B received A's publishes once"


def test_redis_down_local_delivery_goes_on_degraded_then_resumes(shoal, redis):
    a, b = start_pair(shoal, redis, f"t{uuid.uuid4().hex[:8]}")

    async def go():
        on_a = await clients_on_both_workers(a.port)
        on_b = await clients_on_both_workers(b.port)
        redis.kill()
        for s in (a, b):
            await asyncio.to_thread(wait_until, lambda: "degraded: Redis link down" in health(s.port)[1], 5.0,
                                    what=f"/healthz of {s.port} degraded")
            assert health(s.port)[0] == 200, "a host without Redis still serves its clients: not down"
        await on_a[0].send("local-only")
        for ws in on_a:
            assert await recv(ws) == "local-only", "local delivery (both workers) goes on without Redis"
        for ws in on_b:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.5)
        assert total(a.port, "shoal_redis_dropped_total", reason="down") >= 1

        redis.start()
        restarted = time.monotonic()
        # Probe from A until B's clients hear it: cross-host delivery is back.
        received = None
        probe = 0
        while received is None and time.monotonic() - restarted < 5.0:
            probe += 1
            await on_a[0].send(f"probe-{probe}")
            try:
                received = await asyncio.wait_for(on_b[0].recv(), 0.25)
            except asyncio.TimeoutError:
                pass
        took = time.monotonic() - restarted
        assert received is not None and received.startswith("probe-"), f"no cross-host delivery {took:.1f} s after the restart"
        await asyncio.to_thread(wait_until, lambda: linked(a.port) and linked(b.port), 5.0, what="healthz ok again")
        # And B's broadcasts reach A again too.
        await on_b[1].send("from-b")
        got = []
        while "from-b" not in got:
            got.append(await recv(on_a[1]))
        for ws in on_a + on_b:
            await ws.close()

    run(go())


def test_after_a_reload_the_new_workers_are_linked_and_deliver_once(shoal, redis):
    """SIGHUP on A: its new generation links to Redis with the same instance id (the shared segment
    stays), so B's broadcasts reach A's new clients once and A's own come back to nobody twice."""
    a, b = start_pair(shoal, redis, f"t{uuid.uuid4().hex[:8]}")
    a.signal(signal.SIGHUP)
    wait_until(lambda: linked(a.port) and "reload: new generation serving" in a.log(200), 20.0,
               what="A reloaded and linked again")

    async def go():
        on_a = await clients_on_both_workers(a.port)
        on_b = await clients_on_both_workers(b.port)
        await on_b[0].send("from-b")
        await on_a[0].send("from-a")
        for ws in on_a + on_b:
            assert sorted(await collect(ws, 2)) == ["from-a", "from-b"]
            await ws.close()

    run(go())


def test_a_stalled_redis_never_blocks_the_loop_and_the_queue_bound_drops(shoal, redis):
    """redis-server stopped (SIGSTOP): its sockets stay open but nothing is read or answered. The
    publishing worker keeps at most 8 MiB of PUBLISHes waiting, then drops and counts; its own
    clients keep getting every broadcast and /healthz keeps answering."""
    a, b = start_pair(shoal, redis, f"t{uuid.uuid4().hex[:8]}")

    async def go():
        on_a = await clients_on_both_workers(a.port)
        os.kill(redis.proc.pid, signal.SIGSTOP)
        try:
            big = "x" * (64 * 1024)
            count = 300  # 19 MiB: beyond the 8 MiB bound whatever the socket buffers hold
            for i in range(count):
                await on_a[0].send(f"{i:04}{big}")
            for ws in on_a:
                for i in range(count):
                    message = await recv(ws)
                    assert message[:4] == f"{i:04}", "local delivery in order while Redis stalls"
            status, _ = await asyncio.to_thread(health, a.port)
            assert status == 200
            assert await asyncio.to_thread(total, a.port, "shoal_redis_dropped_total", reason="queue_full") > 0
        finally:
            os.kill(redis.proc.pid, signal.SIGCONT)
        for ws in on_a:
            await ws.close()

    run(go())


def test_a_broadcast_larger_than_a_receiver_takes_is_dropped_as_too_large_not_queue_full(shoal, redis):
    """A program may allow messages over 16 MiB (--max-message-size); no instance takes one that
    large from Redis, so it is not sent there and is counted under its own reason: the queue was
    never full."""
    name = f"t{uuid.uuid4().hex[:8]}"
    a = shoal("--handler", "broadcast", "--workers", "1", "--redis", redis_url(redis), "--cluster-name", name,
              "--max-message-size", str(17 * 1024 * 1024))
    wait_until(lambda: linked(a.port, workers=1), what="instance linked to Redis")

    async def go():
        ws = await connect(a.port, max_size=None)
        huge = b"h" * (16 * 1024 * 1024 + 1)
        await ws.send(huge)
        assert await recv(ws) == huge, "delivered locally all the same"
        await ws.send("small")
        assert await recv(ws) == "small"
        await ws.close()

    run(go())
    wait_until(lambda: total(a.port, "shoal_redis_published_total") == 1, what="the small broadcast published")
    assert total(a.port, "shoal_redis_dropped_total", reason="too_large") == 1
    assert total(a.port, "shoal_redis_dropped_total", reason="queue_full") == 0
    assert total(a.port, "shoal_redis_dropped_total", reason="down") == 0


def test_garbage_on_the_channel_is_counted_and_ignored(shoal, redis, tmp_path):
    name = f"t{uuid.uuid4().hex[:8]}"
    a, b = start_pair(shoal, redis, name)
    channel = f"shoal:{name}"
    foreign = 0x5EED_0000_0000_0001  # no Shoal instance: a frame from "a third host"
    garbage = [
        b"hello from redis-cli",
        frame(foreign, b"cut short")[:-3],                     # truncated
        frame(foreign, b"from the future", version=9),         # another version
        b"SHRB\x01\x01\x01\x00" + b"\x00" * 14 + struct.pack("<I", 0x7FFF_FFFF),  # claims 2 GiB
        frame(foreign, b"x" * (16 * 1024 * 1024 + 1)),         # oversized, really sent
        frame(foreign, b"\xc3\x28"),                           # text that is not UTF-8
    ]

    async def go():
        on_a = await clients_on_both_workers(a.port)
        on_b = await clients_on_both_workers(b.port)
        for bad in garbage:
            assert redis.cli("PUBLISH", channel, stdin=bad).strip() == b"4", "every worker of both instances subscribed"
        for s in (a, b):
            await asyncio.to_thread(wait_until, lambda: total(s.port, "shoal_redis_invalid_total") == 2 * len(garbage), T,
                                    what=f"garbage counted by both workers of {s.port}")
        good = frame(foreign, "héllo from a third host".encode())
        assert redis.cli("PUBLISH", channel, stdin=good).strip() == b"4"
        for ws in on_a + on_b:
            assert await recv(ws) == "héllo from a third host", "nothing of the garbage reached a client"
            await ws.close()

    run(go())
    for s in (a, b):
        status, body = health(s.port)
        assert status == 200 and "degraded" not in body, body
        assert total(s.port, "shoal_worker_restarts_total") == 0, "no worker crashed"
    # The shoal_redis_* families, now with samples, pass Prometheus' own linter.
    checked = promtool_check(http_get(a.port, "/metrics").body)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("flags, says", [
    (["--redis", "http://127.0.0.1:6379"], "redis://"),
    (["--redis", "redis://127.0.0.1"], "port"),
    (["--redis", "redis://127.0.0.1:6379/99"], "database"),
    (["--redis", "redis://no-such-host.invalid:6379"], "cannot resolve"),
    (["--redis", "redis://127.0.0.1:6379", "--cluster-name", "has space"], "--cluster-name"),
])
def test_bad_redis_flags_exit_64(flags, says):
    done = subprocess.run([shoal_bin(), "serve", "--host", "127.0.0.1", "--port", str(free_port()), *flags], capture_output=True, text=True, timeout=T)
    assert done.returncode == 64, f"{flags}: exit {done.returncode}\n{done.stderr[-400:]}"
    assert says in done.stderr, done.stderr[-400:]
