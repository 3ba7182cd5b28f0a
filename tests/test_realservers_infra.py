"""The real servers of tests/realservers.py behave as documented there.

Checked with raw sockets and aiosmtplib (not smtpx), so a failure here is the test
infrastructure's, not the client's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass

import aiosmtplib
import pytest
from ports import port_is_free
from realservers import (
    RECIPIENT_REPLIES,
    SENDER_REPLIES,
    PostfixServer,
    SmtpSink,
    SmtpSinkFactory,
    real_servers_required,
    require_real_servers,
)

TIMEOUT = 5.0


# ---------------------------------------------------------------------------------------
# A minimal raw SMTP client: exact replies, and whether the server closed.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    code: int
    lines: tuple[str, ...]

    @property
    def last(self) -> str:
        return self.lines[-1]

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(line[4:] for line in self.lines)


class Raw:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(
        cls, host: str, port: int, *, tls: ssl.SSLContext | None = None
    ) -> tuple[Raw, Reply | None]:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host, port, ssl=tls, server_hostname="localhost" if tls else None
            ),
            TIMEOUT,
        )
        raw = cls(reader, writer)
        return raw, await raw.reply()

    async def reply(self, timeout: float = TIMEOUT) -> Reply | None:
        """The next reply, or None when the server closed the connection first."""
        lines: list[str] = []
        while True:
            try:
                line = await asyncio.wait_for(self.reader.readline(), timeout)
            except (ConnectionResetError, BrokenPipeError):
                return None
            if not line:
                return None
            text = line.decode().rstrip("\r\n")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return Reply(int(text[:3]), tuple(lines))

    async def send(self, data: str | bytes) -> None:
        self.writer.write(data.encode() if isinstance(data, str) else data)
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await self.writer.drain()

    async def command(self, line: str, timeout: float = TIMEOUT) -> Reply | None:
        await self.send(line + "\r\n")
        return await self.reply(timeout)

    async def closed_by_server(self) -> bool:
        """True when the server has closed (EOF or reset) without sending more."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), TIMEOUT)
        except (ConnectionResetError, BrokenPipeError):
            return True
        return data == b""

    async def starttls(self, context: ssl.SSLContext) -> None:
        await self.writer.start_tls(context, server_hostname="localhost")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


def expect(reply: Reply | None, code: int, start: str = "") -> Reply:
    assert reply is not None, f"expected {code} {start!r}, got connection closed"
    assert reply.code == code, reply
    assert reply.last[4:].startswith(start), reply
    return reply


