"""The cluster (`shoal serve --workers N`): issue 3's "What it must show", against the
real binary. Supervisor = the process the `shoal` fixture starts; workers = its children
(slot from SHOAL_WORKER_SLOT in their environment). Which worker holds a client is read
from /proc (server-side socket inode -> worker's fd table), per-worker figures from
/metrics.

Every wait is bounded. No assertion on durations, except where the issue states a bound
("within a second"): those are checked by polling with a generous bound (a few seconds,
said at each place) so a loaded 2-core CI box does not make them flaky."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from cluster_helpers import (await_until, connections_per_worker, metrics, owners_of_clients, probe_ask,
                             probe_join, wait_until, wait_workers, workers_by_slot)
from helpers import T, connect, expect_closed, recv, run

WELCOME = "Welcome on the chat!"
JOINED = "New client connected"
LEFT = "Client disconnected"

# Bound for the "within a second" (worker restart, registry sweep): polled up to
# this many seconds so a loaded machine does not turn scheduling noise into a failure.
WITHIN_A_SECOND_GENEROUS = 5.0


async def wait_counts(port: int, total: int, timeout: float = T) -> dict[int, int]:
    """Per-worker connections from /metrics, once they add up to `total`."""
    def ready():
        per = connections_per_worker(port)
        return per if sum(per.values()) == total else None
    return await await_until(ready, timeout, what=f"/metrics shoal_connections summing to {total}")


async def open_chat_clients(port: int, workers: int, minimum: int, per_worker: int, cap: int = 48, **kw):
    """Open chat clients one after the other (each gets the welcome, every earlier one
    gets "New client connected") until there are at least `minimum` of them and /metrics
    shows at least `per_worker` on every worker slot 0..workers-1. Returns (clients, per-worker)."""
    kw.setdefault("max_queue", None)
    clients = []
    while True:
        c = await connect(port, "/chat", **kw)
        assert await recv(c) == WELCOME
        for other in clients:
            assert await recv(other) == JOINED
        clients.append(c)
        if len(clients) >= minimum:
            per = await wait_counts(port, len(clients))
            if all(per.get(s, 0) >= per_worker for s in range(workers)):
                return clients, per
        assert len(clients) < cap, f"{len(clients)} clients and still not {per_worker} on each worker: {per}"


async def open_probe_clients(port: int, pids: list[int], minimum: int = 8, per_worker: int = 3, cap: int = 40):
    """Open probe clients one after the other until there are at least `minimum` of them and
    /proc shows at least `per_worker` on every worker in `pids` (pids[s] being slot s's worker);
    then /metrics must count them all, at least `per_worker` on each slot.
    Returns (clients, ids, owners), owners[i] being the pid that holds client i."""
    clients, ids, owners = [], [], []
    while True:
        ws, cid = await probe_join(port)
        clients.append(ws)
        ids.append(cid)
        if len(clients) >= minimum:
            owners = await owners_of_clients(port, clients, pids)
            if all(owners.count(p) >= per_worker for p in pids):
                break
        assert len(clients) < cap, f"clients not spread over the workers: {owners}"
    per = await wait_counts(port, len(clients))
    assert all(per.get(s, 0) >= per_worker for s in range(len(pids))), per
    return clients, ids, owners


async def echo_round(ws, text: str) -> None:
    await ws.send(text)
    got = await recv(ws)
    assert got == text, (got, text)


# ---------------------------------------------------------------- 1. chat over workers


@pytest.mark.parametrize("workers", [2, 1])
def test_chat_every_message_once_in_order(shoal, workers):
    """The 4D chat example (loops over wss.connections) delivers every message to every
    other client exactly once, per sender in order, never back to the sender."""
    srv = shoal("--handler", "chat", "--path", "/chat", "--workers", str(workers))
    K = 25

    async def main():
        clients, per = await open_chat_clients(srv.port, workers, minimum=12, per_worker=3)
        n = len(clients)
        if workers > 1:
            assert all(per.get(s, 0) > 0 for s in range(workers)), per

        async def sender(i):
            for k in range(K):
                await clients[i].send(f"m {i} {k}")
                if k % 4 == 3:
                    await asyncio.sleep(0.001)  # interleave the senders
            await clients[i].send(f"done {i}")

        async def receiver(j):
            got = {i: [] for i in range(n)}
            done = []
            while not set(range(n)) - {j} <= set(done):
                m = await recv(clients[j], 30)
                assert isinstance(m, str), f"client {j} got a non-text message {m!r:.100}"
                kind, i, *rest = m.split()
                i = int(i)
                if kind == "done":
                    assert len(got[i]) >= K or i == j, \
                        f"client {j}: 'done {i}' arrived after only {got[i]} of sender {i}'s messages"
                    done.append(i)
                else:
                    got[i].append(int(rest[0]))
            return got, done

        results = await asyncio.gather(*(receiver(j) for j in range(n)), *(sender(i) for i in range(n)))
        for j, (got, done) in enumerate(results[:n]):
            assert got[j] == [] and j not in done, f"client {j} received its own messages: {got[j]} {done}"
            for i in range(n):
                if i != j:
                    assert got[i] == list(range(K)), \
                        f"client {j} got sender {i}'s messages as {got[i]} (expected 0..{K - 1} once, in order)"
            assert sorted(done) == sorted(set(done)), f"client {j}: duplicated 'done': {done}"
        # nothing else is pending anywhere: each client's next message is the marker
        for i in range(n):
            await clients[i].send(f"marker {i}")
            for j in range(n):
                if j != i:
                    assert await recv(clients[j]) == f"marker {i}"
        await asyncio.gather(*(c.close() for c in clients))
    run(main(), timeout=180)


# ---------------------------------------------------------------- 2. ids


def test_chat_join_crosses_the_bus_once_per_worker(shoal):
    """A join in the 4D chat example sends "New client connected" to every other client by
    looping over wss.connections; the sends to another worker's clients made in that loop
    cross the bus as one message per worker (the payload once, with the list of ids), not
    one per remote client, and every client still gets the text exactly once."""
    workers = 3
    srv = shoal("--handler", "chat", "--path", "/chat", "--workers", str(workers))

    def bus_messages() -> int:
        return int(sum(metrics(srv.port).get("shoal_bus_messages_sent_total", {}).values()))

    async def main():
        clients, per = await open_chat_clients(srv.port, workers, minimum=15, per_worker=4, cap=80)
        await asyncio.sleep(0.3)  # let the last join's counters reach the segment
        before = bus_messages()
        joiner = await connect(srv.port, "/chat", max_queue=None)
        assert await recv(joiner) == WELCOME
        for c in clients:
            assert await recv(c) == JOINED
        await asyncio.sleep(0.3)
        sent = bus_messages() - before
        remote = len(clients) - min(per.values())  # at least this many clients live on other workers
        assert 1 <= sent <= workers - 1, \
            f"one join into {len(clients)} clients ({per}) wrote {sent} bus messages; at most {workers - 1} expected"
        assert remote >= 8
        # Nothing arrived twice.
        for c in clients + [joiner]:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(c.recv(), 0.2)
        for c in clients + [joiner]:
            await c.close()

    run(main())


def test_ids_unique_over_waves_and_continue_after_kill(shoal):
    """2,000 connections over 2 workers in 10 waves of 200: no id repeats. Then kill -9 a
    worker: once restarted, ids (on both workers, the new one included) exceed all before."""
    srv = shoal("--handler", "probe", "--workers", "2")
    WAVES, PER_WAVE = 10, 200
    sup = srv.proc.pid

    async def open_many(count):
        sem = asyncio.Semaphore(50)

        async def one():
            async with sem:
                return await probe_join(srv.port)
        return await asyncio.gather(*(one() for _ in range(count)))

    async def main():
        seen: list[int] = []
        for w in range(WAVES):
            pairs = await open_many(PER_WAVE)
            per = await wait_counts(srv.port, PER_WAVE)
            assert per.get(0, 0) > 0 and per.get(1, 0) > 0, f"wave {w}: one worker got everything: {per}"
            seen.extend(cid for _, cid in pairs)
            await asyncio.gather(*(ws.close() for ws, _ in pairs))
            await wait_counts(srv.port, 0)
        assert len(seen) == WAVES * PER_WAVE
        dup = {i for i in seen if seen.count(i) > 1} if len(set(seen)) != len(seen) else set()
        assert not dup, f"ids handed out twice: {sorted(dup)[:20]}"
        assert all(isinstance(i, int) and i > 0 for i in seen)
        top = max(seen)

        slots = wait_workers(sup, [0, 1])
        victim = slots[0]
        restarts_before = metrics(srv.port).get("shoal_worker_restarts_total", {}).get(0, 0)
        os.kill(victim, signal.SIGKILL)

        # issue: "restarted within a second" -- polled up to WITHIN_A_SECOND_GENEROUS s
        def restarted():
            # a request racing the kill may land on the dying worker and be reset (io_uring:
            # its in-kernel accept can still take a connection while the ring is torn down);
            # that is not what this poll checks, so it just asks again
            try:
                m = metrics(srv.port)
            except OSError:
                return None
            new = workers_by_slot(sup).get(0)
            ok = (m.get("shoal_worker_restarts_total", {}).get(0, 0) == restarts_before + 1
                  and m.get("shoal_worker_up", {}).get(0) == 1 and new not in (None, victim))
            return new if ok else None
        new_pid = await await_until(restarted, WITHIN_A_SECOND_GENEROUS, what="slot 0 restarted (restarts +1, up)")
        other_pid = slots[1]

        # new connections until both the new worker and the survivor have handed out ids
        fresh: list[tuple[int, int]] = []  # (id, owner pid)
        while True:
            pairs = await open_many(20)
            owners = await owners_of_clients(srv.port, [ws for ws, _ in pairs], [new_pid, other_pid])
            fresh.extend((cid, o) for (_, cid), o in zip(pairs, owners))
            await asyncio.gather(*(ws.close() for ws, _ in pairs))
            on_new = [c for c, o in fresh if o == new_pid]
            on_other = [c for c, o in fresh if o == other_pid]
            if len(on_new) >= 5 and len(on_other) >= 5:
                break
            assert len(fresh) < 400, f"new connections did not reach both workers: {len(on_new)}, {len(on_other)}"
        ids = [c for c, _ in fresh]
        assert len(set(ids)) == len(ids), "ids repeated after the restart"
        below = sorted(c for c in ids if c <= top)
        assert not below, (f"after kill -9 and restart, ids {below[:20]} (on workers "
                           f"{sorted({o for c, o in fresh if c <= top})}) are not above the largest id "
                           f"seen before ({top})")
    run(main(), timeout=300)


# ---------------------------------------------------------------- 3. kill -9 under traffic


def test_kill_worker_during_traffic(shoal):
    """kill -9 one worker while clients on both exchange numbered messages: the survivor's
    clients lose nothing; the dead worker's clients see the TCP connection close (no close
    frame) and reconnect at once; the survivor stops listing the dead ids."""
    srv = shoal("--handler", "probe", "--workers", "2")
    sup = srv.proc.pid
    WINDOW = 4  # requests in flight per client

    async def main():
        slots = wait_workers(sup, [0, 1])
        pids = [slots[0], slots[1]]
        clients, ids, owners = await open_probe_clients(srv.port, pids)
        n = len(clients)
        victim = slots[0]
        dead = [i for i in range(n) if owners[i] == victim]
        alive = [i for i in range(n) if owners[i] != victim]

        progress = [0] * n
        stop = asyncio.Event()

        async def traffic(i):
            ws, k = clients[i], 0
            try:
                while not stop.is_set():
                    for d in range(WINDOW):
                        await ws.send(f"seq {i} {k + d}")
                    for d in range(WINDOW):
                        while True:
                            try:
                                m = await recv(ws, T)
                            except asyncio.TimeoutError:
                                return ("timeout", k + d, None)
                            m = json.loads(m) if isinstance(m, str) else m
                            if isinstance(m, dict) and "event" in m:
                                continue  # another client's open/terminate event
                            break
                        if m != {"echo": f"seq {i} {k + d}"}:
                            return ("wrong", k + d, m)
                    k += WINDOW
                    progress[i] = k
                    await asyncio.sleep(0.005)
                return ("ok", k, None)
            except ConnectionClosed as e:
                return ("closed", k, e.rcvd)

        tasks = [asyncio.create_task(traffic(i)) for i in range(n)]
        await await_until(lambda: all(progress[i] >= 40 for i in range(n)), 30, what="traffic before the kill")
        os.kill(victim, signal.SIGKILL)
        at_kill = list(progress)
        await await_until(lambda: all(tasks[i].done() for i in dead), 15,
                          what="the dead worker's clients to see their connection close")
        await await_until(lambda: all(progress[i] >= at_kill[i] + 60 for i in alive), 30,
                          what="survivors' traffic after the kill")
        stop.set()
        results = await asyncio.gather(*tasks)

        for i in alive:
            state, k, info = results[i]
            assert state == "ok", (f"client {i} on the surviving worker: {state} at message {k} "
                                   f"({info!r}); progress at kill {at_kill[i]}")
        for i in dead:
            state, k, info = results[i]
            assert state == "closed", f"client {i} of the killed worker: {state} at {k} ({info!r})"
            assert info is None, f"client {i} of the killed worker got a close frame {info} (expected a bare TCP close)"

        # they reconnect at once (the listener survives the worker: the restart takes it over)
        again = [await probe_join(srv.port) for _ in dead]
        for ws, cid in again:
            assert await probe_ask(ws, "id") == {"id": cid}
        live = [clients[i] for i in alive] + [ws for ws, _ in again]
        live_ids = {ids[i] for i in alive} | {cid for _, cid in again}
        dead_ids = {ids[i] for i in dead}

        # issue: "within a second wss.connections on the survivor no longer lists them"
        # -- polled up to WITHIN_A_SECOND_GENEROUS s; asked of every live client (both workers)
        async def consistent():
            for ws in live:
                got = (await probe_ask(ws, "ids"))["ids"]
                cnt = (await probe_ask(ws, "count"))["count"]
                if set(got) != live_ids or cnt != len(live_ids) or len(got) != cnt:
                    return None
            return True
        try:
            await await_until(consistent, WITHIN_A_SECOND_GENEROUS, interval=0.1, what="registry swept")
        except AssertionError:
            got = (await probe_ask(clients[alive[0]], "ids"))["ids"]
            raise AssertionError(f"survivor still lists {sorted(set(got) & dead_ids)} of the dead ids "
                                 f"{sorted(dead_ids)}; lists {sorted(got)}, live {sorted(live_ids)}")
        m = metrics(srv.port)
        assert m.get("shoal_worker_restarts_total", {}).get(0) == 1, m.get("shoal_worker_restarts_total")
        await asyncio.gather(*(ws.close() for ws in live))
    run(main(), timeout=180)


# ---------------------------------------------------------------- 4. SIGTERM


def test_sigterm_closes_every_client_with_1001(shoal):
    drain = 5
    srv = shoal("--handler", "echo", "--workers", "2", "--drain-timeout", str(drain))

    async def main():
        clients = []
        while True:
            c = await connect(srv.port, "/e")
            await echo_round(c, f"hello {len(clients)}")
            clients.append(c)
            if len(clients) >= 8:
                per = await wait_counts(srv.port, len(clients))
                if per.get(0, 0) >= 2 and per.get(1, 0) >= 2:
                    break
            assert len(clients) < 40, per
        srv.signal(signal.SIGTERM)
        closes = await asyncio.gather(*(expect_closed(c, drain + 15) for c in clients))
        bad = [(i, c) for i, c in enumerate(closes) if c[0] != 1001]
        assert not bad, f"clients without close 1001: {bad} (of {len(clients)})"
    run(main(), timeout=120)
    # the bound: drain timeout + generous slack for the escalation and exit
    rc = srv.wait(drain + 15)
    assert rc == 0, f"exit status {rc}\n{srv.log()}"


# ---------------------------------------------------------------- 5. SIGHUP


def test_sighup_reload_under_new_connections(shoal):
    """A new connection every 20 ms (one echo each) for ~3 s around a SIGHUP: none refused,
    none reset. Upgrades caught by the old generation may be closed with 1001 (counted
    apart, not as refused). Then slots 2,3 serve and 0,1 are down."""
    drain = 3
    srv = shoal("--handler", "echo", "--workers", "2", "--drain-timeout", str(drain))
    sup = srv.proc.pid

    async def one(i):
        try:
            ws = await connect(srv.port, f"/r{i}")
        except (OSError, InvalidHandshake, asyncio.TimeoutError, EOFError) as e:
            return ("refused", repr(e))
        try:
            await ws.send(f"x{i}")
            got = await recv(ws)
            if got != f"x{i}":
                return ("wrong", repr(got))
            await ws.close()
            return ("ok", None)
        except ConnectionClosed as e:
            if e.rcvd is not None and e.rcvd.code == 1001:
                return ("1001", e.rcvd.reason)
            return ("reset", repr(e))
        except asyncio.TimeoutError:
            return ("timeout", None)

    async def main():
        old = wait_workers(sup, [0, 1])
        # a few long-lived clients of the old generation: they get 1001 on the reload
        longs = [await connect(srv.port, "/long") for _ in range(4)]
        for c in longs:
            await echo_round(c, "before")
        tasks = []
        start = time.monotonic()
        hup_sent = False
        i = 0
        while time.monotonic() - start < 3.0:
            if not hup_sent and time.monotonic() - start >= 1.0:
                srv.signal(signal.SIGHUP)
                hup_sent = True
            tasks.append(asyncio.create_task(one(i)))
            i += 1
            await asyncio.sleep(0.02)
        results = await asyncio.gather(*tasks)
        kinds = {}
        for kind, info in results:
            kinds.setdefault(kind, []).append(info)
        summary = {k: len(v) for k, v in kinds.items()}
        for bad in ("refused", "reset", "wrong", "timeout"):
            assert bad not in kinds, f"{bad}: {kinds[bad][:5]} -- all outcomes {summary}"
        assert summary.get("ok", 0) > 50, summary
        for reason in kinds.get("1001", []):
            assert reason in ("server restarting", "server terminated"), kinds["1001"]

        for c in longs:
            code, reason = await expect_closed(c, drain + 15)
            assert code == 1001, (code, reason)

        def reloaded():
            up = metrics(srv.port).get("shoal_worker_up", {})
            # old slots: down (0) or no longer listed at all
            ok = up.get(2) == 1 and up.get(3) == 1 and not up.get(0) and not up.get(1)
            return up if ok else None
        await await_until(reloaded, drain + 15, what="/metrics: slots 2,3 up and 0,1 down")
        new = wait_workers(sup, [2, 3])
        assert set(workers_by_slot(sup)) == {2, 3}, workers_by_slot(sup)
        assert not set(new.values()) & set(old.values())

        # clients after the reload echo fine, served by the new generation
        after = [await connect(srv.port, "/after") for _ in range(6)]
        for k, c in enumerate(after):
            await echo_round(c, f"after {k}")
        owners = await owners_of_clients(srv.port, after, list(new.values()))
        assert set(owners) <= set(new.values())
        await asyncio.gather(*(c.close() for c in after))
    run(main(), timeout=120)


# ---------------------------------------------------------------- 6. 4 MiB across workers


def test_4mib_broadcast_across_workers(shoal):
    srv = shoal("--handler", "chat", "--path", "/chat", "--workers", "2")
    size = 4 * 1024 * 1024

    async def main():
        clients, per = await open_chat_clients(srv.port, 2, minimum=6, per_worker=2, max_size=None)
        payload = os.urandom(size)
        digest = hashlib.sha256(payload).hexdigest()
        await clients[0].send(payload)
        for j, c in enumerate(clients[1:], 1):
            got = await recv(c, 60)
            assert isinstance(got, bytes), f"client {j}: expected a binary message, got {type(got).__name__}"
            assert len(got) == size and hashlib.sha256(got).hexdigest() == digest, \
                f"client {j}: {len(got)} bytes, sha256 {hashlib.sha256(got).hexdigest()} != {digest}"
        # the sender did not get its own message; nothing else is pending
        await clients[1].send("after")
        for j, c in enumerate(clients):
            if j != 1:
                assert await recv(c, 30) == "after", f"client {j}"
        await asyncio.gather(*(c.close() for c in clients))
    run(main(), timeout=180)


# ---------------------------------------------------------------- 7. wss.connections


def test_connections_span_workers(shoal):
    srv = shoal("--handler", "probe", "--workers", "2")
    sup = srv.proc.pid

    async def main():
        slots = wait_workers(sup, [0, 1])
        pids = [slots[0], slots[1]]
        clients, ids, owners = await open_probe_clients(srv.port, pids)
        n = len(clients)
        for i, ws in enumerate(clients):
            assert await probe_ask(ws, "count") == {"count": n}, f"client {i} (pid {owners[i]})"
            got = (await probe_ask(ws, "ids"))["ids"]
            assert sorted(got) == sorted(ids), f"client {i} (pid {owners[i]}): ids {sorted(got)} != {sorted(ids)}"

        # close one client of each worker and one more
        gone = [owners.index(pids[0]), owners.index(pids[1])]
        gone.append(next(i for i in range(n) if i not in gone))
        await asyncio.gather(*(clients[i].close() for i in gone))
        rest = [i for i in range(n) if i not in gone]
        rest_ids = sorted(ids[i] for i in rest)

        # the clients' close handshakes are done; the registry may trail by a moment:
        # polled up to a few seconds
        async def shrunk():
            for i in rest:
                if (await probe_ask(clients[i], "count"))["count"] != len(rest):
                    return None
                if sorted((await probe_ask(clients[i], "ids"))["ids"]) != rest_ids:
                    return None
            return True
        try:
            await await_until(shrunk, WITHIN_A_SECOND_GENEROUS, interval=0.1, what="connections shrinking")
        except AssertionError:
            report = [(i, owners[i], await probe_ask(clients[i], "count"), sorted((await probe_ask(clients[i], "ids"))["ids"]))
                      for i in rest]
            raise AssertionError(f"after closing {[ids[i] for i in gone]}, expected {len(rest)} ids {rest_ids}; "
                                 f"clients see {report}")
        await asyncio.gather(*(clients[i].close() for i in rest))
    run(main(), timeout=120)


def test_server_terminate_ends_the_server_on_every_worker(shoal):
    """wss.terminate() called on one worker closes the clients of every worker with 1001,
    and afterwards no worker takes an upgrade for that server."""
    srv = shoal("--handler", "probe", "--path", "/p", "--workers", "2")
    sup = srv.proc.pid

    async def main():
        slots = wait_workers(sup, [0, 1])
        pids = [slots[0], slots[1]]
        clients = []
        while True:
            ws, _ = await probe_join(srv.port, "/p")
            clients.append(ws)
            owners = await owners_of_clients(srv.port, clients, pids)
            if len(clients) >= 4 and all(owners.count(p) >= 2 for p in pids):
                break
            assert len(clients) < 40, f"clients not spread over the workers: {owners}"
        await clients[0].send("terminate-server")
        for i, ws in enumerate(clients):
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), T)
            except ConnectionClosed:
                pass
            assert ws.close_code == 1001, f"client {i} (pid {owners[i]}): close code {ws.close_code}"
        # Every worker refuses new upgrades on /p now (404: no such server any more).
        for _ in range(6):
            with pytest.raises(InvalidStatus) as refused:
                await probe_join(srv.port, "/p")
            assert refused.value.response.status_code == 404
    run(main(), timeout=120)


def test_server_terminate_outlives_a_worker_restart_and_a_reload(shoal):
    """After wss.terminate(), a worker restarted after kill -9, and the workers of a new
    generation after SIGHUP, start with the server terminated: /p answers 404 everywhere."""
    srv = shoal("--handler", "probe", "--path", "/p", "--workers", "2", "--drain-timeout", "1")
    sup = srv.proc.pid

    async def refused_everywhere():
        for _ in range(8):
            with pytest.raises(InvalidStatus) as refused:
                await probe_join(srv.port, "/p")
            assert refused.value.response.status_code == 404

    async def main():
        slots = wait_workers(sup, [0, 1])
        ws, _ = await probe_join(srv.port, "/p")
        await ws.send("terminate-server")
        _, _ = await expect_closed(ws)
        await refused_everywhere()

        os.kill(slots[0], signal.SIGKILL)
        wait_until(lambda: workers_by_slot(sup).get(0) not in (None, slots[0]), 10, what="slot 0 restarted")
        await refused_everywhere()

        os.kill(sup, signal.SIGHUP)
        wait_until(lambda: {2, 3} <= set(workers_by_slot(sup)) and not {0, 1} & set(workers_by_slot(sup)), 20,
                   what="generation 2 in slots 2 and 3 only")
        await refused_everywhere()
    run(main(), timeout=120)


# ---------------------------------------------------------------- 8. registry full


def test_registry_full_refuses_with_503(shoal):
    # capacity 4 over 2 slots (2 generations x 1 worker) -> 2 live connections per worker
    srv = shoal("--handler", "probe", "--workers", "1", "--registry-capacity", "4")

    async def main():
        a, ida = await probe_join(srv.port)
        b, idb = await probe_join(srv.port)
        try:
            c = await connect(srv.port, "/")
        except InvalidStatus as e:
            assert e.response.status_code == 503, e
        else:
            await c.close()
            raise AssertionError("third connection accepted with a registry of 2 per slot, expected HTTP 503")
        # the earlier ones keep working
        assert await probe_ask(a, "id") == {"id": ida}
        assert await probe_ask(b, "id") == {"id": idb}
        assert await probe_ask(a, "count") == {"count": 2}
        # after one closes, a new one is accepted (the close handshake is done; allow the
        # registry a moment, polled up to a few seconds)
        await b.close()
        deadline = time.monotonic() + WITHIN_A_SECOND_GENEROUS
        while True:
            try:
                d, idd = await probe_join(srv.port)
                break
            except InvalidStatus as e:
                assert e.response.status_code == 503, e
                assert time.monotonic() < deadline, "still 503 after a client closed"
                await asyncio.sleep(0.1)
        assert idd not in (ida, idb)
        assert await probe_ask(d, "id") == {"id": idd}
        assert await probe_ask(a, "id") == {"id": ida}
        await a.close()
        await d.close()
    run(main())
