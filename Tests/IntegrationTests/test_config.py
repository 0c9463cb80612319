"""Configuration from a file and the environment as well as flags (docs/operations.md,
"Configuration"), checked against the real binary by what it does: where it listens, how many
workers it starts, what its handler answers. Precedence is flag > SHOAL_* > file > default;
unknown keys and bad values end with exit 64 naming the key (and the file's line);
`shoal check-config` prints the effective settings with their origins. Also the process titles
ps and top show, and a SIGHUP reload that reads the file again (or refuses a broken one)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time

import pytest
import websockets.sync.client as wsclient
from websockets.exceptions import InvalidStatus

from cluster_helpers import children, wait_until, wait_workers, workers_by_slot
from conftest import REPO, free_port, shoal_bin

T = 20.0


def run_shoal(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([shoal_bin(), *args], capture_output=True, text=True, timeout=30,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def config_at(path, text: str = ""):
    """An `address` for the shoal fixture: a file that sets host and port (plus `text`), and --config."""
    def address(host: str, port: int) -> list[str]:
        path.write_text(f"host: {host}\nport: {port}\n{text}")
        return ["--config", str(path)]
    return address


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def answer(port: int, message: str, origin: str | None = None) -> str:
    with wsclient.connect(f"ws://127.0.0.1:{port}/", open_timeout=T, origin=origin) as ws:
        ws.send(message)
        return ws.recv(timeout=T)


def title(pid: int) -> tuple[str, str]:
    """(cmdline as ps shows it, comm as top shows it)."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        cmdline = f.read().split(b"\0")[0].decode()
    with open(f"/proc/{pid}/comm") as f:
        return cmdline, f.read().strip()


def test_the_file_sets_address_workers_and_handler(shoal, tmp_path):
    srv = shoal(address=config_at(tmp_path / "shoal.yaml", "workers: 2\nhandler: echo\n"))
    assert wait_workers(srv.proc.pid, [0, 1])
    assert len(children(srv.proc.pid)) == 2
    assert answer(srv.port, "from the file") == "from the file"


def test_the_environment_beats_the_file_and_a_flag_beats_both(shoal, tmp_path):
    file_port, env_port = free_port(), free_port()
    (tmp_path / "shoal.yaml").write_text(f"host: 127.0.0.1\nport: {file_port}\nworkers: 1\nhandler: echo\n"
                                         f"allow-origin: [https://file.example]\n")
    env = {"SHOAL_CONFIG": str(tmp_path / "shoal.yaml"), "SHOAL_WORKERS": "3", "SHOAL_HANDLER": "uppercase",
           "SHOAL_ALLOW_ORIGIN": "https://a.example, https://b.example"}
    # No flags: the fixture's port reaches the server as SHOAL_PORT only.
    srv = shoal(address=lambda host, port: [], env=lambda port: {**env, "SHOAL_PORT": str(port)})
    assert not listening(file_port), "the file's port is taken although SHOAL_PORT overrides it"
    assert wait_workers(srv.proc.pid, [0, 1, 2])
    assert answer(srv.port, "env", origin="https://b.example") == "ENV"
    # The environment's list replaced the file's: the file's origin is refused now.
    with pytest.raises(InvalidStatus) as refused:
        answer(srv.port, "x", origin="https://file.example")
    assert refused.value.response.status_code == 403

    # Flags (--host/--port from the fixture, --workers) beat SHOAL_PORT, SHOAL_WORKERS and the file.
    srv2 = shoal("--workers", "1", env={**env, "SHOAL_PORT": str(env_port)})
    assert wait_workers(srv2.proc.pid, [0])
    assert len(children(srv2.proc.pid)) == 1
    assert not listening(env_port) and not listening(file_port)
    assert answer(srv2.port, "flag", origin="https://a.example") == "FLAG"


def test_unknown_key_exits_64_naming_it_and_its_line(tmp_path):
    port = free_port()
    path = tmp_path / "shoal.yaml"
    path.write_text(f"host: 127.0.0.1\nport: {port}\nmax-conections: 100\nworkers: 1\n")
    for command in ("serve", "check-config"):
        p = run_shoal(command, "--config", str(path))
        assert p.returncode == 64, (command, p.returncode, p.stderr)
        assert f'{path}:3: unknown key "max-conections" (did you mean "max-connections"?)' in p.stderr, p.stderr
    assert not listening(port)


