"""A real browser: headless Chromium opens the demo page served by `shoal serve --handler chat`,
driven over the Chrome DevTools Protocol (cdp.py).

- test_demo_chat_two_tabs: two tabs on the demo page (its own origin allowed), permessage-deflate
  negotiated by the page by itself (Chromium always offers it), a chat message typed in tab A
  through the page's UI reaches tab B, a long repetitive one goes back from B to A.
- test_foreign_origin_refused: a page from another origin (a local HTTP server on another port)
  opening ws://127.0.0.1:<port>/chat is refused with 403 before any 101.
- test_compressed_on_the_wire: the same chat through a relay that decodes the frames the browser
  and the server exchange: the long message travels compressed (RSV1) in both directions and
  inflates to the text the pages show.

Every wait has a deadline and the whole file shares one budget (FILE_BUDGET); one Chromium
serves every test and is killed (process group) with its profile removed at the end.
Skipped only when /usr/bin/chromium is absent (scripts/install-deps.sh installs it).
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import re
import socket
import struct
import subprocess
import threading
import time
import zlib
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

import conftest
from cdp import CDP, CHROMIUM, Chromium, Page
from conftest import shoal_bin
from helpers import http_get, run

if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"{CHROMIUM} is not installed (Debian package 'chromium'; scripts/install-deps.sh "
                f"installs it): the real-browser tests need it", allow_module_level=True)

FILE_BUDGET = 55.0  # seconds for the whole file, Chromium's start included
T = 10.0            # bound for one wait
WELCOME = "Welcome on the chat!"
JOINED = "New client connected"
# 2,000 characters of repetitive text: far above any minimum size for compression
LONG = ("Shoal speaks permessage-deflate to real browsers. " * 40)[:2000]


@pytest.fixture(scope="module")
def chromium():
    deadline = time.monotonic() + FILE_BUDGET
    with Chromium().start(timeout=15.0) as c:
        c.deadline = deadline
        yield c


def budget(chromium: Chromium, cap: float = 30.0) -> float:
    """Seconds this test may take: at most `cap`, and what is left of the file's budget."""
    left = chromium.deadline - time.monotonic()
    if left < 1:
        raise AssertionError(f"the file's budget of {FILE_BUDGET}s is spent")
    return min(cap, left)


class PortInArgs(conftest.Server):
    """conftest.Server whose arguments may name the port it is started on: "{port}" in an
    argument is replaced by the port of each start attempt (the fixture retries on other ports).
    Server.start picks the port, then reads self.args for the command line."""

    @property
    def args(self) -> list[str]:
        return [a.replace("{port}", str(self.port)) for a in self._args]

    @args.setter
    def args(self, value: list[str]) -> None:
        self._args = list(value)


@pytest.fixture
def shoal_own_origin(shoal, monkeypatch):
    """The `shoal` fixture, whose arguments may say "{port}" (for --allow-origin of the page
    that the server itself serves)."""
    monkeypatch.setattr(conftest, "Server", PortInArgs)

    def start(*args: str):
        srv = shoal(*args)
        assert isinstance(srv, PortInArgs) and f"http://127.0.0.1:{srv.port}" in srv.args, srv.args
        return srv
    return start


_serve_help: str | None = None


def serve_chat(shoal, origin: str):
    """`shoal serve --handler chat --path /chat --workers 2 --allow-origin <origin>`, with
    `--compression shared` once the binary has that option (the mode the tests expect)."""
    global _serve_help
    if _serve_help is None:
        _serve_help = subprocess.run([shoal_bin(), "serve", "--help"], capture_output=True, text=True,
                                     timeout=T).stdout
    extra = ["--compression", "shared"] if "--compression" in _serve_help else []
    return shoal("--handler", "chat", "--path", "/chat", "--workers", "2", "--allow-origin", origin, *extra)


def header(headers: dict, name: str) -> str | None:
    """A header from a CDP Headers object (names as sent; repeated headers joined by newlines)."""
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None


def extension_offers(value: str | None) -> list[tuple[str, dict[str, str | None]]]:
    """Sec-WebSocket-Extensions → [(extension, {param: value or None})] (RFC 6455 9.1, no quoted commas)."""
    out = []
    for offer in (value or "").replace("\n", ",").split(","):
        parts = [p.strip() for p in offer.split(";") if p.strip()]
        if parts:
            params = {}
            for p in parts[1:]:
                k, eq, v = p.partition("=")
                params[k.strip().lower()] = v.strip().strip('"') if eq else None
            out.append((parts[0].lower(), params))
    return out


