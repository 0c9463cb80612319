#!/usr/bin/env python3
"""shoal-bench against other WebSocket load generators, side by side in one run.

One `shoal serve --handler echo --workers 1` (pinned to --server-cpu, default 1) serves every
generator; each generator runs pinned to --generator-cpu (default 0), alone, one after another:

  shoal-bench  this repository's generator (one thread)
  uws          uWebSockets' benchmarks/load_test (C, uSockets): pass --uws-load-test PATH; skipped
               with a message when absent (build it from the public uWebSockets + uSockets sources
               in a scratch folder; it is not part of this repository)
  tsung        Debian's tsung (Erlang), ts_websocket sessions
  locust       Locust with websocket-client users (locust_ws_echo.py), from --locust (a venv's
               `locust`, default ~/.cache/locust-venv/bin/locust)

Two phases, every generator with 100 connections (--connections) and 16-byte text messages:

  saturation  one message in flight per connection, the next sent when the echo is back. Once
              all connections are open and --warmup seconds passed, the script reads the server's
              message counter (shoal_messages_received_total from /metrics) and the generator's
              CPU time (user+sys of every process in its session, from /proc), waits --duration
              seconds and reads both again: messages per second the generator drove, counted at
              the same server for every tool, and generator CPU per message.
  rate        --rate messages per second in total (default 5,000), spread over the connections,
              as each tool paces (shoal-bench: open model; tsung: a think time after each echo;
              locust: constant_throughput per user; uws' load_test has no pacing and is left out).
              The same window gives the rate the server saw and the generator's CPU share; the
              latency percentiles are each tool's own report of its run.

Every generator runs once per phase in each of --rounds rounds (default 3), the order rotated
between rounds; the tables give medians with (min..max) and ratios against shoal-bench in the
same round. Each run is bounded: the tools get a fixed duration, and the script kills a
generator's session when it outlives it by 30 s.

usage: generators.py [--uws-load-test PATH] [--rounds 3] [--duration 5] [--warmup 2] [--rate 5000]
                     [--connections 100] [--only NAME,...] [--json FILE]
"""
import argparse
import http.client
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from pinned_server import pinned_server

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TICK = os.sysconf("SC_CLK_TCK")
MESSAGE = "abcdefghijklmnop"  # 16 bytes of text; shoal-bench sends 16 letters of its own
GENERATORS = ["shoal-bench", "uws", "tsung", "locust"]


# ---------------------------------------------------------------- what the server and /proc say

