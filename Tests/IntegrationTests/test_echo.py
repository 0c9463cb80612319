"""The echo and uppercase handlers, with Python websockets and Node ws clients."""

import asyncio
import json
import os
import select
import struct

import pytest

from helpers import OP_CLOSE, OP_TEXT, RawWS, client_frame, connect, recv, recv_json, run, run_node, ws_url

BIG = 10 * 1024 * 1024


@pytest.fixture
def echo(shoal):
    return shoal("--handler", "echo")


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_echo_text_and_binary(echo, compression):
    async def main():
        async with await connect(echo.port, "/echo", compression=compression) as ws:
            for text in ["hello", "", "héllo ✓ ünïcödé 🐟", "x" * 200, "y" * 70000]:
                await ws.send(text)
                got = await recv(ws)
                assert isinstance(got, str), f"text came back as {type(got).__name__}"
                assert got == text
            for data in [b"\x00\x01\x02\xff", b"", bytes(range(256)) * 300]:
                await ws.send(data)
                got = await recv(ws)
                assert isinstance(got, bytes), f"binary came back as {type(got).__name__}"
                assert got == data
            # text that looks like bytes stays text, bytes that look like text stay bytes
            await ws.send(b"plain ascii")
            assert await recv(ws) == b"plain ascii"
            await ws.send("\x00\x01")
            assert await recv(ws) == "\x00\x01"
    run(main())


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_echo_10_mib(echo, kind):
    async def main():
        async with await connect(echo.port, max_size=None) as ws:
            payload = os.urandom(BIG // 2).hex() if kind == "text" else os.urandom(BIG)
            assert len(payload) == BIG
            await ws.send(payload)
            got = await recv(ws, timeout=60)
            assert type(got) is type(payload)
            assert len(got) == len(payload) and got == payload
    run(main(), timeout=120)


def test_echo_fragmented_message(echo):
    async def main():
        async with await connect(echo.port) as ws:
            await ws.send(["frag", "mented ", "text"])
            assert await recv(ws) == "fragmented text"
            await ws.send([b"\x01", b"\x02", b"\x03"])
            assert await recv(ws) == b"\x01\x02\x03"
    run(main())


def test_echo_ping_pong(echo):
    async def main():
        async with await connect(echo.port) as ws:
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 10)
            await ws.send("still here")
            assert await recv(ws) == "still here"
    run(main())


def test_echo_many_clients_concurrently(echo):
    async def one(i):
        async with await connect(echo.port, f"/c{i}") as ws:
            for j in range(20):
                await ws.send(f"{i}:{j}")
            got = [await recv(ws) for _ in range(20)]
            assert got == [f"{i}:{j}" for j in range(20)]

    async def main():
        await asyncio.gather(*(one(i) for i in range(20)))
    run(main())


def test_echo_close_handshake(echo):
    async def main():
        ws = await connect(echo.port)
        await ws.send("x")
        await recv(ws)
        await ws.close(1000, "bye")
        assert ws.close_code == 1000
        assert ws.protocol.close_rcvd is not None, "server did not answer the close frame"
        assert ws.protocol.close_rcvd.code == 1000
    run(main())


def test_echo_invalid_utf8_closes_1007(echo):
    ws = RawWS(echo.port)
    ws.send(client_frame(OP_TEXT, b"ok \xff\xfe bad"))
    f = ws.recv_frame()
    assert f.opcode == OP_CLOSE and f.close_code == 1007, f
    ws.close()


def test_echo_node_ws(echo):
    r = run_node("client.js", "echo", ws_url(echo.port, "/node"), str(BIG), timeout=120)
    assert r.get("open"), r
    assert r["text"] == {"isBinary": False, "data": "hello from node"}, r
    assert r["unicode"] == {"isBinary": False, "data": "héllo ✓ ünïcödé"}, r
    assert r["binary"] == {"isBinary": True, "equal": True}, r
    assert r["bigBinary"] == {"isBinary": True, "length": BIG, "equal": True}, r
    assert r["bigText"] == {"isBinary": False, "length": BIG, "equal": True}, r
    assert r["close"]["code"] == 1000, r


def test_uppercase(shoal):
    srv = shoal("--handler", "uppercase")

    async def main():
        async with await connect(srv.port) as ws:
            for text, up in [("hello World", "HELLO WORLD"), ("été à côté", "ÉTÉ À CÔTÉ"), ("", ""),
                             ("123 abc!", "123 ABC!")]:
                await ws.send(text)
                got = await recv(ws)
                assert isinstance(got, str) and got == up
    run(main())


def test_uppercase_with_path(shoal):
    srv = shoal("--handler", "uppercase", "--path", "/up")

    async def main():
        async with await connect(srv.port, "/up") as ws:
            await ws.send("shout")
            assert await recv(ws) == "SHOUT"
    run(main())


# ---------------------------------------------------------------- dataType


def test_echo_object_round_trip(shoal):
    srv = shoal("--handler", "echo", "--data-type", "object")
    docs = [
        {"a": 1, "b": [1, 2, {"c": "x"}], "u": "é ✓", "t": True, "f": False, "n": None},
        {"nested": {"deep": {"deeper": [[], {}, [1.5, -2, 1e10]]}}},
        {},
    ]

    async def main():
        async with await connect(srv.port) as ws:
            for doc in docs:
                await ws.send(json.dumps(doc))
                got = await recv(ws)
                assert isinstance(got, str), "object mode must answer with JSON text"
                assert json.loads(got) == doc
    run(main())


def test_echo_object_invalid_json(shoal):
    srv = shoal("--handler", "echo", "--data-type", "object")

    async def main():
        async with await connect(srv.port) as ws:
            await ws.send("{not json")
            err = await recv_json(ws)
            assert isinstance(err, dict) and set(err) == {"error"}, err
            assert isinstance(err["error"], str) and err["error"], err
            # the connection stays open and still echoes
            await ws.send('{"after": "error"}')
            assert await recv_json(ws) == {"after": "error"}
            # a binary frame always arrives as bytes: echoed as binary
            await ws.send(b"\x00bin")
            assert await recv(ws) == b"\x00bin"
    run(main())


def test_echo_blob_mirrors_kinds(shoal):
    srv = shoal("--handler", "echo", "--data-type", "blob")

    async def main():
        async with await connect(srv.port) as ws:
            await ws.send("text in blob mode")
            assert await recv(ws) == "text in blob mode"
            await ws.send(b"\x01\x02")
            assert await recv(ws) == b"\x01\x02"
    run(main())


def test_echo_message_over_16_mib_closes_1009(echo):
    """DESIGN.md: default max message size 16 MiB; bigger -> close 1009, server unharmed.
    Raw client: stop sending the payload as soon as the server's close frame is there."""
    n = 17 * 1024 * 1024
    ws = RawWS(echo.port)
    try:
        ws.send(struct.pack("!BBQ", 0x82, 0x80 | 127, n) + b"\0\0\0\0")  # binary, masked, mask 0
        sent, chunk = 0, b"\0" * (1 << 20)
        while sent < n and not select.select([ws.sock], [], [], 0)[0]:
            try:
                ws.send(chunk[: n - sent])
            except OSError:
                break
            sent += len(chunk)
        f = ws.recv_frame()
        assert f.opcode == OP_CLOSE and f.close_code == 1009, f
    finally:
        ws.close()

    async def main():
        async with await connect(echo.port) as c:
            await c.send("still serving")
            assert await recv(c) == "still serving"
    run(main())
