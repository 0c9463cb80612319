"""shoal-bench run FILE.yaml (scenario files, docs/shoal-bench.md): virtual users in a weighted mix,
each connecting with its scenario's path, headers and subprotocol, sending templates and files,
expecting exact, regex and JSON answers with timeouts, sleeping and closing; against an echo
server written with Python's `websockets` (which records what each handshake asked for) and
against `shoal serve`. Bad files are refused with exit 64 and a message naming the line and field.
"""

from __future__ import annotations

import json

import pytest

from test_bench_load import bench_status, run_bench, running_python_server
from test_bench_smoke import ScriptedPeer, bench

RECORDING_ECHO = """
import asyncio, json, sys
from websockets.asyncio.server import serve

async def echo(ws):
    print(json.dumps({"path": ws.request.path, "token": ws.request.headers.get("X-Token"),
                      "subprotocol": ws.subprotocol}), flush=True)
    async for message in ws:
        await ws.send(message)

def select(connection, offered):
    # chat.v1 when offered; a client that offers none goes on without one
    return "chat.v1" if "chat.v1" in offered else None

async def main():
    async with serve(echo, "127.0.0.1", int(sys.argv[1]), select_subprotocol=select):
        await asyncio.get_running_loop().create_future()

asyncio.run(main())
"""

MIX = """
users: 6
duration: 1s
scenarios:
  - name: hello
    weight: 2
    connect:
      path: /room/7
      headers: { X-Token: secret-1 }
      subprotocol: chat.v1
    steps:
      - send: "hello {{seq}} from {{user}} {{random 4}}"
      - expect: { regex: "^hello \\\\d+ from \\\\d+ [a-z]{4}$", timeout: 2s }
      - sleep: 20ms
  - name: json
    steps:
      - send: '{"type":"ping","seq":{{seq}},"ts":{{timestamp}}}'
      - expect: { json: type, equals: ping }
      - send: { file: blob.bin, binary: true }
      - expect: { exact: "binary blob" }
      - close: true
"""


@pytest.fixture
def recording_echo(tmp_path):
    with running_python_server(tmp_path, RECORDING_ECHO, "recording_echo.py") as server:
        yield server


def write(tmp_path, text: str) -> str:
    (tmp_path / "blob.bin").write_bytes(b"binary blob")
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return str(path)


def test_weighted_mix_against_python_websockets(tmp_path, recording_echo):
    url, server = recording_echo
    report = bench("run", write(tmp_path, MIX), "--url", url, "--threads", "2")
    assert report["scenario"] == "run"
    assert report["errors"] == {}, report["error_samples"]  # every regex, JSON and exact expectation met
    assert report["connections_opened"] == 6
    r = report["runs"][0]
    # weights 2:1 over 6 users
    assert r["extra"]["users.hello"] == 4 and r["extra"]["users.json"] == 2, r["extra"]
    # hello loops (20 ms sleep) for the whole second; json closes after one pass
    assert r["extra"]["iterations.json"] == 2
    assert 40 <= r["extra"]["iterations.hello"] <= 4 * 55, r["extra"]
    assert r["count"] == r["extra"]["iterations.hello"] + r["extra"]["iterations.json"]
    assert report["latency"]["count"] >= r["extra"]["iterations.hello"]
    server.kill()
    handshakes = [json.loads(line) for line in server.stdout.read().splitlines()]
    hello = [h for h in handshakes if h["path"] == "/room/7"]
    assert len(hello) == 4 and all(h["token"] == "secret-1" and h["subprotocol"] == "chat.v1" for h in hello), handshakes
    plain = [h for h in handshakes if h["path"] == "/"]
    assert len(plain) == 2 and all(h["token"] is None and h["subprotocol"] is None for h in plain), handshakes