def server_metrics(port):
    """(messages received, open connections) summed over the server's workers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    def total(name):
        return sum(float(m.group(1)) for m in re.finditer(rf"^{name}{{[^}}]*}} (\S+)$", text, re.M))
    return total("shoal_messages_received_total"), total("shoal_connections")


def session_cpu_seconds(sid):
    """user+sys CPU seconds of every live process in session `sid` (the generator started its own
    session, so this covers a tool's helper processes: Erlang's port programs, taskset's exec)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def sample(port, sid):
    messages, connections = server_metrics(port)
    return {"t": time.monotonic(), "messages": messages, "connections": connections,
            "cpu": session_cpu_seconds(sid)}


# ---------------------------------------------------------------- the generators' command lines

def shoal_bench_command(args, port, phase, work):
    command = [args.bench, "echo", "--url", f"ws://127.0.0.1:{port}/", "--connections", str(args.connections),
               "--size", "16", "--threads", "1", "--warmup", str(args.warmup),
               "--duration", str(args.duration + 2), "--runs", "1", "--json"]
    if phase == "rate":
        command += ["--rate", str(args.rate)]
    return command


def uws_command(args, port, phase, work):
    # load_test CONNECTIONS HOST PORT SSL DEFLATE SIZE: runs until stopped
    # line-buffered: its report is printf to a file, and it ends by SIGTERM
    return ["stdbuf", "-oL", args.uws_load_test, str(args.connections), "127.0.0.1", str(port), "0", "0", "16"]


TSUNG_CONFIG = """<?xml version="1.0"?>
<!DOCTYPE tsung SYSTEM "/usr/share/tsung/tsung-1.0.dtd" []>
<tsung loglevel="warning" version="1.0" backend="{backend}">
  <clients><client host="localhost" use_controller_vm="true" maxusers="{connections}"/></clients>
  <servers><server host="127.0.0.1" port="{port}" type="tcp"/></servers>
  <load duration="{seconds}" unit="second">
    <arrivalphase phase="1" duration="5" unit="second">
      <users maxnumber="{connections}" arrivalrate="{connections}" unit="second"/>
    </arrivalphase>
  </load>
  <sessions>
    <session name="echo" probability="100" type="ts_websocket">
      <request><websocket type="connect" path="/"></websocket></request>
      <for from="1" to="1000000000" incr="1" var="i">
        <request><websocket type="message" frame="text">{message}</websocket></request>{think}
      </for>
    </session>
  </sessions>
</tsung>
"""


def tsung_command(args, port, phase, work):
    # rate: a think time of connections/rate seconds after each echo (tsung paces no other way);
    # the fullstats backend writes every sample, which is how tsung's FAQ says to get percentiles
    think = f'\n        <thinktime value="{args.connections / args.rate:.6f}" random="false"/>' if phase == "rate" else ""
    config = os.path.join(work, "tsung.xml")
    with open(config, "w") as f:
        f.write(TSUNG_CONFIG.format(backend="fullstats" if phase == "rate" else "text", connections=args.connections,
                                    port=port, seconds=int(args.warmup + args.duration + 6), message=MESSAGE,
                                    think=think))
    return [args.tsung, "-n", "-f", config, "-l", os.path.join(work, "log"), "start"]


def locust_command(args, port, phase, work):
    return [args.locust, "-f", os.path.join(HERE, "locust_ws_echo.py"), "--headless",
            "-u", str(args.connections), "-r", str(args.connections),
            "-t", f"{int(args.warmup + args.duration + 4)}s", "--host", f"ws://127.0.0.1:{port}",
            "--reset-stats", "--json", "--loglevel", "WARNING",
            "--per-user-rate", str(args.rate / args.connections if phase == "rate" else 0)]


# ---------------------------------------------------------------- what the generators say

def parse_shoal_bench(stdout, work):
    report = json.loads(stdout)
    run = report["runs"][0]
    result = {"tool_rate": run["per_second"], "tool_count": run["count"],
              "p50_us": report["latency"]["p50"], "p99_us": report["latency"]["p99"],
              "mean_us": report["latency"]["mean"],
              "latency": "round trip; open model: from each message's intended send time"}
    if "latency_uncorrected" in report:
        result["uncorrected_p50_us"] = report["latency_uncorrected"]["p50"]
        result["uncorrected_p99_us"] = report["latency_uncorrected"]["p99"]
    if report.get("errors"):
        result["errors"] = report["errors"]
    return result


def parse_uws(stdout, work):
    # "Msg/sec: N" every LIBUS_TIMEOUT_GRANULARITY (4) seconds; the first window includes the start
    rates = [float(line.split()[-1]) for line in stdout.splitlines() if line.startswith("Msg/sec:")]
    if "Running benchmark now..." not in stdout:
        raise ValueError("load_test did not start its benchmark")
    result = {"latency": "none reported"}
    if rates:  # none when the run was shorter than its first window
        result["tool_rate"] = statistics.median(rates[1:] or rates)
    return result


def parse_tsung(stdout, work):
    """tsung.log: a `stats: request COUNT MEAN STDDEV MAX MIN ...` line per 10 s interval (ms);
    tsung-fullstats.log (rate phase): every request's time as {sample,request,[ms, ...]}."""
    logs = [os.path.join(root, "tsung.log") for root, _, files in os.walk(os.path.join(work, "log"))
            if "tsung.log" in files]
    if not logs:
        raise ValueError("tsung wrote no tsung.log")
    with open(logs[0]) as f:
        intervals = [line.split()[2:7] for line in f if line.startswith("stats: request ")]
    count = sum(int(i[0]) for i in intervals)
    if count == 0:
        raise ValueError("tsung.log counts no request")
    mean = sum(int(i[0]) * float(i[1]) for i in intervals) / count
    result = {"tool_count": count, "mean_us": mean * 1000, "latency": "request: send to echo parsed (ms samples)"}
    full = os.path.join(os.path.dirname(logs[0]), "tsung-fullstats.log")
    if os.path.exists(full):
        with open(full) as f:
            text = f.read()
        samples = sorted(float(v) for block in re.findall(r"\{sample,request,\s*\[([^\]]*)\]\}", text)
                         for v in block.split(","))
        if samples:
            result.update(p50_us=nearest_rank(samples, 0.50) * 1000, p99_us=nearest_rank(samples, 0.99) * 1000,
                          samples=len(samples))
    return result


def nearest_rank(ordered, fraction):
    return ordered[max(0, min(len(ordered) - 1, int(round(fraction * len(ordered) + 0.5)) - 1))]


def locust_percentile(response_times, count, fraction):
    """Locust's own rule (stats.calculate_response_time_percentile) over its response-time buckets."""
    wanted = int(count * fraction)
    processed = 0
    for bucket in sorted(response_times, reverse=True):
        processed += response_times[bucket]
        if count - processed <= wanted:
            return bucket
    return 0


def parse_locust(stdout, work):
    entries = json.loads(stdout)
    echo = next(e for e in entries if e["name"] == "echo")
    times = {float(k): v for k, v in echo["response_times"].items()}
    count = echo["num_requests"] - echo["num_none_requests"]
    seconds = echo["last_request_timestamp"] - echo["start_time"]
    result = {"tool_count": echo["num_requests"], "tool_rate": echo["num_requests"] / seconds if seconds > 0 else 0,
              "p50_us": locust_percentile(times, count, 0.50) * 1000,
              "p99_us": locust_percentile(times, count, 0.99) * 1000,
              "mean_us": echo["total_response_time"] / max(1, count) * 1000,
              "latency": "send() to recv() in the user's greenlet, 2-digit buckets (ms)"}
    if echo["num_failures"]:
        result["errors"] = {"failures": echo["num_failures"]}
    return result


TOOLS = {
    "shoal-bench": (shoal_bench_command, parse_shoal_bench),
    "uws": (uws_command, parse_uws),
    "tsung": (tsung_command, parse_tsung),
    "locust": (locust_command, parse_locust),
}


# ---------------------------------------------------------------- one measured run

def run_generator(name, phase, args, port):
    command_for, parse = TOOLS[name]
    wait_for_no_connections(port)  # the previous generator's, still closing, would count as ours
    with tempfile.TemporaryDirectory(prefix=f"generators-{name}-") as work:
        command = command_for(args, port, phase, work)
        out_path, err_path = os.path.join(work, "stdout"), os.path.join(work, "stderr")
        with open(out_path, "w") as out, open(err_path, "w") as err:
            process = subprocess.Popen(["taskset", "-c", args.generator_cpu] + command, stdout=out, stderr=err,
                                       cwd=work, start_new_session=True,
                                       env=dict(os.environ, PYTHONUNBUFFERED="1"))
        try:
            start = time.monotonic()
            while sample(port, process.pid)["connections"] < args.connections:
                if process.poll() is not None or time.monotonic() - start > 60:
                    raise RuntimeError(f"{name}: {args.connections} connections not open "
                                       f"(exit {process.poll()}): {tail(err_path)}")
                time.sleep(0.1)
            time.sleep(args.warmup)
            before = sample(port, process.pid)
            time.sleep(args.duration)
            after = sample(port, process.pid)
            if name == "uws":  # runs until stopped; it has printed its windows by now
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=args.warmup + args.duration + 30)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{name}: did not finish in time: {tail(err_path)}")
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        with open(out_path) as f:
            stdout = f.read()
        try:
            result = parse(stdout, work)
        except (ValueError, KeyError, StopIteration, json.JSONDecodeError) as error:
            raise RuntimeError(f"{name}: could not read its report ({error}): {stdout[-400:]} {tail(err_path)}")
    seconds = after["t"] - before["t"]
    messages = after["messages"] - before["messages"]
    cpu = after["cpu"] - before["cpu"]
    result.update(phase=phase, generator=name, seconds=seconds, messages=messages,
                  server_rate=messages / seconds, cpu_share=cpu / seconds,
                  cpu_us_per_message=cpu / messages * 1e6 if messages else float("inf"))
    return result


