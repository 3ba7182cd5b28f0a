"""Tests for smtpx.testing.ScriptedServer, spoken to over raw sockets and aiosmtplib."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiosmtplib
import pytest
from tls_ca import LocalCA

from smtpx.testing import ReceivedMessage, ScriptedServer

TIMEOUT = 2.0
MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nHello\r\n"


class Wire:
    """A raw line-oriented SMTP client."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, server: ScriptedServer, context: ssl.SSLContext | None = None) -> Wire:
        reader, writer = await asyncio.open_connection(server.host, server.port, ssl=context)
        return cls(reader, writer)

    async def reply(self, timeout: float = TIMEOUT) -> list[bytes]:
        """Read one (possibly multi-line) reply; lines without CRLF."""
        lines: list[bytes] = []
        async with asyncio.timeout(timeout):
            while True:
                line = await self.reader.readline()
                if not line:
                    raise EOFError(lines)
                lines.append(line.removesuffix(b"\r\n"))
                if line[3:4] != b"-":
                    return lines

    async def cmd(self, line: str, timeout: float = TIMEOUT) -> list[bytes]:
        self.writer.write(line.encode() + b"\r\n")
        return await self.reply(timeout)

    async def closed_by_server(self) -> bool:
        """Whether the server closes the connection without sending anything more."""
        async with asyncio.timeout(TIMEOUT):
            rest = await self.reader.read()
        await self.close()
        return rest == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    async with ScriptedServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def ca() -> LocalCA:
    return LocalCA()


def client(server: ScriptedServer, **kwargs: object) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(hostname=server.host, port=server.port, timeout=TIMEOUT, **kwargs)  # type: ignore[arg-type]


async def send(server: ScriptedServer, rcpts: list[str], **kwargs: object) -> None:
    smtp = client(server, **kwargs)
    async with smtp:
        await smtp.sendmail("a@example.com", rcpts, MESSAGE)


# -- default behaviour and recording ------------------------------------------------------


async def test_default_server_accepts_and_records(server: ScriptedServer) -> None:
    smtp = client(server)
    async with smtp:  # connect() sends EHLO
        for ext in ("pipelining", "8bitmime", "smtputf8"):
            assert smtp.supports_extension(ext)
        assert not smtp.supports_extension("size")
        assert not smtp.supports_extension("auth")
        assert not smtp.supports_extension("starttls")
        errors, _ = await smtp.sendmail(
            "a@example.com",
            ["B@example.com", "c@example.com"],
            MESSAGE,
            mail_options=["BODY=8BITMIME"],
        )
        assert errors == {}
    assert server.messages == [
        ReceivedMessage(
            "a@example.com",
            ("B@example.com", "c@example.com"),
            MESSAGE,
            mail_options=("BODY=8BITMIME",),
        )
    ]
    assert server.received_by("b@EXAMPLE.com") == server.messages
    assert server.received_by("nobody@example.com") == []
    assert server.connections == 1
    verbs = [line.split(b" ")[0] for line in server.transcript]
    assert verbs == [b"EHLO", b"MAIL", b"RCPT", b"RCPT", b"DATA", b"QUIT"]
    assert b"MAIL FROM:<a@example.com> BODY=8BITMIME" in server.transcript


async def test_greeting_and_extension_switches() -> None:
    async with ScriptedServer(
        hostname="mx.test", size_limit=1000, smtputf8=False, eightbitmime=False, pipelining=False
    ) as server:
        wire = await Wire.open(server)
        assert (await wire.reply())[0].startswith(b"220 mx.test ")
        lines = await wire.cmd("EHLO me")
        assert lines[0] == b"250-mx.test"
        keywords = {line[4:].split(b" ")[0] for line in lines[1:]}
        assert b"SIZE" in keywords
        assert not keywords & {b"SMTPUTF8", b"8BITMIME", b"PIPELINING", b"AUTH", b"STARTTLS"}
        assert b"250-SIZE 1000" in lines
        assert await wire.cmd("MAIL FROM:<a@x> SIZE=2000") == [
            b"552 Error: message size exceeds fixed maximum message size"
        ]
        await wire.close()


