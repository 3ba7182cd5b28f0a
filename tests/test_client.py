"""Every row of the command table, end to end: Client -> aiosmtplib -> loopback -> aiosmtpd.

For each command with a Client method, every positive code of ``smtpx.codes.TABLE`` must come
back as its typed success and every negative code must raise its typed error, carrying
the code, the command and (for RCPT) the recipient.  Then the replies that are not SMTP
at all: garbage, mismatched multi-line codes, closes, refusals, hangs.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from tls_ca import LocalCA

import smtpx
from smtpx import Command
from smtpx.testing import ScriptedServer

USER, PASSWORD = "mailer", "s3cret-pa55word"
PLAIN: dict[str, Any] = {"tls": smtpx.TLSMode.NONE, "local_hostname": "client.test", "timeout": 5}
MESSAGE = b"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: hi\r\n\r\nHello.\r\n"

# The success type of each positive code (smtpx.results), written out here so the
# test does not take its expectations from the code under test.
SUCCESS: dict[int, type[smtpx.Success]] = {
    211: smtpx.SystemStatus,
    214: smtpx.HelpText,
    220: smtpx.Ready,
    221: smtpx.Closing,
    235: smtpx.Authenticated,
    250: smtpx.Ok,
    251: smtpx.WillForward,
    252: smtpx.CannotVerify,
    334: smtpx.AuthChallenge,
    354: smtpx.StartData,
}

# The exact error class of each negative code of the table, per command.
ERROR: dict[tuple[Command, int], type[smtpx.SMTPError]] = {
    (Command.CONNECT, 554): smtpx.NoSMTPService,
    (Command.STARTTLS, 454): smtpx.TLSUnavailable,
    (Command.EHLO, 502): smtpx.CommandNotImplemented,  # not raised: HELO fallback
    (Command.EHLO, 504): smtpx.ParameterNotImplemented,
    (Command.EHLO, 550): smtpx.MailboxUnavailable,
    (Command.HELO, 502): smtpx.CommandNotImplemented,
    (Command.HELO, 504): smtpx.ParameterNotImplemented,
    (Command.HELO, 550): smtpx.MailboxUnavailable,
    (Command.AUTH, 530): smtpx.AuthRequired,
    (Command.AUTH, 535): smtpx.AuthFailed,
    (Command.AUTH, 538): smtpx.EncryptionRequired,
    (Command.MAIL, 451): smtpx.LocalError,
    (Command.MAIL, 452): smtpx.InsufficientStorage,
    (Command.MAIL, 455): smtpx.ParametersNotAccommodated,
    (Command.MAIL, 503): smtpx.BadCommandSequence,
    (Command.MAIL, 550): smtpx.MailboxUnavailable,
    (Command.MAIL, 552): smtpx.MailboxFullPermanent,
    (Command.MAIL, 553): smtpx.MailboxNameInvalid,
    (Command.MAIL, 555): smtpx.ParametersNotRecognized,
    (Command.RCPT, 450): smtpx.MailboxBusy,
    (Command.RCPT, 451): smtpx.LocalError,
    (Command.RCPT, 452): smtpx.InsufficientStorage,
    (Command.RCPT, 455): smtpx.ParametersNotAccommodated,
    (Command.RCPT, 503): smtpx.BadCommandSequence,
    (Command.RCPT, 550): smtpx.MailboxUnavailable,
    (Command.RCPT, 551): smtpx.UserNotLocal,
    (Command.RCPT, 552): smtpx.MailboxFullTemporary,  # RFC 5321 §4.5.3.1.10
    (Command.RCPT, 553): smtpx.MailboxNameInvalid,
    (Command.RCPT, 555): smtpx.ParametersNotRecognized,
    (Command.VRFY, 502): smtpx.CommandNotImplemented,
    (Command.VRFY, 504): smtpx.ParameterNotImplemented,
    (Command.VRFY, 550): smtpx.MailboxUnavailable,
    (Command.VRFY, 551): smtpx.UserNotLocal,
    (Command.VRFY, 553): smtpx.MailboxNameInvalid,
    (Command.EXPN, 502): smtpx.CommandNotImplemented,
    (Command.EXPN, 504): smtpx.ParameterNotImplemented,
    (Command.EXPN, 550): smtpx.MailboxUnavailable,
    (Command.HELP, 502): smtpx.CommandNotImplemented,
    (Command.HELP, 504): smtpx.ParameterNotImplemented,
}
for _stage in (Command.DATA, Command.DATA_END, Command.BDAT):
    ERROR.update(
        {
            (_stage, 450): smtpx.MailboxBusy,
            (_stage, 451): smtpx.LocalError,
            (_stage, 452): smtpx.InsufficientStorage,
            (_stage, 503): smtpx.BadCommandSequence,
            (_stage, 550): smtpx.MailboxUnavailable,
            (_stage, 552): smtpx.MailboxFullPermanent,
            (_stage, 554): smtpx.TransactionFailed,
        }
    )

ROWS = [
    (command, code)
    for command, row in smtpx.codes.TABLE.items()
    for code in sorted(row.positive | row.negative)
]


def test_every_table_row_has_an_expectation() -> None:
    for command, code in ROWS:
        assert code in SUCCESS or (command, code) in ERROR, (command, code)
    assert {command for command, _ in ROWS} == set(Command)


# -- one driver per command: set the session up, script the reply, call the method --------

Drive = Callable[[ScriptedServer, smtpx.Client, str], Awaitable[smtpx.Success]]


async def drive_connect(server: ScriptedServer, client: smtpx.Client, reply: str) -> smtpx.Success:
    server.on("CONNECT", reply=reply)
    return await client.connect()


async def drive_starttls(
    server: ScriptedServer, client: smtpx.Client, reply: str
) -> smtpx.Success:
    await client.connect()
    server.on("STARTTLS", reply=reply)
    return await client.starttls()


async def drive_auth(server: ScriptedServer, client: smtpx.Client, reply: str) -> smtpx.Success:
    await client.connect()  # authenticates for real first: the session is a normal one
    assert "AUTH PLAIN" in " ".join(line.decode() for line in server.transcript)
    server.on("AUTH", reply=reply)
    if reply.startswith("334"):  # a challenge is a step of a mechanism, not its end
        return await client.command(Command.AUTH, b"AUTH", b"LOGIN")
    return await client.login()


async def drive_mail(server: ScriptedServer, client: smtpx.Client, reply: str) -> smtpx.Success:
    await client.connect()
    server.on("MAIL", reply=reply)
    return await client.mail("alice@example.com")


async def drive_rcpt(server: ScriptedServer, client: smtpx.Client, reply: str) -> smtpx.Success:
    await client.connect()
    await client.mail("alice@example.com")
    server.on("RCPT", reply=reply)
    return await client.rcpt("bob@example.com")


async def drive_data(server: ScriptedServer, client: smtpx.Client, reply: str) -> smtpx.Success:
    await client.connect()
    await client.mail("alice@example.com")
    await client.rcpt("bob@example.com")
    server.on("DATA", reply=reply)
    if reply.startswith("354"):  # the 354 is only ever seen on its own through command()
        return await client.command(Command.DATA, b"DATA")
    return await client.data(MESSAGE)


async def drive_data_end(
    server: ScriptedServer, client: smtpx.Client, reply: str
) -> smtpx.Success:
    await client.connect()
    await client.mail("alice@example.com")
    await client.rcpt("bob@example.com")
    server.on("DATA_END", reply=reply)
    return await client.data(MESSAGE)


async def drive_bdat(server: ScriptedServer, client: smtpx.Client, reply: str) -> smtpx.Success:
    await client.connect()
    await client.mail("alice@example.com")
    await client.rcpt("bob@example.com")
    server.on("BDAT", reply=reply)
    return await client.bdat(MESSAGE)


def after_connect(verb: str, call: Callable[[smtpx.Client], Awaitable[smtpx.Success]]) -> Drive:
    async def drive(server: ScriptedServer, client: smtpx.Client, reply: str) -> smtpx.Success:
        await client.connect()
        server.on(verb, reply=reply)
        return await call(client)

    return drive


DRIVERS: dict[Command, Drive] = {
    Command.CONNECT: drive_connect,
    Command.EHLO: after_connect("EHLO", lambda c: c.ehlo()),
    Command.HELO: after_connect("HELO", lambda c: c.helo()),
    Command.STARTTLS: drive_starttls,
    Command.AUTH: drive_auth,
    Command.MAIL: drive_mail,
    Command.RCPT: drive_rcpt,
    Command.DATA: drive_data,
    Command.DATA_END: drive_data_end,
    Command.BDAT: drive_bdat,
    Command.RSET: after_connect("RSET", lambda c: c.rset()),
    Command.VRFY: after_connect("VRFY", lambda c: c.vrfy("bob@example.com")),
    Command.EXPN: after_connect("EXPN", lambda c: c.expn("staff")),
    Command.HELP: after_connect("HELP", lambda c: c.help()),
    Command.NOOP: after_connect("NOOP", lambda c: c.noop()),
    Command.QUIT: after_connect("QUIT", lambda c: c.command(Command.QUIT, b"QUIT")),
}


def scripted(ca: LocalCA, command: Command) -> tuple[ScriptedServer, dict[str, Any]]:
    """A server and client options suited to ``command``'s row."""
    if command is Command.STARTTLS:
        server = ScriptedServer(tls_context=ca.server_context())
        return server, {**PLAIN, "tls_context": ca.client_context()}
    if command is Command.AUTH:
        server = ScriptedServer(credentials={USER: PASSWORD})
        options = {**PLAIN, "credentials": (USER, PASSWORD), "allow_plaintext_auth": True}
        return server, options
    if command is Command.BDAT:
        return ScriptedServer(chunking=True), dict(PLAIN)
    return ScriptedServer(), dict(PLAIN)