def wait_for_no_connections(port, timeout=15):
    deadline = time.monotonic() + timeout
    while server_metrics(port)[1] > 0:
        if time.monotonic() > deadline:
            raise RuntimeError("the server still holds connections of the previous generator")
        time.sleep(0.1)


def tail(path, size=400):
    with open(path, errors="replace") as f:
        return f.read()[-size:].strip()


# ---------------------------------------------------------------- tables

def spread(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}..{fmt(max(values))})"


def ratios(results, name, key):
    """key's value of `name` over shoal-bench's in the same round, one per round."""
    out = []
    for mine, base in zip(results[name], results["shoal-bench"]):
        if mine and base and mine.get(key) and base.get(key):
            out.append(mine[key] / base[key])
    return out


def thousands(v):
    return f"{v:,.0f}"


def micro(v):
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def two(v):
    return f"{v:.2f}"


def percent(v):
    return f"{v:.0%}"


def print_table(header, rows):
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def print_tables(results, names, args):
    sat = results["saturation"]
    print(f"\n### Saturation: {args.connections} connections, 16-byte text echo, one in flight, "
          f"generator pinned to CPU {args.generator_cpu}, server to CPU {args.server_cpu}\n")
    print_table(["generator", "msgs/s driven (at the server)", "generator CPU", "generator CPU µs per message",
                 "msgs per generator CPU-second", "CPU per message / shoal-bench's", "msgs/s / shoal-bench's",
                 "the tool's own msgs/s"],
                [[n, spread([r["server_rate"] for r in rs], thousands), spread([r["cpu_share"] for r in rs], percent),
                  spread([r["cpu_us_per_message"] for r in rs], two),
                  spread([1e6 / r["cpu_us_per_message"] for r in rs], thousands),
                  spread(ratios(sat, n, "cpu_us_per_message"), two), spread(ratios(sat, n, "server_rate"), two),
                  spread([r.get("tool_rate") for r in rs], thousands)]
                 for n, rs in measured(sat, names)])
    fix = results["rate"]
    print(f"\n### Fixed rate: {args.rate:,} messages/s in total over {args.connections} connections\n")
    print_table(["generator", "msgs/s at the server", "generator CPU", "p50 µs (tool)", "p99 µs (tool)",
                 "p50 / shoal-bench's", "p99 / shoal-bench's", "mean µs (tool)"],
                [[n, spread([r["server_rate"] for r in rs], thousands), spread([r["cpu_share"] for r in rs], percent),
                  spread([r.get("p50_us") for r in rs], micro), spread([r.get("p99_us") for r in rs], micro),
                  spread(ratios(fix, n, "p50_us"), two), spread(ratios(fix, n, "p99_us"), two),
                  spread([r.get("mean_us") for r in rs], micro)]
                 for n, rs in measured(fix, names)])
    bench = [r for r in fix.get("shoal-bench", []) if r and "uncorrected_p50_us" in r]
    if bench:
        print(f"\nshoal-bench from the actual send (uncorrected): p50 "
              f"{spread([r['uncorrected_p50_us'] for r in bench], micro)} µs, p99 "
              f"{spread([r['uncorrected_p99_us'] for r in bench], micro)} µs")


