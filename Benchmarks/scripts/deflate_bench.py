#!/usr/bin/env python3
"""permessage-deflate in Shoal, with shoal-bench --deflate, in one run.

Two measurements, each configuration on a fresh `shoal serve --workers 1` pinned to CPU 0 (the
bench on CPU 1), configurations interleaved run by run (run 1 of each, then run 2 of each, ...),
medians of --runs (default 3):

  idle      : server RSS per idle connection at --idle-connections (VmRSS summed over the server's
              process tree, read by shoal-bench --server-pid; 127.0.0.1-4 sources), `--handler echo`,
              the bench offering permessage-deflate, with the server's compression
                off | shared | dedicated (window/memLevel, default 15/8)
              each also after every connection has exchanged one compressed message
              (`--warmup-message SIZE`: the bench sends SIZE bytes of JSON-like text, compressed,
              and waits for the echo, compressed above the server's 256-byte threshold), because
              zlib streams are created on first use and an idle-only figure would hide them.
  broadcast : `--handler broadcast` (every message to every client), --subscribers compressing
              clients, one publisher sending --rate messages/s of --size bytes of JSON-like text
              (different in every message); deliveries/s, deliveries per server CPU-second (user+sys
              of the server's tree), latency and fan-out, for shared (compressed once per worker),
              dedicated (compressed per recipient, context takeover) and off (reference), at the
              server's default zlib level (1) unless --compression-level says otherwise. The default
              rate is one a per-recipient compressor keeps up with on a shared 2-core machine.
              shoal-bench inflates every delivery; it refuses the per-CPU figure of a run in which
              it used >= 90 % of its core (reported as client-bound here).

Prints markdown tables, then one JSON line (the last line of stdout) with every run's figures.

usage: deflate_bench.py [--shoal .build/release/shoal] [--bench .build/release/shoal-bench]
                        [--runs 3] [--only idle|broadcast] [--compression-level N]
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pinned_server import pinned_server  # noqa: E402


def run_bench(args, server_args, bench_args, attempts=3):
    """A fresh server with `server_args`, shoal-bench once with --json against it; the report.
    A server that does not come up (a free port taken again in between on a shared machine) is
    started again on another port, up to `attempts` times."""
    cmd = (f"{args.shoal} serve --host 127.0.0.1 --port {{port}} --workers 1 --log-level error "
           + " ".join(server_args))
    for attempt in range(attempts):
        try:
            with pinned_server(cmd, args.server_cpus) as (server, port):
                time.sleep(0.3)
                out = subprocess.run(["taskset", "-c", args.bench_cpus, args.bench] + bench_args
                                     + ["--deflate", "--url", f"ws://127.0.0.1:{port}/", "--server-pid", str(server.pid),
                                        "--runs", "1", "--json"],
                                     capture_output=True, text=True, timeout=900)
            break
        except RuntimeError as error:  # wait_port: the server did not come up
            print(f"  {error} (attempt {attempt + 1} of {attempts})", file=sys.stderr)
            if attempt + 1 == attempts:
                raise
    if out.returncode != 0 and not out.stdout.strip():
        raise RuntimeError(f"shoal-bench failed ({out.returncode}): {out.stderr[-2000:]}")
    report = json.loads(out.stdout)
    if report.get("errors"):
        print(f"  errors: {report['errors']} e.g. {report.get('error_samples')}", file=sys.stderr)
    return report


def compression_args(mode, args):
    level = [] if args.compression_level is None or mode == "off" else ["--compression-level", str(args.compression_level)]
    if mode == "dedicated":
        return ["--compression", "dedicated", "--compression-window-bits", str(args.window_bits),
                "--compression-memory-level", str(args.memory_level)] + level
    return ["--compression", mode] + level


def spread(values, fmt="{:,.0f}"):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    m = statistics.median(values)
    if len(values) == 1:
        return fmt.format(m)
    return f"{fmt.format(m)} ({fmt.format(min(values))}..{fmt.format(max(values))})"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def idle(args, results):
    dedicated = f"dedicated {args.window_bits}/{args.memory_level}"
    configs = [  # (name, server compression mode, warm-up message)
        ("off", "off", None), ("shared", "shared", None), (dedicated, "dedicated", None),
        ("off, after 1 message", "off", args.warmup_message),
        ("shared, after 1 message", "shared", args.warmup_message),
        (f"{dedicated}, after 1 message", "dedicated", args.warmup_message),
    ]
    rows = {name: [] for name, _, _ in configs}
    for run in range(args.runs):
        for name, mode, warmup in configs:
            bench_args = ["idle", "--connections", str(args.idle_connections), "--duration", str(args.idle_duration)]
            if warmup is not None:
                bench_args += ["--warmup-message", str(warmup)]
            report = run_bench(args, compression_args(mode, args) + ["--handler", "echo"], bench_args)
            r = report["runs"][0]
            d = report.get("deflate", {})
            row = {
                "run": run + 1,
                "connections": r["count"],
                "server_rss_per_connection": r["extra"].get("server_rss_per_connection"),
                "server_rss_before": r["extra"].get("server_rss_before"),
                "server_rss_after": r["extra"].get("server_rss_after"),
                "bench_rss_per_connection": r["extra"].get("client_rss_per_connection"),
                "bench_zlib_bytes": r["extra"].get("bench_zlib_bytes"),
                "warmup_replies": r["extra"].get("warmup_replies"),
                "negotiated": d.get("negotiated_connections"),
                "answers": d.get("answers"),
                "errors": report.get("errors"),
                "warnings": report.get("warnings"),
            }
            rows[name].append(row)
            print(f"idle run {run + 1} {name}: {row['server_rss_per_connection']:,.0f} B/conn, "
                  f"{row['connections']:,.0f} open, negotiated {row['negotiated']}, "
                  f"replies {row['warmup_replies']}", file=sys.stderr)
    results["idle"] = rows

    def rss(name):
        return median(x["server_rss_per_connection"] for x in rows[name])
    print(f"\n**Idle memory per connection**, {args.idle_connections:,} connections, `--handler echo --workers 1`, "
          f"bench offering `permessage-deflate; client_max_window_bits`; \"after 1 message\": each connection "
          f"sent {args.warmup_message} B of JSON-like text (compressed where negotiated) and got the echo back "
          f"before the connections were held. Server VmRSS (process tree) after − before, per connection; "
          f"median (min..max) of {args.runs}, fresh server each:\n")
    print("| server compression | negotiated | server RSS per connection | − off, same traffic | "
          "− shared, same traffic | bench zlib allocated per connection |")
    print("|---|---|---|---|---|---|")
    for name, mode, warmup in configs:
        values = [x["server_rss_per_connection"] for x in rows[name]]
        suffix = ", after 1 message" if warmup is not None else ""
        m = median(values)

        def delta(base_mode):
            base = rss(base_mode + suffix)
            return f"{m - base:+,.0f} B" if m is not None and base is not None else "—"
        negotiated = median(x["negotiated"] for x in rows[name])
        conns = median(x["connections"] for x in rows[name])
        zlib = median(x["bench_zlib_bytes"] for x in rows[name])
        zlib_text = f"{zlib / conns:,.0f} B" if zlib is not None and conns else "—"
        print(f"| {name} | {negotiated:,.0f} of {conns:,.0f} | {spread(values)} B "
              f"| {delta('off') if mode != 'off' else '—'} | {delta('shared') if mode == 'dedicated' else '—'} "
              f"| {zlib_text} |")


def broadcast(args, results):
    dedicated = f"dedicated {args.window_bits}/{args.memory_level}"
    configs = [("shared", "shared"), (dedicated, "dedicated"), ("off", "off")]
    rows = {name: [] for name, _ in configs}
    for run in range(args.runs):
        for name, mode in configs:
            report = run_bench(args, compression_args(mode, args) + ["--handler", "broadcast"], [
                "broadcast", "--subscribers", str(args.subscribers), "--publishers", "1",
                "--rate", str(args.rate), "--size", str(args.size), "--payload", "json",
                "--duration", str(args.broadcast_duration), "--warmup", str(args.broadcast_warmup)])
            r = report["runs"][0]
            d = report.get("deflate", {})
            latency = r.get("latency") or {}
            row = {
                "run": run + 1,
                "deliveries": r["count"],
                "deliveries_per_second": r.get("per_second"),
                "deliveries_per_server_cpu_second": r.get("per_server_cpu_second"),
                "client_bound": r.get("client_bound"),
                "server_cpu_share": r.get("server_cpu_share"),
                "bench_cpu_share": r.get("client_cpu_share"),
                "sent_per_second": r["extra"].get("sent_per_second"),
                "fanout": r["extra"].get("fanout"),
                "p50_ms": latency.get("p50", 0) / 1000 if latency else None,
                "p99_ms": latency.get("p99", 0) / 1000 if latency else None,
                "negotiated": d.get("negotiated_connections"),
                "connections": d.get("negotiated_connections", 0) + d.get("declined_connections", 0),
                "wire_per_payload": (d["wire_bytes_received"] / d["message_bytes_received"]
                                     if d.get("message_bytes_received") else None),
                "bench_zlib_bytes": r["extra"].get("bench_zlib_bytes"),
                "errors": report.get("errors"),
                "warnings": report.get("warnings"),
            }
            rows[name].append(row)
            per_cpu = row["deliveries_per_server_cpu_second"]
            why = "client-bound" if row["client_bound"] else "no server CPU measured"
            print(f"broadcast run {run + 1} {name}: {row['deliveries_per_second']:,.0f} deliveries/s, "
                  f"{why if per_cpu is None else f'{per_cpu:,.0f}'} per server CPU-s, "
                  f"server {row['server_cpu_share']:.0%}, bench {row['bench_cpu_share']:.0%}, "
                  f"fan-out {row['fanout']:.1f}, p50 {row['p50_ms']:.1f} ms", file=sys.stderr)
    results["broadcast"] = rows

    level = args.compression_level if args.compression_level is not None else "1 (default)"
    print(f"\n**Broadcast to {args.subscribers:,} compressing clients**, `--handler broadcast --workers 1`, zlib level {level}, one "
          f"publisher, {args.rate:g} messages/s of {args.size} B JSON-like text (each message different), every "
          f"message to all {args.subscribers + 1:,} connections; {args.broadcast_duration:g} s windows after "
          f"{args.broadcast_warmup:g} s of warm-up; median (min..max) of {args.runs}, fresh server each:\n")
    print("| server compression | negotiated | deliveries/s | deliveries per server CPU-s | server CPU | bench CPU "
          "| p50 ms | p99 ms | fan-out | wire/payload | client-bound runs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    medians = {}
    for name, _ in configs:
        xs = rows[name]
        medians[name] = median(x["deliveries_per_server_cpu_second"] for x in xs)
        print(f"| {name} | {median(x['negotiated'] for x in xs):,.0f} of {median(x['connections'] for x in xs):,.0f} "
              f"| {spread([x['deliveries_per_second'] for x in xs])} "
              f"| {spread([x['deliveries_per_server_cpu_second'] for x in xs])} "
              f"| {spread([x['server_cpu_share'] * 100 for x in xs], '{:.0f}')} % "
              f"| {spread([x['bench_cpu_share'] * 100 for x in xs], '{:.0f}')} % "
              f"| {spread([x['p50_ms'] for x in xs], '{:,.1f}')} | {spread([x['p99_ms'] for x in xs], '{:,.1f}')} "
              f"| {spread([x['fanout'] for x in xs], '{:.1f}')} | {spread([x['wire_per_payload'] for x in xs], '{:.3f}')} "
              f"| {sum(1 for x in xs if x['client_bound'])} |")
    ratios = {}
    if medians.get("shared") and medians.get(dedicated):
        ratios["shared_over_dedicated"] = medians["shared"] / medians[dedicated]
        print(f"\nshared / {dedicated}: **{ratios['shared_over_dedicated']:.1f}×** deliveries per server CPU-second")
    if medians.get("off"):
        for name in ("shared", dedicated):
            if medians.get(name):
                ratios[f"{name.split()[0]}_over_off"] = medians[name] / medians["off"]
                print(f"{name} / off: {medians[name] / medians['off']:.2f}×")
    results["broadcast_ratios"] = ratios


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shoal", default=".build/release/shoal")
    p.add_argument("--bench", default=".build/release/shoal-bench")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--only", choices=["idle", "broadcast"])
    p.add_argument("--server-cpus", default="0")
    p.add_argument("--bench-cpus", default="1")
    p.add_argument("--window-bits", type=int, default=15, help="dedicated compressor's window bits")
    p.add_argument("--memory-level", type=int, default=8, help="dedicated compressor's zlib memLevel")
    p.add_argument("--compression-level", type=int, help="zlib level for shared and dedicated (default: the server's, 1)")
    p.add_argument("--idle-connections", type=int, default=10000)
    p.add_argument("--idle-duration", type=float, default=2)
    p.add_argument("--warmup-message", type=int, default=1024, help="bytes of the one message per connection")
    p.add_argument("--subscribers", type=int, default=1000)
    p.add_argument("--rate", type=float, default=4, help="broadcast messages per second")
    p.add_argument("--size", type=int, default=1024, help="broadcast message bytes")
    p.add_argument("--broadcast-duration", type=float, default=8)
    p.add_argument("--broadcast-warmup", type=float, default=3)
    args = p.parse_args()
    for path in (args.shoal, args.bench):
        if not os.access(path, os.X_OK):
            sys.exit(f"{path} not found: swift build -c release")

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    results = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "commit": commit,
               "parameters": {k: v for k, v in vars(args).items()}, "nproc": os.cpu_count()}
    started = time.time()
    if args.only in (None, "idle"):
        idle(args, results)
    if args.only in (None, "broadcast"):
        broadcast(args, results)
    results["seconds"] = round(time.time() - started, 1)
    print()
    print(json.dumps(results, separators=(",", ":")))


if __name__ == "__main__":
    main()