def message(size: int = 0) -> str:
    body = ("x" * 70 + "\r\n") * (size // 72 + 1) if size else "hello\r\n"
    return f"From: a@example.test\r\nTo: b@example.test\r\nSubject: test\r\n\r\n{body}"


# ---------------------------------------------------------------------------------------
# Postfix
# ---------------------------------------------------------------------------------------


async def test_postfix_greeting(postfix_server: PostfixServer) -> None:
    raw, greeting = await Raw.open(postfix_server.host, postfix_server.submission_port)
    expect(greeting, 220, f"{postfix_server.hostname} ESMTP smtpx-test-postfix")
    expect(await raw.command("QUIT"), 221, "2.0.0 Bye")
    await raw.close()


async def test_postfix_ehlo_offers_starttls_and_auth_only_after_tls(
    postfix_server: PostfixServer,
) -> None:
    smtp = aiosmtplib.SMTP(
        hostname=postfix_server.host,
        port=postfix_server.submission_port,
        start_tls=False,
        tls_context=postfix_server.ssl_context(),
        timeout=TIMEOUT,
    )
    await smtp.connect()
    await smtp.ehlo()
    assert smtp.supports_extension("starttls")
    assert not smtp.supports_extension("auth")
    assert smtp.esmtp_extensions["size"] == str(postfix_server.size_limit)
    response = await smtp.starttls()
    assert response.code == 220
    assert smtp.is_ehlo_or_helo_needed
    await smtp.ehlo()
    assert not smtp.supports_extension("starttls")
    assert smtp.server_auth_methods == ["plain", "login"]
    await smtp.quit()


async def test_postfix_auth_before_starttls_is_refused(postfix_server: PostfixServer) -> None:
    raw, _ = await Raw.open(postfix_server.host, postfix_server.submission_port)
    expect(await raw.command("EHLO client.test"), 250)
    reply = expect(await raw.command("AUTH PLAIN AHNtdHB4AHg="), 503, "5.5.1")
    assert "authentication not enabled" in reply.last
    await raw.close()


async def test_postfix_starttls_certificate_verifies_against_test_ca(
    postfix_server: PostfixServer,
) -> None:
    raw, _ = await Raw.open(postfix_server.host, postfix_server.submission_port)
    expect(await raw.command("EHLO client.test"), 250)
    expect(await raw.command("STARTTLS"), 220, "2.0.0 Ready to start TLS")
    await raw.starttls(postfix_server.ssl_context())  # verifies chain and "localhost"
    reply = expect(await raw.command("EHLO client.test"), 250)
    assert "AUTH PLAIN LOGIN" in reply.texts
    await raw.close()

    # Without the test CA the certificate does not verify.
    raw, _ = await Raw.open(postfix_server.host, postfix_server.submission_port)
    expect(await raw.command("EHLO client.test"), 250)
    expect(await raw.command("STARTTLS"), 220)
    with pytest.raises(ssl.SSLCertVerificationError):
        await raw.starttls(ssl.create_default_context())
    await raw.close()


async def test_postfix_certificate_covers_ip_address(postfix_server: PostfixServer) -> None:
    context = postfix_server.ssl_context()
    reader, writer = await asyncio.open_connection(
        postfix_server.host,
        postfix_server.smtps_port,
        ssl=context,
        server_hostname=postfix_server.host,
    )
    expect(await Raw(reader, writer).reply(), 220)
    writer.close()


async def test_postfix_implicit_tls_port(postfix_server: PostfixServer) -> None:
    smtp = aiosmtplib.SMTP(
        hostname=postfix_server.host,
        port=postfix_server.smtps_port,
        use_tls=True,
        tls_context=postfix_server.ssl_context(),
        timeout=TIMEOUT,
    )
    response = await smtp.connect()
    assert response.code == 220
    await smtp.ehlo()
    assert not smtp.supports_extension("starttls")
    assert smtp.server_auth_methods == ["plain", "login"]
    await smtp.quit()


@pytest.mark.parametrize("method", ["auth_plain", "auth_login"])
async def test_postfix_auth_good_credentials(postfix_server: PostfixServer, method: str) -> None:
    async with aiosmtplib.SMTP(
        hostname=postfix_server.host,
        port=postfix_server.smtps_port,
        use_tls=True,
        tls_context=postfix_server.ssl_context(),
        timeout=TIMEOUT,
    ) as smtp:
        auth = getattr(smtp, method)
        response = await auth(postfix_server.username, postfix_server.password)
        assert (response.code, response.message) == (235, "2.7.0 Authentication successful")


async def test_postfix_auth_bad_credentials(postfix_server: PostfixServer) -> None:
    async with aiosmtplib.SMTP(
        hostname=postfix_server.host,
        port=postfix_server.submission_port,
        start_tls=True,
        tls_context=postfix_server.ssl_context(),
        timeout=TIMEOUT,
    ) as smtp:
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as info:
            await smtp.auth_plain(postfix_server.username, "wrong password")
        assert info.value.code == 535
        assert info.value.message.startswith("5.7.8 Error: authentication failed")
        # The session survives: good credentials still work afterwards.
        response = await smtp.auth_plain(postfix_server.username, postfix_server.password)
        assert response.code == 235


async def test_postfix_accepts_normal_mail(postfix_server: PostfixServer) -> None:
    async with aiosmtplib.SMTP(
        hostname=postfix_server.host,
        port=postfix_server.submission_port,
        start_tls=True,
        tls_context=postfix_server.ssl_context(),
        username=postfix_server.username,
        password=postfix_server.password,
        timeout=TIMEOUT,
    ) as smtp:
        refused, text = await smtp.sendmail(
            postfix_server.sender, [postfix_server.recipient], message()
        )
    assert refused == {}
    assert text.startswith("2.0.0 Ok: queued as ")


@pytest.mark.parametrize("local", sorted(RECIPIENT_REPLIES))
async def test_postfix_special_recipient(postfix_server: PostfixServer, local: str) -> None:
    address = f"{local}@{postfix_server.domain}"
    expected = postfix_server.replies[address]
    assert expected == RECIPIENT_REPLIES[local]
    raw, _ = await Raw.open(postfix_server.host, postfix_server.submission_port)
    expect(await raw.command("EHLO client.test"), 250)
    expect(await raw.command(f"MAIL FROM:<{postfix_server.sender}>"), 250, "2.1.0 Ok")
    reply = expect(await raw.command(f"RCPT TO:<{address}>"), expected.code)
    assert reply.last == (
        f"{expected.code} {expected.enhanced} <{address}>: "
        f"Recipient address rejected: {expected.text}"
    )
    if expected.closes:
        assert await raw.closed_by_server()
    else:
        expect(await raw.command(f"RCPT TO:<{postfix_server.recipient}>"), 250, "2.1.5 Ok")
        expect(await raw.command("QUIT"), 221)
    await raw.close()


@pytest.mark.parametrize("local", sorted(SENDER_REPLIES))
async def test_postfix_special_sender(postfix_server: PostfixServer, local: str) -> None:
    address = f"{local}@{postfix_server.domain}"
    expected = postfix_server.replies[address]
    raw, _ = await Raw.open(postfix_server.host, postfix_server.submission_port)
    expect(await raw.command("EHLO client.test"), 250)
    reply = expect(await raw.command(f"MAIL FROM:<{address}>"), expected.code)
    assert reply.last == (
        f"{expected.code} {expected.enhanced} <{address}>: "
        f"Sender address rejected: {expected.text}"
    )
    if expected.closes:
        assert await raw.closed_by_server()
    else:
        expect(await raw.command("NOOP"), 250)
    await raw.close()


async def test_postfix_special_address_attributes(postfix_server: PostfixServer) -> None:
    s = postfix_server
    assert s.replies[s.soft450_rcpt].code == 450
    assert s.replies[s.soft451_rcpt].code == 451
    assert s.replies[s.soft452_rcpt].code == 452
    assert s.replies[s.hard550_rcpt].code == 550
    assert s.replies[s.hard551_rcpt].code == 551
    assert s.replies[s.hard552_rcpt].code == 552
    assert s.replies[s.hard553_rcpt].code == 553
    assert s.replies[s.close421_rcpt].closes
    assert s.replies[s.hard553_sender].code == 553
    assert s.replies[s.soft451_sender].code == 451
    assert s.replies[s.hard550_sender].code == 550
    assert s.replies[s.close421_sender].closes
    assert s.sender not in s.replies
    assert s.recipient not in s.replies
    with pytest.raises(AttributeError):
        s.submission_port = 1  # type: ignore[misc]


async def test_postfix_size_limit_at_mail_from(postfix_server: PostfixServer) -> None:
    raw, _ = await Raw.open(postfix_server.host, postfix_server.submission_port)
    expect(await raw.command("EHLO client.test"), 250)
    limit = postfix_server.size_limit
    reply = await raw.command(f"MAIL FROM:<{postfix_server.sender}> SIZE={limit + 1}")
    expect(reply, 552, "5.3.4 Message size exceeds fixed limit")
    expect(await raw.command(f"MAIL FROM:<{postfix_server.sender}> SIZE={limit}"), 250)
    await raw.close()


async def test_postfix_size_limit_at_end_of_data(postfix_server: PostfixServer) -> None:
    raw, _ = await Raw.open(postfix_server.host, postfix_server.submission_port)
    expect(await raw.command("EHLO client.test"), 250)
    expect(await raw.command(f"MAIL FROM:<{postfix_server.sender}>"), 250)
    expect(await raw.command(f"RCPT TO:<{postfix_server.recipient}>"), 250)
    expect(await raw.command("DATA"), 354)
    await raw.send(message(postfix_server.size_limit + 1000) + ".\r\n")
    expect(await raw.reply(), 552, "5.3.4 Error: message file too big")
    # The session goes on.
    expect(await raw.command("RSET"), 250)
    expect(await raw.command(f"MAIL FROM:<{postfix_server.sender}>"), 250)
    await raw.close()


# ---------------------------------------------------------------------------------------
# smtp-sink
# ---------------------------------------------------------------------------------------


async def transaction(sink: SmtpSink, *, hello: str = "EHLO client.test") -> list[Reply | None]:
    """Greeting, hello, MAIL, RCPT, DATA, data + '.', QUIT -- stopping at a close."""
    raw, greeting = await Raw.open(sink.host, sink.port)
    replies: list[Reply | None] = [greeting]
    steps = [hello, "MAIL FROM:<a@example.test>", "RCPT TO:<b@example.test>", "DATA"]
    try:
        if greeting is None:
            return replies
        for step in steps:
            replies.append(await raw.command(step))
            if replies[-1] is None:
                return replies
        replies.append(await raw.command(message() + "."))
        if replies[-1] is not None:
            replies.append(await raw.command("QUIT"))
        return replies
    finally:
        await raw.close()


def codes(replies: list[Reply | None]) -> list[int | None]:
    return [None if reply is None else reply.code for reply in replies]


async def test_sink_default_accepts_everything(smtp_sink: SmtpSinkFactory) -> None:
    sink = smtp_sink()
    replies = await transaction(sink)
    assert codes(replies) == [220, 250, 250, 250, 354, 250, 221]
    greeting, ehlo, mail, rcpt, data, dot, quit_ = replies
    assert greeting is not None and greeting.last == "220 smtp-sink ESMTP"
    assert ehlo is not None
    assert ehlo.texts[1:] == (
        "PIPELINING",
        "8BITMIME",
        "AUTH PLAIN LOGIN",
        "XCLIENT NAME HELO",
        "XFORWARD NAME ADDR PROTO HELO",
        "ENHANCEDSTATUSCODES",
        "DSN",
        "",  # the last EHLO line is a bare "250 "
    )
    assert [r.last for r in (mail, rcpt, data, dot, quit_) if r] == [
        "250 2.1.0 Ok",
        "250 2.1.5 Ok",
        "354 End data with <CR><LF>.<CR><LF>",
        "250 2.0.0 Ok",
        "221 Bye",
    ]


async def test_sink_auth_and_starttls(smtp_sink: SmtpSinkFactory) -> None:
    sink = smtp_sink()
    raw, _ = await Raw.open(sink.host, sink.port)
    expect(await raw.command("EHLO client.test"), 250)
    expect(await raw.command("AUTH PLAIN AGEAYg=="), 250, "2.0.0 Ok")  # 250, not 235
    expect(await raw.command("STARTTLS"), 500, "5.5.1 Error: unknown command")
    await raw.close()


SOFT = "450 4.3.0 Error: command failed"
HARD = "500 5.3.0 Error: command failed"
CLOSE = "421 4.0.0 Server closing connection"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("-r", "RCPT"), [220, 250, 250, 450, 503]),
        (("-f", "MAIL"), [220, 250, 500, 503, 503]),
        (("-f", "RCPT"), [220, 250, 250, 500, 503]),
        (("-r", "DATA"), [220, 250, 250, 250, 450]),
        (("-f", "DATA"), [220, 250, 250, 250, 500]),
        (("-r", "."), [220, 250, 250, 250, 354, 450, 221]),
        (("-f", "."), [220, 250, 250, 250, 354, 500, 221]),
        (("-r", "EHLO"), [220, 450, 250, 250, 354, 250, 221]),
        (("-r", "CONNECT"), [450, 250, 250, 250, 354, 250, 221]),
        (("-f", "CONNECT"), [500, 250, 250, 250, 354, 250, 221]),
    ],
)
async def test_sink_reject_flags(
    smtp_sink: SmtpSinkFactory, flags: tuple[str, ...], expected: list[int | None]
) -> None:
    sink = smtp_sink(*flags)
    replies = await transaction(sink)
    assert codes(replies)[: len(expected)] == expected
    for reply in replies:
        if reply is not None and reply.code in (450, 500) and "unknown" not in reply.last:
            assert reply.last == (SOFT if reply.code == 450 else HARD)
    ehlo = replies[1]
    if ehlo is not None and ehlo.code == 250:
        assert "PIPELINING" not in ehlo.texts  # -r and -f imply -p


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("-Q", "CONNECT"), [421, None]),
        (("-Q", "MAIL"), [220, 250, 421, None]),
        (("-Q", "RCPT"), [220, 250, 250, 421, None]),
        (("-Q", "DATA"), [220, 250, 250, 250, 421, None]),
        (("-Q", "."), [220, 250, 250, 250, 354, 421, None]),
        (("-q", "CONNECT"), [None]),
        (("-q", "RCPT"), [220, 250, 250, None]),
        (("-q", "DATA"), [220, 250, 250, 250, None]),
        (("-A", "0"), [220, 250, 250, 250, 354, 550, None]),
    ],
)
async def test_sink_disconnect_flags(
    smtp_sink: SmtpSinkFactory, flags: tuple[str, ...], expected: list[int | None]
) -> None:
    sink = smtp_sink(*flags)
    replies = await transaction(sink)
    assert codes(replies) == expected
    closing = replies[-2] if len(replies) > 1 else None
    if closing is not None and closing.code == 421:
        assert closing.last == CLOSE
    if closing is not None and closing.code == 550:
        assert closing.last == "550 This violates SMTP"


