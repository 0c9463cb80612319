// --report FILE.html: the report as one self-contained page (no network: inline CSS, inline JS that
// draws SVG) with the run's parameters, the runs, and four plots: throughput, latency percentiles
// and errors over time, and the latency distribution as an HdrHistogram percentile plot (log scale).
// The page embeds the same JSON that --json prints and draws everything from it.
import Foundation

enum HTMLReport {
    /// The page for `report`.
    static func page(_ report: Report) -> String {
        // "</" cannot appear inside the inline script: JSON allows "<\/" for it.
        let json = report.json().replacingOccurrences(of: "</", with: "<\\/")
        return head(title: "shoal-bench \(report.scenario) \(report.url)") + "<script id=\"report-data\" type=\"application/json\">"
            + json + "</script>\n<script>\n" + script + "</script>\n</body>\n</html>\n"
    }

    /// Writes the page to `path`; the error names the file and why.
    static func write(_ report: Report, to path: String) throws(WriteError) {
        do {
            try Data(page(report).utf8).write(to: URL(fileURLWithPath: path))
        } catch {
            throw WriteError(description: "--report \(path): \(error.localizedDescription)")
        }
    }

    struct WriteError: Error, CustomStringConvertible { var description: String }

    private static func head(title: String) -> String {
        let escaped = title.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        return """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <title>\(escaped)</title>
        <style>
        body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1100px; }
        h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
        table { border-collapse: collapse; margin: 8px 0; }
        td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
        th { background: #f3f3f3; } td.k, th.k { text-align: left; }
        svg.plot { display: block; margin: 4px 0 12px; background: #fff; border: 1px solid #ddd; }
        svg text { font: 11px system-ui, sans-serif; fill: #444; }
        .legend span { display: inline-block; margin-right: 14px; }
        .warn { color: #a40; } .fail { color: #b00; font-weight: bold; } .pass { color: #070; }
        </style>
        </head>
        <body>
        <h1>\(escaped)</h1>

        """
    }

