"""The probe handler: the 4D API seen from outside (request, ids, status, connections,
terminate codes, onTerminate/onError events)."""

import asyncio
import json

import pytest

from helpers import (OP_BINARY, OP_CLOSE, OP_TEXT, RawConn, RawWS, client_frame, connect, expect_closed, expect_refused,
                     http_raw, recv, recv_json, run, run_node, upgrade_request, ws_url)


@pytest.fixture
def probe(shoal):
    return shoal("--handler", "probe")


async def join(port, path="/", **kw):
    """Connect and read the hello event; returns (ws, id)."""
    ws = await connect(port, path, **kw)
    hello = await recv_json(ws)
    assert hello.get("event") == "hello", hello
    assert set(hello) == {"event", "id"}, hello
    cid = hello["id"]
    assert isinstance(cid, int) and not isinstance(cid, bool) and cid > 0, hello
    return ws, cid


async def ask(ws, command):
    await ws.send(command)
    return await recv_json(ws)


async def next_event(ws, event, cid, skip=()):
    """Next JSON message from ws must be `event` for connection `cid`; events named in
    `skip` (for the same cid) may come first and are returned in the list."""
    skipped = []
    while True:
        m = await recv_json(ws)
        if m.get("event") in skip and m.get("id") == cid:
            skipped.append(m)
            continue
        assert m.get("event") == event and m.get("id") == cid, f"expected {event} for id {cid}, got {m}"
        return m, skipped


async def join_observed(port):
    """An observer, then a client whose open event the observer sees; returns (observer, ws, id)."""
    obs, _ = await join(port)
    ws, cid = await join(port)
    await next_event(obs, "open", cid)
    return obs, ws, cid


async def join_raw_observed(port):
    """An observer, then a raw client whose open event the observer sees; returns (observer, raw, id)."""
    obs, _ = await join(port)
    raw = RawWS(port)
    cid = raw.recv_json()["id"]
    await next_event(obs, "open", cid)
    return obs, raw, cid


def terminated(cid, code, reason):
    """The terminate event of connection `cid` once it is closed."""
    return {"event": "terminate", "id": cid, "code": code, "reason": reason, "status": "Closed"}


async def expect_server_terminated(obs, cid, code, reason):
    """After the server terminated `cid`, `obs` sees after-terminate (still Closing), then terminate."""
    m, _ = await next_event(obs, "after-terminate", cid)
    assert m == {"event": "after-terminate", "id": cid, "status": "Closing"}, m
    m, _ = await next_event(obs, "terminate", cid)
    assert m == terminated(cid, code, reason), m


def test_hello_id_status(probe):
    async def main():
        ws, cid = await join(probe.port)
        assert await ask(ws, "id") == {"id": cid}
        assert await ask(ws, "status") == {"status": "Connected"}
        assert await ask(ws, "whatever else") == {"echo": "whatever else"}
        assert await ask(ws, "") == {"echo": ""}
        await ws.send(b"\x00\xffbin")
        got = await recv(ws)
        assert got == b"\x00\xffbin"
        await ws.close()
    run(main())


def test_ids_unique_and_open_events(probe):
    async def main():
        a, ida = await join(probe.port)
        b, idb = await join(probe.port)
        m, _ = await next_event(a, "open", idb)
        assert m == {"event": "open", "id": idb}
        c, idc = await join(probe.port)
        assert (await next_event(a, "open", idc))[0] == {"event": "open", "id": idc}
        assert (await next_event(b, "open", idc))[0] == {"event": "open", "id": idc}
        assert len({ida, idb, idc}) == 3
        for ws in (a, b, c):
            await ws.close()
    run(main())


def test_count_and_ids_follow_clients(probe):
    async def main():
        a, ida = await join(probe.port)
        assert await ask(a, "count") == {"count": 1}
        assert await ask(a, "ids") == {"ids": [ida]}

        b, idb = await join(probe.port)
        await next_event(a, "open", idb)
        assert await ask(a, "count") == {"count": 2}
        assert await ask(b, "count") == {"count": 2}
        ids = (await ask(a, "ids"))["ids"]
        assert sorted(ids) == sorted([ida, idb])

        c, idc = await join(probe.port)
        await next_event(a, "open", idc)
        await next_event(b, "open", idc)
        assert await ask(c, "count") == {"count": 3}
        assert sorted((await ask(b, "ids"))["ids"]) == sorted([ida, idb, idc])

        await b.close()
        m, _ = await next_event(a, "terminate", idb)
        await next_event(c, "terminate", idb)
        assert await ask(a, "count") == {"count": 2}
        assert sorted((await ask(c, "ids"))["ids"]) == sorted([ida, idc])

        await c.close()
        await next_event(a, "terminate", idc)
        assert await ask(a, "count") == {"count": 1}
        assert await ask(a, "ids") == {"ids": [ida]}

        d, idd = await join(probe.port)
        assert idd not in (ida, idb, idc)
        await next_event(a, "open", idd)
        assert await ask(d, "count") == {"count": 2}
        await a.close()
        await d.close()
    run(main())


