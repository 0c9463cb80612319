"""--log-format json: every line the supervisor and its workers write is one JSON object, with
the worker, the connection id and the client address (the one a PROXY header named) as fields."""

from __future__ import annotations

import json
import subprocess

from conftest import shoal_bin
from helpers import RawConn, RawWS, upgrade_request
from hostile_helpers import serve
from proxy_helpers import v1


def json_lines(srv) -> list[dict]:
    with open(srv.log_path, errors="replace") as f:
        lines = [line for line in f.read().splitlines() if line and not line.startswith("$ ")]
    objects = []
    for line in lines:
        try:
            objects.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise AssertionError(f"not a JSON line: {line!r} ({e})")
    return objects


def test_json_log_lines_carry_worker_connection_and_client(shoal):
    srv = serve(shoal, "--handler", "echo", "--workers", "2", "--proxy-protocol", "--log-format", "json",
                "--log-level", "debug")
    c = RawConn(srv.port)
    c.send(v1("198.51.100.7") + upgrade_request(srv.port))
    assert c.read_response().status == 101
    ws = RawWS.adopt(c)
    ws.send_text("quote \" backslash \\ newline \n")
    assert ws.recv_frame().payload == b"quote \" backslash \\ newline \n"
    with RawConn(srv.port) as bad:  # no PROXY header: refused, and logged with the peer
        bad.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        bad.read_until_close()
    ws.close()
    srv.stop()  # every line, the shutdown's included, is written by now
    objects = json_lines(srv)
    assert len(objects) >= 10, objects
    for o in objects:
        assert {"time", "level", "label", "source", "message"} <= set(o), o
        assert o["time"].endswith("Z") and "T" in o["time"], o
    opened = [o for o in objects if o["message"] == "connection opened"]
    assert len(opened) == 1, objects
    assert opened[0]["client"] == "198.51.100.7" and opened[0]["worker"] in ("0", "1"), opened
    assert int(opened[0]["connection"]) > 0, opened
    refused = [o for o in objects if o["message"].startswith("PROXY header refused")]
    assert refused and refused[0]["peer"] == "127.0.0.1" and refused[0]["level"] == "debug", refused
    assert any(o["message"] == "supervisor: every worker stopped" for o in objects), objects


def test_unknown_log_format_is_a_usage_error():
    p = subprocess.run([shoal_bin(), "serve", "--log-format", "xml"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 64 and "--log-format must be text or json" in p.stderr, (p.returncode, p.stderr)