    /// Draws the page from the embedded report. Every plotted point carries its number in a data-
    /// attribute, so a test can compare the drawing with the JSON.
    private static let script = #"""
    "use strict";
    (() => {
    const R = JSON.parse(document.getElementById("report-data").textContent);
    const NS = "http://www.w3.org/2000/svg";
    const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"];
    const fmt = (v, d = 1) => v == null ? "-" : Number(v).toLocaleString("en-US", { maximumFractionDigits: d });

    function el(tag, attrs, parent, text) {
      const e = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
      if (text != null) e.textContent = text;
      if (parent) parent.appendChild(e);
      return e;
    }
    function section(title, id) {
      const h = document.createElement("h2"); h.textContent = title; document.body.appendChild(h);
      const div = document.createElement("div"); div.id = id; document.body.appendChild(div);
      return div;
    }
    function table(parent, header, rows, cls) {
      const t = document.createElement("table"); if (cls) t.className = cls;
      const tr = t.insertRow();
      header.forEach((h, i) => { const th = document.createElement("th"); th.textContent = h; if (i == 0) th.className = "k"; tr.appendChild(th); });
      for (const row of rows) {
        const r = t.insertRow();
        row.forEach((cell, i) => {
          const td = r.insertCell(); td.textContent = cell.text; if (i == 0) td.className = "k";
          if (cell.value != null) td.dataset.value = cell.value;
          if (cell.key) td.dataset.key = cell.key;
          if (cell.cls) td.classList.add(cell.cls);
        });
      }
      parent.appendChild(t);
      return t;
    }

    // A line plot: series = [{name, points: [[x, y], ...]}], x linear, y linear or log10.
    // opts.xTicks: [[x, label]] to replace the numeric x ticks; opts.bands: [[x0, x1]] shaded.
    function plot(parent, id, series, opts) {
      const W = 1000, H = 300, L = 70, Rm = 20, T = 16, B = 40;
      const svg = el("svg", { id, class: "plot", width: W, height: H, viewBox: `0 0 ${W} ${H}` }, parent);
      const pts = series.flatMap(s => s.points).filter(p => p[1] != null && isFinite(p[1]));
      if (pts.length == 0) { el("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, svg, "nothing recorded"); return svg; }
      const xs = pts.map(p => p[0]), ys = pts.map(p => p[1]);
      let x0 = Math.min(...xs), x1 = Math.max(...xs); if (x1 == x0) x1 = x0 + 1;
      const log = !!opts.logY;
      const ty = v => log ? Math.log10(Math.max(v, 1e-3)) : v;
      let y0 = log ? Math.floor(ty(Math.min(...ys.filter(v => v > 0), 1e9))) : 0;
      let y1 = log ? Math.ceil(ty(Math.max(...ys))) : Math.max(...ys) * 1.1;
      if (!(y1 > y0)) y1 = y0 + 1;
      const sx = x => L + (x - x0) / (x1 - x0) * (W - L - Rm);
      const sy = v => H - B - (ty(v) - y0) / (y1 - y0) * (H - T - B);
      for (const [a, b] of opts.bands || []) {
        el("rect", { x: sx(Math.max(a, x0)), y: T, width: Math.max(0, sx(Math.min(b, x1)) - sx(Math.max(a, x0))), height: H - T - B, fill: "#eef4ff" }, svg);
      }
      el("line", { x1: L, y1: H - B, x2: W - Rm, y2: H - B, stroke: "#888" }, svg);
      el("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#888" }, svg);
      const yTicks = [];
      if (log) { for (let e = y0; e <= y1; e++) yTicks.push(Math.pow(10, e)); }
      else { for (let i = 0; i <= 5; i++) yTicks.push(y1 * i / 5); }
      for (const v of yTicks) {
        el("line", { x1: L, y1: sy(v), x2: W - Rm, y2: sy(v), stroke: "#eee" }, svg);
        el("text", { x: L - 6, y: sy(v) + 4, "text-anchor": "end" }, svg, fmt(v, v < 10 ? 2 : 0));
      }
      const xTicks = opts.xTicks || Array.from({ length: 6 }, (_, i) => { const x = x0 + (x1 - x0) * i / 5; return [x, fmt(x, 1)]; });
      for (const [x, label] of xTicks) el("text", { x: sx(x), y: H - B + 16, "text-anchor": "middle" }, svg, label);
      el("text", { x: (L + W - Rm) / 2, y: H - 6, "text-anchor": "middle" }, svg, opts.xLabel);
      el("text", { x: 14, y: (T + H - B) / 2, "text-anchor": "middle", transform: `rotate(-90 14 ${(T + H - B) / 2})` }, svg, opts.yLabel);
      series.forEach((s, i) => {
        const color = COLORS[i % COLORS.length];
        const shown = s.points.filter(p => p[1] != null && isFinite(p[1]));
        const line = el("polyline", { fill: "none", stroke: color, "stroke-width": 1.5, "data-series": s.name,
          points: shown.map(p => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ") }, svg);
        line.dataset.count = shown.length;
        for (const p of shown) {
          const c = el("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 2.2, fill: color, "data-series": s.name, "data-x": p[0], "data-value": p[1] }, svg);
          if (p[2] != null) c.setAttribute("data-label", p[2]);
          el("title", {}, c, `${s.name}: ${fmt(p[1], 3)} at ${p[2] ?? fmt(p[0], 2)}`);
        }
      });
      const legend = document.createElement("div"); legend.className = "legend";
      series.forEach((s, i) => { const sp = document.createElement("span"); sp.style.color = COLORS[i % COLORS.length]; sp.textContent = "● " + s.name; legend.appendChild(sp); });
      parent.appendChild(legend);
      return svg;
    }

    // Parameters.
    const params = section("Parameters", "parameters");
    const about = { scenario: R.scenario, url: R.url, "client loop": R.backend,
                    "server pids": (R.server_pids || []).join(" ") || "-", "connections opened": R.connections_opened };
    table(params, ["parameter", "value"], [
      ...Object.entries(about).map(([k, v]) => [{ text: k }, { text: String(v), key: k }]),
      ...Object.keys(R.parameters).sort().map(k => [{ text: k }, { text: R.parameters[k], key: k }]),
    ], "parameters");

    // Runs: the same figures as the table printed on a terminal.
    const runs = section("Runs", "runs");
    const cols = [["run", r => r.run, 0], ["seconds", r => r.seconds, 2], [R.unit, r => r.count, 0], [R.unit + "/s", r => r.per_second, 0],
                  ["target/s", r => r.target_per_second, 0], ["achieved %", r => r.achieved_share == null ? null : r.achieved_share * 100, 1],
                  ["bench CPU %", r => r.client_cpu_share * 100, 0], ["server CPU %", r => r.server_cpu_share == null ? null : r.server_cpu_share * 100, 0],
                  ["p50 µs", r => r.latency && r.latency.p50, 1], ["p99 µs", r => r.latency && r.latency.p99, 1],
                  ["p99.9 µs", r => r.latency && r.latency.p999, 1], ["max µs", r => r.latency && r.latency.max, 1]]
      .filter(([, f]) => R.runs.some(r => f(r) != null));
    const rows = R.runs.map(r => cols.map(([name, f, d]) => ({ text: fmt(f(r), d), value: f(r), key: name })));
    if (R.latency) rows.push(cols.map(([name], i) => {
      const all = { "p50 µs": R.latency.p50, "p99 µs": R.latency.p99, "p99.9 µs": R.latency.p999, "max µs": R.latency.max }[name];
      return all == null ? { text: i == 0 ? "all runs" : "" } : { text: fmt(all, 1), value: all, key: name };
    }));
    table(runs, cols.map(c => c[0]), rows, "runs");
    for (const t of R.thresholds || []) {
      const p = document.createElement("div"); p.className = t.passed ? "pass threshold" : "fail threshold";
      p.textContent = `threshold ${t.threshold}: ${t.measured == null ? "nothing measured" : fmt(t.measured, 3) + t.unit}: ${t.passed ? "passed" : "FAILED"}`;
      runs.appendChild(p);
    }
    for (const w of R.warnings) { const p = document.createElement("div"); p.className = "warn"; p.textContent = w; runs.appendChild(p); }
    if (R.latency_uncorrected) {
      const p = document.createElement("div");
      p.textContent = `Latency is from each message's intended send time; from the actual send (uncorrected) p99 is ${fmt(R.latency_uncorrected.p99, 1)} µs.`;
      runs.appendChild(p);
    }

    // Over time, with the measured windows shaded.
    const points = (R.timeline && R.timeline.points) || [];
    const bands = R.runs.map(r => [r.start_seconds, r.start_seconds + r.seconds]);
    const mid = p => p.t + R.timeline.interval_seconds / 2;
    const over = { xLabel: "seconds from the start (shaded: measured runs)", bands };
    plot(section(`Throughput over time (${R.unit}/s per ${R.timeline ? R.timeline.interval_seconds : "-"} s interval)`, "throughput-section"), "throughput",
         [{ name: R.unit + "/s", points: points.map(p => [mid(p), p.per_second]) }], { ...over, yLabel: R.unit + "/s" });
    plot(section("Latency percentiles over time (µs, log scale)", "latency-time-section"), "latency-over-time",
         ["p50", "p90", "p99", "max"].map(k => ({ name: k, points: points.map(p => [mid(p), p[k]]) })), { ...over, logY: true, yLabel: "µs" });
    // HdrHistogram percentile plot: x is log10(1 / (1 - percentile)), so 90%, 99%, 99.9%... are evenly spaced.
    const dist = R.latency_percentiles || [];
    const highest = 100 - 1e-5;
    const px = p => Math.log10(100 / (100 - Math.min(p, highest)));
    plot(section("Latency distribution (HdrHistogram percentile plot, µs, log scale)", "distribution-section"), "latency-distribution",
         [{ name: "latency", points: dist.map(d => [px(d.percentile), d.value, d.percentile]) }],
         { logY: true, yLabel: "µs", xLabel: "percentile",
           xTicks: [0, 90, 99, 99.9, 99.99, 99.999].map(p => [px(p), p == 0 ? "0%" : p + "%"]).concat([[px(highest), "max"]]) });
    plot(section("Errors over time (per interval)", "errors-section"), "errors",
         [{ name: "errors", points: points.map(p => [mid(p), p.errors]) }], { ...over, yLabel: "errors" });
    const errs = Object.entries(R.errors);
    const kinds = document.createElement("div"); kinds.id = "error-kinds";
    kinds.textContent = errs.length ? "Errors by kind: " + errs.map(([k, v]) => `${k} ${v}`).join(", ") : "Errors: none";
    document.getElementById("errors-section").appendChild(kinds);
    document.body.dataset.rendered = "true";
    })();
    """#
}