def reply_text(command: Command, code: int) -> str:
    return f"{code} scripted reply to {command.name}"


@pytest.mark.parametrize(
    ("command", "code"),
    [(c, n) for c, n in ROWS if n in SUCCESS],
    ids=[f"{c.name}-{n}" for c, n in ROWS if n in SUCCESS],
)
async def test_positive_reply_is_typed_success(ca: LocalCA, command: Command, code: int) -> None:
    server, options = scripted(ca, command)
    async with server:
        client = smtpx.Client(server.host, server.port, **options)
        try:
            result = await DRIVERS[command](server, client, reply_text(command, code))
            assert type(result) is SUCCESS[code]
            assert result.command is command
            assert result.code == code
            assert result.reply.text == f"scripted reply to {command.name}"
            if command is Command.STARTTLS:
                assert client.encrypted  # the handshake followed the 220
            if command.ends_message:
                assert len(server.messages) == 1
        finally:
            client.close()


NEGATIVE = [(c, n) for c, n in ROWS if n not in SUCCESS and (c, n) != (Command.EHLO, 502)]


@pytest.mark.parametrize(("command", "code"), NEGATIVE, ids=[f"{c.name}-{n}" for c, n in NEGATIVE])
async def test_negative_reply_raises_typed_error(ca: LocalCA, command: Command, code: int) -> None:
    server, options = scripted(ca, command)
    async with server:
        client = smtpx.Client(server.host, server.port, **options)
        try:
            with pytest.raises(smtpx.SMTPError) as info:
                await DRIVERS[command](server, client, reply_text(command, code))
            error = info.value
            assert type(error) is ERROR[command, code]
            assert error.code == code
            assert error.command is command
            assert error.reply is not None
            assert error.reply.text == f"scripted reply to {command.name}"
            assert not error.unexpected  # the table lists it
            assert error.retryable is (code < 500 or (command, code) == (Command.RCPT, 552))
            assert error.recipient == ("bob@example.com" if command is Command.RCPT else None)
            assert str(code) in str(error) and command.label in str(error)
            if command is Command.CONNECT:
                assert not client.connected
            else:
                # a refusal is an answer: the session carries on
                assert client.connected
                assert isinstance(await client.noop(), smtpx.Ok)
            assert server.messages == []
        finally:
            client.close()