@asynccontextmanager
async def browser(chromium: Chromium):
    """A DevTools connection; every tab it opened is closed on the way out."""
    cdp = await CDP.connect(chromium.ws_url)
    pages: list[Page] = []

    async def new_page() -> Page:
        page = await cdp.new_page()
        pages.append(page)
        await page.send("Network.enable")
        await page.send("Runtime.enable")
        return page

    try:
        yield new_page
    finally:
        for page in pages:
            try:
                await page.close()
            except Exception:  # noqa: BLE001 - best effort; Chromium dies with the module anyway
                pass
        await cdp.close()


@dataclass
class DemoTab:
    page: Page
    rid: str                 # CDP requestId of the page's WebSocket
    request: dict            # handshake request headers
    response: dict           # handshake response (status, headers)

    def frames(self, method: str = "Network.webSocketFrameReceived") -> list[str]:
        return [e["response"]["payloadData"] for e in self.page.recorded(method)
                if e["requestId"] == self.rid and e["response"]["opcode"] in (1, 2)]

    def errors(self) -> list[str]:
        return [e["errorMessage"] for e in self.page.recorded("Network.webSocketFrameError")
                if e["requestId"] == self.rid]

    async def wait_frame(self, text: str, method: str = "Network.webSocketFrameReceived") -> None:
        await self.page.wait_event(method, where=lambda p: p["requestId"] == self.rid
                                   and p["response"]["payloadData"] == text,
                                   what=f"{method} {text[:40]!r}…")

    async def wait_shown(self, kind: str, text: str) -> None:
        """The page's log shows `text` as its last entry of class `kind` (me / them / system)."""
        js = (f"(() => {{ const l = document.querySelectorAll('#log li.{kind} span'); "
              f"return l.length > 0 && l[l.length - 1].textContent === {json.dumps(text)}; }})()")
        await self.page.wait_js(js, timeout=T, what=f"log shows {kind}: {text[:40]!r}…")

    async def say(self, text: str) -> None:
        """Type `text` in the page's input and press its Send button, as a user would."""
        js = (f"(() => {{ const i = document.getElementById('input'), b = document.getElementById('send'); "
              f"if (i.disabled || b.disabled) return 'input disabled'; "
              f"i.focus(); i.value = {json.dumps(text)}; i.dispatchEvent(new Event('input', {{bubbles: true}})); "
              f"b.click(); return i.value === '' ? 'sent' : 'not sent'; }})()")
        assert await self.page.evaluate(js) == "sent", "the demo page did not take the message"
        await self.wait_frame(text, "Network.webSocketFrameSent")


async def unless_closed(page: Page, rid: str, awaitable, what: str):
    """The result of `awaitable`, unless the WebSocket `rid` ends first: then fail at once with
    the errors Chromium reported for it (a refused handshake, an extension it rejected...)."""
    main = asyncio.ensure_future(awaitable)
    ended = asyncio.ensure_future(page.wait_event("Network.webSocketClosed", where=lambda p: p["requestId"] == rid,
                                                  timeout=T + 1))
    try:
        await asyncio.wait([main, ended], return_when=asyncio.FIRST_COMPLETED)
        if main.done():
            return main.result()
        errors = [e["errorMessage"] for e in page.recorded("Network.webSocketFrameError") if e["requestId"] == rid]
        raise AssertionError(f"the WebSocket ended before {what}; Chromium says: {errors}")
    finally:
        for f in (main, ended):
            if not f.done():
                f.cancel()


async def open_demo(new_page, url: str) -> DemoTab:
    """A new tab on the demo page: its WebSocket's handshake, the page showing it is connected,
    the chat's greeting received."""
    page = await new_page()
    await page.navigate(url)
    created = await page.wait_event("Network.webSocketCreated", what="the demo page's WebSocket")
    rid = created["requestId"]
    assert created["url"] == url.replace("https://", "wss://").replace("http://", "ws://").rstrip("/") + "/chat", created
    request = (await page.wait_event("Network.webSocketWillSendHandshakeRequest",
                                     where=lambda p: p["requestId"] == rid))["request"]
    response = (await unless_closed(page, rid, page.wait_event(
        "Network.webSocketHandshakeResponseReceived", where=lambda p: p["requestId"] == rid),
        "a handshake response"))["response"]
    tab = DemoTab(page, rid, request["headers"], response)
    assert response["status"] == 101, f"handshake answered {response['status']}: {response}"
    await unless_closed(page, rid, page.wait_js("document.getElementById('status').classList.contains('open')",
                                                what="the demo page showing it is connected"), "the page connected")
    await unless_closed(page, rid, tab.wait_frame(WELCOME), "the greeting")
    return tab


