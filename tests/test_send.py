"""``send()`` end to end: envelopes from headers, partial refusal, every recipient accounted
for, checks made before anything is sent, delivery unknown, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from email.message import EmailMessage
from typing import Any

import pytest

import smtpx
from smtpx import Command
from smtpx.testing import ScriptedServer

PLAIN: dict[str, Any] = {"tls": smtpx.TLSMode.NONE, "local_hostname": "client.test", "timeout": 5}
# Date and Message-ID of their own: smtpx adds none, so what is sent is what is given
STAMP = b"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\nMessage-ID: <fixture@example.com>\r\n"
HEAD = (
    b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: hi\r\n" + STAMP + b"\r\n"
)
MESSAGE = HEAD + b"Hello.\r\n"
TO_THREE = (
    b"From: alice@example.com\r\n"
    b"To: Bob <bob@example.com>, carol@example.com\r\n"
    b"Cc: dave@example.com\r\n"
    b"Subject: three\r\n" + STAMP + b"\r\nHello all.\r\n"
)
THREE = ("bob@example.com", "carol@example.com", "dave@example.com")


def client_for(server: ScriptedServer, **options: Any) -> smtpx.Client:
    return smtpx.Client(server.host, server.port, **{**PLAIN, **options})


def verbs(server: ScriptedServer) -> list[bytes]:
    return [line.split(b" ")[0].upper() for line in server.transcript]


def assert_all_accounted(
    recipients: Iterable[str],
    result: smtpx.SendResult | None = None,
    error: smtpx.SMTPError | None = None,
) -> None:
    """No recipient vanished: each accepted, refused, or undelivered because of ``error``."""
    wanted = set(recipients)
    seen: list[str] = []
    if result is not None:
        seen += [*result.accepted, *result.rejected]
    if error is not None:
        seen += [*error.rejected, *error.undelivered]
    assert sorted(seen) == sorted(wanted), (seen, wanted)  # each exactly once


# -- the envelope -------------------------------------------------------------------------


async def test_sender_and_recipients_from_headers(mx: ScriptedServer) -> None:
    async with client_for(mx) as client:
        result = await client.send(TO_THREE)
    assert result.accepted == THREE and result.rejected == {} and result.all_accepted
    assert isinstance(result.reply, smtpx.Reply) and result.reply.code == 250
    (received,) = mx.messages
    assert received.mail_from == "alice@example.com"
    assert received.rcpt_tos == THREE
    assert received.data == TO_THREE


async def test_sender_header_wins_over_from(server: ScriptedServer) -> None:
    message = b"Sender: list@example.com\r\n" + MESSAGE
    await smtpx.send(message, host=server.host, port=server.port, **PLAIN)
    assert server.messages[0].mail_from == "list@example.com"


@pytest.mark.parametrize("header", [b"Bcc", b"BCC", b"bcc"])
async def test_bcc_is_a_recipient_but_never_transmitted(
    server: ScriptedServer, header: bytes
) -> None:
    message = (
        HEAD.replace(
            b"Subject:", header + b": secret@example.com,\r\n other@example.com\r\nSubject:"
        )
        + b"Body mentions nobody.\r\n"
    )
    result = await smtpx.send(message, host=server.host, port=server.port, **PLAIN)
    assert result.accepted == ("bob@example.com", "secret@example.com", "other@example.com")
    (received,) = server.messages
    assert received.rcpt_tos == result.accepted
    assert b"secret@" not in received.data and b"other@" not in received.data
    assert b"bcc" not in received.data.lower()
    assert received.data.startswith(b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\n")
    assert received.subject == "hi"


async def test_bcc_of_an_email_message_is_never_transmitted(server: ScriptedServer) -> None:
    message = EmailMessage()
    message["From"] = "alice@example.com"
    message["To"] = "bob@example.com"
    message["Bcc"] = "secret@example.com"
    message["Subject"] = "hidden copy"
    message.set_content("Hello.\n")
    result = await smtpx.send(message, host=server.host, port=server.port, **PLAIN)
    assert result.accepted == ("bob@example.com", "secret@example.com")
    assert b"secret@" not in server.messages[0].data
    assert message["Bcc"] == "secret@example.com"  # the caller's message is left alone


async def test_explicit_sender_and_recipients_override_headers(mx: ScriptedServer) -> None:
    async with client_for(mx) as client:
        result = await client.send(
            TO_THREE, sender="bounces@example.com", recipients=["zed@example.org"]
        )
    assert result.accepted == ("zed@example.org",)
    (received,) = mx.messages
    assert received.mail_from == "bounces@example.com"
    assert received.rcpt_tos == ("zed@example.org",)
    assert received.data == TO_THREE  # headers untouched


async def test_null_sender_and_duplicate_recipients(server: ScriptedServer) -> None:
    async with client_for(server) as client:
        result = await client.send(
            MESSAGE, sender="", recipients=["bob@example.com", "bob@example.com"]
        )
    assert result.accepted == ("bob@example.com",)
    assert b"MAIL FROM:<>" in server.transcript
    assert server.transcript.count(b"RCPT TO:<bob@example.com>") == 1


@pytest.mark.parametrize("kind", ["bytes", "str", "EmailMessage"])
async def test_message_kinds(server: ScriptedServer, kind: str) -> None:
    text = (
        "From: alice@example.com\nTo: bob@example.com\nSubject: kinds\n\nline one\n.\nline two\n"
    )
    message: bytes | str | EmailMessage
    if kind == "bytes":
        message = text.encode()
    elif kind == "str":
        message = text
    else:
        message = EmailMessage()
        message["From"] = "alice@example.com"
        message["To"] = "bob@example.com"
        message["Subject"] = "kinds"
        message.set_content("line one\n.\nline two\n")
    result = await smtpx.send(message, host=server.host, port=server.port, **PLAIN)
    assert result.accepted == ("bob@example.com",)
    (received,) = server.messages
    assert received.subject == "kinds"
    assert received.text.replace("\r\n", "\n") == "line one\n.\nline two\n"
    # the lone "." was dot-stuffed on the wire and arrived as content, not an end of DATA
    assert b"\r\n.\r\nline two\r\n" in received.data
    assert verbs(server).count(b"MAIL") == 1


async def test_dot_lines_arrive_intact(server: ScriptedServer) -> None:
    body = b"\n.\n..two\n.leading\n...\nend\n"
    await smtpx.send(HEAD + body, host=server.host, port=server.port, **PLAIN)
    (received,) = server.messages
    assert received.data == HEAD + body.replace(b"\n", b"\r\n")
    assert verbs(server) == [b"EHLO", b"MAIL", b"RCPT", b"DATA", b"QUIT"]


async def test_eight_bit_and_smtputf8_are_declared(server: ScriptedServer) -> None:
    message = EmailMessage()
    message["From"] = "josé@example.com"
    message["To"] = "bob@example.com"
    message["Subject"] = "café"
    message.set_content("Grüße\n", cte="8bit")
    result = await smtpx.send(message, host=server.host, port=server.port, **PLAIN)
    assert result.accepted == ("bob@example.com",)
    (received,) = server.messages
    assert received.mail_from == "josé@example.com"
    assert {"SMTPUTF8", "BODY=8BITMIME"} <= set(received.mail_options)
    assert "Grüße" in received.text
    # the header carries the address itself (RFC 6532), not an RFC 2047 encoded word
    assert "josé@example.com".encode() in received.data.split(b"\r\n\r\n")[0]
    assert b"=?utf-8?" not in received.data.split(b"Subject:")[0]


# -- refused before anything is sent -------------------------------------------------------

BAD_ADDRESSES = [
    "bob@example.com\r\nRCPT TO:<evil@attacker.test>",
    "bob@example.com\n",
    "bob\r@example.com",
    "bob\x00@example.com",
    "bob",
    "bob@",
    "@example.com",
    "<bob@example.com>",
    "bob@example.com>",
    "b" * 65 + "@example.com",
    "bob@" + ("a" * 60 + ".") * 5 + "com",  # domain over 255 octets
    "b" * 64 + "@" + ("a" * 49 + ".") * 3 + "a" * 50,  # path over 256 octets
]


@pytest.mark.parametrize("role", ["sender", "recipient"])
@pytest.mark.parametrize("address", BAD_ADDRESSES, ids=lambda a: repr(a)[:40])
async def test_invalid_address_is_refused_before_sending(
    server: ScriptedServer, address: str, role: str
) -> None:
    client = client_for(server)
    options: dict[str, Any] = (
        {"sender": address} if role == "sender" else {"recipients": ["ok@example.com", address]}
    )
    with pytest.raises(smtpx.InvalidEnvelope) as info:
        await client.send(MESSAGE, **options)
    assert isinstance(info.value, ValueError) and isinstance(info.value, smtpx.UsageError)
    assert server.connections == 0 and server.transcript == []
    # and through the low-level methods, on an open session
    await client.connect()
    with pytest.raises(smtpx.InvalidEnvelope):
        if role == "sender":
            await client.mail(address)
        else:
            await client.rcpt(address)
    await client.quit()
    assert b"MAIL" not in verbs(server) and b"RCPT" not in verbs(server)


async def test_invalid_address_in_headers_is_refused_before_sending(
    server: ScriptedServer,
) -> None:
    with pytest.raises(smtpx.InvalidEnvelope):
        await smtpx.send(
            MESSAGE.replace(b"To: bob@example.com", b"To: bob"),
            host=server.host,
            port=server.port,
            **PLAIN,
        )
    with pytest.raises(smtpx.InvalidEnvelope, match="no recipients"):
        await smtpx.send(
            b"From: a@example.com\r\n\r\nx\r\n", host=server.host, port=server.port, **PLAIN
        )
    assert server.connections == 0


async def test_smtputf8_needed_and_not_offered(mx: ScriptedServer) -> None:
    async with ScriptedServer(smtputf8=False) as server:
        client = client_for(server)
        with pytest.raises(smtpx.ExtensionRequired) as info:
            await client.send(MESSAGE, recipients=["bob@example.com", "zoë@example.com"])
        error = info.value
        assert "SMTPUTF8" in str(error) and error.command is Command.MAIL
        assert_all_accounted(["bob@example.com", "zoë@example.com"], error=error)
        assert b"MAIL" not in verbs(server)
        # the session is still good for a message that does not need it
        assert (await client.send(MESSAGE)).accepted == ("bob@example.com",)
        await client.quit()


async def test_eight_bit_needed_and_not_offered(server: ScriptedServer) -> None:
    async with ScriptedServer(eightbitmime=False) as plain:
        with pytest.raises(smtpx.ExtensionRequired, match="8BITMIME"):
            await smtpx.send(
                HEAD + "Grüße\r\n".encode(), host=plain.host, port=plain.port, **PLAIN
            )
        assert b"MAIL" not in verbs(plain)


async def test_size_limit_exceeded_before_data(mx: ScriptedServer) -> None:
    async with ScriptedServer(size_limit=200, pipelining=mx.pipelining) as server:
        client = client_for(server)
        with pytest.raises(smtpx.MessageTooLarge) as info:
            await client.send(HEAD + b"x" * 300 + b"\r\n")
        error = info.value
        assert error.command is Command.MAIL and error.code is None and not error.retryable
        assert "200" in str(error)
        assert error.undelivered == ("bob@example.com",)
        assert b"MAIL" not in verbs(server) and b"DATA" not in verbs(server)
        result = await client.send(MESSAGE)  # a small one goes through, with SIZE declared
        await client.quit()
    assert result.accepted == ("bob@example.com",)
    assert server.messages[0].mail_options == (f"SIZE={len(MESSAGE)}",)


# -- partial refusal ------------------------------------------------------------------------


async def test_mixed_recipients_give_a_partial_result(mx: ScriptedServer) -> None:
    mx.on("RCPT", match="carol@", reply="550 5.1.1 <carol@example.com>: No such user")
    mx.on("RCPT", match="dave@", reply="450 4.2.1 Mailbox busy, try again later")
    async with client_for(mx) as client:
        result = await client.send(TO_THREE)
    assert_all_accounted(THREE, result)
    assert result.accepted == ("bob@example.com",) and not result.all_accepted
    carol, dave = result.rejected["carol@example.com"], result.rejected["dave@example.com"]
    assert type(carol) is smtpx.NoSuchMailbox
    assert carol.code == 550 and str(carol.enhanced) == "5.1.1" and not carol.retryable
    assert carol.recipient == "carol@example.com" and carol.command is Command.RCPT
    assert type(dave) is smtpx.MailboxBusy and dave.code == 450 and dave.retryable
    assert dave.recipient == "dave@example.com"
    # the message still went to the one who accepted it, and only to them
    (received,) = mx.messages
    assert received.rcpt_tos == ("bob@example.com",)
    assert received.data == TO_THREE


@pytest.mark.parametrize(
    ("replies", "expected", "retryable"),
    [
        (["450 4.2.1 Busy", "451 4.3.0 Local error", "452 4.5.3 Too many"], "deferred", True),
        (["450 4.2.1 Busy", "550 5.1.1 No such user", "452 4.2.2 Full"], "rejected", False),
        (["550 5.1.1 No", "553 5.1.3 Bad name", "551 5.1.6 Moved"], "rejected", False),
    ],
    ids=["all-transient", "one-permanent", "all-permanent"],
)
async def test_every_recipient_refused(
    mx: ScriptedServer, replies: list[str], expected: str, retryable: bool
) -> None:
    for recipient, reply in zip(THREE, replies, strict=True):
        mx.on("RCPT", match=recipient, reply=reply)
    client = client_for(mx)
    with pytest.raises(smtpx.RecipientsRefused) as info:
        await client.send(TO_THREE)
    error = info.value
    cls = smtpx.AllRecipientsDeferred if expected == "deferred" else smtpx.AllRecipientsRejected
    assert type(error) is cls
    assert error.retryable is retryable
    assert error.command is Command.RCPT
    assert_all_accounted(THREE, error=error)
    assert list(error.rejected) == list(THREE)
    for recipient, reply in zip(THREE, replies, strict=True):
        refusal = error.rejected[recipient]
        assert refusal.code == int(reply[:3]) and refusal.recipient == recipient
    assert error.undelivered == ()
    for recipient in THREE:
        assert recipient in str(error)  # every refusal is in the message
    assert mx.messages == []
    # the transaction was reset, not abandoned: the session carries the next message
    assert client.connected
    mx.clear()
    assert (await client.send(TO_THREE)).accepted == THREE
    await client.quit()


async def test_refusal_at_mail_accounts_for_everyone(mx: ScriptedServer) -> None:
    mx.on("MAIL", reply="550 5.7.1 Sender blocked", times=1)
    client = client_for(mx)
    with pytest.raises(smtpx.MailboxUnavailable) as info:
        await client.send(TO_THREE)
    error = info.value
    assert error.code == 550 and error.command is Command.MAIL and error.recipient is None
    assert_all_accounted(THREE, error=error)
    assert error.undelivered == THREE and error.rejected == {}
    assert mx.messages == []
    assert (await client.send(TO_THREE)).accepted == THREE
    await client.quit()


@pytest.mark.parametrize("stage", ["DATA", "DATA_END"])
async def test_refusal_of_the_message_keeps_earlier_refusals(
    mx: ScriptedServer, stage: str
) -> None:
    mx.on("RCPT", match="carol@", reply="550 5.1.1 No such user")
    mx.on(stage, reply="554 5.6.0 Message rejected", times=1)
    client = client_for(mx)
    with pytest.raises(smtpx.TransactionFailed) as info:
        await client.send(TO_THREE)
    error = info.value
    assert error.code == 554 and error.command is Command[stage]
    assert set(error.rejected) == {"carol@example.com"}
    assert type(error.rejected["carol@example.com"]) is smtpx.NoSuchMailbox
    assert error.undelivered == ("bob@example.com", "dave@example.com")
    assert_all_accounted(THREE, error=error)
    assert mx.messages == []
    await client.quit()


# -- no reply after the final "." -----------------------------------------------------------


async def test_close_after_final_dot_is_delivery_unknown(mx: ScriptedServer) -> None:
    mx.on("DATA_END", close=True, record=True)
    mx.on("RCPT", match="carol@", reply="550 5.1.1 No such user")
    client = client_for(mx)
    with pytest.raises(smtpx.DeliveryUnknown) as info:
        await client.send(TO_THREE)
    error = info.value
    assert error.command is Command.DATA_END and error.reply is None
    assert not error.retryable  # a retry could deliver it twice
    assert not isinstance(error, smtpx.TransientError | smtpx.PermanentError)
    assert isinstance(error, smtpx.NetworkError)
    assert error.__cause__ is not None
    assert error.undelivered == ("bob@example.com", "dave@example.com")
    assert set(error.rejected) == {"carol@example.com"}
    assert_all_accounted(THREE, error=error)
    assert not client.connected
    # the server did have the message: this is why it is "unknown", not "failed"
    (received,) = mx.messages
    assert received.rcpt_tos == ("bob@example.com", "dave@example.com")


async def test_hang_after_final_dot_is_delivery_unknown(mx: ScriptedServer) -> None:
    mx.on("DATA_END", hang=True, record=True)
    client = client_for(mx, timeout=0.2)
    with pytest.raises(smtpx.DeliveryUnknown) as info:
        await client.send(MESSAGE)
    assert info.value.command is Command.DATA_END and not info.value.retryable
    assert info.value.__cause__ is not None
    assert info.value.undelivered == ("bob@example.com",)
    assert not client.connected
    assert len(mx.messages) == 1


async def test_close_before_the_message_is_not_delivery_unknown(mx: ScriptedServer) -> None:
    mx.on("DATA", close=True)
    client = client_for(mx)
    with pytest.raises(smtpx.ConnectionLost) as info:
        await client.send(MESSAGE)
    assert info.value.command is Command.DATA and info.value.retryable
    assert info.value.undelivered == ("bob@example.com",)
    assert mx.messages == []


# -- cancellation ---------------------------------------------------------------------------


async def test_wait_for_around_a_hanging_send_closes_and_the_client_recovers(
    mx: ScriptedServer,
) -> None:
    mx.on("RCPT", hang=True, times=1)
    client = client_for(mx)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.send(MESSAGE), 0.2)
    assert not client.connected  # a cancelled command leaves aiosmtplib out of step
    assert mx.messages == []
    result = await client.send(MESSAGE)  # the same client reconnects
    assert result.accepted == ("bob@example.com",)
    assert mx.connections == 2
    await client.quit()
    assert len(mx.messages) == 1


@pytest.mark.parametrize("verb", ["EHLO", "MAIL", "DATA", "NOOP"])
async def test_task_cancel_mid_command(server: ScriptedServer, verb: str) -> None:
    rule = server.on(verb, hang=True, times=1)
    client = client_for(server)
    task: asyncio.Task[object]
    if verb == "NOOP":
        await client.connect()
        task = asyncio.create_task(client.noop())
    else:
        task = asyncio.create_task(client.send(MESSAGE))
    for _ in range(200):  # until the server is sitting on the command
        if rule.hits:
            break
        await asyncio.sleep(0.005)
    assert rule.hits == 1 and not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not client.connected
    assert server.messages == []
    result = await asyncio.wait_for(client.send(MESSAGE), 5)
    assert result.accepted == ("bob@example.com",)
    await client.quit()
    assert len(server.messages) == 1


async def test_concurrent_sends_on_one_client_are_serialised(server: ScriptedServer) -> None:
    async with client_for(server) as client:
        results = await asyncio.gather(
            *(client.send(MESSAGE, recipients=[f"r{n}@example.com"]) for n in range(5))
        )
    assert [r.accepted for r in results] == [(f"r{n}@example.com",) for n in range(5)]
    assert sorted(m.rcpt_tos[0] for m in server.messages) == [
        f"r{n}@example.com" for n in range(5)
    ]
    assert server.connections == 1


# -- the one-shot send ------------------------------------------------------------------------


async def test_one_shot_send_quits(server: ScriptedServer) -> None:
    result = await smtpx.send(MESSAGE, host=server.host, port=server.port, **PLAIN)
    assert result.accepted == ("bob@example.com",)
    assert verbs(server) == [b"EHLO", b"MAIL", b"RCPT", b"DATA", b"QUIT"]


async def test_one_shot_send_quits_after_a_failure(server: ScriptedServer) -> None:
    server.on("RCPT", reply="550 5.1.1 No such user")
    with pytest.raises(smtpx.AllRecipientsRejected) as info:
        await smtpx.send(MESSAGE, host=server.host, port=server.port, **PLAIN)
    assert_all_accounted(["bob@example.com"], error=info.value)
    assert verbs(server)[-2:] == [b"RSET", b"QUIT"]