# -- CONNECT ---------------------------------------------------------------------------------


async def test_greeting_554_then_only_quit(server: ScriptedServer) -> None:
    server.on("CONNECT", reply="554 5.3.2 No service")
    wire = await Wire.open(server)
    assert await wire.reply() == [b"554 5.3.2 No service"]
    assert (await wire.cmd("EHLO me"))[0].startswith(b"503")
    assert (await wire.cmd("QUIT"))[0].startswith(b"221")
    assert await wire.closed_by_server()


async def test_greeting_multiline_and_close(server: ScriptedServer) -> None:
    server.on("CONNECT", reply="220-mx.test hello\n220 ready", times=1)
    server.on("CONNECT", close=True)
    wire = await Wire.open(server)
    assert await wire.reply() == [b"220-mx.test hello", b"220 ready"]
    await wire.close()
    wire = await Wire.open(server)
    assert await wire.closed_by_server()
    assert server.connections == 2


async def test_greeting_via_aiosmtplib_error(server: ScriptedServer) -> None:
    server.on("CONNECT", reply="421 4.3.2 Busy")
    with pytest.raises(aiosmtplib.SMTPConnectResponseError) as info:
        await client(server).connect()
    assert info.value.code == 421


# -- actions ---------------------------------------------------------------------------------


async def test_positive_reply_replaces_text_but_keeps_state(server: ScriptedServer) -> None:
    server.on("EHLO", reply="250-mx.test greets you\n250 SIZE 10")
    server.on("RCPT", reply="251 2.1.5 Will forward")
    server.on("DATA", reply="354 Go on")
    server.on("DATA_END", reply="250 2.0.0 Queued as X1")
    wire = await Wire.open(server)
    await wire.reply()
    assert await wire.cmd("EHLO me") == [b"250-mx.test greets you", b"250 SIZE 10"]
    assert await wire.cmd("MAIL FROM:<a@x>") == [b"250 OK"]
    assert await wire.cmd("RCPT TO:<b@y>") == [b"251 2.1.5 Will forward"]
    assert await wire.cmd("DATA") == [b"354 Go on"]
    assert await wire.cmd("Hi\r\n..dot\r\n.") == [b"250 2.0.0 Queued as X1"]
    await wire.close()
    assert server.messages == [ReceivedMessage("a@x", ("b@y",), b"Hi\r\n.dot\r\n")]


async def test_negative_reply_refuses_command(server: ScriptedServer) -> None:
    server.on("MAIL", reply="451 4.3.0 Later", times=1)
    wire = await Wire.open(server)
    await wire.reply()
    await wire.cmd("EHLO me")
    assert await wire.cmd("MAIL FROM:<a@x>") == [b"451 4.3.0 Later"]
    # The refused MAIL did not open a transaction, so this is not a "nested MAIL".
    assert await wire.cmd("MAIL FROM:<a@x>") == [b"250 OK"]
    await wire.close()


@pytest.mark.parametrize(
    "verb", ["HELO me", "RSET", "VRFY <a@x>", "EXPN list", "HELP", "NOOP", "QUIT"]
)
async def test_every_simple_command_can_be_scripted(server: ScriptedServer, verb: str) -> None:
    server.on(verb.split()[0], reply="502 5.5.1 Scripted")
    wire = await Wire.open(server)
    await wire.reply()
    assert await wire.cmd(verb) == [b"502 5.5.1 Scripted"]
    await wire.close()


async def test_close_drops_connection(server: ScriptedServer) -> None:
    server.on("RCPT", close=True)
    wire = await Wire.open(server)
    await wire.reply()
    await wire.cmd("EHLO me")
    await wire.cmd("MAIL FROM:<a@x>")
    wire.writer.write(b"RCPT TO:<b@y>\r\nNOOP\r\n")  # pipelined NOOP must get no reply
    assert await wire.closed_by_server()