async def chat_two_tabs(new_page, base: str) -> tuple[DemoTab, DemoTab]:
    """Tabs A then B on the demo page; A has seen B arrive. Then A → B a short message typed in
    A's UI, B → A the long one."""
    a = await open_demo(new_page, base)
    b = await open_demo(new_page, base)
    await a.wait_frame(JOINED)
    await a.wait_shown("them", JOINED)

    await a.say("hello from tab A")
    await b.wait_frame("hello from tab A")
    await b.wait_shown("them", "hello from tab A")
    await a.wait_shown("me", "hello from tab A")

    await b.say(LONG)
    await a.wait_frame(LONG)
    await a.wait_shown("them", LONG)
    # in order, and nothing else: the chat does not echo a message to its sender (an echo of
    # A's message would have been queued to A before B could even see it)
    assert a.frames() == [WELCOME, JOINED, LONG], a.frames()
    assert b.frames() == [WELCOME, "hello from tab A"], b.frames()
    for tab in (a, b):
        assert tab.errors() == [], tab.errors()
    return a, b


def assert_deflate_negotiated(tab: DemoTab, name: str) -> dict[str, str | None]:
    offered = extension_offers(header(tab.request, "Sec-WebSocket-Extensions"))
    assert any(e == "permessage-deflate" for e, _ in offered), \
        f"tab {name}: Chromium did not offer permessage-deflate: {tab.request}"
    answer = header(tab.response["headers"], "Sec-WebSocket-Extensions")
    accepted = extension_offers(answer)
    assert [e for e, _ in accepted] == ["permessage-deflate"], (
        f"tab {name}: compression not negotiated: the 101 answers Sec-WebSocket-Extensions {answer!r} "
        f"to Chromium's offer {header(tab.request, 'Sec-WebSocket-Extensions')!r}\n"
        f"{tab.response.get('headersText', tab.response['headers'])}")
    return accepted[0][1]


# ---------------------------------------------------------------- the demo page, two tabs


def test_demo_chat_two_tabs(shoal_own_origin, chromium):
    srv = serve_chat(shoal_own_origin, "http://127.0.0.1:{port}")

    async def main():
        async with browser(chromium) as new_page:
            a, b = await chat_two_tabs(new_page, f"http://127.0.0.1:{srv.port}/")
            # last, so that a failure here shows that everything above worked
            assert_deflate_negotiated(a, "A")
            assert_deflate_negotiated(b, "B")
    run(main(), timeout=budget(chromium))


# ---------------------------------------------------------------- a page from another origin


def origin_refusals(port: int) -> int:
    """shoal_rejected_upgrades_total{reason="origin"}, summed over the workers."""
    r = http_get(port, "/metrics")
    assert r.status == 200, r
    total = 0
    for line in r.body.decode().splitlines():
        m = re.match(r'^shoal_rejected_upgrades_total\{([^}]*)\}\s+(\S+)$', line.strip())
        if m and 'reason="origin"' in m.group(1):
            total += int(float(m.group(2)))
    return total


class PageServer:
    """A tiny local web server (like `python -m http.server`) with one page at /, in a thread."""

    def __init__(self, html: str):
        body = html.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self.send_error(404)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=T)