def test_rcpt_552_is_transient_and_mail_552_permanent() -> None:
    # the one severity override of the table rows, as seen above end to end
    assert ERROR[Command.RCPT, 552].retryable
    assert not ERROR[Command.MAIL, 552].retryable


# -- EHLO fallback, codes outside the table, 421 ------------------------------------------


@pytest.mark.parametrize("code", [500, 502])
async def test_ehlo_refused_falls_back_to_helo(server: ScriptedServer, code: int) -> None:
    server.on("EHLO", reply=f"{code} 5.5.1 What is EHLO")
    client = smtpx.Client(server.host, server.port, **PLAIN)
    ready = await client.connect()
    assert isinstance(ready, smtpx.Ready)
    assert server.transcript[:2] == [b"EHLO client.test", b"HELO client.test"]
    result = await client.ehlo()  # the method itself falls back too
    assert isinstance(result, smtpx.Ok) and result.command is Command.HELO
    assert (await client.send(MESSAGE)).accepted == ("bob@example.com",)
    await client.quit()
    assert server.received_by("bob@example.com")


async def test_helo_forgets_the_extensions_of_an_earlier_ehlo(server: ScriptedServer) -> None:
    client = smtpx.Client(server.host, server.port, **PLAIN)
    await client.connect()
    assert client.pipelining and "size" not in client.extensions
    server.on("EHLO", reply="502 5.5.1 EHLO is gone")
    result = await client.ehlo()
    assert isinstance(result, smtpx.Ok) and result.command is Command.HELO
    assert client.extensions == {} and not client.pipelining
    # a HELO session: no pipelining, no ESMTP parameters
    assert (await client.send(MESSAGE)).accepted == ("bob@example.com",)
    await client.quit()
    assert b"MAIL FROM:<alice@example.com>" in server.transcript
    assert server.messages[0].mail_options == ()