async def test_close_seen_by_aiosmtplib(server: ScriptedServer) -> None:
    server.on("DATA_END", close=True)
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await send(server, ["b@y"])
    assert server.messages == []


async def test_close_after_accepting_records_message(server: ScriptedServer) -> None:
    rule = server.on("DATA_END", close=True, record=True)
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await send(server, ["b@y"])
    assert len(server.messages) == 1
    assert rule.hits == 1


async def test_hang_times_out_client(server: ScriptedServer) -> None:
    server.on("NOOP", hang=True)
    wire = await Wire.open(server)
    await wire.reply()
    with pytest.raises(TimeoutError):
        await wire.cmd("NOOP", timeout=0.05)
    await wire.close()


async def test_raw_garbage_and_raw_with_close(server: ScriptedServer) -> None:
    server.on("NOOP", raw=b"\x00\xffgarbage\r\n", times=1)
    server.on("NOOP", raw=b"250-partial", close=True)
    wire = await Wire.open(server)
    await wire.reply()
    wire.writer.write(b"NOOP\r\n")
    async with asyncio.timeout(TIMEOUT):
        assert await wire.reader.readline() == b"\x00\xffgarbage\r\n"
    wire.writer.write(b"NOOP\r\n")
    async with asyncio.timeout(TIMEOUT):
        assert await wire.reader.read() == b"250-partial"
    await wire.close()


async def test_data_verb_refused(server: ScriptedServer) -> None:
    server.on("DATA", reply="554 5.5.1 No valid recipients")
    with pytest.raises(aiosmtplib.SMTPDataError) as info:
        await send(server, ["b@y"])
    assert info.value.code == 554
    assert server.messages == []


async def test_data_end_failure_not_recorded(server: ScriptedServer) -> None:
    server.on("DATA_END", reply="554 5.7.1 Spam", match="subject: HI", times=1)
    with pytest.raises(aiosmtplib.SMTPDataError) as info:
        await send(server, ["b@y"])
    assert info.value.code == 554
    assert server.messages == []
    await send(server, ["b@y"])  # the rule was used up
    assert len(server.messages) == 1


# -- match, times, order, clear ------------------------------------------------------------


async def test_match_and_times(server: ScriptedServer) -> None:
    rule = server.on("RCPT", match="BOB@", reply="550 5.1.1 No such user", times=1)
    server.on("RCPT", match="bob@", reply="452 4.2.2 Full")
    wire = await Wire.open(server)
    await wire.reply()
    await wire.cmd("EHLO me")
    await wire.cmd("MAIL FROM:<a@x>")
    assert await wire.cmd("RCPT TO:<bob@y>") == [b"550 5.1.1 No such user"]
    assert await wire.cmd("RCPT TO:<bob@y>") == [b"452 4.2.2 Full"]
    assert await wire.cmd("RCPT TO:<alice@y>") == [b"250 OK"]
    assert rule.hits == 1
    server.clear()
    assert await wire.cmd("RCPT TO:<bob@y>") == [b"250 OK"]
    await wire.cmd("DATA")
    await wire.cmd("x\r\n.")
    await wire.close()
    assert server.received_by("bob@y")[0].rcpt_tos == ("alice@y", "bob@y")


async def test_partial_recipient_failure_with_aiosmtplib(server: ScriptedServer) -> None:
    server.on("RCPT", match="bob@", reply="550 5.1.1 No such user")
    smtp = client(server)
    async with smtp:
        errors, _ = await smtp.sendmail("a@x", ["alice@y", "bob@y"], MESSAGE)
    assert errors["bob@y"].code == 550
    assert server.messages[0].rcpt_tos == ("alice@y",)


