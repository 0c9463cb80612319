"""Deploy/ proven: real nginx with Deploy/nginx/shoal-tls.conf and real haproxy with
Deploy/haproxy/shoal.cfg, started here in front of a 2-worker shoal, with TLS from a certificate
this module makes with openssl. `wss://` clients (Python websockets with an SSL context) chat
through them; shoal sees each client's own address (127.0.0.x source addresses), per-address
limits count clients, not the proxy; /metrics is not reachable through the public side.

The shipped files are used as they are, except what a test must change to run unprivileged on
loopback (ports, certificate paths, the upstream port, no IPv6 listeners): each change is an exact
substitution that must match, so an edit of the shipped file that breaks one fails here loudly.
Skipped, with the reason, only when nginx, haproxy or openssl is not installed
(scripts/install-deps.sh installs them)."""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from conftest import REPO, free_port, shoal_bin
from helpers import T, recv, recv_json, run
from hostile_helpers import metric_present, serve
from proxy_helpers import proxied_metric

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"


def require(binary: str, package: str) -> None:
    if not os.access(binary, os.X_OK):
        pytest.skip(f"LOUD SKIP: {package} is not installed ({binary}): the Deploy/ files are NOT proven in this "
                    f"run; scripts/install-deps.sh installs it")


# ---------------------------------------------------------------- TLS material


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1/localhost, its key, haproxy's combined PEM, and a
    client SSL context that trusts exactly that certificate."""
    require(OPENSSL, "openssl")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    combined = d / "combined.pem"
    combined.write_bytes(cert.read_bytes() + key.read_bytes())
    context = ssl.create_default_context(cafile=str(cert))
    return {"cert": str(cert), "key": str(key), "combined": str(combined), "context": context}


def substituted(path: str, replacements: list[tuple[str, str]]) -> str:
    """The shipped file with each (old, new) replaced; every `old` must occur exactly once."""
    with open(os.path.join(REPO, path)) as f:
        text = f.read()
    for old, new in replacements:
        count = text.count(old)
        assert count == 1, f"{path}: expected exactly one {old!r} to adapt for the test, found {count}"
        text = text.replace(old, new)
    return text


# ---------------------------------------------------------------- proxies


class Proxy:
    """A proxy process started by a test: waits for its port, stops with SIGTERM (then SIGKILL)."""

    def __init__(self, cmd: list[str], port: int, log_path: str):
        self.port = port
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        pidfile = os.environ.get("SHOAL_PIDFILE")  # scripts/test.sh stops these too if pytest is killed
        if pidfile:
            with open(pidfile, "a") as f:
                f.write(f"{self.proc.pid}\n")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"{cmd[0]} exited with {self.proc.returncode}:\n{self.log()}"
            try:
                with socket_to(port):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"{cmd[0]} did not listen on {port} within 20 s:\n{self.log()}")

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def socket_to(port: int):
    return socket.create_connection(("127.0.0.1", port), timeout=1.0)


@pytest.fixture
def proxies():
    started: list[Proxy] = []
    yield started
    for p in started:
        p.stop()


def start_nginx(proxies, tmp_path, tls, shoal_port: int) -> int:
    """nginx with Deploy/nginx/shoal-tls.conf included in a minimal main configuration; returns the HTTPS port."""
    require(NGINX, "nginx")
    https_port, http_port = free_port(), free_port()
    site = substituted("Deploy/nginx/shoal-tls.conf", [
        ("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"),
        ("listen [::]:443 ssl;", ""),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen [::]:80;", ""),
        ("/etc/letsencrypt/live/chat.example.com/fullchain.pem", tls["cert"]),
        ("/etc/letsencrypt/live/chat.example.com/privkey.pem", tls["key"]),
        ("server 127.0.0.1:8080;", f"server 127.0.0.1:{shoal_port};"),
    ])
    d = tmp_path / "nginx"
    d.mkdir()
    (d / "shoal.conf").write_text(site)
    # What /etc/nginx/nginx.conf provides on a Debian host, reduced to this test's directory.
    (d / "nginx.conf").write_text(f"""
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 4096; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    include {d}/shoal.conf;
}}
""")
    proxy = Proxy([NGINX, "-p", str(d), "-c", str(d / "nginx.conf"), "-g", "daemon off;"], https_port,
                  str(tmp_path / "nginx.log"))
    proxies.append(proxy)
    return https_port


def start_haproxy(proxies, tmp_path, tls, shoal_port: int) -> int:
    """haproxy with Deploy/haproxy/shoal.cfg; returns the TLS port once its health check sees shoal up."""
    require(HAPROXY, "haproxy")
    port = free_port()
    cfg = substituted("Deploy/haproxy/shoal.cfg", [
        ("bind :443 ssl crt /etc/haproxy/certs/shoal.pem", f"bind 127.0.0.1:{port} ssl crt {tls['combined']}"),
        ("    bind :::443 v6only ssl crt /etc/haproxy/certs/shoal.pem alpn http/1.1\n", ""),
        ("server shoal 127.0.0.1:8080", f"server shoal 127.0.0.1:{shoal_port}"),
        # haproxy sets its open-files limit to about 2 × maxconn and refuses to start past the hard limit.
        ("maxconn 200000", "maxconn 2000"),
    ])
    if os.geteuid() != 0:  # only root can switch users
        cfg = cfg.replace("    user haproxy\n", "").replace("    group haproxy\n", "")
    path = tmp_path / "haproxy.cfg"
    path.write_text(cfg)
    check = subprocess.run([HAPROXY, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, f"haproxy -c: {check.stdout}{check.stderr}"
    proxy = Proxy([HAPROXY, "-db", "-f", str(path)], port, str(tmp_path / "haproxy.log"))
    proxies.append(proxy)
    return port


# ---------------------------------------------------------------- clients


async def wss(port: int, tls, source: str, headers=None, path: str = "/"):
    return await ws_connect(f"wss://127.0.0.1:{port}{path}", ssl=tls["context"], local_addr=(source, 0),
                            additional_headers=headers, open_timeout=T, close_timeout=T)


async def wss_ready(port: int, tls, source: str):
    """The first connection through a proxy just started: retried (bounded) until the proxy sees
    its upstream (haproxy takes shoal in once its first health check passed)."""
    deadline = time.monotonic() + 3 * T
    while True:
        try:
            return await wss(port, tls, source)
        except Exception as e:  # a refused or reset handshake while the proxy is not ready yet
            if time.monotonic() > deadline:
                raise AssertionError(f"no WebSocket through the proxy within {3 * T} s: {e!r}")
            await asyncio.sleep(0.2)


def https_status(port: int, tls, path: str, source: str = "127.0.0.7") -> tuple[int, bytes]:
    """GET over HTTPS from `source` (not 127.0.0.1, the proxies' own address towards shoal)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=tls["context"], timeout=T, source_address=(source, 0))
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


# ---------------------------------------------------------------- the checks, for either proxy

SOURCES = [f"127.0.0.{i}" for i in range(2, 6)]


def check_chat(port: int, tls) -> None:
    """Four wss:// clients from four addresses chat through the proxy into a 2-worker cluster."""
    async def go():
        first = await wss_ready(port, tls, SOURCES[0])
        clients = [first] + [await wss(port, tls, s) for s in SOURCES[1:]]
        try:
            for c in clients:
                assert await recv(c) == "Welcome on the chat!"
            for sender in clients:
                text = f"hello from {sender.local_address[0]}"
                await sender.send(text)
                for other in clients:
                    if other is sender:
                        continue
                    # The chat's own notices (a client joined, or a handshake the proxy retried
                    # left) may come between messages; they are not what this checks.
                    while (m := await recv(other)) in ("New client connected", "Client disconnected"):
                        pass
                    assert m == text, (m, text)
        finally:
            for c in clients:
                await c.close()
    run(go())


def check_addresses_and_limits(port: int, tls, per_address_refusals, workers: int = 2) -> None:
    """The probe handler reports request.remoteAddress: each client's own source address, even
    when it claims another in forwarding headers. With --max-connections-per-address 1 (per
    worker), one client gets at most one connection per worker and the rest 429, while the
    next client is still admitted: the cap counts clients, not the proxy."""
    async def go():
        held = []
        try:
            first = await wss_ready(port, tls, SOURCES[0])
            held.append(first)
            spoof = [("X-Forwarded-For", "6.6.6.6"), ("X-Real-IP", "6.6.6.7"), ("Forwarded", "for=6.6.6.8")]
            for source in SOURCES[1:]:
                held.append(await wss(port, tls, source, headers=spoof))
            for ws, source in zip(held, SOURCES):
                assert (await recv_json(ws))["event"] == "hello"
                await ws.send("remote")
                while "remote" not in (answer := await recv_json(ws)):
                    assert "event" in answer, answer  # the probe tells everyone of other clients
                assert answer == {"remote": source}
            # One client's attempts beyond the cap: at most `workers` in all are admitted.
            crowd = "127.0.0.9"
            admitted, refused = 0, 0
            for _ in range(2 * workers + 2):
                try:
                    ws = await wss(port, tls, crowd)
                except InvalidStatus as e:
                    assert e.response.status_code == 429, e.response
                    refused += 1
                else:
                    held.append(ws)
                    admitted += 1
            assert 1 <= admitted <= workers, (admitted, refused)
            assert refused >= workers + 2
            # Another client is not affected by that one's cap.
            other = await wss(port, tls, "127.0.0.10")
            held.append(other)
            assert (await recv_json(other))["event"] == "hello"
        finally:
            for ws in held:
                await ws.close()
    run(go(), timeout=120)
    assert per_address_refusals() >= workers + 2


def check_public_side(port: int, tls) -> None:
    status, body = https_status(port, tls, "/")
    assert status == 200 and b"<html" in body.lower(), (status, body[:200])
    assert https_status(port, tls, "/healthz") == (200, b"ok\n")
    status, body = https_status(port, tls, "/metrics")
    assert status == 404 and b"shoal_" not in body, (status, body[:200])


# ---------------------------------------------------------------- nginx


def test_nginx_wss_chat_into_a_two_worker_cluster(shoal, proxies, tmp_path, tls):
    srv = serve(shoal, "--handler", "chat", "--workers", "2", "--trusted-proxy", "127.0.0.1/32")
    port = start_nginx(proxies, tmp_path, tls, srv.port)
    check_chat(port, tls)
    check_public_side(port, tls)
    assert metric_present(srv.port, "shoal_worker_up") == 2, "metrics stay readable on shoal's own port"


def test_nginx_passes_each_clients_address_and_limits_count_clients(shoal, proxies, tmp_path, tls):
    srv = serve(shoal, "--handler", "probe", "--workers", "2", "--trusted-proxy", "127.0.0.1/32",
                "--max-connections-per-address", "1")
    port = start_nginx(proxies, tmp_path, tls, srv.port)
    check_addresses_and_limits(
        port, tls, lambda: metric_present(srv.port, "shoal_rejected_upgrades_total", reason="per_address"))


def test_chromium_chats_on_the_https_demo_page_through_nginx(shoal, proxies, tmp_path, tls):
    """Headless Chromium opens the demo page at https://…/ through nginx; the page's own script
    connects with wss:// to /chat; a message typed in tab A reaches tab B."""
    from cdp import CHROMIUM, Chromium
    require(CHROMIUM, "chromium")
    import test_browser as demo  # here, not at the top: that module skips itself without Chromium

    srv = serve(shoal, "--handler", "chat", "--path", "/chat", "--workers", "2", "--trusted-proxy", "127.0.0.1")
    port = start_nginx(proxies, tmp_path, tls, srv.port)

    async def main(chromium):
        async with demo.browser(chromium) as new_page:
            a = await demo.open_demo(new_page, f"https://127.0.0.1:{port}/")
            b = await demo.open_demo(new_page, f"https://127.0.0.1:{port}/")
            await a.wait_frame(demo.JOINED)
            await a.say("hello through nginx")
            await b.wait_frame("hello through nginx")
            await b.wait_shown("them", "hello through nginx")
            assert a.errors() == [] and b.errors() == []
    # The certificate is this module's own: Chromium is told to accept it rather than a CA store.
    with Chromium(extra_args=["--ignore-certificate-errors"]).start(timeout=15.0) as chromium:
        run(main(chromium), timeout=45)


# ---------------------------------------------------------------- haproxy


def test_haproxy_wss_chat_into_a_two_worker_cluster(shoal, proxies, tmp_path, tls):
    srv = serve(shoal, "--handler", "chat", "--workers", "2", "--proxy-protocol")
    port = start_haproxy(proxies, tmp_path, tls, srv.port)
    check_chat(port, tls)
    check_public_side(port, tls)


def test_haproxy_passes_each_clients_address_and_limits_count_clients(shoal, proxies, tmp_path, tls):
    srv = serve(shoal, "--handler", "probe", "--workers", "2", "--proxy-protocol", "--max-connections-per-address", "1")
    port = start_haproxy(proxies, tmp_path, tls, srv.port)
    check_addresses_and_limits(port, tls, lambda: sum(
        proxied_metric(srv.port, f'shoal_rejected_upgrades_total{{worker="{w}",reason="per_address"}}') for w in (0, 1)))


# ---------------------------------------------------------------- systemd


def unit_text() -> str:
    """The shipped unit with the binary path replaced, as Deploy/install.sh renders it for its PREFIX."""
    with open(os.path.join(REPO, "Deploy/systemd/shoal.service")) as f:
        return f.read().replace("/usr/local/bin/shoal", shoal_bin())


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path):
    require(SYSTEMD_ANALYZE, "systemd (systemd-analyze)")
    unit = tmp_path / "shoal.service"
    unit.write_text(unit_text())
    p = subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "shoal.service" not in p.stdout + p.stderr, p.stdout + p.stderr