async def test_code_outside_the_row_is_classified_and_marked_unexpected(
    server: ScriptedServer,
) -> None:
    async with smtpx.Client(server.host, server.port, **PLAIN) as client:
        server.on("NOOP", reply="521 5.3.2 Not accepting mail")
        with pytest.raises(smtpx.HostDoesNotAcceptMail) as info:
            await client.noop()
        assert info.value.unexpected and info.value.code == 521
        assert info.value.command is Command.NOOP


async def test_positive_code_the_command_does_not_allow_is_unexpected_reply(
    server: ScriptedServer,
) -> None:
    async with smtpx.Client(server.host, server.port, **PLAIN) as client:
        await client.mail("alice@example.com")
        server.on("RCPT", reply="354 Go ahead")
        with pytest.raises(smtpx.UnexpectedReply) as info:
            await client.rcpt("bob@example.com")
        assert info.value.code == 354 and info.value.command is Command.RCPT
        assert info.value.recipient == "bob@example.com"
        assert not client.connected  # out of step: never reused


async def test_421_at_rcpt_closes_and_the_client_reconnects(mx: ScriptedServer) -> None:
    server = mx
    server.on("RCPT", reply="421 4.3.2 Service shutting down", close=True, times=1)
    client = smtpx.Client(server.host, server.port, **PLAIN)
    message = MESSAGE.replace(b"To: bob", b"To: carol@example.com, bob")
    with pytest.raises(smtpx.ServiceUnavailable) as info:
        await client.send(message)
    error = info.value
    assert error.code == 421 and error.command is Command.RCPT
    assert error.recipient == "carol@example.com"
    assert error.retryable
    assert set(error.undelivered) | set(error.rejected) == {"carol@example.com", "bob@example.com"}
    assert not client.connected
    assert server.messages == []
    # the same client reconnects for the next send
    result = await client.send(message)
    assert result.accepted == ("carol@example.com", "bob@example.com")
    assert server.connections == 2
    await client.quit()