def test_url(probe):
    async def main():
        ws, _ = await join(probe.port, "/p?x=1")
        assert await ask(ws, "url") == {"url": "/p?x=1"}
        ws2, _ = await join(probe.port, "/some/deeper/path")
        assert await ask(ws2, "url") == {"url": "/some/deeper/path"}
        await ws.close()
        await ws2.close()
    run(main())


def test_query_decoding(probe):
    async def main():
        ws, _ = await join(probe.port, "/q?a=1&b=hello%20world&c=%C3%A9t%C3%A9&empty=")
        assert await ask(ws, "query") == {
            "query": [["a", "1"], ["b", "hello world"], ["c", "été"], ["empty", ""]]}
        ws2, _ = await join(probe.port, "/q")
        assert await ask(ws2, "query") == {"query": []}
        await ws.close()
        await ws2.close()
    run(main())


def test_remote_address(probe):
    async def main():
        ws, _ = await join(probe.port)
        assert await ask(ws, "remote") == {"remote": "127.0.0.1"}
        ws2, _ = await join(probe.port, source="127.0.0.3")
        assert await ask(ws2, "remote") == {"remote": "127.0.0.3"}
        await ws.close()
        await ws2.close()
    run(main())


def test_repeated_header(probe):
    ws = RawWS(probe.port, "/h", extra=[("X-Test", "a"), ("X-Single", "only"), ("X-Test", "b")])
    try:
        hello = ws.recv_json()
        assert hello["event"] == "hello"
        ws.send_text("header x-test")
        assert ws.recv_json() == {"header": "x-test", "values": ["a", "b"]}
        ws.send_text("header x-single")
        assert ws.recv_json() == {"header": "x-single", "values": ["only"]}
        # header names are case-insensitive
        ws.send_text("header X-Test")
        assert ws.recv_json()["values"] == ["a", "b"]
        ws.send_text("header host")
        assert ws.recv_json()["values"] == [f"127.0.0.1:{probe.port}"]
        ws.send_close(1000)
        f = ws.recv_frame()
        assert f.opcode == OP_CLOSE
    finally:
        ws.close()


def test_refuse_by_query(probe):
    async def main():
        await expect_refused(probe.port, "/?refuse=1", status=403)
        await expect_refused(probe.port, "/x?a=1&refuse", status=403)
        ws, _ = await join(probe.port, "/?refused_not=1")
        await ws.close()
    run(main())


def test_refuse_by_address(shoal):
    srv = shoal("--handler", "probe", "--refuse-address", "127.0.0.2")

    async def main():
        await expect_refused(srv.port, "/", source="127.0.0.2", status=403)
        ws, _ = await join(srv.port, source="127.0.0.1")
        assert await ask(ws, "remote") == {"remote": "127.0.0.1"}
        await ws.close()
    run(main())


def test_refuse_by_address_node(shoal):
    srv = shoal("--handler", "probe", "--refuse-address", "127.0.0.2")
    r = run_node("client.js", "connect", ws_url(srv.port, "/"), "127.0.0.2")
    assert r.get("status") == 403 and not r.get("open"), r
    r = run_node("client.js", "connect", ws_url(srv.port, "/"), "127.0.0.1")
    assert r.get("open"), r
    assert r["first"]["isBinary"] is False and '"hello"' in r["first"]["data"], r


def test_refused_client_does_not_count(probe):
    async def main():
        a, ida = await join(probe.port)
        await expect_refused(probe.port, "/?refuse=yes", status=403)
        b, idb = await join(probe.port)
        # a sees exactly one open event: b's (none for the refused client)
        assert (await next_event(a, "open", idb))[0] == {"event": "open", "id": idb}
        assert await ask(a, "count") == {"count": 2}
        await a.close()
        await b.close()
    run(main())


# ---------------------------------------------------------------- terminate


