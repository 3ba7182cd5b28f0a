"""PIPELINING (RFC 2920): one write for MAIL, every RCPT and DATA; each reply judged alone."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from rawserver import RawServer

import smtpx
from smtpx.testing import ScriptedServer

PLAIN: dict[str, Any] = {"tls": smtpx.TLSMode.NONE, "local_hostname": "client.test"}
MESSAGE = b"From: a@example.com\r\nTo: x@example.com\r\nSubject: p\r\n\r\nbody\r\n"
RECIPIENTS = [f"user{i}@example.com" for i in range(6)]


async def test_partial_refusals_stay_exact_per_recipient(caplog: pytest.LogCaptureFixture) -> None:
    async with ScriptedServer(pipelining=True) as server:
        server.on("RCPT", match="user1@", reply="550 5.1.1 No such user")
        server.on("RCPT", match="user4@", reply="450 4.2.1 Busy")
        async with smtpx.Client(server.host, server.port, transcript=True, **PLAIN) as client:
            assert client.pipelining
            with caplog.at_level(logging.DEBUG, logger="smtpx.transcript"):
                result = await client.send(MESSAGE, recipients=RECIPIENTS)
    assert result.accepted == tuple(
        r for r in RECIPIENTS if r not in ("user1@example.com", "user4@example.com")
    )
    assert type(result.rejected["user1@example.com"]) is smtpx.NoSuchMailbox
    assert type(result.rejected["user4@example.com"]) is smtpx.MailboxBusy
    assert result.rejected["user4@example.com"].recipient == "user4@example.com"
    assert server.messages[0].rcpt_tos == result.accepted
    # all commands went out before the first reply was read
    sent = [r.getMessage() for r in caplog.records if r.getMessage().startswith(">>>")]
    replies = [i for i, r in enumerate(caplog.records) if r.getMessage().startswith("<<< 250")]
    mail_at = next(i for i, r in enumerate(caplog.records) if "MAIL FROM" in r.getMessage())
    data_at = next(i for i, r in enumerate(caplog.records) if r.getMessage() == ">>> DATA")
    assert data_at - mail_at == len(RECIPIENTS) + 1
    assert any(mail_at < i for i in replies) and sent


async def test_refused_sender_is_the_error_not_the_following_503s() -> None:
    async with ScriptedServer(pipelining=True) as server:
        server.on("MAIL", reply="553 5.1.8 Sender rejected")
        with pytest.raises(smtpx.MailboxNameInvalid) as info:
            await smtpx.send(
                MESSAGE, host=server.host, port=server.port, recipients=RECIPIENTS, **PLAIN
            )
    assert info.value.command is smtpx.Command.MAIL
    assert info.value.undelivered == tuple(RECIPIENTS)
    assert server.messages == []


async def test_all_refused_but_data_accepted_ends_data_empty() -> None:
    # a careless server answers 354 although no recipient was accepted
    async with (
        RawServer(pipelining=True, rcpt_reply=b"550 5.1.1 No such user\r\n") as server,
        smtpx.Client(server.host, server.port, **PLAIN) as client,
    ):
        with pytest.raises(smtpx.AllRecipientsRejected) as info:
            await client.send(MESSAGE, recipients=RECIPIENTS[:2])
        assert set(info.value.rejected) == set(RECIPIENTS[:2])
        assert client.connected  # still in step
        await client.noop()
    assert server.message_bodies() == [b".\r\n"]  # nothing of the message was sent
    # the reply to the "." ended the transaction (RFC 5321 §4.1.1.4): no RSET after it
    assert server.commands()[-3:] == [b"DATA", b"NOOP", b"QUIT"]


async def test_421_in_the_middle_raises_service_unavailable() -> None:
    async with ScriptedServer(pipelining=True) as server:
        server.on("RCPT", match="user2@", reply="421 4.3.2 Closing", close=True)
        with pytest.raises(smtpx.ServiceUnavailable) as info:
            await smtpx.send(
                MESSAGE, host=server.host, port=server.port, recipients=RECIPIENTS, **PLAIN
            )
    assert info.value.recipient == "user2@example.com"
    assert set(info.value.undelivered) | set(info.value.rejected) == set(RECIPIENTS)
    assert server.messages == []


async def test_falls_back_to_lock_step_without_pipelining() -> None:
    async with ScriptedServer(pipelining=False) as server:
        server.on("RCPT", match="user1@", reply="550 5.1.1 No such user")
        async with smtpx.Client(server.host, server.port, **PLAIN) as client:
            assert not client.pipelining
            result = await client.send(MESSAGE, recipients=RECIPIENTS[:3])
    assert result.accepted == ("user0@example.com", "user2@example.com")
    assert set(result.rejected) == {"user1@example.com"}