def test_invalid_rules_rejected() -> None:
    server = ScriptedServer()
    with pytest.raises(ValueError, match="unknown command"):
        server.on("ETRN", reply="250 OK")
    with pytest.raises(ValueError, match="action"):
        server.on("MAIL")
    with pytest.raises(ValueError):
        server.on("MAIL", reply="250 OK", raw=b"250 OK\r\n")
    with pytest.raises(ValueError):
        server.on("MAIL", close=True, hang=True)
    with pytest.raises(ValueError):
        server.on("MAIL", reply="250 OK", times=0)
    with pytest.raises(ValueError):
        server.on("MAIL", reply="250 OK", record=True)
    with pytest.raises(ValueError):
        ScriptedServer(implicit_tls=True)
    assert server.on("mail", reply="250 OK").command == "MAIL"


# -- TLS -------------------------------------------------------------------------------------


async def test_starttls_verified_by_client(ca: LocalCA) -> None:
    async with ScriptedServer(tls_context=ca.server_context()) as server:
        await send(server, ["b@y"], start_tls=True, tls_context=ca.client_context())
    assert len(server.messages) == 1
    verbs = [line.split(b" ")[0] for line in server.transcript]
    assert verbs[:3] == [b"EHLO", b"STARTTLS", b"EHLO"]


async def test_starttls_refused(ca: LocalCA) -> None:
    async with ScriptedServer(tls_context=ca.server_context()) as server:
        server.on("STARTTLS", reply="454 4.7.0 TLS not available")
        smtp = client(server, start_tls=True, tls_context=ca.client_context())
        with pytest.raises(aiosmtplib.SMTPResponseException) as info:
            await smtp.connect()
        assert info.value.code == 454
        smtp.close()


@pytest.mark.parametrize(("which", "reason"), [("wrong_host", "mismatch"), ("expired", "expired")])
async def test_bad_certificates_fail_verification(ca: LocalCA, which: str, reason: str) -> None:
    context = (
        ca.wrong_host_server_context() if which == "wrong_host" else ca.expired_server_context()
    )
    async with ScriptedServer(tls_context=context) as server:
        smtp = client(server, start_tls=True, tls_context=ca.client_context())
        with pytest.raises(ssl.SSLCertVerificationError, match=reason):  # aiosmtplib: unwrapped
            await smtp.connect()
        smtp.close()


async def test_implicit_tls(ca: LocalCA) -> None:
    async with ScriptedServer(tls_context=ca.server_context(), implicit_tls=True) as server:
        smtp = client(server, use_tls=True, tls_context=ca.client_context())
        async with smtp:
            assert not smtp.supports_extension("starttls")
            await smtp.sendmail("a@x", ["b@y"], MESSAGE)
    assert len(server.messages) == 1


async def test_close_and_hang_over_tls(ca: LocalCA) -> None:
    async with ScriptedServer(tls_context=ca.server_context(), implicit_tls=True) as server:
        server.on("MAIL", close=True, times=1)
        server.on("MAIL", hang=True)
        started = time.monotonic()
        with pytest.raises(aiosmtplib.SMTPServerDisconnected):
            await send(server, ["b@y"], use_tls=True, tls_context=ca.client_context())
        assert time.monotonic() - started < 0.5
        smtp = client(server, use_tls=True, tls_context=ca.client_context())
        await smtp.connect()
        with pytest.raises(aiosmtplib.SMTPTimeoutError):
            await smtp.mail("a@x", timeout=0.05)
        smtp.close()
    assert server.messages == []


async def test_write_ca_pem(ca: LocalCA, tmp_path: Path) -> None:
    path = ca.write_ca_pem(tmp_path)
    context = ssl.create_default_context(cafile=str(path))
    async with ScriptedServer(tls_context=ca.server_context(), implicit_tls=True) as server:
        wire = await Wire.open(server, context)
        assert (await wire.reply())[0].startswith(b"220 ")
        await wire.close()


# -- AUTH ------------------------------------------------------------------------------------