async def test_sink_abort_after_data_is_unprompted(smtp_sink: SmtpSinkFactory) -> None:
    """-A: the 550 follows the 354 by itself, without the client sending anything."""
    sink = smtp_sink("-A", "1")
    raw, _ = await Raw.open(sink.host, sink.port)
    for line in ("HELO c", "MAIL FROM:<a@b.test>", "RCPT TO:<c@d.test>"):
        expect(await raw.command(line), 250)
    expect(await raw.command("DATA"), 354)
    started = time.monotonic()
    expect(await raw.reply(), 550, "This violates SMTP")
    assert 0.8 < time.monotonic() - started < 3
    assert await raw.closed_by_server()
    await raw.close()


@pytest.mark.parametrize(
    ("flags", "delayed_index"),
    [
        (("-w", "1"), 4),  # DATA's 354
        (("-W", "rcpt:1"), 3),
        (("-W", "connect:1"), 0),  # the greeting
    ],
)
async def test_sink_delay_flags(
    smtp_sink: SmtpSinkFactory, flags: tuple[str, ...], delayed_index: int
) -> None:
    sink = smtp_sink(*flags)
    raw = None
    timings: list[float] = []
    started = time.monotonic()
    raw, greeting = await Raw.open(sink.host, sink.port)
    expect(greeting, 220)
    timings.append(time.monotonic() - started)
    for line, code in (
        ("EHLO c", 250),
        ("MAIL FROM:<a@b.test>", 250),
        ("RCPT TO:<c@d.test>", 250),
        ("DATA", 354),
        (message() + ".", 250),
    ):
        started = time.monotonic()
        expect(await raw.command(line), code)
        timings.append(time.monotonic() - started)
    await raw.close()
    for index, seconds in enumerate(timings):
        if index == delayed_index:
            assert 0.8 < seconds < 3, timings
        else:
            assert seconds < 0.5, timings