def test_bad_values_exit_64_naming_the_key_and_source(tmp_path):
    path = tmp_path / "shoal.yaml"
    path.write_text("host: 127.0.0.1\nworkers: many\nidle-timeout: -5\n")
    p = run_shoal("serve", "--config", str(path), "--port", str(free_port()))
    assert p.returncode == 64, (p.returncode, p.stderr)
    assert f'{path}:2: workers: "many" is not auto or an integer' in p.stderr, p.stderr
    path.write_text("host: 127.0.0.1\nidle-timeout: -5\n")
    p = run_shoal("serve", "--config", str(path), "--port", str(free_port()))
    assert p.returncode == 64 and f"{path}:2: idle-timeout must be in 0.0...86400.0 seconds, not -5.0" in p.stderr, p.stderr
    port = free_port()
    for variable, value, message in [("SHOAL_PORT", "0", "SHOAL_PORT: port must be in 1...65535, not 0"),
                                     ("SHOAL_MAX_CONNECTIONS", "lots", 'SHOAL_MAX_CONNECTIONS: "lots" is not an integer'),
                                     ("SHOAL_PROXY_PROTOCOL", "maybe", 'SHOAL_PROXY_PROTOCOL: "maybe" is not true or false'),
                                     ("SHOAL_TRUSTED_PROXY", "10.0.0.0/99", "SHOAL_TRUSTED_PROXY: trusted-proxy")]:
        p = run_shoal("serve", "--host", "127.0.0.1", env={"SHOAL_PORT": str(port), variable: value})
        assert p.returncode == 64, (variable, p.returncode, p.stderr)
        assert message in p.stderr, (variable, p.stderr)
    assert not listening(port)
    p = run_shoal("serve", "--config", str(tmp_path / "missing.yaml"))
    assert p.returncode == 64 and f"{tmp_path / 'missing.yaml'}: cannot be read: No such file or directory" in p.stderr, p.stderr


def test_check_config_prints_each_value_and_where_it_came_from(tmp_path):
    path = tmp_path / "shoal.yaml"
    path.write_text("# production\nhost: 127.0.0.1\nport: 9000\nworkers: 2\nallow-origin:\n  - https://app.example.com\n")
    p = run_shoal("check-config", "--config", str(path), "--port", "9100",
                  env={"SHOAL_WORKERS": "4", "SHOAL_IDLE_TIMEOUT": "60", "SHOAL_PORTT": "1"})
    assert p.returncode == 0, p.stderr
    settings = {}
    for line in p.stdout.splitlines():
        m = re.fullmatch(r"(# )?([a-z-]+): (.*?)\s+# (.+)", line)
        if m:
            settings[m.group(2)] = (m.group(3), m.group(4), m.group(1) is None)
    assert settings["port"] == ("9100", "flag --port", True)
    assert settings["workers"] == ("4", "env SHOAL_WORKERS", True)
    assert settings["idle-timeout"] == ("60.0", "env SHOAL_IDLE_TIMEOUT", True)
    assert settings["host"] == ("127.0.0.1", f"file {path}:2", True)
    assert settings["allow-origin"] == ('[https://app.example.com]', f"file {path}:5", True)
    assert settings["max-connections-per-address"] == ("8192", "default", True)
    assert settings["max-connections"] == ("(not set)", "default", False)
    assert "# warning: SHOAL_PORTT is not a setting (ignored)" in p.stdout
    # Every serve flag is listed (the help names them all).
    flags = set(re.findall(r"--([a-z-]+)", run_shoal("serve", "--help").stdout)) - {"help", "config"}
    assert flags == set(settings), flags ^ set(settings)
    # The report is itself a configuration file that gives the same values.
    (tmp_path / "effective.yaml").write_text(p.stdout)
    again = run_shoal("check-config", "--config", str(tmp_path / "effective.yaml"))
    assert again.returncode == 0, again.stderr
    strip = lambda out: [re.sub(r"\s+# .*", "", line) for line in out.splitlines() if not line.startswith("# ")]
    assert strip(again.stdout) == strip(p.stdout)
    # Its own help, not serve's (the passthrough of serve's flags would otherwise take --help).
    help = run_shoal("check-config", "--help")
    assert help.returncode == 0 and "USAGE: shoal check-config" in help.stdout, help.stdout


def worker_titles(workers: dict[int, int]) -> dict[int, tuple[int, str]] | None:
    """{slot: (generation, comm)} from each worker's title, or None while one has not set it yet
    (a worker names itself as it attaches to the cluster, a moment after its exec)."""
    out = {}
    for slot, pid in workers.items():
        try:
            cmdline, comm = title(pid)
        except OSError:
            return None
        m = re.fullmatch(rf"shoal: worker {slot} \(generation (\d+)\)", cmdline)
        if not m:
            return None
        out[slot] = (int(m.group(1)), comm)
    return out


def test_titles_name_supervisor_and_each_worker_and_follow_a_reload(shoal, tmp_path):
    srv = shoal(address=config_at(tmp_path / "shoal.yaml", "workers: 2\nhandler: echo\n"))
    sup = srv.proc.pid
    first = wait_workers(sup, [0, 1])
    assert title(sup) == ("shoal: supervisor", "shoal: super")
    titles = wait_until(lambda: worker_titles(first), T, what="both workers titled")
    for slot, (generation, comm) in titles.items():
        assert comm == f"shoal: w{slot} g{generation}", (slot, comm)
    assert len({generation for generation, _ in titles.values()}) == 2, titles
    srv.signal(signal.SIGHUP)
    second = wait_until(lambda: workers_by_slot(sup).keys() == {2, 3} and workers_by_slot(sup), T,
                        interval=0.2, what="the new generation in slots 2 and 3 only")
    after = wait_until(lambda: worker_titles(second), T, what="the new workers titled")
    assert min(g for g, _ in after.values()) > max(g for g, _ in titles.values()), (titles, after)
    assert title(sup)[0] == "shoal: supervisor"


