"""generators.py reads each load generator's real output correctly: every available tool runs
briefly against a real `shoal serve`, and what the script parsed from the tool's report is checked
against what the server counted and against the tool's other figures (a unit slip, a wrong column
or a missed line shows as a mismatch). Slow (about a minute) and needs the tools, so it is not in
scripts/test.sh:

  ~/.cache/shoal-venv/bin/python -m pytest Benchmarks/scripts/test_generators.py \\
      [--uws-load-test is read from UWS_LOAD_TEST=/path/to/load_test]

A tool that is not installed is skipped with the reason.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generators  # noqa: E402
from pinned_server import pinned_server  # noqa: E402

# uws' load_test prints its first Msg/sec line 4 s after its connections opened
ARGS = ["--warmup", "2.5", "--duration", "2", "--uws-load-test", os.environ.get("UWS_LOAD_TEST", "")]


@pytest.fixture(scope="module")
def server():
    _, args = generators.arguments(ARGS)
    if generators.available("shoal-bench", args):
        pytest.skip("build shoal-bench first: swift build -c release --product shoal-bench")
    command = f"{args.shoal} serve --host 127.0.0.1 --port {{port}} --handler echo --workers 1 --log-level error"
    with pinned_server(command, args.server_cpu) as (_, port):
        yield args, port


def within(a, b, factor):
    return b / factor <= a <= b * factor


def run(server, name, phase):
    args, port = server
    why = generators.available(name, args)
    if why:
        pytest.skip(f"{name}: {why}")
    return args, generators.run_generator(name, phase, args, port)


@pytest.mark.parametrize("name", generators.GENERATORS)
def test_saturation_report_is_read(server, name):
    _, r = run(server, name, "saturation")
    assert r["messages"] > 100 and r["cpu_share"] > 0
    if name != "tsung":  # tsung's count is of its whole run, reported per 10 s interval
        # the tool's own rate was over a window much like ours, at the same server
        assert within(r["tool_rate"], r["server_rate"], 2), r
    else:
        assert r["tool_count"] >= r["messages"], r
    if "p50_us" in r:
        assert 1 <= r["p50_us"] <= r["p99_us"] < 10_000_000, r


@pytest.mark.parametrize("name", [n for n in generators.GENERATORS if n != "uws"])
def test_rate_report_is_read(server, name):
    args, r = run(server, name, "rate")
    # paced near the asked rate, never far above it
    assert 0.2 * args.rate <= r["server_rate"] <= 1.1 * args.rate, r
    assert 1 <= r["p50_us"] <= r["p99_us"] < 10_000_000, r
    if "mean_us" in r:  # a second figure of the tool's, read from elsewhere in its report
        assert within(r["mean_us"], r["p50_us"], 10), r
    if name == "shoal-bench":
        assert r["uncorrected_p50_us"] <= r["p50_us"], r