def test_systemd_command_line_serves_clients_through_nginx(shoal, proxies, tmp_path, tls):
    """The unit's own ExecStart: loopback only (never 0.0.0.0 without an origin policy), and behind
    the shipped nginx each client is itself: --refuse-address added to that command line refuses
    one client and not the other."""
    lines = [line for line in unit_text().splitlines() if line.startswith("ExecStart=")]
    assert len(lines) == 1, lines
    argv = shlex.split(lines[0].split("=", 1)[1])
    assert argv[:2] == [shoal_bin(), "serve"], argv
    args = argv[2:]
    host = args[args.index("--host") + 1] if "--host" in args else "0.0.0.0"
    assert host == "127.0.0.1" or "--allow-origin" in args, f"the unit serves {host} without an origin policy: {argv}"
    path = args[args.index("--path") + 1]
    for flag in ("--host", "--port"):  # the fixture chooses these
        i = args.index(flag)
        del args[i:i + 2]
    srv = serve(shoal, *args, "--workers", "2", "--refuse-address", "127.0.0.3")
    port = start_nginx(proxies, tmp_path, tls, srv.port)

    async def go():
        ws = await wss(port, tls, "127.0.0.2", path=path)
        try:
            assert await recv(ws) == "Welcome on the chat!"
            try:
                await wss(port, tls, "127.0.0.3", path=path)
            except InvalidStatus as e:
                assert e.response.status_code == 403, e.response
            else:
                raise AssertionError("--refuse-address 127.0.0.3 did not refuse that client through nginx")
        finally:
            await ws.close()
    run(go())


