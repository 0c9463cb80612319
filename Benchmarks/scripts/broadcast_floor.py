#!/usr/bin/env python3
"""The floor for broadcast latency: a WebSocket server that does nothing but the unavoidable.

Speaks the commands of `shoal serve --handler topics` that `shoal-bench topics` and the echo probe
of broadcast_latency.py send ({"subscribe":T} -> {"subscribed":T}; {"publish":T,"data":D} -> D to
every subscriber of T; anything else -> {"error":"unknown command"}), in one thread on epoll, and
publishes with a tight loop of send() calls of one frame built once, no compression, no per-
recipient state. Measured by the same bench as the real servers, its delivery latency is what
the kernel (loopback TCP and the reader's wake-ups) and the bench cost: no server can deliver a
broadcast faster on this machine. Python adds ~1 µs per send on top of the kernel's ~10 µs.

usage: broadcast_floor.py PORT [TIMES]   (TIMES: a file to append each publish's send loop to, in µs:
the time for N sends of one frame from a tight loop)
"""
import base64
import hashlib
import selectors
import socket
import sys
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes([0x81, n]) + payload
    if n < 65536:
        return bytes([0x81, 126]) + n.to_bytes(2, "big") + payload
    return bytes([0x81, 127]) + n.to_bytes(8, "big") + payload


class Client:
    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""
        self.upgraded = False


def main():
    port = int(sys.argv[1])
    times = open(sys.argv[2], "a", buffering=1) if len(sys.argv) > 2 else None
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(4096)
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    topics: dict[bytes, list[socket.socket]] = {}

    def answer(client, text: bytes):
        client.sock.send(frame(text))

    def command(client, message: bytes):
        if message.startswith(b'{"subscribe":"') and message.endswith(b'"}'):
            topic = message[14:-2]
            topics.setdefault(topic, []).append(client.sock)
            answer(client, b'{"subscribed":"' + topic + b'"}')
        elif message.startswith(b'{"publish":"'):
            quote = message.index(b'"', 12)
            data = message.index(b'"data":', quote) + 7
            out = frame(message[data:-1])
            subscribers = topics.get(message[12:quote], ())
            start = time.monotonic_ns()
            for subscriber in subscribers:
                try:
                    subscriber.send(out)
                except OSError:
                    pass  # a full or closed socket: the floor does not queue
            if times:
                times.write(f"{len(subscribers)} {(time.monotonic_ns() - start) / 1000:.0f}\n")
        else:
            answer(client, b'{"error":"unknown command"}')

    def drop(client):
        selector.unregister(client.sock)
        for subscribers in topics.values():
            if client.sock in subscribers:
                subscribers.remove(client.sock)
        client.sock.close()

    def readable(client):
        try:
            data = client.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            drop(client)
            return
        client.buffer += data
        if not client.upgraded:
            end = client.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, client.buffer = client.buffer[:end], client.buffer[end + 4:]
            key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                       if line.lower().startswith(b"sec-websocket-key:"))
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            client.sock.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            client.upgraded = True
        buffer = client.buffer
        while len(buffer) >= 6:
            opcode, length, offset = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            if length == 126:
                length, offset = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                length, offset = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < offset + 4 + length:
                break
            mask = buffer[offset:offset + 4]
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(buffer[offset + 4:offset + 4 + length]))
            buffer = buffer[offset + 4 + length:]
            if opcode == 1:
                command(client, payload)
            elif opcode == 8:
                client.sock.send(bytes([0x88, 0]))
                drop(client)
                return
            elif opcode == 9:
                client.sock.send(bytes([0x8A, len(payload)]) + payload)
        client.buffer = buffer

    while True:
        for key, _ in selector.select():
            if key.data is None:
                try:
                    while True:
                        sock, _ = listener.accept()
                        sock.setblocking(False)
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        selector.register(sock, selectors.EVENT_READ, Client(sock))
                except BlockingIOError:
                    pass
            else:
                readable(key.data)


if __name__ == "__main__":
    main()
