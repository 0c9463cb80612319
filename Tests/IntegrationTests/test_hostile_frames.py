"""Hostile clients after the upgrade (issue 5): lying lengths, unmasked and malformed control
frames, invalid UTF-8 cut across fragments and reads, and floods of tiny fragments. Each case
checks the close code, then (through `Guard`) that the worker is alive and the same, that a
well-behaved echo client kept echoing with nothing lost, and that memory came back.

Every wait is bounded; no duration decides an outcome except generous deadlines."""

from __future__ import annotations

import socket
import time

import pytest

from hostile_helpers import Guard, expect_close_code, fragments, raw_frame, read_close, send_while_reading, serve
from helpers import OP_BINARY, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawWS, client_frame

PROTOCOL_ERROR, INVALID_DATA, TOO_BIG = 1002, 1007, 1009


@pytest.fixture
def echo(shoal):
    return serve(shoal, "--handler", "echo", "--workers", "1")


def attack(srv, data: bytes, code: int, *, pieces: list[bytes] | None = None) -> None:
    """Upgrade, send `data` (or `pieces`, one write each with a pause so the server reads them
    separately), expect the server's close with `code`; a good client echoes throughout."""
    with Guard(srv) as g:
        ws = RawWS(srv.port)
        try:
            ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if pieces is None:
                ws.send(data)
            else:
                for p in pieces:
                    ws.send(p)
                    time.sleep(0.05)  # only makes separate reads likely; the outcome does not depend on it
            expect_close_code(ws, code, data_ok=False)
        finally:
            ws.close()
        g.good.wait_more()


# ---------------------------------------------------------------- lengths, masks, control frames


@pytest.mark.parametrize("length,code", [(2 ** 63, PROTOCOL_ERROR), (2 ** 64 - 1, PROTOCOL_ERROR),
                                         (2 ** 63 - 1, TOO_BIG), (16 * 1024 * 1024 + 1, TOO_BIG)],
                         ids=["2^63", "2^64-1", "2^63-1", "16MiB+1"])
def test_huge_payload_length(echo, length, code):
    """The header alone decides: a 64-bit length with the top bit set is a protocol error,
    one above the max message size is 1009; no payload is ever sent (or awaited)."""
    attack(echo, raw_frame(0x80 | OP_BINARY, length=length), code)


def test_unmasked_client_frame(echo):
    attack(echo, raw_frame(0x80 | OP_TEXT, b"not masked", masked=False), PROTOCOL_ERROR)


def test_fragmented_ping(echo):
    attack(echo, raw_frame(OP_PING, b"first half") + raw_frame(0x80 | OP_CONT, b"second half"), PROTOCOL_ERROR)


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, 0x8], ids=["ping", "pong", "close"])
def test_126_byte_control_frame(echo, opcode):
    attack(echo, client_frame(opcode, b"\x03\xe8" + b"x" * 124), PROTOCOL_ERROR)


# ---------------------------------------------------------------- UTF-8 cut in awkward places

EURO = "€".encode()  # e2 82 ac


def test_invalid_utf8_split_across_fragments(echo):
    """e2 82 | 28: the sequence starts in one fragment and is broken in the next."""
    attack(echo, client_frame(OP_TEXT, b"ab\xe2\x82", fin=False) + client_frame(OP_CONT, b"\x28cd"), INVALID_DATA)


def test_invalid_utf8_split_across_reads(echo):
    """One text frame whose broken sequence is cut between two TCP reads."""
    frame = client_frame(OP_TEXT, b"ab\xe2\x82\x28cd")
    cut = len(frame) - 3  # between e2 82 and 28
    attack(echo, b"", INVALID_DATA, pieces=[frame[:cut], frame[cut:]])