def test_terminate_with_code_and_message(probe):
    async def main():
        obs, ws, cid = await join_observed(probe.port)
        await ws.send("terminate 4000 bye")
        assert await expect_closed(ws) == (4000, "bye")
        # the client echoed the server's close frame: code 4000, reason "bye"
        await expect_server_terminated(obs, cid, 4000, "bye")
        assert await ask(obs, "count") == {"count": 1}
        await obs.close()
    run(main())


def test_terminate_message_with_spaces(probe):
    async def main():
        ws, _ = await join(probe.port)
        await ws.send("terminate 3001 going away now")
        assert await expect_closed(ws) == (3001, "going away now")
    run(main())


@pytest.mark.parametrize("command", ["terminate 2000 nope", "terminate 1000 nope", "terminate 3000 nope",
                                     "terminate 5000 nope", "terminate"])
def test_terminate_without_a_valid_code_sends_no_status(probe, command):
    """A code out of range, or none at all: the close frame carries no status (1005)."""
    async def main():
        obs, ws, cid = await join_observed(probe.port)
        await ws.send(command)
        assert await expect_closed(ws) == (1005, "")
        await expect_server_terminated(obs, cid, 1005, None)
        await obs.close()
    run(main())


def test_terminate_long_message_truncated(probe):
    async def main():
        ws, _ = await join(probe.port)
        await ws.send("terminate 4001 " + "é" * 100)  # 200 bytes: must be cut to fit 123 on a UTF-8 boundary
        code, reason = await expect_closed(ws)
        assert code == 4001
        assert 0 < len(reason.encode()) <= 123 and "é" * len(reason) == reason
    run(main())


# ---------------------------------------------------------------- client-side close


def test_client_close_with_code_and_reason(probe):
    async def main():
        obs, ws, cid = await join_observed(probe.port)
        await ws.close(4321, "client says bye")
        assert ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == 4321
        m, _ = await next_event(obs, "terminate", cid)
        assert m == terminated(cid, 4321, "client says bye")
        await ws.close()
        await obs.close()
    run(main())


def test_client_close_normal(probe):
    async def main():
        obs, ws, cid = await join_observed(probe.port)
        await ws.close()
        m, _ = await next_event(obs, "terminate", cid)
        assert m["code"] == 1000 and m["status"] == "Closed" and m["reason"] in (None, ""), m
        await obs.close()
    run(main())


def test_client_close_without_code_is_1005(probe):
    async def main():
        obs, raw, cid = await join_raw_observed(probe.port)
        raw.send_close()  # close frame with an empty payload
        f = raw.recv_frame()
        assert f.opcode == OP_CLOSE, f
        raw.close()
        m, _ = await next_event(obs, "terminate", cid)
        assert m == terminated(cid, 1005, None)
        await obs.close()
    run(main())


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_tcp_drop_without_close_frame_is_1006(probe, how):
    async def main():
        obs, raw, cid = await join_raw_observed(probe.port)
        if how == "rst":
            raw.reset()
        else:
            raw.close()
        m, skipped = await next_event(obs, "terminate", cid, skip=("error",))
        assert m == terminated(cid, 1006, None)
        assert await ask(obs, "count") == {"count": 1}
        await obs.close()
    run(main())


def test_protocol_error_events(probe):
    """Invalid UTF-8 in a text frame: close 1007 to the client, onError then onTerminate."""
    async def main():
        obs, raw, cid = await join_raw_observed(probe.port)
        raw.send(client_frame(OP_TEXT, b"\xc3\x28 invalid"))
        f = raw.recv_frame()
        assert f.opcode == OP_CLOSE and f.close_code == 1007, f
        raw.send_close(1007)
        raw.close()
        m, _ = await next_event(obs, "error", cid)
        assert set(m) == {"event", "id", "message", "code", "errCodes"} and isinstance(m["message"], str) and m["message"], m
        assert m["code"] == 1007 and m["errCodes"] == [1007], m
        m, _ = await next_event(obs, "terminate", cid)
        assert m["status"] == "Closed", m
        await obs.close()
    run(main())


def test_unmasked_frame_is_protocol_error(probe):
    raw = RawWS(probe.port)
    try:
        raw.recv_json()
        raw.send(bytes([0x81, 0x05]) + b"hello")  # unmasked text frame from a client
        f = raw.recv_frame()
        assert f.opcode == OP_CLOSE and f.close_code == 1002, f
    finally:
        raw.close()


def test_binary_echo_raw(probe):
    raw = RawWS(probe.port)
    try:
        raw.recv_json()
        raw.send(client_frame(OP_BINARY, b"\x00\x01\x02"))
        f = raw.recv_frame()
        assert (f.opcode, f.payload) == (OP_BINARY, b"\x00\x01\x02")
    finally:
        raw.close()


