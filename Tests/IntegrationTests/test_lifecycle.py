"""Process lifecycle: graceful stop on SIGTERM/SIGINT (close 1001 to every client, exit 0)."""

import asyncio
import signal

import pytest

from helpers import RawWS, chat_pair, connect, expect_closed, recv, run


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_closes_clients_with_1001_and_exits_0(shoal, sig):
    srv = shoal("--handler", "echo")

    async def main():
        a = await connect(srv.port, "/a")
        b = await connect(srv.port, "/b")
        for ws in (a, b):  # both really connected and served
            await ws.send("ping")
            assert await recv(ws) == "ping"
        srv.signal(sig)
        ca, cb = await asyncio.gather(expect_closed(a, 20), expect_closed(b, 20))
        assert ca[0] == 1001, f"client a saw close {ca}"
        assert cb[0] == 1001, f"client b saw close {cb}"
    run(main())
    rc = srv.wait(20)
    assert rc == 0, f"exit status {rc}\n{srv.log()}"


def test_sigterm_with_chat_clients_and_raw_client(shoal):
    srv = shoal("--handler", "chat", "--path", "/chat")

    async def main():
        a, raw = await chat_pair(srv.port)
        srv.signal(signal.SIGTERM)
        code, _ = await expect_closed(a, 20)
        assert code == 1001
        # the raw client gets a close frame 1001 too (possibly after "Client disconnected" messages)
        while True:
            f = await asyncio.to_thread(raw.recv_frame)
            if f.opcode == 8:
                assert f.close_code == 1001, f
                break
        raw.send_close(1001)
        raw.close()
    run(main())
    assert srv.wait(20) == 0, srv.log()


def test_sigterm_idle_server_exits_0(shoal):
    srv = shoal("--handler", "probe")
    srv.signal(signal.SIGTERM)
    assert srv.wait(20) == 0, srv.log()


def test_sigterm_as_soon_as_the_port_accepts(shoal):
    """The port accepting is the readiness signal: a SIGTERM from then on must be a
    graceful stop (exit 0), not the default action of the signal (killed, status -15)."""
    for i in range(10):
        srv = shoal("--handler", "echo", poll=0.001)  # notice the port as early as possible
        srv.signal(signal.SIGTERM)
        rc = srv.wait(20)
        assert rc == 0, f"attempt {i}: exit status {rc} (negative = killed by that signal)\n{srv.log()}"


def test_stop_while_http_keepalive_open(shoal):
    """An idle keep-alive HTTP connection must not hold the shutdown forever."""
    from helpers import RawConn
    srv = shoal("--handler", "echo", "--path", "/ws")
    c = RawConn(srv.port)
    c.send(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n\r\n".encode())
    assert c.read_response().status == 200
    srv.signal(signal.SIGTERM)
    assert srv.wait(30) == 0, srv.log()
    c.close()