def test_invalid_utf8_split_across_fragments_and_reads(echo):
    """A surrogate (ed a0 80, invalid in UTF-8) spread over three one-byte fragments, each
    fragment split in two writes."""
    frames = [client_frame(OP_TEXT, b"x\xed", fin=False), client_frame(OP_CONT, b"\xa0", fin=False),
              client_frame(OP_CONT, b"\x80y", fin=True)]
    pieces = [p for f in frames for p in (f[:3], f[3:])]
    attack(echo, b"", INVALID_DATA, pieces=pieces)


def test_utf8_truncated_at_end_of_message(echo):
    """A final fragment that ends inside a sequence: only the end of the message shows it."""
    attack(echo, client_frame(OP_TEXT, b"ok", fin=False) + client_frame(OP_CONT, b"\xe2\x82"), INVALID_DATA)


def test_valid_utf8_split_everywhere_is_accepted(echo):
    """The control case: the same cuts on valid text must echo intact (so the cases above
    fail for the bytes, not for the cuts)."""
    with Guard(echo) as g:
        ws = RawWS(echo.port)
        ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        frames = [client_frame(OP_TEXT, b"a" + EURO[:1], fin=False), client_frame(OP_CONT, EURO[1:2], fin=False),
                  client_frame(OP_CONT, EURO[2:] + b"z", fin=True)]
        for f in frames:
            ws.send(f[:3])
            time.sleep(0.05)
            ws.send(f[3:])
        f = ws.recv_frame()
        assert (f.opcode, f.payload) == (OP_TEXT, b"a" + EURO + b"z"), f
        ws.send_close(1000)
        expect_close_code(ws, 1000)
        g.good.wait_more()


# ---------------------------------------------------------------- fragment floods


@pytest.mark.parametrize("size", [1, 0], ids=["one-byte", "empty"])
def test_200000_fragments(echo, size):
    """200,000 data frames in one message (default --max-fragments 100000; empty frames count
    too): close 1009, and the flood neither stalls the good client nor stays in memory."""
    data = fragments(200_000, size)
    with Guard(echo) as g:
        ws = RawWS(echo.port)
        try:
            f = send_while_reading(ws, data, lambda ws: read_close(ws, data_ok=False))
            assert f.close_code == TOO_BIG, f"expected close 1009, got {f.close_code} {f.payload[2:]!r}"
        finally:
            ws.close()
        g.good.wait_more()


def test_max_fragments_boundary(shoal):
    """--max-fragments 10: a message in exactly 10 frames is echoed whole; 11 frames close 1009."""
    srv = serve(shoal, "--handler", "echo", "--workers", "1", "--max-fragments", "10")
    with Guard(srv) as g:
        ws = RawWS(srv.port)
        try:
            ws.send(fragments(10, 3))
            f = ws.recv_frame()
            assert (f.opcode, f.payload) == (OP_BINARY, b"a" * 30), f
            ws.send(fragments(11, 0))
            expect_close_code(ws, TOO_BIG, data_ok=False)
        finally:
            ws.close()
        g.good.wait_more()


def test_max_message_size_boundary(shoal):
    """--max-message-size 1000: 1000 bytes are echoed; 1001 in one frame, or 600 + 600 in two
    fragments (each frame small, the message too big), close 1009."""
    srv = serve(shoal, "--handler", "echo", "--workers", "1", "--max-message-size", "1000")
    with Guard(srv, warm_up=0) as g:  # its 64 KiB warm-up messages would be too big here
        for too_big in (client_frame(OP_BINARY, b"b" * 1001),
                        client_frame(OP_BINARY, b"c" * 600, fin=False) + client_frame(OP_CONT, b"c" * 600)):
            ws = RawWS(srv.port)
            try:
                ws.send(client_frame(OP_BINARY, b"a" * 1000))
                f = ws.recv_frame()
                assert (f.opcode, f.payload) == (OP_BINARY, b"a" * 1000), f
                ws.send(too_big)
                expect_close_code(ws, TOO_BIG, data_ok=False)
            finally:
                ws.close()
        g.good.wait_more()