def test_terminate_observed_by_many(probe):
    async def main():
        observers = []
        for _ in range(4):
            o, oid = await join(probe.port)
            for prev in observers:
                await next_event(prev, "open", oid)
            observers.append(o)
        ws, cid = await join(probe.port)
        for o in observers:
            await next_event(o, "open", cid)
        await ws.send("terminate 4999 last")
        assert await expect_closed(ws) == (4999, "last")
        for o in observers:
            await expect_server_terminated(o, cid, 4999, "last")
        await asyncio.gather(*(o.close() for o in observers))
    run(main())


def test_ids_unique_across_many_connections(probe):
    async def one():
        ws = await connect(probe.port)
        hello = await recv_json(ws)
        assert hello.get("event") == "hello", hello
        return ws, hello["id"]

    async def main():
        pairs = await asyncio.gather(*(one() for _ in range(30)))
        ids = [cid for _, cid in pairs]
        assert len(set(ids)) == 30, ids
        assert all(isinstance(i, int) and i > 0 for i in ids), ids
        last, lid = await join(probe.port)  # the newest client gets no open events after its hello
        assert lid not in ids
        assert await ask(last, "count") == {"count": 31}
        await asyncio.gather(*(ws.close() for ws, _ in pairs), last.close())
    run(main(), timeout=120)


def test_refuse_several_addresses(shoal):
    srv = shoal("--handler", "probe", "--refuse-address", "127.0.0.2", "--refuse-address", "127.0.0.3")

    async def main():
        await expect_refused(srv.port, "/", source="127.0.0.2", status=403)
        await expect_refused(srv.port, "/", source="127.0.0.3", status=403)
        ws, _ = await join(srv.port, source="127.0.0.4")
        assert await ask(ws, "remote") == {"remote": "127.0.0.4"}
        await ws.close()
    run(main())


def test_probe_with_path(shoal):
    srv = shoal("--handler", "probe", "--path", "/api/ws")

    async def main():
        ws, _ = await join(srv.port, "/api/ws?k=v%2Bw")
        assert await ask(ws, "url") == {"url": "/api/ws?k=v%2Bw"}
        assert await ask(ws, "query") == {"query": [["k", "v+w"]]}
        await expect_refused(srv.port, "/api/other", status=404)
        await ws.close()
    run(main())


def test_say_relays_to_the_others_and_silent_clients_are_not_announced(probe):
    """`say TEXT` reaches every other connection as the chat handler does; a `?silent` client's
    open and terminate are not told (test_chaos.py runs 500 of them)."""
    async def main():
        a, aid = await join(probe.port)
        b, bid = await join(probe.port)
        assert (await recv_json(a)) == {"event": "open", "id": bid}
        quiet, qid = await join(probe.port, "/?silent")
        await quiet.send("say hello from quiet")
        assert await recv(a) == "hello from quiet"  # not an "open" event first: it was not announced
        assert await recv(b) == "hello from quiet"
        await b.send("say two words")
        assert await recv(a) == "two words"
        assert await recv(quiet) == "two words"
        await quiet.close()
        # the next thing a and b get is their answer, not quiet's terminate event
        assert await ask(a, "id") == {"id": aid}
        assert await ask(b, "id") == {"id": bid}
        await asyncio.gather(a.close(), b.close())
    run(main())


def test_broadcast_json_reaches_every_client_as_json_text(probe):
    """wss.broadcast(JSONValue): one JSON text frame for every client, the sender included."""
    async def main():
        a, ida = await join(probe.port)
        b, idb = await join(probe.port)
        await next_event(a, "open", idb)
        await a.send("broadcast-json")
        for ws in (a, b):
            got = await recv(ws)
            assert isinstance(got, str), got
            assert json.loads(got) == {"event": "broadcast", "from": ida}
        for ws in (a, b):
            await ws.close()
    run(main())


async def server_errors(ws):
    return (await ask(ws, "server-errors"))["serverErrors"]


def expect_server_error(entry, err_code, status):
    """One onError event of the server: 4D's shape plus the HTTP status."""
    assert entry["status"] == status, entry
    assert entry["statusText"].startswith(f"{status} ") if status else entry["statusText"], entry
    assert len(entry["errors"]) == 1, entry
    error = entry["errors"][0]
    assert error["errCode"] == err_code and error["componentSignature"] == "shoal" and error["message"], entry


