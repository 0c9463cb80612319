"""Memory per idle connection, ws:// against wss://: `shoal serve --workers 1 --handler echo`,
N Python websockets clients connected and silent, the worker's RSS before and after (2.5 s
after the last connect, so the once-a-second heap trim has run).

    python Benchmarks/scripts/idle_memory_tls.py N SHOAL_BIN CERT KEY
"""
import asyncio, os, re, ssl, subprocess, sys, time, socket
N = int(sys.argv[1]); BIN = sys.argv[2]; CERT = sys.argv[3]; KEY = sys.argv[4]
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]
def rss(pids):
    t = 0
    for p in pids:
        with open(f"/proc/{p}/status") as f: t += int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
    return t
def workers(sup):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f: st = f.read()
            except OSError: continue
            if int(st.rsplit(")",1)[1].split()[1]) == sup: out.append(int(d))
    return out
async def clients(url, ctx, n):
    import websockets
    conns = []
    for i in range(n):
        conns.append(await websockets.connect(url, ssl=ctx, open_timeout=20, ping_interval=None, compression=None))
    return conns
def measure(tls):
    port = free_port()
    cmd = [BIN, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--handler", "echo", "--log-level", "error", "--compression", "off"]
    if tls: cmd += ["--tls-cert", CERT, "--tls-key", KEY]
    p = subprocess.Popen(cmd, start_new_session=True)
    try:
        time.sleep(1.5)
        w = workers(p.pid)
        before = rss(w)
        ctx = None
        if tls:
            ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
        loop = asyncio.new_event_loop()
        conns = loop.run_until_complete(clients(f"{'wss' if tls else 'ws'}://127.0.0.1:{port}/", ctx, N))
        time.sleep(2.5)  # a heap trim runs every second
        after = rss(w)
        async def close_all():
            await asyncio.gather(*(c.close() for c in conns))
        loop.run_until_complete(close_all())
        print(f"{'wss' if tls else 'ws '}: worker RSS {before} KiB -> {after} KiB with {N} idle connections: {(after-before)*1024/N:.0f} B each")
    finally:
        os.killpg(p.pid, 15); p.wait()
measure(False); measure(True)