async def test_sink_custom_reply_texts(smtp_sink: SmtpSinkFactory) -> None:
    sink = smtp_sink("-r", "RCPT", "-b", "451 4.7.1 Try again later", "-f", "DATA")
    sink2 = smtp_sink("-f", "RCPT", "-B", "554 5.7.1 Go away")
    replies = await transaction(sink)
    assert replies[3] is not None and replies[3].last == "451 4.7.1 Try again later"
    replies = await transaction(sink2)
    assert replies[3] is not None and replies[3].last == "554 5.7.1 Go away"


async def test_sink_lmtp(smtp_sink: SmtpSinkFactory) -> None:
    sink = smtp_sink("-L")
    raw, _ = await Raw.open(sink.host, sink.port)
    expect(await raw.command("LHLO c"), 250)
    expect(await raw.command("MAIL FROM:<a@b.test>"), 250)
    expect(await raw.command("RCPT TO:<c@d.test>"), 250)
    expect(await raw.command("RCPT TO:<e@d.test>"), 250)
    expect(await raw.command("DATA"), 354)
    expect(await raw.command(message() + "."), 250, "2.2.0 Ok")  # one per recipient
    expect(await raw.reply(), 250, "2.2.0 Ok")
    expect(await raw.command("QUIT"), 221)
    await raw.close()