def test_refusals_reach_the_server_on_error(shoal):
    """403 origin, 403 by onConnection, 404 path, 400 bad handshake: each reaches the server's onError."""
    srv = shoal("--handler", "probe", "--path", "/p", "--workers", "1", "--allow-origin", "https://ok.example")

    async def main():
        obs, _ = await join(srv.port, "/p")
        assert await server_errors(obs) == []
        evil = upgrade_request(srv.port, "/p", extra=[("Origin", "https://evil.example")])
        assert http_raw(srv.port, evil).status == 403
        await expect_refused(srv.port, "/p?refuse")
        assert http_raw(srv.port, upgrade_request(srv.port, "/nowhere")).status == 404
        assert http_raw(srv.port, upgrade_request(srv.port, "/p", version="8")).status == 426
        errors = await server_errors(obs)
        assert len(errors) == 4, errors
        for entry, (code, status) in zip(errors, [(1, 403), (2, 403), (3, 404), (9, 426)]):
            expect_server_error(entry, code, status)
        assert "evil.example" in errors[0]["errors"][0]["message"], errors[0]
        assert "/nowhere" in errors[2]["errors"][0]["message"], errors[2]
        await obs.close()
    run(main())


def test_limits_reach_the_server_on_error(shoal):
    """429 per address and 503 full (worker and registry) reach the server's onError."""
    per_address = shoal("--handler", "probe", "--workers", "1", "--max-connections-per-address", "2")
    full = shoal("--handler", "probe", "--workers", "1", "--max-connections", "2")
    registry = shoal("--handler", "probe", "--workers", "1", "--registry-capacity", "4")

    async def main():
        for srv, code, status in [(per_address, 5, 429), (full, 6, 503), (registry, 7, 503)]:
            obs, _ = await join(srv.port)
            other, oid = await join(srv.port)
            await next_event(obs, "open", oid)
            await expect_refused(srv.port, status=status)
            errors = await server_errors(obs)
            assert len(errors) == 1, errors
            expect_server_error(errors[0], code, status)
            await other.close()
            await obs.close()
    run(main())


def test_request_timeout_reaches_the_server_on_error(shoal):
    srv = shoal("--handler", "probe", "--workers", "1", "--request-timeout", "0.3")

    async def main():
        obs, _ = await join(srv.port)
        slow = RawConn(srv.port)
        slow.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert slow.read_response().status == 408
        errors = await server_errors(obs)
        assert len(errors) == 1, errors
        expect_server_error(errors[0], 4, 408)
        await obs.close()
    run(main())


@pytest.mark.parametrize("offer, chosen", [(["probe.v1"], "probe.v1"), (["mqtt", "probe.v1"], "probe.v1"),
                                           (["mqtt"], None), (None, None)])
def test_subprotocol_chosen_from_the_offer(probe, offer, chosen):
    """onConnection picks probe.v1 when offered (RFC 6455 §4.2.2): the 101 names it and
    ws.protocol tells it; other offers, or none, connect without a subprotocol."""
    async def main():
        kw = {"subprotocols": offer} if offer else {}
        ws, _ = await join(probe.port, **kw)
        assert ws.subprotocol == chosen
        assert await ask(ws, "protocol") == {"protocol": chosen}
        await ws.close()
    run(main())


def test_subprotocol_from_node_client(probe):
    """An independent client (Node ws) sees the chosen subprotocol too."""
    got = run_node("client.js", "subprotocol", ws_url(probe.port), "other,probe.v1")
    assert got == {"open": True, "extensions": got.get("extensions"), "protocol": "probe.v1",
                   "answer": {"protocol": "probe.v1"}, "close": got.get("close")}, got


def test_async_send_after_the_client_left_is_a_no_op(probe):
    """A handler's Task sends after an await: to a client still there the message arrives
    (result "queued"); to one that left meanwhile nothing is sent (result "closed") and the
    worker goes on serving."""
    async def main():
        obs, _ = await join(probe.port)
        stays, sid = await join(probe.port)
        await next_event(obs, "open", sid)
        await stays.send("later 200 hello")
        assert await recv(stays) == "hello"
        m, _ = await next_event(obs, "later", sid)
        assert m == {"event": "later", "id": sid, "result": "queued"}, m

        leaves, lid = await join(probe.port)
        await next_event(obs, "open", lid)
        await leaves.send("later 300 too-late")
        await leaves.close()
        m, _ = await next_event(obs, "later", lid, skip=("terminate",))
        assert m == {"event": "later", "id": lid, "result": "closed"}, m
        assert await ask(obs, "count") == {"count": 2}
        for ws in (obs, stays):
            await ws.close()
    run(main())