def test_failed_expectations_are_errors_and_fail_a_threshold(tmp_path, recording_echo):
    url, _ = recording_echo
    path = write(tmp_path, """
users: 2
duration: 600ms
scenarios:
  - steps:
      - send: "ping {{seq}}"
      - expect: { exact: "pong" }
      - expect: { exact: "never sent", timeout: 100ms }
""")
    status, report, err = bench_status("run", path, "--url", url, "--threads", "1", "--threshold", "errors<1%")
    assert status == 99, err
    assert report["errors"].get("expect_mismatch", 0) >= 2, report["errors"]
    assert report["errors"].get("expect_timeout", 0) >= 2, report["errors"]
    assert any('got "ping 1"' in s for s in report["error_samples"]), report["error_samples"]


def test_scenario_against_shoal(shoal, tmp_path):
    srv = shoal("--handler", "echo", "--workers", "1")
    path = write(tmp_path, """
users: 3
duration: 500ms
scenarios:
  - name: echo
    steps:
      - send: "{{user}}:{{seq}}"
      - expect: { regex: "^\\\\d+:\\\\d+$" }
""")
    report = bench("run", path, "--url", srv.url(), "--server-pid", str(srv.proc.pid))
    assert report["errors"] == {}, report["error_samples"]
    assert report["connections_opened"] == 3
    assert report["runs"][0]["count"] > 10
    assert report["latency"]["count"] >= report["runs"][0]["count"]


GOOD_STEP = "      - send: hi\n"


@pytest.mark.parametrize("text, where", [
    ("users: 2\nduration: 1s\nscenarios: [\n", "not valid YAML"),
    ("users: 2\nduration: 1s\n", "(top level): 'scenarios' is required"),
    ("users: 0\nduration: 1s\nscenarios:\n  - steps:\n" + GOOD_STEP, ":1: users: expected a whole number"),
    ("users: 2\nduration: soon\nscenarios:\n  - steps:\n" + GOOD_STEP, ":2: duration: 'soon' is not a duration"),
    ("users: 2\nduration: 1s\nscenarios:\n  - steps:\n" + GOOD_STEP + "      - sned: hi\n",
     ":6: scenarios[0].steps[1]: unknown key 'sned'"),
    ("users: 2\nduration: 1s\nscenarios:\n  - steps:\n      - send: \"{{sequence}}\"\n",
     ":5: scenarios[0].steps[0].send: unknown {{sequence}}"),
    ("users: 2\nduration: 1s\nscenarios:\n  - steps:\n" + GOOD_STEP + "      - expect: { regex: \"(\" }\n",
     ":6: scenarios[0].steps[1].expect.regex: '(' is not a valid regular expression"),
    ("users: 2\nduration: 1s\nscenarios:\n  - weight: 2\n    steps:\n" + GOOD_STEP + "      - expect: { timeout: 1x, exact: a }\n",
     ":7: scenarios[0].steps[1].expect.timeout: '1x' is not a duration"),
    ("users: 1\nduration: 1s\nscenarios:\n  - steps:\n" + GOOD_STEP + "  - steps:\n" + GOOD_STEP, "at least one user each"),
    ("users: 2\nduration: 1s\nscenarios:\n  - steps:\n      - send: { file: missing.bin }\n",
     ":5: scenarios[0].steps[0].send.file: cannot read"),
])
def test_bad_scenario_file_names_line_and_field(tmp_path, text, where):
    proc = run_bench("run", write(tmp_path, text))
    assert proc.returncode == 64, proc.stderr
    assert where in proc.stderr, proc.stderr


def test_a_subprotocol_not_asked_for_is_a_handshake_error(tmp_path):
    # RFC 6455 4.1: the client fails the connection when the server selects a subprotocol it did not offer
    peer = ScriptedPeer(subprotocol="other")
    try:
        path = write(tmp_path, "users: 2\nduration: 300ms\nscenarios:\n  - connect: { subprotocol: chat.v1 }\n"
                               "    steps:\n      - send: hi\n      - expect: { exact: hi }\n")
        status, report, _ = bench_status("run", path, "--url", f"ws://127.0.0.1:{peer.port}/", "--threads", "1")
        assert status == 1  # no connection opened
        assert report["errors"].get("handshake") == 2, report["errors"]
        assert "server selected subprotocol other, we asked for chat.v1" in " ".join(report["error_samples"])
    finally:
        peer.close()
