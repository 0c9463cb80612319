"""N wss:// clients through the shipped nginx configuration (Deploy/nginx/shoal-tls.conf) into one
shoal worker with --max-connections-per-address CAP, PER clients from each loopback source address
(127.0.x.y), with or without --trusted-proxy 127.0.0.1. Prints how many were admitted and refused
(429), the time to connect them all, and one echo round over all of them. Uses the integration
tests' helpers to start shoal ($SHOAL_BIN) and nginx; needs nginx, openssl and a hard open-files
limit of about 2 × N for nginx (2 nginx workers here).

    ~/.cache/shoal-venv/bin/python Benchmarks/scripts/clients-through-nginx.py N CAP PER trusted|untrusted
"""
import asyncio
import os
import pathlib
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "Tests" / "IntegrationTests"))
os.environ.setdefault("SHOAL_BIN", str(REPO / ".build" / "release" / "shoal"))
import conftest  # noqa: E402
import test_deploy  # noqa: E402
from websockets.asyncio.client import connect as ws_connect  # noqa: E402
from websockets.exceptions import InvalidStatus  # noqa: E402

N, CAP, PER = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
trusted = sys.argv[4] == "trusted"
tmp = pathlib.Path(tempfile.mkdtemp(prefix="shoal-clients-"))
cert, key = tmp / "cert.pem", tmp / "key.pem"
subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
               check=True, capture_output=True)
tls = {"cert": str(cert), "key": str(key), "context": ssl.create_default_context(cafile=str(cert))}
args = ["--handler", "echo", "--workers", "1", "--max-connections-per-address", str(CAP)]
srv = conftest.Server(args + (["--trusted-proxy", "127.0.0.1"] if trusted else []), str(tmp / "shoal.log"))
srv.start()
proxies = []
try:
    port = test_deploy.start_nginx(proxies, tmp, tls, srv.port)
    # More connections than the tests need: restart nginx with room for 2 × N descriptors.
    main_conf = tmp / "nginx" / "nginx.conf"
    proxies.pop().stop()
    main_conf.write_text(main_conf.read_text().replace("worker_connections 4096", "worker_connections 19000")
                         .replace("worker_processes 1;", "worker_processes 2;"))
    proxies.append(test_deploy.Proxy(["nginx", "-p", str(tmp / "nginx"), "-c", str(main_conf), "-g",
                                      "daemon off; worker_rlimit_nofile 19500;"], port, str(tmp / "nginx2.log")))

    async def run():
        held, refused, failed = [], 0, 0
        slots = asyncio.Semaphore(64)

        async def one(i):
            nonlocal refused, failed
            address = i // PER
            source = f"127.0.{1 + address // 250}.{2 + address % 250}"
            async with slots:
                try:
                    held.append(await ws_connect(f"wss://127.0.0.1:{port}/", ssl=tls["context"], local_addr=(source, 0),
                                                 open_timeout=60, close_timeout=5, ping_interval=None))
                except InvalidStatus as e:
                    if e.response.status_code == 429:
                        refused += 1
                    else:
                        failed += 1
                except Exception:
                    failed += 1

        start = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(N)))
        connect_seconds = time.monotonic() - start

        async def echo(ws):
            await ws.send("ping")
            return await ws.recv() == "ping"
        start = time.monotonic()
        echoed = sum(await asyncio.gather(*(echo(ws) for ws in held)))
        echo_seconds = time.monotonic() - start
        print(f"trusted={trusted} N={N} per address={PER} cap={CAP}: admitted {len(held)}, 429 {refused}, "
              f"other failures {failed}; connect {connect_seconds:.1f} s; echo on {echoed}/{len(held)} in {echo_seconds:.2f} s")
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/metrics").read().decode()
        print("\n".join(line for line in metrics.splitlines()
                        if line.startswith(("shoal_connections{", 'shoal_rejected_upgrades_total{worker="0",reason="per_address"'))))
        await asyncio.gather(*(ws.close() for ws in held))

    asyncio.run(run())
finally:
    for p in proxies:
        p.stop()
    srv.stop()
