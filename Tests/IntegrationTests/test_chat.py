"""The chat handler (the 4D documentation's chat example)."""

import asyncio

from helpers import connect, expect_refused, recv, run

WELCOME = "Welcome on the chat!"
JOINED = "New client connected"
LEFT = "Client disconnected"


def test_chat_three_clients(shoal):
    srv = shoal("--handler", "chat", "--path", "/chat")

    async def main():
        c1 = await connect(srv.port, "/chat")
        assert await recv(c1) == WELCOME

        c2 = await connect(srv.port, "/chat")
        assert await recv(c2) == WELCOME
        assert await recv(c1) == JOINED

        c3 = await connect(srv.port, "/chat")
        assert await recv(c3) == WELCOME
        assert await recv(c1) == JOINED
        assert await recv(c2) == JOINED

        # a message goes to every other client, not back to the sender
        await c1.send("hi from 1")
        assert await recv(c2) == "hi from 1"
        assert await recv(c3) == "hi from 1"
        await c2.send("hi from 2")
        # c1's next message is c2's: it did not get its own "hi from 1" back
        assert await recv(c1) == "hi from 2"
        assert await recv(c3) == "hi from 2"
        await c3.send(b"binary from 3")
        got1, got2 = await recv(c1), await recv(c2)
        assert got1 == got2 and got1 in (b"binary from 3", "binary from 3")

        await c3.close()
        assert await recv(c1) == LEFT
        assert await recv(c2) == LEFT

        # and the two left still talk; c2 did not see its own message nor c1's twice
        await c1.send("still here")
        assert await recv(c2) == "still here"
        await c2.send("me too")
        assert await recv(c1) == "me too"
        await c1.close()
        assert await recv(c2) == LEFT
        await c2.close()
    run(main())


def test_chat_many_clients_broadcast(shoal):
    """Enough clients that, with several workers, they land on different ones."""
    srv = shoal("--handler", "chat", "--path", "/chat")
    n = 8

    async def main():
        clients = []
        for i in range(n):
            c = await connect(srv.port, "/chat")
            assert await recv(c) == WELCOME
            for other in clients:
                assert await recv(other) == JOINED
            clients.append(c)
        for i, c in enumerate(clients):
            await c.send(f"from {i}")
            for j, other in enumerate(clients):
                if j != i:
                    assert await recv(other) == f"from {i}"
        # nobody got anything else (in particular not its own message)
        for i, c in enumerate(clients):
            await clients[(i + 1) % n].send(f"marker for {i}")
            for j, other in enumerate(clients):
                if j != (i + 1) % n:
                    assert await recv(other) == f"marker for {i}"
        await asyncio.gather(*(c.close() for c in clients))
    run(main(), timeout=120)


def test_chat_unknown_path_404(shoal):
    srv = shoal("--handler", "chat", "--path", "/chat")
    run(expect_refused(srv.port, "/other", status=404))


def test_chat_refuse_address(shoal):
    srv = shoal("--handler", "chat", "--path", "/chat", "--refuse-address", "127.0.0.1")
    run(expect_refused(srv.port, "/chat", status=403))


def test_chat_refuse_address_other_client_accepted(shoal):
    srv = shoal("--handler", "chat", "--path", "/chat", "--refuse-address", "127.0.0.2")

    async def main():
        await expect_refused(srv.port, "/chat", source="127.0.0.2", status=403)
        async with await connect(srv.port, "/chat", source="127.0.0.3") as ws:
            assert await recv(ws) == WELCOME
    run(main())