def test_reload_reads_the_file_again_and_refuses_a_broken_one(shoal, tmp_path):
    path = tmp_path / "shoal.yaml"
    srv = shoal(address=config_at(path, "workers: 1\nhandler: echo\n"))
    sup = srv.proc.pid
    first = wait_workers(sup, [0])
    assert answer(srv.port, "hi") == "hi"
    good = path.read_text()
    path.write_text(good.replace("handler: echo", "handler: uppercase\nidle-timeout: soon"))
    srv.signal(signal.SIGHUP)
    wait_until(lambda: "reload refused" in srv.log(), T, what="the reload refused in the log")
    assert f'{path}:5: idle-timeout: \\"soon\\" is not a number' in srv.log() or \
        f'{path}:5: idle-timeout: "soon" is not a number' in srv.log(), srv.log()
    time.sleep(1.0)
    assert workers_by_slot(sup) == first, "a refused reload replaced the workers"
    assert answer(srv.port, "still") == "still"
    path.write_text(good.replace("handler: echo", "handler: uppercase"))
    srv.signal(signal.SIGHUP)
    wait_until(lambda: set(workers_by_slot(sup)) == {1}, T, interval=0.2, what="the new generation only")
    assert answer(srv.port, "reloaded") == "RELOADED"


def test_the_backend_variable_still_chooses_the_loop(shoal, tmp_path):
    srv = shoal("--log-level", "notice", address=config_at(tmp_path / "shoal.yaml", "workers: 1\n"),
                env={"SHOAL_BACKEND": "epoll"})
    wait_until(lambda: "epoll (chosen by SHOAL_BACKEND=epoll)" in srv.log(), T, what="the epoll backend line")


def test_the_shipped_example_names_every_key_and_its_defaults_check(tmp_path):
    """Deploy/shoal.yaml: valid as shipped, every key present (set or commented out), and every
    commented-out `key: value` is a valid value too (uncommented all at once, it still checks)."""
    example = os.path.join(REPO, "Deploy", "shoal.yaml")
    p = run_shoal("check-config", "--config", example)
    assert p.returncode == 0, p.stderr
    keys = set(re.findall(r"^(?:# )?([a-z-]+): ", p.stdout, re.M)) - {"file", "warning"}
    with open(example) as f:
        text = f.read()
    written = set(re.findall(r"^(?:# )?([a-z-]+):", text, re.M))
    assert len(keys) >= 30 and keys <= written, sorted(keys - written)
    assert re.search(r"^host: 127\.0\.0\.1  +# file .*shoal\.yaml:\d+$", p.stdout, re.M), p.stdout
    uncommented = re.sub(r"^# ([a-z-]+: )", r"\1", text, flags=re.M)
    # The example's certificate paths are where certbot puts them; check-config loads them, so
    # they are pointed at a pair made for the test.
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"],
                   check=True, capture_output=True, timeout=60)
    uncommented = re.sub(r"^tls-cert: .*$", f"tls-cert: [{cert}]", uncommented, flags=re.M)
    uncommented = re.sub(r"^tls-key: .*$", f"tls-key: [{key}]", uncommented, flags=re.M)
    (tmp_path / "all.yaml").write_text(uncommented)
    p = run_shoal("check-config", "--config", str(tmp_path / "all.yaml"))
    assert p.returncode == 0, p.stderr


def test_a_title_longer_than_the_original_command_line_is_cut_to_fit(tmp_path):
    """argv ["s", "--config=g"] and an empty environment leave 13 bytes for the supervisor's
    title "s: supervisor" (14 with its NUL): it is cut to "s: superviso" and nothing past the
    area changes; the worker, whose environment gives it room, spills its full title into it
    and still serves."""
    port = free_port()
    (tmp_path / "g").write_text(f"host: 127.0.0.1\nport: {port}\nworkers: 1\nhandler: echo\n")
    proc = subprocess.Popen(["s", "--config=g"], executable=shoal_bin(), env={}, cwd=tmp_path,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_until(lambda: listening(port), T, what="the server listening")
        with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
            assert f.read() == b"s: superviso\0"
        assert title(proc.pid)[1] == "s: super"
        # Not wait_workers: it reads SHOAL_WORKER_SLOT from /proc/PID/environ, which this title overwrites.
        worker = wait_until(lambda: children(proc.pid), T, what="the worker")[0]
        assert wait_until(lambda: title(worker)[0] == "s: worker 0 (generation 1)" and title(worker), T,
                          what="the worker's full title")[1] == "s: w0 g1"
        assert answer(port, "cut") == "cut"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=T) == 0
