#!/usr/bin/env python3
"""Chat join rate: N clients join `shoal serve --handler chat` at once, for each worker count, in
one run, rounds interleaved (a noisy machine hits every configuration alike). Medians per row.

Every client is a raw asyncio client of Tests/IntegrationTests/test_storm.py (its exact frame
counting), on 200 loopback source addresses. A fresh server per measurement, warmed up with a few
clients first (code pages are not the storm's). Per measurement:

  open    seconds until every client has its 101 and its welcome;
  joins   seconds until the "New client connected" frames delivered stop growing and reach the
          N(N-1)/2 pairs (or the time limit), and how many arrived;
  cpu     the workers' CPU seconds (user + system, /proc) until the joins are in: what they cost the
          server, whether or not the one-process Python client is what bounds the wall time;
  drops   shoal_bus_drops_total (bus messages lost: must be 0);
  holds   shoal_bus_holds_total (times a worker held its clients for a backed-up bus channel);
  bus     shoal_bus_messages_sent_total.

usage: chat_storm.py [--clients 4000 8000] [--workers 2 12] [--rounds 3] [--bin PATH]
                     [--label NAME=PATH ...]   (compare builds: one row per build and worker count)
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "Tests", "IntegrationTests"))

import conftest  # noqa: E402
from cluster_helpers import metrics, wait_workers  # noqa: E402
from test_storm import Client, chat_client, warm_up  # noqa: E402


async def storm(port: int, n: int, limit: float, at_peak=dict) -> dict:
    """N clients join at once; `at_peak()` is read once the joins are in, before they all leave."""
    clients = [Client(i) for i in range(n)]
    leave = asyncio.Event()
    tasks = [asyncio.create_task(chat_client(c, port, leave)) for c in clients]
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit and not all(c.welcome_at or c.error for c in clients):
        await asyncio.sleep(0.05)
    t_open = time.monotonic() - t0
    pairs = n * (n - 1) // 2
    last, t_joins = -1, None
    while time.monotonic() - t0 < limit:
        total = sum(c.joins for c in clients)
        if total >= pairs and total == last:
            break
        if total != last:
            t_joins = time.monotonic() - t0
        last = total
        await asyncio.sleep(0.1)
    # before the clients leave: a leave storm keeps the workers busy for a while
    peak = {"metrics": metrics(port), **at_peak()}
    leave.set()
    await asyncio.gather(*tasks)
    return {"open": t_open, "joins_s": t_joins or 0.0, "joins": sum(c.joins for c in clients), "pairs": pairs,
            "opened": sum(bool(c.welcome_at) for c in clients), **peak,
            "errors": sorted({c.error or c.status for c in clients if not c.welcome_at})[:3]}


def cpu_seconds(pids) -> float:
    ticks = 0
    for p in pids:
        with open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def measure(binary: str, workers: int, n: int, limit: float) -> dict:
    os.environ["SHOAL_BIN"] = binary
    with tempfile.TemporaryDirectory() as tmp:
        # --request-timeout 60: one Python process writes every upgrade request, and on a busy machine the
        # last ones can come more than the default 10 s after their connection was accepted.
        srv = conftest.Server(["--handler", "chat", "--path", "/chat", "--workers", str(workers),
                               "--request-timeout", "60", "--log-level", "notice"], os.path.join(tmp, "log"))
        srv.start()
        try:
            pids = list(wait_workers(srv.proc.pid, range(workers)).values())
            asyncio.run(warm_up(srv.port, 4 * workers))
            time.sleep(0.5)
            cpu_before = cpu_seconds(pids)
            result = asyncio.run(storm(srv.port, n, limit, lambda: {"cpu": cpu_seconds(pids) - cpu_before}))
            m = result.pop("metrics")
            result["drops"] = sum(m.get("shoal_bus_drops_total", {}).values())
            result["holds"] = sum(m.get("shoal_bus_holds_total", {}).values())
            result["bus"] = sum(m.get("shoal_bus_messages_sent_total", {}).values())
            # what else happened (restarts, watchdog kills, slow consumers, refused upgrades)
            result["events"] = {k: sum(v.values()) for k, v in m.items() if k.endswith("_total") and sum(v.values())
                                and not k.startswith(("shoal_bus_", "shoal_messages_", "shoal_sent_", "shoal_received_"))}
            if result["errors"] or result["events"]:
                result["log"] = srv.log(8)
        finally:
            srv.stop()
    return result


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, nargs="+", default=[4000, 8000])
    p.add_argument("--workers", type=int, nargs="+", default=[2, 12])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--limit", type=float, default=90.0, help="seconds one storm may take")
    p.add_argument("--bin", default=os.path.join(REPO, ".build", "release", "shoal"))
    p.add_argument("--label", action="append", default=[], help="NAME=PATH of a build to compare")
    a = p.parse_args()
    builds = [tuple(x.split("=", 1)) for x in a.label] or [("shoal", a.bin)]
    for n in a.clients:
        rows: dict[tuple, list[dict]] = {}
        for r in range(a.rounds):
            for name, binary in builds:
                for w in a.workers:
                    res = measure(binary, w, n, a.limit)
                    rows.setdefault((name, w), []).append(res)
                    print(f"# N={n} {name} workers={w} round {r + 1}: {res}", flush=True)
        print(f"\n| N | build | workers | all open (s) | joins done (s) | workers' CPU (s) | joins delivered | "
              f"bus drops | bus holds | bus messages |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for (name, w), rs in rows.items():
            med = lambda k: statistics.median(x[k] for x in rs)  # noqa: E731
            each = lambda k: ", ".join(f"{x[k]:.2f}" for x in rs)  # noqa: E731
            print(f"| {n:,} | {name} | {w} | {med('open'):.2f} ({each('open')}) | "
                  f"{med('joins_s'):.2f} ({each('joins_s')}) | {med('cpu'):.2f} ({each('cpu')}) | "
                  f"{min(x['joins'] for x in rs):,} of {rs[0]['pairs']:,} (min) | "
                  f"{max(x['drops'] for x in rs):.0f} (max) | {med('holds'):.0f} | {med('bus'):,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
