"""permessage-deflate (RFC 7692) against the real binary: what clients negotiate in each mode,
round trips with independent clients (Python websockets, Node ws), compressed broadcasts to a
mix of compressing and plain clients, RSV1 rules, and a zip bomb that must cost at most the
maximum message size."""

from __future__ import annotations

import asyncio
import os
import random
import zlib

import pytest
import websockets

from cluster_helpers import metrics
from hostile_helpers import tree_rss
from helpers import (OP_BINARY, OP_CLOSE, OP_CONT, OP_TEXT, RawWS, client_frame, connect, read_frame, run,
                     run_node, ws_url)

DEFLATE_OFFER = [("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")]


def deflate_message(data: bytes, wbits: int = 15) -> bytes:
    """A client's compressed message payload: raw deflate, sync flush, tail cut (RFC 7692 §7.2.1)."""
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate_message(payload: bytes, d=None) -> bytes:
    d = d or zlib.decompressobj(-15)
    return d.decompress(payload + b"\x00\x00\xff\xff")


@pytest.mark.parametrize("mode,expected", [
    ("shared", "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    ("dedicated", "permessage-deflate"),
    ("off", None),
])
def test_negotiation_answers_by_mode(shoal, mode, expected):
    srv = shoal("--handler", "echo", "--compression", mode)

    async def go():
        ws = await connect(srv.port)  # websockets offers permessage-deflate by default
        async with ws:
            assert ws.response.headers.get("Sec-WebSocket-Extensions") == expected
            for msg in ["short", "x" * 5000, "héllo wörld ✓ " * 700]:
                await ws.send(msg)
                assert await ws.recv() == msg
            blob = os.urandom(70_000)
            await ws.send(blob)
            assert await ws.recv() == blob
    run(go())


def test_dedicated_mode_keeps_context_across_messages(shoal):
    """With context takeover, the server's second copy of a message refers back to the first:
    its frame is much smaller, and only a client that kept its window can read it."""
    srv = shoal("--handler", "echo", "--compression", "dedicated")
    with RawWS(srv.port, extra=DEFLATE_OFFER) as ws:
        assert ws.response.header("Sec-WebSocket-Extensions") == "permessage-deflate"
        rng = random.Random(7)  # letters with no pattern: only the previous message can shorten them
        text = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(3000)).encode()
        inflater = zlib.decompressobj(-15)
        sizes = []
        for _ in range(2):
            ws.send(client_frame(OP_TEXT, deflate_message(text), rsv1=True))
            f = read_frame(ws, deflate=True)
            assert f.opcode == OP_TEXT and f.rsv1
            assert inflate_message(f.payload, inflater) == text
            sizes.append(len(f.payload))
        assert sizes[1] < sizes[0] / 4, sizes


def test_node_ws_round_trips_compressed(shoal):
    srv = shoal("--handler", "echo")
    out = run_node("client.js", "echo", ws_url(srv.port), str(1 << 20))
    assert "permessage-deflate" in out["extensions"], out
    assert out["text"] == {"isBinary": False, "data": "hello from node"}
    assert out["unicode"]["data"] == "héllo ✓ ünïcödé"
    assert out["binary"]["equal"] and out["bigBinary"]["equal"] and out["bigText"]["equal"], out
    assert out["close"]["code"] == 1000


def test_small_messages_stay_uncompressed_large_ones_are_compressed(shoal):
    srv = shoal("--handler", "echo")
    with RawWS(srv.port, extra=DEFLATE_OFFER) as ws:
        ws.send(client_frame(OP_TEXT, b"tiny"))
        f = read_frame(ws, deflate=True)
        assert (f.opcode, f.rsv1, f.payload) == (OP_TEXT, False, b"tiny")
        big = b"abcdefgh" * 1000
        ws.send(client_frame(OP_TEXT, big))  # the client may send uncompressed even when negotiated
        f = read_frame(ws, deflate=True)
        assert f.rsv1 and len(f.payload) < 200
        assert inflate_message(f.payload) == big


def test_broadcast_reaches_compressing_and_plain_clients_alike(shoal):
    """One broadcast, compressed once per worker: compressing clients get it compressed, the
    others in clear, and every client reads the same text."""
    srv = shoal("--handler", "broadcast", "--workers", "2")
    text = "{\"price\": 101.25, \"symbol\": \"SHOAL\", \"note\": \"" + "tick " * 200 + "\"}"

    async def go():
        compressing = [await connect(srv.port) for _ in range(4)]
        plain = [await connect(srv.port, compression=None) for _ in range(4)]
        try:
            for ws in compressing:
                assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
            for ws in plain:
                assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
            await compressing[0].send(text)
            for ws in compressing + plain:
                assert await asyncio.wait_for(ws.recv(), 10) == text
        finally:
            for ws in compressing + plain:
                await ws.close()
    run(go())
    # Both workers held clients, so the broadcast crossed the bus and was compressed on each side.
    conns = metrics(srv.port)["shoal_messages_sent_total"]
    assert sum(1 for v in conns.values() if v > 0) == 2, conns


def test_rsv1_is_refused_without_negotiation_and_on_continuations(shoal):
    srv = shoal("--handler", "echo")
    with RawWS(srv.port) as ws:  # no offer
        ws.send(client_frame(OP_TEXT, deflate_message(b"hello"), rsv1=True))
        f = read_frame(ws)
        assert f.opcode == OP_CLOSE and f.close_code == 1002
    with RawWS(srv.port, extra=DEFLATE_OFFER) as ws:
        ws.send(client_frame(OP_TEXT, b"part one ", fin=False))
        ws.send(client_frame(OP_CONT, b"part two", rsv1=True))
        f = read_frame(ws, deflate=True)
        assert f.opcode == OP_CLOSE and f.close_code == 1002


def test_invalid_utf8_inside_a_compressed_text_message_closes_1007(shoal):
    srv = shoal("--handler", "echo")
    with RawWS(srv.port, extra=DEFLATE_OFFER) as ws:
        ws.send(client_frame(OP_TEXT, deflate_message(b"ok so far \xc3\x28 broken"), rsv1=True))
        f = read_frame(ws, deflate=True)
        assert f.opcode == OP_CLOSE and f.close_code == 1007


def test_zip_bomb_closes_1009_and_memory_stays_bounded(shoal):
    """1 MiB of compressed zeros inflates to 1 GiB: the server stops at the maximum message size
    (4 MiB here), closes with 1009, and its memory grows by no more than that plus slack."""
    srv = shoal("--handler", "echo", "--workers", "1", "--max-message-size", str(4 << 20))
    bomb = deflate_message(bytes(1 << 30))
    assert len(bomb) < 1_100_000
    with RawWS(srv.port, extra=DEFLATE_OFFER) as good:
        good.send(client_frame(OP_TEXT, b"before"))
        assert read_frame(good, deflate=True).payload == b"before"
        baseline = tree_rss(srv.proc.pid)
        peak = baseline
        for _ in range(3):  # three bombs in a row: nothing accumulates
            with RawWS(srv.port, extra=DEFLATE_OFFER) as bad:
                bad.send(client_frame(OP_BINARY, bomb, rsv1=True))
                f = read_frame(bad, deflate=True)
                assert f.opcode == OP_CLOSE and f.close_code == 1009, f
            peak = max(peak, tree_rss(srv.proc.pid))
        # The compressed message (1 MiB) and at most the cap (4 MiB) of output, plus allocator slack.
        assert peak - baseline < 24 << 20, (baseline, peak)
        good.send(client_frame(OP_TEXT, b"after"))
        assert read_frame(good, deflate=True).payload == b"after"
