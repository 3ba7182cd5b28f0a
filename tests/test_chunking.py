"""CHUNKING (RFC 3030): the message as one ``BDAT <size> LAST`` chunk when the server offers it.

Against the scripted aiosmtpd server (``ScriptedServer(chunking=True)``) for
replies and the raw server for the exact octets; the fault matrix runs the
same path against Postfix.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from rawserver import RawServer

import smtpx
from smtpx import Command, RetryPolicy, VirtualClock
from smtpx.protocol import CHUNK_IN_PIPELINE
from smtpx.testing import ScriptedServer

PLAIN: dict[str, Any] = {"tls": smtpx.TLSMode.NONE, "local_hostname": "client.test"}
# Date and Message-ID of their own: smtpx adds none, so what is sent is what is given
STAMP = b"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\nMessage-ID: <fixture@example.com>\r\n"
HEAD = (
    b"From: a@example.com\r\nTo: b@example.com, c@example.com\r\nBcc: d@example.com\r\n"
    + STAMP
    + b"\r\n"
)
BODY = b".leading dot\nbare LF\r\nend\r\n"
SENT = b"From: a@example.com\r\nTo: b@example.com, c@example.com\r\n" + STAMP + b"\r\n"
SENT_BODY = b".leading dot\r\nbare LF\r\nend\r\n"  # normalised, not dot-stuffed


@pytest.fixture(params=[True, False], ids=["pipelined", "lock-step"])
def pipelining(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
async def server(pipelining: bool) -> AsyncIterator[ScriptedServer]:
    async with ScriptedServer(chunking=True, pipelining=pipelining) as scripted:
        yield scripted


async def test_the_message_goes_as_one_bdat_chunk(pipelining: bool) -> None:
    async with (
        RawServer(chunking=True, pipelining=pipelining) as server,
        smtpx.Client(server.host, server.port, **PLAIN) as client,
    ):
        assert client.uses_chunking
        result = await client.send(HEAD + BODY)
    assert result.accepted == ("b@example.com", "c@example.com", "d@example.com")
    assert result.reply.code == 250
    size = len(SENT + SENT_BODY)
    assert server.commands()[1:] == [
        f"MAIL FROM:<a@example.com> SIZE={size}".encode(),
        b"RCPT TO:<b@example.com>",
        b"RCPT TO:<c@example.com>",
        b"RCPT TO:<d@example.com>",
        f"BDAT {size} LAST".encode(),
        b"QUIT",
    ]
    assert server.chunks() == [SENT + SENT_BODY]  # Bcc gone, no dot-stuffing, exact size


async def test_chunking_false_keeps_data(pipelining: bool) -> None:
    async with (
        RawServer(chunking=True, pipelining=pipelining) as server,
        smtpx.Client(server.host, server.port, chunking=False, **PLAIN) as client,
    ):
        assert not client.uses_chunking
        await client.send(HEAD + BODY)
    assert b"DATA" in server.commands()
    assert server.chunks() == []
    assert server.message_bodies() == [SENT + b"." + SENT_BODY + b".\r\n"]


async def test_partial_refusal_stays_exact(server: ScriptedServer) -> None:
    server.on("RCPT", reply="550 5.1.1 <c@example.com>: no such user", match="c@")
    async with smtpx.Client(server.host, server.port, **PLAIN) as client:
        result = await client.send(HEAD + BODY)
        assert result.accepted == ("b@example.com", "d@example.com")
        assert isinstance(result.rejected["c@example.com"], smtpx.NoSuchMailbox)
        assert (await client.noop()).code == 250  # still in step
    (received,) = server.messages
    assert received.rcpt_tos == ("b@example.com", "d@example.com")
    assert received.data == SENT + SENT_BODY


async def test_all_refused_reports_the_refusals_not_the_bdat_reply(
    server: ScriptedServer, pipelining: bool
) -> None:
    server.on("RCPT", reply="550 5.1.1 no such user")
    async with smtpx.Client(server.host, server.port, **PLAIN) as client:
        with pytest.raises(smtpx.AllRecipientsRejected) as caught:
            await client.send(HEAD + BODY)
        assert set(caught.value.rejected) == {
            "b@example.com",
            "c@example.com",
            "d@example.com",
        }
        assert caught.value.undelivered == ()
        server.clear()
        result = await client.send(HEAD + BODY)  # the session is still in step
        assert len(result.accepted) == 3
    assert len(server.messages) == 1
    chunks = [line for line in server.transcript if line.startswith(b"BDAT")]
    # pipelined, the small message went with the RCPTs (the server read and refused it);
    # lock-step, nothing is sent once every RCPT was refused
    assert len(chunks) == (2 if pipelining else 1)


async def test_a_refused_sender_is_raised_and_the_session_kept(server: ScriptedServer) -> None:
    server.on("MAIL", reply="550 5.7.1 sender blocked", times=1)
    async with smtpx.Client(server.host, server.port, **PLAIN) as client:
        with pytest.raises(smtpx.MailboxUnavailable) as caught:
            await client.send(HEAD + BODY)
        assert caught.value.command is Command.MAIL
        assert len((await client.send(HEAD + BODY)).accepted) == 3
    assert len(server.messages) == 1


async def test_a_bdat_refusal_is_typed_and_names_bdat(server: ScriptedServer) -> None:
    server.on("BDAT", reply="452 4.3.1 Insufficient system storage")
    async with smtpx.Client(server.host, server.port, **PLAIN) as client:
        with pytest.raises(smtpx.InsufficientStorage) as caught:
            await client.send(HEAD + BODY)
    error = caught.value
    assert error.command is Command.BDAT and error.retryable
    assert "BDAT LAST" in str(error)
    assert error.undelivered == ("b@example.com", "c@example.com", "d@example.com")
    assert server.messages == []


async def test_a_loss_after_the_chunk_is_delivery_unknown(server: ScriptedServer) -> None:
    server.on("BDAT", close=True, record=True)  # accepted, then the reply was lost
    client = smtpx.Client(server.host, server.port, **PLAIN)
    with pytest.raises(smtpx.DeliveryUnknown) as caught:
        await client.send(HEAD + BODY)
    assert caught.value.command is Command.BDAT
    assert len(server.messages) == 1  # which is why it is not retried by default


async def test_a_large_message_waits_for_a_recipient_before_its_chunk() -> None:
    body = b"0123456789abcdef\r\n" * (CHUNK_IN_PIPELINE // 16)
    refusing = RawServer(chunking=True, pipelining=True, rcpt_reply=b"550 5.1.1 no\r\n")
    async with refusing as server, smtpx.Client(server.host, server.port, **PLAIN) as client:
        with pytest.raises(smtpx.AllRecipientsRejected):
            await client.send(HEAD + body)
    assert not any(line.startswith(b"BDAT") for line in server.commands())
    accepting = RawServer(chunking=True, pipelining=True)
    async with accepting as server, smtpx.Client(server.host, server.port, **PLAIN) as client:
        result = await client.send(HEAD + body)
    assert len(result.accepted) == 3
    assert server.chunks() == [SENT + body]


async def test_a_loss_mid_chunk_is_connection_lost_not_delivery_unknown() -> None:
    body = b"0123456789abcdef\r\n" * 400_000  # 7 MiB: more than the socket buffers hold
    async with RawServer(chunking=True, pipelining=True, drop_after=64 * 1024) as server:
        client = smtpx.Client(server.host, server.port, **PLAIN)
        with pytest.raises(smtpx.ConnectionLost) as caught:
            await client.send(HEAD + body)
    assert not isinstance(caught.value, smtpx.DeliveryUnknown)
    assert caught.value.command is Command.BDAT
    assert caught.value.undelivered == ("b@example.com", "c@example.com", "d@example.com")


async def test_bdat_needs_chunking_offered() -> None:
    async with ScriptedServer() as server, smtpx.Client(server.host, server.port, **PLAIN) as c:
        assert not c.uses_chunking
        with pytest.raises(smtpx.ExtensionRequired, match="CHUNKING"):
            await c.bdat(b"Subject: x\r\n\r\nx\r\n")


async def test_retry_resends_only_to_the_deferred_over_bdat() -> None:
    async with ScriptedServer(chunking=True) as server:
        server.on("RCPT", reply="451 4.7.1 greylisted", match="c@", times=1)
        retry = RetryPolicy.for_testing(VirtualClock())
        result = await smtpx.send(
            HEAD + BODY, host=server.host, port=server.port, retry=retry, **PLAIN
        )
    assert set(result.accepted) == {"b@example.com", "c@example.com", "d@example.com"}
    assert [m.rcpt_tos for m in server.messages] == [
        ("b@example.com", "d@example.com"),
        ("c@example.com",),
    ]


async def test_the_scripted_server_joins_chunks_and_stays_in_step() -> None:
    # smtpx sends one chunk; the test server must handle what other clients send too
    async with ScriptedServer(chunking=True) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)

        async def say(data: bytes) -> bytes:
            writer.write(data)
            reply = b""
            while reply[3:4] != b" ":
                reply = await reader.readline()
            return reply[:3]

        assert (await reader.readline())[:3] == b"220"
        assert await say(b"EHLO client.test\r\n") == b"250"
        assert await say(b"BDAT 4 LAST\r\nNOOP") == b"503"  # read, not run: no MAIL yet
        assert await say(b"MAIL FROM:<a@example.com>\r\n") == b"250"
        assert await say(b"RCPT TO:<b@example.com>\r\n") == b"250"
        assert await say(b"BDAT 14\r\nSubject: x\r\n\r\n") == b"250"
        assert await say(b"BDAT 8 LAST\r\n.hello\r\n") == b"250"
        assert await say(b"BDAT x LAST\r\n") == b"501"
        assert await say(b"QUIT\r\n") == b"221"
        writer.close()
    (received,) = server.messages
    assert received.data == b"Subject: x\r\n\r\n.hello\r\n"  # chunks are never unstuffed
    assert b"NOOP" not in server.transcript
