#!/usr/bin/env python3
"""What a fresh `shoal serve --workers 1` costs before its first client: the resident memory of the
supervisor and the worker, and the time from exec to the first /healthz answer.

    Benchmarks/scripts/process-footprint.py BIN [BIN...]   (e.g. this build and a previous one)

Each binary is started STARTS times on its own loopback port; RSS is read from /proc/PID/status
one second after /healthz first answers (the median start is kept); start-up is the median.
"""
import http.client, os, signal, socket, statistics, subprocess, sys, time

STARTS = 5

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]

def start_once(binary):
    port = free_port()
    began = time.monotonic()
    proc = subprocess.Popen([binary, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while True:
            if proc.poll() is not None or time.monotonic() - began > 20:
                raise SystemExit(f"{binary} did not start")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.002)
        startup_ms = (time.monotonic() - began) * 1000
        time.sleep(1)
        workers = children(proc.pid)
        return startup_ms, rss_kib(proc.pid), sum(rss_kib(w) for w in workers)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)

def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    print(f"{'binary':60} {'supervisor':>11} {'worker':>9} {'total':>9} {'start-up':>9}")
    for binary in sys.argv[1:]:
        runs = sorted((start_once(binary) for _ in range(STARTS)), key=lambda r: r[1] + r[2])
        _, supervisor, worker = runs[len(runs) // 2]
        startup = statistics.median(r[0] for r in runs)
        print(f"{binary:60} {supervisor / 1024:9.1f}MB {worker / 1024:7.1f}MB {(supervisor + worker) / 1024:7.1f}MB {startup:7.0f}ms")

if __name__ == "__main__":
    main()
