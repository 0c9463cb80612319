#!/usr/bin/env python3
"""TLS handshakes per server CPU-second: `openssl s_time` (the client, pinned to CPU 1) makes
new connections for --seconds against each server (pinned to CPU 0), full handshakes (-new) and
resumed ones (-reuse); the server's CPU (user+sys of its whole process tree) is read before and
after. Each connection does a handshake and closes (s_time sends no request with -www absent).

    tls_handshakes.py --seconds 5 --server NAME='CMD with {port}' [--server ...]
"""
import argparse
import re
import subprocess
import sys

from pinned_server import pinned_server
from uws_client_cpu import tree_cpu_seconds


def measure(command, mode, seconds):
    with pinned_server(command, "0") as (server, port):
        before = tree_cpu_seconds(server.pid)
        out = subprocess.run(["taskset", "-c", "1", "openssl", "s_time", "-connect", f"127.0.0.1:{port}", mode,
                              "-time", str(seconds)], capture_output=True, text=True, timeout=seconds * 4 + 30).stdout
        cpu = tree_cpu_seconds(server.pid) - before
    m = re.search(r"(\d+) connections in (\d+) real seconds", out)
    if not m:
        raise RuntimeError(f"s_time printed no figure:\n{out}")
    connections = int(m.group(1))
    return connections / int(m.group(2)), connections / cpu if cpu > 0 else float("inf")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--server", action="append", required=True, help="NAME=COMMAND with {port}")
    args = parser.parse_args()
    print("| server | mode | handshakes/s (wall) | handshakes per server CPU-s |")
    print("|---|---|---|---|")
    for name, command in (s.split("=", 1) for s in args.server):
        for mode in ("-new", "-reuse"):
            wall, per_cpu = measure(command, mode, args.seconds)
            print(f"| {name} | {'full' if mode == '-new' else 'resumed'} | {wall:,.0f} | {per_cpu:,.0f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