def measured(phase_results, names):
    """(name, the runs that produced figures) for each generator with at least one."""
    for n in names:
        rs = [r for r in phase_results.get(n, []) if r]
        if rs:
            yield n, rs


def machine():
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return {"cpu": model, "cpus": os.cpu_count(), "kernel": platform.release(),
            "load_average": os.getloadavg()}


def arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uws-load-test", help="path of uWebSockets' benchmarks/load_test (skipped when absent)")
    parser.add_argument("--shoal", default=os.path.join(ROOT, ".build/release/shoal"))
    parser.add_argument("--bench", default=os.path.join(ROOT, ".build/release/shoal-bench"))
    parser.add_argument("--tsung", default=shutil.which("tsung") or "tsung")
    parser.add_argument("--locust", default=os.path.expanduser("~/.cache/locust-venv/bin/locust"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds after the connections opened")
    parser.add_argument("--rate", type=int, default=5000, help="messages per second in total, rate phase")
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--server-cpu", default="1")
    parser.add_argument("--generator-cpu", default="0")
    parser.add_argument("--only", help="comma-separated generators (default: all available)")
    parser.add_argument("--json", help="write every run's figures to this file")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.rounds > 10 or not 0 < args.duration <= 60 or not 0 <= args.warmup <= 30:
        parser.error("--rounds 1..10, --duration up to 60 s and --warmup up to 30 s keep the run bounded")
    return parser, args


def available(name, args):
    """None when the generator can run, else why not."""
    path = {"shoal-bench": args.bench, "uws": args.uws_load_test, "tsung": args.tsung, "locust": args.locust}[name]
    if not path or not (os.access(path, os.X_OK) or shutil.which(path)):
        return f"{path or 'no --uws-load-test PATH given'} is not an executable"
    return None


def main():
    parser, args = arguments()

    names = args.only.split(",") if args.only else list(GENERATORS)
    for name in names:
        if name not in TOOLS:
            parser.error(f"unknown generator {name!r} (one of {', '.join(GENERATORS)})")
    for name in list(names):
        why = available(name, args)
        if why:
            print(f"skipping {name}: {why}", file=sys.stderr)
            names.remove(name)
    if "shoal-bench" not in names:
        parser.error("shoal-bench is the baseline of every ratio: build it (swift build -c release --product shoal-bench)")

    info = {"machine": machine(), "parameters": vars(args), "runs": []}
    results = {phase: {n: [] for n in names} for phase in ("saturation", "rate")}
    server_command = f"{args.shoal} serve --host 127.0.0.1 --port {{port}} --handler echo --workers 1 --log-level error"
    with pinned_server(server_command, args.server_cpu) as (_, port):
        for round_number in range(args.rounds):
            order = names[round_number % len(names):] + names[:round_number % len(names)]
            for phase in ("saturation", "rate"):
                for name in order:
                    if phase == "rate" and name == "uws":
                        continue
                    try:
                        r = run_generator(name, phase, args, port)
                    except RuntimeError as error:
                        print(f"round {round_number + 1} {phase} {name}: FAILED: {error}", file=sys.stderr)
                        r = None
                    results[phase][name].append(r)
                    if r:
                        r["round"] = round_number + 1
                        info["runs"].append(r)
                        latency = (f", p50 {r['p50_us']:.0f} µs p99 {r['p99_us']:.0f} µs" if "p50_us" in r else "")
                        print(f"round {round_number + 1} {phase} {name}: {r['server_rate']:,.0f} msgs/s at the server, "
                              f"generator CPU {r['cpu_share']:.0%}, {r['cpu_us_per_message']:.2f} µs/msg{latency}",
                              file=sys.stderr)
    info["machine"]["load_average_at_end"] = os.getloadavg()
    print(f"\n{info['machine']['cpus']} × {info['machine']['cpu']}, Linux {info['machine']['kernel']}; load average "
          f"{info['machine']['load_average'][0]:.1f} at the start, {info['machine']['load_average_at_end'][0]:.1f} at the end; "
          f"{args.rounds} round(s), median (min..max)")
    # a generator that failed in a round gets None there; ratios pair rounds, so keep the lists aligned
    print_tables(results, names, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(info, f, indent=1, default=str)


if __name__ == "__main__":
    main()
