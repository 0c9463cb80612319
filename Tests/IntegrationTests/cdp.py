"""A small Chrome DevTools Protocol client for the browser tests: launch headless Chromium,
talk CDP over its DevTools WebSocket (Python `websockets`), drive tabs through flattened
sessions, record their events.

    with Chromium() as chrome:                       # kills the process group, removes the profile
        async with await CDP.connect(chrome.ws_url) as cdp:
            page = await cdp.new_page()              # Target.createTarget + attach (flatten)
            await page.send("Network.enable")
            await page.navigate("http://127.0.0.1:8080/")
            ev = await page.wait_event("Network.webSocketHandshakeResponseReceived")

Every wait has a deadline; a missed deadline raises AssertionError saying what was awaited
and what was seen instead. Nothing here measures time to decide an outcome.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Any, Callable

from websockets.asyncio.client import connect as ws_connect

CHROMIUM = "/usr/bin/chromium"
T = 10.0  # default bound for one wait, seconds
START_TIMEOUT = 20.0

# The flags the tests need, then flags that keep a headless run quiet and its background
# tabs running at full speed (a tab that is not in front must still run its timers).
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
    "--no-first-run", "--no-default-browser-check", "--disable-extensions",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows", "--disable-dev-shm-usage",
]


class CDPError(Exception):
    """A CDP command answered with an error, or the DevTools connection went away."""


def _processes_with_arg(needle: str) -> list[int]:
    """Pids of live processes whose command line contains `needle` (our unique profile dir)."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2:].split()[0] in ("Z", "X"):
            continue
        if needle.encode() in cmd:
            pids.append(int(d))
    return pids


class Chromium:
    """Headless Chromium in its own process group with a throw-away profile.
    `ws_url` is the browser's DevTools endpoint, read from "DevTools listening on ws://..."."""

    def __init__(self, binary: str = CHROMIUM, extra_args: list[str] | None = None):
        self.binary = binary
        self.extra_args = list(extra_args or [])
        self.dir = ""
        self.profile = ""
        self.log_path = ""
        self.proc: subprocess.Popen | None = None
        self.ws_url = ""

    def log(self, tail: int = 40) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                lines = [l for l in f if "dbus" not in l]  # containers have no D-Bus: noise
            return "".join(lines[-tail:])
        except OSError:
            return ""

    def start(self, timeout: float = START_TIMEOUT) -> "Chromium":
        self.dir = tempfile.mkdtemp(prefix="shoal-chromium-")
        self.profile = os.path.join(self.dir, "profile")
        self.log_path = os.path.join(self.dir, "chromium.log")
        cmd = [self.binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", *self.extra_args, "about:blank"]
        with open(self.log_path, "wb") as logf:
            # stderr to a file, not a pipe: nobody has to keep reading it for Chromium to go on
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         start_new_session=True)
        pidfile = os.environ.get("SHOAL_PIDFILE")  # scripts/test.sh kills these groups if pytest dies
        if pidfile:
            with open(pidfile, "a") as f:
                f.write(f"{self.proc.pid}\n")
        deadline = time.monotonic() + timeout
        pattern = re.compile(r"DevTools listening on (ws://\S+)")
        while True:
            m = pattern.search(self.log(tail=10_000))
            if m:
                self.ws_url = m.group(1)
                return self
            if self.proc.poll() is not None:
                log = self.log()
                self.stop()
                raise AssertionError(f"chromium exited with status {self.proc.returncode} before DevTools "
                                     f"listened:\n{log}")
            if time.monotonic() > deadline:
                log = self.log()
                self.stop()
                raise AssertionError(f"chromium printed no 'DevTools listening on' within {timeout}s:\n{log}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGKILL the whole process group, reap, kill any straggler that left the group but
        still runs with our profile, remove the profile."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            if self.profile:
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    left = _processes_with_arg(f"--user-data-dir={self.profile}")
                    if not left:
                        break
                    for pid in left:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    time.sleep(0.05)
            self.proc = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = ""

    def __enter__(self) -> "Chromium":
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class CDP:
    """One DevTools connection. Commands are matched to answers by id; events are recorded
    per session (None: the browser's own session) in arrival order."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.pending: dict[int, asyncio.Future] = {}
        self.events: dict[str | None, list[dict]] = {}
        self.changed = asyncio.Condition()
        self.closed: BaseException | None = None
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str, timeout: float = T) -> "CDP":
        ws = await ws_connect(url, open_timeout=timeout, close_timeout=timeout, max_size=None,
                              ping_interval=None)
        return cls(ws)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                if "id" in msg:
                    fut = self.pending.pop(msg["id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                elif "method" in msg:
                    self.events.setdefault(msg.get("sessionId"), []).append(msg)
                    async with self.changed:
                        self.changed.notify_all()
            self.closed = CDPError("DevTools connection closed")
        except Exception as e:  # noqa: BLE001 - handed to every waiter
            self.closed = CDPError(f"DevTools connection failed: {e!r}")
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(self.closed)
        self.pending.clear()
        async with self.changed:
            self.changed.notify_all()

    async def send(self, method: str, params: dict | None = None, session: str | None = None,
                   timeout: float = T) -> dict:
        """Run one command; its result, or CDPError with the protocol's error."""
        if self.closed:
            raise self.closed
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session
        fut = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = fut
        await self.ws.send(json.dumps(msg))
        try:
            answer = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            self.pending.pop(msg["id"], None)
            raise AssertionError(f"CDP {method} got no answer within {timeout}s") from None
        if "error" in answer:
            raise CDPError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def recorded(self, method: str | None = None, session: str | None = None) -> list[dict]:
        """Events seen so far ({"method", "params", ...}), optionally of one method only."""
        return [e for e in self.events.get(session, []) if method is None or e["method"] == method]

    def mark(self, session: str | None = None) -> int:
        """A position in a session's event record, for wait_event(after=...)."""
        return len(self.events.get(session, []))

    async def wait_event(self, method: str, session: str | None = None,
                         where: Callable[[dict], bool] | None = None, timeout: float = T,
                         what: str | None = None, after: int = 0) -> dict:
        """The params of the first recorded event `method` (already seen or still to come, from
        position `after` on) for which `where(params)` holds."""

        def find():
            for e in self.events.get(session, [])[after:]:
                if e["method"] == method and (where is None or where(e["params"])):
                    return e["params"]
            return None

        async def scan():
            async with self.changed:
                while True:
                    found = find()
                    if found is not None:
                        return found
                    if self.closed:
                        raise self.closed
                    await self.changed.wait()

        try:
            return await asyncio.wait_for(scan(), timeout)
        except asyncio.TimeoutError:
            seen = [json.dumps(e["params"])[:300] for e in self.recorded(method, session)][-10:]
            raise AssertionError(f"no {what or method} within {timeout}s; {method} events seen: {seen}") from None

    async def new_page(self, url: str = "about:blank", timeout: float = T) -> "Page":
        """A new tab, attached through a flattened session."""
        target = (await self.send("Target.createTarget", {"url": url}, timeout=timeout))["targetId"]
        session = (await self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                   timeout=timeout))["sessionId"]
        return Page(self, target, session)

    async def close(self) -> None:
        await self.ws.close()
        try:
            await asyncio.wait_for(self.reader, T)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            self.reader.cancel()

    async def __aenter__(self) -> "CDP":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


