"""The three timing defects of the old client, over real loopback sockets.

Each server is a raw asyncio server, so that it can do what a scripted one cannot:
read a whole pipelined group and drop the connection (Postfix holds pipelined replies
until it has read the group), stop reading in the middle of a large DATA, or send one
reply too many after a transaction.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

import smtpx
from smtpx import RetryPolicy, VirtualClock

PLAIN = {"tls": "none", "local_hostname": "client.test", "timeout": 5}
HEAD = b"From: a@example.com\r\nTo: b@example.com\r\n\r\n"

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def listen(serve: Serve, *, receive_buffer: int | None = None) -> asyncio.Server:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if receive_buffer is not None:  # inherited by accepted sockets: the stall comes early
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.bind(("127.0.0.1", 0))
    return await asyncio.start_server(serve, sock=sock, limit=2**20)


def port_of(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


@pytest.fixture
async def servers() -> AsyncIterator[list[asyncio.Server]]:
    started: list[asyncio.Server] = []
    yield started
    for server in started:
        server.close()


async def test_a_loss_after_a_pipelined_bdat_is_never_resent(
    servers: list[asyncio.Server],
) -> None:
    # PIPELINING + CHUNKING: MAIL, RCPT and BDAT n LAST with the message go in one
    # write.  The server reads all of it, and drops the connection before replying.
    transactions = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal transactions
        writer.write(b"220 hold.test ESMTP\r\n")
        while line := await reader.readline():
            if line.startswith(b"EHLO"):
                writer.write(b"250-hold.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
            elif line.startswith(b"BDAT"):
                await reader.readexactly(int(line.split()[1]))
                transactions += 1  # the whole message and its end arrived
                writer.transport.abort()
                return

    server = await listen(serve)
    servers.append(server)
    client = smtpx.Client("127.0.0.1", port_of(server), **PLAIN)  # type: ignore[arg-type]
    policy = RetryPolicy.for_testing(VirtualClock(), attempts=3)
    with pytest.raises(smtpx.DeliveryUnknown) as info:
        await client.send(HEAD + b"hello\r\n", retry=policy)
    assert transactions == 1  # never sent again
    assert not smtpx.is_retryable(info.value)
    assert info.value.undelivered == ("b@example.com",)
    await client.quit()


async def test_a_server_that_stops_reading_mid_data_leaves_the_message_retryable(
    servers: list[asyncio.Server],
) -> None:
    # 354, then nothing more is read: the final "." never leaves the client.
    stalled = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 stall.test ESMTP\r\n")
        while line := await reader.readline():
            if line.startswith(b"EHLO"):
                writer.write(b"250-stall.test\r\n250 PIPELINING\r\n")
            elif line.startswith(b"DATA"):
                writer.write(b"354 go ahead\r\n")
                stalled.set()
                await asyncio.sleep(3600)  # never reads again; cancelled at the end
            elif line.startswith((b"MAIL", b"RCPT")):
                writer.write(b"250 ok\r\n")

    server = await listen(serve, receive_buffer=4096)
    servers.append(server)
    message = HEAD + (b"0123456789abcdef" * 4 + b"\r\n") * 160 * 1024  # 10 MiB
    client = smtpx.Client(
        "127.0.0.1",
        port_of(server),
        total_timeout=0.5,  # small, to stay fast; a stall of the same kind as 2 s
        **PLAIN,  # type: ignore[arg-type]
    )
    with pytest.raises(smtpx.ResponseTimeout) as info:
        await client.send(message)
    assert stalled.is_set()
    error = info.value
    assert "total_timeout" in str(error)
    assert error.retryable and not isinstance(error, smtpx.DeliveryUnknown)
    assert error.undelivered == ("b@example.com",)
    assert client.verdict is not None and client.verdict.unknown == ()
    assert not client.connected


async def test_an_extra_reply_after_a_transaction_never_shifts_the_next_one(
    servers: list[asyncio.Server],
) -> None:
    # No PIPELINING.  After the first message's 250, one extra 250; then the next
    # message goes to good1, bad2, good3, and only bad2 is refused by the server.
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 extra.test ESMTP\r\n")
        in_data = False
        messages = 0
        while line := await reader.readline():
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    messages += 1
                    extra = b"250 2.0.0 one too many\r\n" if messages == 1 else b""
                    writer.write(b"250 2.0.0 queued\r\n" + extra)
            elif line.startswith(b"EHLO"):
                writer.write(b"250 extra.test\r\n")
            elif line.startswith(b"RCPT") and b"bad2@" in line:
                writer.write(b"550 5.1.1 no such user\r\n")
            elif line.startswith(b"DATA"):
                in_data = True
                writer.write(b"354 go ahead\r\n")
            elif line.startswith(b"QUIT"):
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"250 ok\r\n")
        writer.close()

    server = await listen(serve)
    servers.append(server)
    async with smtpx.Client("127.0.0.1", port_of(server), **PLAIN) as client:  # type: ignore[arg-type]
        first = await client.send(HEAD + b"one\r\n")
        assert first.accepted == ("b@example.com",)
        second = await client.send(
            HEAD + b"two\r\n",
            recipients=["good1@example.com", "bad2@example.com", "good3@example.com"],
        )
    assert second.accepted == ("good1@example.com", "good3@example.com")
    assert set(second.rejected) == {"bad2@example.com"}
    assert type(second.rejected["bad2@example.com"]) is smtpx.NoSuchMailbox