def test_foreign_origin_refused(shoal_own_origin, chromium):
    srv = serve_chat(shoal_own_origin, "http://127.0.0.1:{port}")
    target = f"ws://127.0.0.1:{srv.port}/chat"
    foreign = PageServer(f"""<!doctype html><meta charset="utf-8"><title>elsewhere</title><script>
window.outcome = {{opened: false, error: false, closed: null}};
const ws = new WebSocket({json.dumps(target)});
ws.onopen = () => {{ window.outcome.opened = true; }};
ws.onerror = () => {{ window.outcome.error = true; }};
ws.onclose = (ev) => {{ window.outcome.closed = ev.code; }};
</script>""")
    assert foreign.port != srv.port
    before = origin_refusals(srv.port)

    async def main():
        async with browser(chromium) as new_page:
            page = await new_page()
            await page.navigate(f"http://127.0.0.1:{foreign.port}/")
            created = await page.wait_event("Network.webSocketCreated", what="the foreign page's WebSocket")
            rid = created["requestId"]
            assert created["url"] == target, created
            request = (await page.wait_event("Network.webSocketWillSendHandshakeRequest",
                                             where=lambda p: p["requestId"] == rid))["request"]
            assert header(request["headers"], "Origin") == f"http://127.0.0.1:{foreign.port}", request
            await page.wait_event("Network.webSocketClosed", where=lambda p: p["requestId"] == rid,
                                  what="the end of the refused WebSocket")
            statuses = [e["response"]["status"] for e in page.recorded("Network.webSocketHandshakeResponseReceived")
                        if e["requestId"] == rid]
            errors = [e["errorMessage"] for e in page.recorded("Network.webSocketFrameError") if e["requestId"] == rid]
            frames = [e for e in page.recorded("Network.webSocketFrameReceived") if e["requestId"] == rid]
            assert 101 not in statuses and not frames, (statuses, frames)
            # Chromium reports a refused handshake as a frame error naming the status
            # (and, depending on the version, also as a handshake response with that status)
            assert statuses in ([], [403]), statuses
            assert any("Unexpected response code: 403" in e for e in errors), errors
            outcome = await page.wait_js("window.outcome.closed !== null && window.outcome", what="onclose")
            assert outcome == {"opened": False, "error": True, "closed": 1006}, outcome

    try:
        run(main(), timeout=budget(chromium))
    finally:
        foreign.close()
    # the server counted it as an origin refusal (the counters are per worker: poll, bounded)
    deadline = time.monotonic() + T
    while origin_refusals(srv.port) != before + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert origin_refusals(srv.port) == before + 1, "shoal_rejected_upgrades_total{reason=\"origin\"} did not count it"


# ---------------------------------------------------------------- on the wire


@dataclass
class WireMessage:
    opcode: int
    compressed: bool   # RSV1 on its first frame
    wire_bytes: int    # payload bytes on the wire, all frames
    data: bytes        # inflated if compressed


@dataclass
class Direction:
    """One direction of a relayed connection: HTTP heads, then WebSocket frames once upgraded."""
    from_client: bool
    buf: bytearray = field(default_factory=bytearray)
    heads: list[str] = field(default_factory=list)
    upgraded: bool = False
    skip: int = 0                    # body bytes of a plain HTTP message still to pass
    no_context_takeover: bool = False  # as negotiated for this direction: a fresh inflater per message
    peer: "Direction | None" = None     # the other direction (set on the server's: told the client's terms)
    messages: list[WireMessage] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _parts: list | None = None
    _inflater: object = None

    def feed(self, data: bytes) -> None:
        if self.errors:
            return
        self.buf += data
        try:
            while self._step():
                pass
        except Exception as e:  # noqa: BLE001 - recorded; the relay goes on
            self.errors.append(repr(e))

    def _step(self) -> bool:
        if self.skip:
            n = min(self.skip, len(self.buf))
            del self.buf[:n]
            self.skip -= n
            return bool(self.buf) and not self.skip
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = bytes(self.buf[:end]).decode("latin-1")
            del self.buf[:end + 4]
            self.heads.append(head)
            lines = head.split("\r\n")
            fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            if self.from_client:
                self.upgraded = fields.get("upgrade", "").lower() == "websocket"
            else:
                self.upgraded = lines[0].split(" ")[1] == "101"
                ext = fields.get("sec-websocket-extensions", "")
                self.no_context_takeover = "server_no_context_takeover" in ext
                if self.peer is not None:
                    self.peer.no_context_takeover = "client_no_context_takeover" in ext
            if not self.upgraded:
                self.skip = int(fields.get("content-length", "0"))
            return True
        if len(self.buf) < 2:
            return False
        b0, b1 = self.buf[0], self.buf[1]
        n, off = b1 & 0x7F, 2
        if n == 126:
            if len(self.buf) < 4:
                return False
            n, off = struct.unpack_from("!H", self.buf, 2)[0], 4
        elif n == 127:
            if len(self.buf) < 10:
                return False
            n, off = struct.unpack_from("!Q", self.buf, 2)[0], 10
        mask = None
        if b1 & 0x80:
            if len(self.buf) < off + 4:
                return False
            mask, off = bytes(self.buf[off:off + 4]), off + 4
        if len(self.buf) < off + n:
            return False
        payload = bytes(self.buf[off:off + n])
        del self.buf[:off + n]
        if mask:
            payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        fin, rsv1, opcode = bool(b0 & 0x80), bool(b0 & 0x40), b0 & 0x0F
        if opcode >= 8:
            return True
        if opcode == 0:
            if self._parts is None:
                raise ValueError("continuation frame without a message")
            if rsv1:
                raise ValueError("RSV1 on a continuation frame")
            self._parts[3].append(payload)
        else:
            self._parts = [opcode, rsv1, 0, [payload]]
        self._parts[2] += n
        if fin:
            opcode, compressed, size, parts = self._parts
            self._parts = None
            data = b"".join(parts)
            if compressed:
                if self._inflater is None or self.no_context_takeover:
                    self._inflater = zlib.decompressobj(-15)
                data = self._inflater.decompress(data + b"\x00\x00\xff\xff")
            self.messages.append(WireMessage(opcode, compressed, size, data))
        return True