async def test_sink_no_esmtp_and_hostname(smtp_sink: SmtpSinkFactory) -> None:
    sink = smtp_sink("-e", "-h", "mx.sink.test")
    raw, greeting = await Raw.open(sink.host, sink.port)
    expect(greeting, 220)
    assert greeting is not None and greeting.last == "220 mx.sink.test"
    expect(await raw.command("EHLO c"), 500, "5.5.1 Error: unknown command")
    expect(await raw.command("HELO c"), 250, "mx.sink.test")
    await raw.close()


async def test_sink_counters_and_stop(smtp_sink: SmtpSinkFactory) -> None:
    sink = smtp_sink("-c", backlog=1)
    assert not port_is_free(sink.port)  # smtp-sink's SO_REUSEPORT socket is detected
    assert codes(await transaction(sink))[-1] == 221
    deadline = time.monotonic() + 2
    while "mesg=1" not in sink.log() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert "sess=1 quit=1 mesg=1" in sink.log()
    sink.stop()
    assert not sink.running()
    assert port_is_free(sink.port)


# ---------------------------------------------------------------------------------------
# Skip or fail
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "required"),
    [
        ({}, False),
        ({"CI": "true"}, True),
        ({"CI": "false"}, False),
        ({"SMTPX_REQUIRE_REAL_SERVERS": "1"}, True),
        ({"SMTPX_REQUIRE_REAL_SERVERS": "0"}, False),
    ],
)
def test_required_in_ci(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], required: bool
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("SMTPX_REQUIRE_REAL_SERVERS", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert real_servers_required() is required


def test_missing_requirements_skip_or_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    import realservers

    monkeypatch.setattr(realservers, "missing_requirements", lambda server: ["postfix"])
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("SMTPX_REQUIRE_REAL_SERVERS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="missing postfix"):
        require_real_servers("postfix")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="not skipping"):
        require_real_servers("postfix")
