"""shoal-bench --report FILE.html, opened in headless Chromium (cdp.py): the page is self-contained
(no request leaves it), its four plots render, and what they draw is the numbers of the JSON that
the same run printed with --json (timeline, latency distribution, runs, parameters, thresholds).

Skipped only when /usr/bin/chromium is absent (scripts/install-deps.sh installs it).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess

import pytest

from cdp import CDP, CHROMIUM, Chromium
from test_bench_smoke import TIMEOUT, bench_bin

if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"{CHROMIUM} is not installed (Debian package 'chromium')", allow_module_level=True)

T = 15.0

# Everything the page drew, read back from the DOM.
READ_PAGE = """(() => {
  const circles = (svg, series) => [...document.querySelectorAll(`svg#${svg} circle[data-series="${series}"]`)]
      .map(c => ({ x: Number(c.dataset.x), value: Number(c.dataset.value), label: c.dataset.label }));
  const plots = {};
  for (const svg of document.querySelectorAll("svg.plot")) {
    plots[svg.id] = [...svg.querySelectorAll("polyline")].map(l => {
      const box = l.getBBox();
      return { series: l.dataset.series, count: Number(l.dataset.count), width: box.width, height: box.height };
    });
  }
  const cells = {};
  for (const td of document.querySelectorAll("table.runs td[data-key]")) {
    (cells[td.dataset.key] = cells[td.dataset.key] || []).push(td.dataset.value === undefined ? null : Number(td.dataset.value));
  }
  const params = {};
  for (const td of document.querySelectorAll("table.parameters td[data-key]")) params[td.dataset.key] = td.textContent;
  return {
    rendered: document.body.dataset.rendered, plots, cells, params,
    throughput: circles("throughput", document.querySelector("svg#throughput polyline").dataset.series),
    p99: circles("latency-over-time", "p99"),
    distribution: circles("latency-distribution", "latency"),
    errors: circles("errors", "errors"),
    thresholds: [...document.querySelectorAll(".threshold")].map(d => d.textContent),
    resources: performance.getEntriesByType("resource").length,
  };
})()"""


async def read_page(path: str) -> dict:
    with Chromium().start(timeout=T) as chrome:
        async with await CDP.connect(chrome.ws_url) as cdp:
            page = await cdp.new_page()
            await page.navigate("file://" + path, timeout=T)
            await page.wait_js('document.body.dataset.rendered === "true"', timeout=T, what="the plots drawn")
            return await page.evaluate(READ_PAGE, timeout=T)


def test_html_report_renders_the_numbers_of_the_json(shoal, tmp_path):
    srv = shoal("--handler", "echo", "--workers", "1")
    path = str(tmp_path / "report.html")
    proc = subprocess.run([bench_bin(), "echo", "--url", srv.url(), "--rate", "400", "--threads", "2", "--connections", "4",
                           "--warmup", "0.3", "--runs", "2", "--duration", "0.6", "--server-pid", str(srv.proc.pid),
                           "--threshold", "p99<10s", "--report", path, "--json"],
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    html = open(path, encoding="utf-8").read()
    # self-contained: nothing to fetch
    assert not re.search(r"""\b(src|href)\s*=|@import|url\(""", html), "the page refers to another resource"
    assert "<script" in html and "<svg" not in html  # the plots are drawn by the inline script

    shown = asyncio.run(read_page(path))
    assert shown["rendered"] == "true"
    assert shown["resources"] == 0
    # four plots, each line drawn with a size
    assert set(shown["plots"]) == {"throughput", "latency-over-time", "latency-distribution", "errors"}
    for plot_id, lines in shown["plots"].items():
        assert lines, plot_id
        assert all(l["width"] > 0 for l in lines), (plot_id, lines)

    points = report["timeline"]["points"]
    assert len(points) >= 5
    # the timeline holds every echo: warm-up and runs, both threads
    assert sum(p["count"] for p in points) >= sum(r["count"] for r in report["runs"])
    assert [c["value"] for c in shown["throughput"]] == pytest.approx([p["per_second"] for p in points])
    assert [c["value"] for c in shown["p99"]] == pytest.approx([p["p99"] for p in points if p.get("p99") is not None])
    assert [c["value"] for c in shown["errors"]] == [p["errors"] for p in points]
    # the HdrHistogram percentile plot: every level of the JSON, and its 99 % is the report's p99
    dist = report["latency_percentiles"]
    assert [float(c["label"]) for c in shown["distribution"]] == [d["percentile"] for d in dist]
    assert [c["value"] for c in shown["distribution"]] == pytest.approx([d["value"] for d in dist])
    at99 = next(c["value"] for c in shown["distribution"] if float(c["label"]) == 99)
    assert at99 == pytest.approx(report["latency"]["p99"])
    # x grows with the percentile (log of 1/(1-p)), so the tail is spread out
    xs = [c["x"] for c in shown["distribution"]]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)

    runs = report["runs"]
    assert shown["cells"]["messages/s"] == pytest.approx([r["per_second"] for r in runs])
    assert shown["cells"]["target/s"] == pytest.approx([r["target_per_second"] for r in runs])
    assert shown["cells"]["p99 µs"] == pytest.approx([r["latency"]["p99"] for r in runs] + [report["latency"]["p99"]])
    for key, value in report["parameters"].items():
        assert shown["params"][key] == value, key
    assert shown["params"]["threads"] == "2"
    assert len(shown["thresholds"]) == 1 and shown["thresholds"][0].startswith("threshold p99<10s: ")
    assert shown["thresholds"][0].endswith("passed")


def test_report_to_an_unwritable_place_is_a_usage_error(tmp_path):
    proc = subprocess.run([bench_bin(), "echo", "--report", str(tmp_path / "missing" / "r.html")],
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 64
    assert "--report" in proc.stderr