# ---------------------------------------------------------------- install.sh


def test_install_sh_stages_everything_into_a_temporary_root(tmp_path):
    """Deploy/install.sh --destdir --system into a temporary root (with the binary under test as
    its build, no apt): every file in place, a second run changes nothing, the staged binary runs
    and serves its built-in demo page, and the packages it installs cover every library the binary
    links and every system library Package.swift builds against (zlib included)."""
    bin_dir = os.path.dirname(shoal_bin())
    if os.path.basename(bin_dir) != "release":
        pytest.skip(f"LOUD SKIP: install.sh is NOT checked: {shoal_bin()} is not in a SwiftPM release directory, "
                    f"which --no-build needs")
    script = os.path.join(REPO, "Deploy", "install.sh")
    root = tmp_path / "root"
    env = {**os.environ, "SHOAL_BUILD_DIR": os.path.dirname(bin_dir)}
    cmd = [script, "--destdir", str(root), "--no-apt", "--no-build", "--system"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    staged = root / "usr/local/bin/shoal"
    expected = [staged,
                root / "usr/local/share/doc/shoal/operations.md", root / "etc/systemd/system/shoal.service",
                root / "etc/sysctl.d/90-shoal.conf", root / "etc/security/limits.d/shoal-limits.conf"]
    for path in expected:
        assert path.is_file(), f"{path} not installed:\n{first.stdout}"
    assert "(runs)" in first.stdout, first.stdout
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert second.returncode == 0 and "installed " not in second.stdout, second.stdout

    # The staged binary runs from the staged tree and serves the demo page compiled into it.
    assert subprocess.run([str(staged), "--version"], capture_output=True, timeout=30).returncode == 0
    port = free_port()
    proc = subprocess.Popen([str(staged), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + T
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=T)
                conn.request("GET", "/")
                r = conn.getresponse()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "the staged binary did not serve"
                time.sleep(0.1)
        assert r.status == 200 and b"<html" in r.read().lower()
        conn.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=20) == 0

    # Packages: what the staged binary links, and what the build needs, is what install.sh installs.
    listed = subprocess.run([script, "--packages"], capture_output=True, text=True, timeout=30).stdout
    runtime = listed.split("runtime:")[1].split("\n")[0].split()
    build = listed.split("build:")[1].split()
    ldd = subprocess.run(["ldd", str(staged)], capture_output=True, text=True, timeout=30).stdout
    for path in re.findall(r"=> (/\S+)", ldd):
        if path.startswith("/opt/swift") or "/swift/" in path:
            continue  # the toolchain's runtime: install.sh's own build links it statically
        owners = [subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True).stdout
                  for candidate in (path, path.replace("/lib/", "/usr/lib/", 1))]
        owner = next((o.split(":")[0] for o in owners if o), None)
        assert owner, f"no package owns {path}"
        # libc6 (and libgcc-s1, which libc6 depends on) are on every Debian system.
        assert owner in runtime or owner in ("libc6", "libgcc-s1"), \
            f"the binary links {path} from {owner}, which install.sh does not install (runtime: {runtime})"
    with open(os.path.join(REPO, "Package.swift")) as f:
        providers = re.findall(r'\.apt\(\[([^\]]*)\]\)', f.read())
    for names in providers:
        for name in re.findall(r'"([^"]+)"', names):
            assert name in build, f"Package.swift builds against {name}, which install.sh does not install ({build})"