async def test_421_greeting(server: ScriptedServer) -> None:
    server.on("CONNECT", reply="421 4.3.2 Too busy, come back later")
    client = smtpx.Client(server.host, server.port, **PLAIN)
    with pytest.raises(smtpx.ServiceUnavailable) as info:
        await client.connect()
    assert info.value.code == 421 and info.value.command is Command.CONNECT
    assert not client.connected


# -- replies that are not SMTP, and no reply at all ----------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"hello there\r\n", b"25O OK\r\n", b"099 too low\r\n", b"250-first\r\n251 second\r\n"],
    ids=["no-code", "letter-in-code", "out-of-range", "mismatched-multiline"],
)
async def test_malformed_reply_is_protocol_error(server: ScriptedServer, raw: bytes) -> None:
    client = smtpx.Client(server.host, server.port, **PLAIN)
    await client.connect()
    server.on("MAIL", raw=raw, times=1)
    with pytest.raises(smtpx.ProtocolError) as info:
        await client.mail("alice@example.com")
    assert info.value.command is Command.MAIL
    assert not client.connected  # a desynchronised session is dropped
    # and the client recovers on its own for the next send
    assert (await client.send(MESSAGE)).accepted == ("bob@example.com",)
    await client.quit()


async def test_garbage_to_one_rcpt_in_a_send(mx: ScriptedServer) -> None:
    mx.on("RCPT", match="carol@", raw=b"what?\r\n", times=1)
    client = smtpx.Client(mx.host, mx.port, **PLAIN)
    message = MESSAGE.replace(b"To: bob", b"To: carol@example.com, bob")
    with pytest.raises(smtpx.ProtocolError) as info:
        await client.send(message)
    error = info.value
    assert error.command is Command.RCPT and error.recipient == "carol@example.com"
    assert error.raw == b"what?\r\n" and "what?" in str(error)
    assert set(error.undelivered) | set(error.rejected) == {"carol@example.com", "bob@example.com"}
    assert not client.connected and mx.messages == []
    assert (await client.send(message)).accepted == ("carol@example.com", "bob@example.com")
    await client.quit()


async def test_malformed_greeting_is_protocol_error(server: ScriptedServer) -> None:
    server.on("CONNECT", raw=b"220-hello\r\n554 no\r\n")
    client = smtpx.Client(server.host, server.port, **PLAIN)
    with pytest.raises(smtpx.ProtocolError) as info:
        await client.connect()
    assert info.value.command is Command.CONNECT
    assert not client.connected


async def test_close_before_greeting_is_connect_error(server: ScriptedServer) -> None:
    server.on("CONNECT", close=True)
    client = smtpx.Client(server.host, server.port, **PLAIN)
    with pytest.raises(smtpx.ConnectError) as info:
        await client.connect()
    assert info.value.command is Command.CONNECT
    assert info.value.retryable and info.value.reply is None
    assert info.value.__cause__ is not None
    assert not client.connected


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused_is_connect_error_with_cause() -> None:
    port = closed_port()
    client = smtpx.Client("127.0.0.1", port, **PLAIN)
    with pytest.raises(smtpx.ConnectError) as info:
        await client.connect()
    error = info.value
    assert type(error) is smtpx.ConnectError
    assert error.command is Command.CONNECT and error.code is None
    assert error.__cause__ is not None
    assert isinstance(error.__cause__.__cause__ or error.__cause__, ConnectionRefusedError)
    # and through send(): nobody got the message
    with pytest.raises(smtpx.ConnectError) as sent:
        await smtpx.send(MESSAGE, host="127.0.0.1", port=port, **PLAIN)
    assert sent.value.undelivered == ("bob@example.com",)


async def test_hanging_greeting_is_connect_timeout(server: ScriptedServer) -> None:
    server.on("CONNECT", hang=True)
    client = smtpx.Client(server.host, server.port, **{**PLAIN, "timeout": 0.2})
    with pytest.raises(smtpx.ConnectTimeout) as info:
        await client.connect()
    assert info.value.command is Command.CONNECT and info.value.retryable
    assert info.value.__cause__ is not None