@dataclass
class Relayed:
    up: Direction      # browser → server
    down: Direction    # server → browser

    @property
    def key(self) -> str | None:
        for head in self.up.heads:
            m = re.search(r"(?im)^sec-websocket-key:\s*(\S+)", head)
            if m:
                return m.group(1)
        return None


class WireTap:
    """A TCP relay in front of shoal that decodes the WebSocket frames it carries (RSV1, sizes,
    inflated payloads), so a test sees what the browser and the server put on the wire.
    Inflating follows the negotiated *_no_context_takeover (a fresh inflater per message)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.upstream = 0
        self.conns: list[Relayed] = []
        self.server = None
        self.tasks: set[asyncio.Task] = set()
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self, upstream: int) -> None:
        self.upstream = upstream
        self.server = await asyncio.start_server(self._serve, sock=self.sock)

    async def _serve(self, creader, cwriter) -> None:
        task = asyncio.current_task()
        self.tasks.add(task)
        self.writers.append(cwriter)
        try:
            sreader, swriter = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            cwriter.close()
            return
        self.writers.append(swriter)
        conn = Relayed(Direction(True), Direction(False))
        conn.down.peer = conn.up
        self.conns.append(conn)

        async def pump(reader, writer, direction: Direction) -> None:
            try:
                while data := await reader.read(1 << 16):
                    direction.feed(data)
                    writer.write(data)
                    await writer.drain()
                if writer.can_write_eof():
                    writer.write_eof()
            except (ConnectionError, OSError):
                pass

        try:
            await asyncio.gather(pump(creader, swriter, conn.up), pump(sreader, cwriter, conn.down))
        finally:
            for w in (cwriter, swriter):
                w.close()
            self.tasks.discard(task)

    async def close(self) -> None:
        """Stop accepting, drop every relayed connection (Chromium keeps idle ones open), and
        wait for the relay tasks to end."""
        if self.server is not None:
            self.server.close()
        self.sock.close()
        for w in self.writers:
            w.close()
        if self.tasks:
            done, pending = await asyncio.wait(list(self.tasks), timeout=T)
            for t in pending:
                t.cancel()

    def conn(self, key: str) -> Relayed:
        found = [c for c in self.conns if c.key == key]
        assert len(found) == 1, f"relay saw {len(found)} connections with Sec-WebSocket-Key {key}"
        return found[0]


def test_compressed_on_the_wire(shoal, chromium):
    """The chat of test_demo_chat_two_tabs with the pages loaded through a frame-decoding relay
    (the page's origin is then the relay's): Chromium's compressed message is inflated by the
    server, and the server sends the long message to the other tab compressed."""
    tap = WireTap()
    try:
        srv = serve_chat(shoal, f"http://127.0.0.1:{tap.port}")
    except BaseException:
        tap.sock.close()
        raise

    async def main():
        try:
            await tap.start(srv.port)
            async with browser(chromium) as new_page:
                a, b = await chat_two_tabs(new_page, f"http://127.0.0.1:{tap.port}/")
                params = assert_deflate_negotiated(a, "A")
                assert_deflate_negotiated(b, "B")
                to_a = tap.conn(header(a.request, "Sec-WebSocket-Key"))
                from_b = tap.conn(header(b.request, "Sec-WebSocket-Key"))
                for d in (to_a.up, to_a.down, from_b.up, from_b.down):
                    assert d.errors == [], d.errors
                sent = [m for m in from_b.up.messages if m.data == LONG.encode()]
                assert len(sent) == 1, from_b.up.messages
                assert sent[0].compressed, f"Chromium sent the long message uncompressed: {sent[0]}"
                got = [m for m in to_a.down.messages if m.opcode == 1]
                assert [m.data.decode() for m in got] == [WELCOME, JOINED, LONG], got
                long = got[-1]
                assert long.compressed, f"the server sent the {len(LONG)}-byte message uncompressed " \
                                        f"(negotiated: {params})"
                assert long.wire_bytes < len(LONG) // 4, long
        finally:
            await tap.close()
    run(main(), timeout=budget(chromium))