class Page:
    """One tab: commands and events through its session."""

    def __init__(self, cdp: CDP, target_id: str, session: str):
        self.cdp = cdp
        self.target_id = target_id
        self.session = session

    async def send(self, method: str, params: dict | None = None, timeout: float = T) -> dict:
        return await self.cdp.send(method, params, session=self.session, timeout=timeout)

    def recorded(self, method: str | None = None) -> list[dict]:
        return [e["params"] for e in self.cdp.recorded(method, self.session)]

    def mark(self) -> int:
        return self.cdp.mark(self.session)

    async def wait_event(self, method: str, where: Callable[[dict], bool] | None = None,
                         timeout: float = T, what: str | None = None, after: int = 0) -> dict:
        return await self.cdp.wait_event(method, self.session, where, timeout, what, after)

    async def navigate(self, url: str, timeout: float = T) -> None:
        """Page.navigate and wait for the load event (Page.enable is done here)."""
        await self.send("Page.enable")
        start = self.mark()
        r = await self.send("Page.navigate", {"url": url}, timeout=timeout)
        if r.get("errorText"):
            raise AssertionError(f"navigation to {url} failed: {r['errorText']}")
        await self.wait_event("Page.loadEventFired", timeout=timeout, what=f"load of {url}", after=start)

    async def evaluate(self, expression: str, timeout: float = T) -> Any:
        """The value of a JavaScript expression in the page (promises awaited); a thrown
        exception becomes AssertionError."""
        r = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                 "awaitPromise": True}, timeout=timeout)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise AssertionError(f"page threw: {d.get('exception', {}).get('description') or d.get('text')}"
                                 f"\nin: {expression[:300]}")
        return r["result"].get("value")

    async def wait_js(self, expression: str, timeout: float = T, what: str | None = None,
                      poll: float = 0.05) -> Any:
        """Evaluate `expression` until it is truthy; its value. Bounded by `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression, timeout=max(0.1, deadline - time.monotonic()))
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"page never satisfied {what or expression!r} within {timeout}s "
                                     f"(last value {value!r})")
            await asyncio.sleep(poll)

    async def close(self) -> None:
        await self.cdp.send("Target.closeTarget", {"targetId": self.target_id})