async def test_auth_plain_and_login() -> None:
    async with ScriptedServer(credentials={"user": "secret"}) as server:
        smtp = client(server)
        async with smtp:
            assert set(smtp.server_auth_methods) >= {"plain", "login"}
            response = await smtp.auth_plain("user", "secret")
            assert response.code == 235
        smtp = client(server)
        async with smtp:
            assert (await smtp.auth_login("user", "secret")).code == 235
        smtp = client(server)
        async with smtp:
            with pytest.raises(aiosmtplib.SMTPAuthenticationError) as info:
                await smtp.auth_plain("user", "wrong")
            assert info.value.code == 535
            assert info.value.message == "5.7.8 Authentication credentials invalid"
    blob = base64.b64encode(b"\0user\0secret")
    assert b"AUTH PLAIN " + blob in server.transcript
    assert base64.b64encode(b"secret") in server.transcript  # LOGIN's password line


async def test_auth_require_tls_and_scripted_auth(ca: LocalCA) -> None:
    async with ScriptedServer(
        credentials={"u": "p"}, auth_require_tls=True, tls_context=ca.server_context()
    ) as server:
        wire = await Wire.open(server)
        await wire.reply()
        assert not any(b"AUTH" in line for line in await wire.cmd("EHLO me"))
        assert (await wire.cmd("AUTH PLAIN AHUAcA=="))[0].startswith(b"538")
        await wire.close()
        server.on("AUTH", reply="454 4.7.0 Temporary authentication failure")
        smtp = client(server, start_tls=True, tls_context=ca.client_context())
        async with smtp:
            with pytest.raises(aiosmtplib.SMTPAuthenticationError) as info:
                await smtp.auth_plain("u", "p")
            assert info.value.code == 454


async def test_auth_not_offered_without_credentials(server: ScriptedServer) -> None:
    wire = await Wire.open(server)
    await wire.reply()
    await wire.cmd("EHLO me")
    assert (await wire.cmd("AUTH PLAIN AHUAcA=="))[0].startswith(b"502")
    await wire.close()


# -- shutdown --------------------------------------------------------------------------------


async def test_shutdown_with_hanging_connections_is_prompt(ca: LocalCA) -> None:
    server = ScriptedServer(tls_context=ca.server_context())
    await server.start()
    server.on("CONNECT", hang=True, times=1)
    server.on("NOOP", hang=True)
    hung_greeting = await Wire.open(server)
    hung_command = await Wire.open(server)
    await hung_command.reply()
    hung_command.writer.write(b"NOOP\r\n")
    await asyncio.sleep(0.01)
    started = time.monotonic()
    await server.stop()
    assert time.monotonic() - started < 0.5
    for wire in (hung_greeting, hung_command):
        async with asyncio.timeout(TIMEOUT):
            assert await wire.reader.read() == b""
        await wire.close()
    await server.stop()  # idempotent


def _free_port(host: str = "127.0.0.1") -> int:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_host_and_port_are_where_it_listens(host: str) -> None:
    port = _free_port(host)
    async with ScriptedServer(host=host, port=port) as server:
        assert (server.host, server.port) == (host, port)
        wire = await Wire.open(server)
        assert (await wire.reply())[0].startswith(b"220 ")
        await wire.close()


async def test_port_set_before_start_is_honoured() -> None:
    server = ScriptedServer()
    server.port = port = _free_port()
    async with server:
        assert server.port == port
        wire = await Wire.open(server)
        assert (await wire.reply())[0].startswith(b"220 ")
        await wire.close()


async def test_port_zero_picks_a_free_one() -> None:
    async with ScriptedServer() as first, ScriptedServer() as second:
        assert first.port and second.port and first.port != second.port


@pytest.mark.parametrize("port", [-1, 65536, "25", 2.5, True])
def test_a_bad_port_is_refused(port: object) -> None:
    with pytest.raises(ValueError, match="port"):
        ScriptedServer(port=port)  # type: ignore[arg-type]
