#!/usr/bin/env python3
"""Writes the hand-made seeds of Fuzz/Corpus/upgrade and Fuzz/Corpus/frames (the bus seeds come from BusEncoder:
SHOAL_WRITE_FUZZ_SEEDS=1 swift test --filter BusCorpusSeeds). Seeds are named seed-*; crash reproducers that
the fuzzer found are named crash-* and are never touched here. Run from anywhere: scripts/fuzz-seeds.py"""
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Fuzz", "Corpus")


def write(target, name, data):
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "seed-" + name), "wb") as f:
        f.write(data)


# --- upgrade: raw request bytes ---------------------------------------------------------------------------------

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3


def request(lines, method="GET", target="/chat", version="HTTP/1.1", eol="\r\n"):
    return (f"{method} {target} {version}{eol}" + "".join(line + eol for line in lines) + eol).encode()


UPGRADE = ["Host: server.example.com", "Upgrade: websocket", "Connection: Upgrade",
           f"Sec-WebSocket-Key: {KEY}", "Sec-WebSocket-Version: 13"]


def without(name):
    return [line for line in UPGRADE if not line.lower().startswith(name.lower() + ":")]


upgrade_seeds = {
    "valid-rfc6455": request(UPGRADE),
    "valid-with-origin-protocol-extensions": request(UPGRADE + [
        "Origin: http://example.com", "Sec-WebSocket-Protocol: chat, superchat",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"]),
    "valid-then-frame-bytes": request(UPGRADE) + bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]),
    "valid-token-lists-and-case": request([
        "host: a", "UPGRADE: h2c, WebSocket", "connection: keep-alive,  Upgrade ", f"sec-websocket-key:{KEY}",
        "SEC-WEBSOCKET-VERSION:   13\t"]),
    "pipelined-gets": request(["Host: a"], target="/") + request(["Host: a", "Connection: close"], target="/healthz"),
    "bare-lf": request(UPGRADE, eol="\n"),
    "mixed-crlf-lf": b"GET / HTTP/1.1\r\nHost: a\nUpgrade: websocket\r\n\n",
    "leading-blank-lines": b"\r\n\n\r\n" + request(UPGRADE),
    "obs-fold": request(UPGRADE[:2] + [" continued"] + UPGRADE[2:]),
    "obs-fold-tab": request(["Host: a", "\tfolded: x"]),
    "100-headers": request(UPGRADE + [f"X-Filler-{i}: {i}" for i in range(100 - len(UPGRADE))]),
    "101-headers": request(UPGRADE + [f"X-Filler-{i}: {i}" for i in range(101 - len(UPGRADE))]),
    "huge-content-length": request(UPGRADE + ["Content-Length: 18446744073709551616999"]),
    "chunked-body": request(["Host: a", "Transfer-Encoding: chunked"], method="POST") + b"5\r\nhello\r\n0\r\n\r\n",
    "http10": request(UPGRADE, version="HTTP/1.0"),
    "http20": request(UPGRADE, version="HTTP/2.0"),
    "bad-version-token": request(UPGRADE, version="HTTP/1.10"),
    "post": request(UPGRADE, method="POST"),
    "lowercase-method": request(UPGRADE, method="get"),
    "no-host": request(without("Host")),
    "no-upgrade": request(without("Upgrade")),
    "no-connection-upgrade": request(without("Connection") + ["Connection: keep-alive"]),
    "version-8": request(without("Sec-WebSocket-Version") + ["Sec-WebSocket-Version: 8"]),
    "two-versions": request(UPGRADE + ["Sec-WebSocket-Version: 13"]),
    "no-key": request(without("Sec-WebSocket-Key")),
    "two-keys": request(UPGRADE + [f"Sec-WebSocket-Key: {KEY}"]),
    "key-15-bytes": request(without("Sec-WebSocket-Key") + ["Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA"]),
    "key-nonzero-pad-bits": request(without("Sec-WebSocket-Key") + ["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR=="]),
    "key-no-padding": request(without("Sec-WebSocket-Key") + ["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ"]),
    "absolute-form-target": request(UPGRADE, target="http://server.example.com:80/chat?room=a%20b&x=%zz&y=%"),
    "asterisk-target": request(["Host: a"], method="OPTIONS", target="*"),
    "percent-path": request(UPGRADE, target="/%E2%82%AC%ff%2F..%00?q=+%2B+#frag"),
    "space-before-colon": request(UPGRADE + ["Bad : value"]),
    "no-colon": request(UPGRADE + ["NoColonHere"]),
    "empty-name": request(UPGRADE + [": value"]),
    "nul-in-value": request(UPGRADE + ["X-Nul: a\x00b"]),
    "cr-in-value": request(UPGRADE + ["X-Cr: a\rb"]),
    "obs-text-value": request(UPGRADE).replace(b"Host: server.example.com", b"Host: \xc3\xa9\xff\x80"),
    "request-line-one-space": b"GET /chat\r\nHost: a\r\n\r\n",
    "request-line-three-spaces": b"GET /chat  HTTP/1.1\r\nHost: a\r\n\r\n",
    "control-in-target": b"GET /ch\x01at HTTP/1.1\r\nHost: a\r\n\r\n",
    "incomplete-head": request(UPGRADE)[:-2],
    "lone-cr-lines": b"GET / HTTP/1.1\r\rHost: a\r\r\r\r",
    "deflate-offers": request(UPGRADE + [
        "Sec-WebSocket-Extensions: x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=016",
        'Sec-WebSocket-Extensions: permessage-deflate ; client_max_window_bits="10" ; server_no_context_takeover',
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; client_no_context_takeover"]),
    "deflate-offers-malformed": request(UPGRADE + [
        'Sec-WebSocket-Extensions: permessage-deflate; a="unterminated, permessage-deflate',
        "Sec-WebSocket-Extensions: , ,permessage-deflate; server_max_window_bits=7; server_max_window_bits=16",
        'Sec-WebSocket-Extensions: PERMESSAGE-DEFLATE; client_max_window_bits="1\\0"; server_no_context_takeover=1']),
    "origins": request(UPGRADE + [
        "Origin: https://app.example.com", "Origin: https://a.b.example.com:8443", "Origin: null",
        "Origin: HTTP://LOCALHOST:8080", "Origin: https://[::1]:99999", "Origin: https://example.com:8443/path",
        "Origin: *.example.com", "Origin: https://app.example.com:443"]),
}
for name, data in upgrade_seeds.items():
    write("upgrade", name, data)

# --- frames: steering prefix (FrameCheck), then client bytes -----------------------------------------------------

MASK = bytes([0x37, 0xFA, 0x21, 0x3D])
LIMITS = [16 * 1024 * 1024, 0, 1, 125, 126, 1024, 65535, 65536]  # FrameCheck.messageLimits


def frame(opcode, payload=b"", fin=True, masked=True, rsv=0, length_form=None, length=None):
    """A client frame; length_form 126/127 forces an extended length, length overrides the announced one."""
    n = len(payload) if length is None else length
    byte0 = (0x80 if fin else 0) | rsv | opcode
    mask_bit = 0x80 if masked else 0
    form = length_form or (n if n < 126 else (126 if n < 65536 else 127))
    head = bytes([byte0])
    if form == 126:
        head += bytes([mask_bit | 126]) + struct.pack(">H", n)
    elif form == 127:
        head += bytes([mask_bit | 127]) + struct.pack(">Q", n)
    else:
        head += bytes([mask_bit | n])
    if not masked:
        return head + payload
    return head + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


def steer(wire, limit=0, plan=(), deflate=False, few_fragments=False):
    """FrameCheck's prefix: byte 0 = limit index | plan length << 3 | deflate << 6 | few fragments << 7."""
    assert limit < 8 and len(plan) < 8
    return bytes([limit | len(plan) << 3 | (0x40 if deflate else 0) | (0x80 if few_fragments else 0)]) + bytes(plan) + wire


def deflated(data, compressor=None):
    """A permessage-deflate payload (RFC 7692 §7.2.1): raw DEFLATE, sync-flushed, 00 00 FF FF removed."""
    c = compressor or zlib.compressobj(wbits=-15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


TEXT, BINARY, CONT, CLOSE, PING, PONG = 1, 2, 0, 8, 9, 10
frame_seeds = {
    "text-hello": steer(frame(TEXT, b"Hello")),
    "text-hello-bytewise-plan": steer(frame(TEXT, b"Hello"), plan=[1]),
    "binary-empty": steer(frame(BINARY)),
    "binary-125": steer(frame(BINARY, bytes(range(125)))),
    "binary-126-16bit": steer(frame(BINARY, bytes(range(126))), plan=[2, 3]),
    "binary-300-16bit": steer(frame(BINARY, bytes(i & 0xFF for i in range(300))), plan=[13, 14, 1]),
    "binary-1024-at-limit": steer(frame(BINARY, bytes(1024)), limit=5),
    "binary-1025-over-limit": steer(frame(BINARY, bytes(1025)), limit=5),
    "binary-64bit-length-small": steer(frame(BINARY, b"non-minimal length", length_form=127)),
    "binary-64bit-length-70000-truncated": steer(frame(BINARY, length=70000, length_form=127) + bytes(200), limit=0),
    "length-2^63": steer(frame(BINARY, length=1 << 63, length_form=127)[:10] + MASK),
    "length-2^63-1": steer(frame(BINARY, length=(1 << 63) - 1, length_form=127)[:10] + MASK + b"xy"),
    "length-2^62-over-limit": steer(frame(BINARY, length=1 << 62, length_form=127)[:10] + MASK, limit=7),
    "fragmented-text": steer(frame(TEXT, b"Hel", fin=False) + frame(CONT, b"lo, ", fin=False) + frame(CONT, b"world")),
    "fragmented-ping-inside": steer(
        frame(TEXT, b"frag", fin=False) + frame(PING, b"are you there") + frame(CONT, b"ment", fin=False)
        + frame(PONG, b"") + frame(CONT, b"ed"), plan=[5, 1, 7]),
    "fragmented-utf8-split-codepoint": steer(
        frame(TEXT, "€".encode()[:1], fin=False) + frame(CONT, "€".encode()[1:2], fin=False)
        + frame(CONT, "€".encode()[2:] + "😀".encode())),
    "fragmented-empty-fragments": steer(frame(BINARY, fin=False) + frame(CONT, fin=False) + frame(CONT, b"x")),
    "fragmented-over-limit": steer(frame(BINARY, bytes(100), fin=False) + frame(CONT, bytes(26)), limit=3),
    "fragmented-at-limit": steer(frame(BINARY, bytes(100), fin=False) + frame(CONT, bytes(25)), limit=3, plan=[9]),
    "text-invalid-utf8": steer(frame(TEXT, b"ok\xc3\x28")),
    "text-truncated-utf8": steer(frame(TEXT, b"ok\xe2\x82")),
    "text-surrogate": steer(frame(TEXT, b"\xed\xa0\x80")),
    "text-overlong": steer(frame(TEXT, b"\xc0\xaf")),
    "close-empty": steer(frame(CLOSE)),
    "close-1000-reason": steer(frame(CLOSE, struct.pack(">H", 1000) + "bye ✓".encode())),
    "close-4999-max-reason": steer(frame(CLOSE, struct.pack(">H", 4999) + b"r" * 123)),
    "close-one-byte": steer(frame(CLOSE, b"\x03")),
    "close-1005": steer(frame(CLOSE, struct.pack(">H", 1005))),
    "close-invalid-utf8-reason": steer(frame(CLOSE, struct.pack(">H", 1000) + b"\xff")),
    "close-then-more": steer(frame(CLOSE, struct.pack(">H", 1001)) + frame(TEXT, b"ignored") + b"\xff\xff"),
    "ping-125": steer(frame(PING, bytes(125))),
    "ping-126": steer(frame(PING, bytes(126))),
    "ping-16bit-length": steer(frame(PING, b"x", length_form=126)),
    "ping-fragmented": steer(frame(PING, b"x", fin=False)),
    "pong-unsolicited": steer(frame(PONG, b"heartbeat")),
    "unmasked-text": steer(frame(TEXT, b"Hello", masked=False)),
    "rsv1-set": steer(frame(TEXT, b"compressed?", rsv=0x40)),
    "rsv3-set": steer(frame(BINARY, b"x", rsv=0x10)),
    "opcode-3": steer(bytes([0x83, 0x80]) + MASK),
    "opcode-b": steer(bytes([0x8B, 0x80]) + MASK),
    "continuation-without-start": steer(frame(CONT, b"orphan")),
    "text-during-fragmented": steer(frame(TEXT, b"a", fin=False) + frame(TEXT, b"b")),
    "many-small-frames": steer(b"".join(frame(TEXT, bytes([0x61 + i])) for i in range(20)), plan=[1, 2, 3, 5, 7, 11]),
    "zero-limit-empty-message": steer(frame(TEXT) + frame(BINARY, b"x"), limit=1),
    "header-only-14-bytes": steer(frame(BINARY, length=300, length_form=127)[:14]),
    "fragments-at-limit-3": steer(frame(TEXT, b"a", fin=False) + frame(CONT, b"b", fin=False) + frame(CONT, b"c"),
                                  few_fragments=True),
    "fragments-over-limit-3": steer(frame(BINARY, fin=False) + frame(CONT, fin=False) + frame(CONT, fin=False)
                                    + frame(CONT), few_fragments=True),
    # permessage-deflate (bit 6): RSV1 on the first frame of a compressed message.
    "deflate-text-hello": steer(frame(TEXT, deflated(b"Hello"), rsv=0x40), deflate=True),
    "deflate-uncompressed-text": steer(frame(TEXT, b"plain"), deflate=True),
    "deflate-empty-payload": steer(frame(BINARY, b"", rsv=0x40), deflate=True),
    "deflate-fragmented": steer(
        frame(TEXT, deflated("Grüße, ".encode() * 20)[:7], rsv=0x40, fin=False) + frame(PING, b"p")
        + frame(CONT, deflated("Grüße, ".encode() * 20)[7:]), deflate=True, plan=[3, 1]),
    "deflate-context-takeover": (lambda c: steer(
        frame(BINARY, deflated(b"repeated payload " * 8, c), rsv=0x40)
        + frame(BINARY, deflated(b"repeated payload " * 8, c), rsv=0x40), deflate=True))(zlib.compressobj(wbits=-15)),
    "deflate-bomb-over-limit": steer(frame(BINARY, deflated(bytes(1 << 20)), rsv=0x40), limit=7, deflate=True),
    "deflate-at-limit": steer(frame(BINARY, deflated(bytes(1024)), rsv=0x40), limit=5, deflate=True),
    "deflate-invalid-stream": steer(frame(BINARY, b"\xff\xff\xff\xff", rsv=0x40), deflate=True),
    "deflate-invalid-utf8": steer(frame(TEXT, deflated(b"ok\xc3\x28"), rsv=0x40), deflate=True),
    "deflate-rsv1-on-continuation": steer(frame(TEXT, b"a", fin=False) + frame(CONT, b"b", rsv=0x40), deflate=True),
    "deflate-rsv1-on-ping": steer(frame(PING, b"a", rsv=0x40), deflate=True),
    "deflate-rsv2-set": steer(frame(TEXT, b"a", rsv=0x20), deflate=True),
    "deflate-final-block-then-garbage": steer(frame(BINARY, zlib.compress(b"x", wbits=-15) + b"junk", rsv=0x40),
                                               deflate=True),
}
for name, data in frame_seeds.items():
    write("frames", name, data)
print(f"wrote {len(upgrade_seeds)} upgrade and {len(frame_seeds)} frame seeds under {os.path.normpath(ROOT)}")