@pytest.mark.parametrize("verb", ["EHLO", "MAIL", "RCPT", "DATA", "NOOP"])
async def test_hang_is_response_timeout(mx: ScriptedServer, verb: str) -> None:
    server = mx
    server.on(verb, hang=True)
    client = smtpx.Client(server.host, server.port, **{**PLAIN, "timeout": 0.2})
    with pytest.raises(smtpx.ResponseTimeout) as info:
        if verb == "NOOP":
            await client.connect()
            await client.noop()
        else:
            await client.send(MESSAGE)
    error = info.value
    assert error.command is Command[verb]
    assert error.retryable and error.reply is None
    assert error.__cause__ is not None
    assert not client.connected
    if verb != "NOOP":
        assert error.undelivered == ("bob@example.com",)
    assert server.messages == []


@pytest.mark.parametrize("verb", ["MAIL", "RCPT", "DATA", "RSET"])
async def test_close_mid_session_is_connection_lost(mx: ScriptedServer, verb: str) -> None:
    server = mx
    server.on(verb, close=True)
    async with smtpx.Client(server.host, server.port, **PLAIN) as client:
        with pytest.raises(smtpx.ConnectionLost) as info:
            if verb == "RSET":
                await client.rset()
            else:
                await client.send(MESSAGE)
        assert info.value.command is Command[verb]
        assert info.value.__cause__ is not None
        assert not client.connected
        if verb != "RSET":
            assert info.value.undelivered == ("bob@example.com",)
    assert server.messages == []


# -- the methods, each once more in a normal session ---------------------------------------


async def test_low_level_session(server: ScriptedServer) -> None:
    client = smtpx.Client(server.host, server.port, **PLAIN)
    assert repr(client).endswith("not connected>")
    greeting = await client.connect()
    assert isinstance(greeting, smtpx.Ready) and client.greeting == greeting.reply
    assert client.connected and not client.encrypted
    assert "8bitmime" in client.extensions and client.pipelining
    assert isinstance(await client.noop(), smtpx.Ok)
    assert isinstance(await client.vrfy("bob@example.com"), smtpx.CannotVerify)
    assert isinstance(await client.mail("alice@example.com", ["SIZE=100"]), smtpx.Ok)
    assert isinstance(await client.rcpt("bob@example.com"), smtpx.Ok)
    assert isinstance(await client.data(b"Subject: low\r\n\r\n.dot\r\n"), smtpx.Ok)
    assert isinstance(await client.rset(), smtpx.Ok)
    await client.quit()
    assert not client.connected
    assert server.transcript[-1] == b"QUIT"
    (message,) = server.messages
    assert message.mail_from == "alice@example.com" and message.rcpt_tos == ("bob@example.com",)
    assert message.data == b"Subject: low\r\n\r\n.dot\r\n"
    assert message.mail_options == ("SIZE=100",)


async def test_method_before_connect_is_connection_lost() -> None:
    client = smtpx.Client("127.0.0.1", closed_port(), **PLAIN)
    with pytest.raises(smtpx.ConnectionLost):
        await client.noop()


async def test_auth_challenge_through_command() -> None:
    async with ScriptedServer(credentials={USER: PASSWORD}) as server:
        client = smtpx.Client(server.host, server.port, **PLAIN)
        await client.connect()
        challenge = await client.command(Command.AUTH, b"AUTH", b"LOGIN")
        assert isinstance(challenge, smtpx.AuthChallenge) and challenge.code == 334
        assert base64.b64decode(challenge.reply.text).startswith(b"User Name")
        client.close()


async def test_quit_closes_even_when_the_server_hangs(server: ScriptedServer) -> None:
    server.on("QUIT", hang=True)
    client = smtpx.Client(server.host, server.port, **{**PLAIN, "timeout": 0.2})
    await client.connect()
    await asyncio.wait_for(client.quit(), 2)
    assert not client.connected
