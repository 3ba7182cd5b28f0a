"""The fault matrix: smtpx against real servers (Postfix smtpd, Postfix smtp-sink) and real
network faults, each case ending in a typed smtpx outcome.

The matrix is data: :data:`CASES` lists one :class:`Case` per fault -- what the server
does, how smtpx is driven (always ``smtpx.Client``, never aiosmtplib), and the outcome
expected (class, code, command, enhanced status, each refused recipient, whether the
connection survives).  One parametrized test asserts every record, and
``scripts/gen_compat.py`` renders the same records as ``docs/compatibility.md``; a test
below fails when that page is stale.

Every case also checks that no recipient vanished: each one is in ``accepted``,
``rejected`` (of the result or of the error) or the error's ``undelivered``.

smtp-sink notes (Postfix 3.7, measured): ``-r``/``-f`` imply ``-p`` (no PIPELINING); the
delay cases add ``-p`` because smtp-sink delays a pipelined reply by answering the
commands after it first (see the ``sink-W-rcpt-pipelined`` case).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
from faultproxy import FaultProxy
from ports import find_free_ports
from realservers import (
    RECIPIENT_REPLIES,
    SENDER_REPLIES,
    SIZE_LIMIT,
    PostfixServer,
    SmtpSink,
    SmtpSinkFactory,
    require_real_servers,
)
from tls_ca import LocalCA

import smtpx
from smtpx import Command, TLSMode

ROOT = Path(__file__).resolve().parents[1]

# -- the cases' vocabulary ------------------------------------------------------------------

POSTFIX: Final = "Postfix smtpd"
SINK: Final = "Postfix smtp-sink"
NETWORK: Final = "Network and TLS faults"
SERVERS: Final = (POSTFIX, SINK, NETWORK)

DOMAIN = "example.test"
SENDER = f"sender@{DOMAIN}"
GOOD = f"recipient@{DOMAIN}"  # accepted by Postfix
LOCAL_HOSTNAME = "client.test"
TIMEOUT = 5.0  # ordinary cases: replies come in milliseconds
SHORT = 0.3  # the client timeout of the delay cases
PROBED = 4.0  # over the 2 s of silence after which the client checks for implicit TLS
DELAY = 1  # the server's delay in those cases (seconds, > SHORT)
HANG = 15.0  # a case that takes longer has hung: fail it

# Date and Message-ID of their own, so that smtpx adds none: message_of() is exact
HEADERS = (
    f"From: {SENDER}\r\nTo: {GOOD}\r\nSubject: fault matrix\r\n"
    "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\nMessage-ID: <fault-matrix@example.test>\r\n\r\n"
).encode()
MESSAGE = HEADERS + b"Hello from the smtpx fault matrix.\r\n"


def message_of(message_size: int) -> bytes:
    """A message of ``message_size`` octets with CRLF line endings (no line starts with a
    dot): the size smtpx announces with SIZE= (RFC 1870) and compares with the limit."""
    size = message_size - len(HEADERS)
    lines, last = divmod(size - 2, 72)
    body = (b"x" * 70 + b"\r\n") * lines + b"z" * last + b"\r\n"
    data = HEADERS + body
    assert len(data) == message_size, (len(data), message_size)
    return data


Result = smtpx.SendResult | smtpx.Success
Outcome = Result | smtpx.SMTPError


@dataclass(frozen=True)
class Expect:
    """One observed outcome: its exact class, code, command, enhanced status, recipient.

    For a ``SendResult`` the code, command and enhanced status are those of the reply to
    the final "." (``DATA_END``).
    """

    outcome: type[Outcome]
    code: int | None = None
    command: Command | None = None
    enhanced: str | None = None
    recipient: str | None = None

    @classmethod
    def of(cls, outcome: Outcome) -> Expect:
        reply: smtpx.Reply | None
        command: Command | None
        recipient: str | None
        if isinstance(outcome, smtpx.SendResult):
            reply, command, recipient = outcome.reply, Command.DATA_END, None
        elif isinstance(outcome, smtpx.Success):
            reply, command, recipient = outcome.reply, outcome.command, None
        else:
            reply, command, recipient = outcome.reply, outcome.command, outcome.recipient
        kind: type[Outcome] = type(outcome)
        if isinstance(outcome, smtpx.RecipientsRefused) and outcome.refusal is not None:
            # a lone recipient's refusal: the group class, also catchable as the refusal's
            assert isinstance(outcome, type(outcome.refusal))
            kind = kind.__mro__[1]
        return cls(
            kind,
            reply.code if reply is not None else None,
            command,
            str(reply.enhanced) if reply is not None and reply.enhanced is not None else None,
            recipient,
        )

    @property
    def retryable(self) -> bool | None:
        """What ``retryable`` says for this class (None for a success)."""
        if issubclass(self.outcome, smtpx.SMTPError):
            return self.outcome.retryable
        return None


class Env:
    """What a driver needs: the servers (started on demand) and what it observed."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request
        self.connected: bool | None = None  # client.connected once the outcome was known
        self.extensions: dict[str, str] = {}
        self.proxy: FaultProxy | None = None

    @property
    def postfix(self) -> PostfixServer:
        server = self._request.getfixturevalue("postfix_server")
        assert isinstance(server, PostfixServer)
        return server

    def sink(self, *flags: str) -> SmtpSink:
        factory: SmtpSinkFactory = self._request.getfixturevalue("smtp_sink")
        return factory(*flags)


Drive = Callable[["Case", Env], Awaitable[Result]]
Action = Callable[[smtpx.Client, "Case"], Awaitable[Result]]


@dataclass(frozen=True)
class Case:
    """One row of the matrix (and of docs/compatibility.md)."""

    id: str
    server: str  # one of SERVERS
    does: str  # what the server (or the network) does, for the page
    drive: Drive = field(repr=False, compare=False)
    expect: Expect
    recipients: tuple[str, ...] = ()
    sender: str = SENDER
    refused: tuple[tuple[str, Expect], ...] = ()  # recipient -> its refusal
    connected: bool | None = None  # is the client still connected afterwards?
    check: Callable[[Outcome, Env], None] | None = field(default=None, repr=False)
    note: str = ""  # why the outcome is what it is, when that is not obvious
    # Other outcomes that are as right, where the server's timing against the client's
    # write decides which one happens (never a looser check: each is exact too).
    races: tuple[Expect, ...] = field(default=(), repr=False)


# -- driving smtpx ---------------------------------------------------------------------------


async def session(env: Env, client: smtpx.Client, case: Case, action: Action) -> Result:
    try:
        return await action(client, case)
    finally:
        env.connected = client.connected
        env.extensions = dict(client.extensions)
        await client.quit()


async def send(client: smtpx.Client, case: Case) -> Result:
    return await client.send(MESSAGE, sender=case.sender, recipients=case.recipients)


def send_message(message: bytes) -> Action:
    async def action(client: smtpx.Client, case: Case) -> Result:
        return await client.send(message, sender=case.sender, recipients=case.recipients)

    return action


async def send_then_quit(client: smtpx.Client, case: Case) -> Result:
    result = await send(client, case)
    await client.quit()  # QUIT's reply, or its absence, cannot undo an accepted message
    return result


async def ehlo(client: smtpx.Client, case: Case) -> Result:
    await client.connect()
    return await client.ehlo()


async def rset(client: smtpx.Client, case: Case) -> Result:
    await client.connect()
    return await client.rset()


async def noop(client: smtpx.Client, case: Case) -> Result:
    await client.connect()
    return await client.noop()


async def vrfy(client: smtpx.Client, case: Case) -> Result:
    await client.connect()
    return await client.vrfy(GOOD)


async def mail_size_over(client: smtpx.Client, case: Case) -> Result:
    await client.connect()
    return await client.mail(case.sender, [f"SIZE={SIZE_LIMIT + 1}"])


def postfix(
    *,
    smtps: bool = False,
    action: Action = send,
    system_ca: bool = False,
    proxy: dict[str, Any] | None = None,
    **options: Any,
) -> Drive:
    """Drive a Client against the session's Postfix: the submission port with STARTTLS
    verified against the test CA unless told otherwise."""

    async def drive(case: Case, env: Env) -> Result:
        server = env.postfix
        port = server.smtps_port if smtps else server.submission_port
        settings: dict[str, Any] = {
            "tls": TLSMode.IMPLICIT if smtps else TLSMode.STARTTLS,
            "tls_context": None if system_ca else server.ssl_context(),
            "local_hostname": LOCAL_HOSTNAME,
            "timeout": TIMEOUT,
            **options,
        }
        if proxy is None:
            return await session(env, smtpx.Client(server.host, port, **settings), case, action)
        async with FaultProxy((server.host, port), **proxy) as env.proxy:
            client = smtpx.Client(env.proxy.host, env.proxy.port, **settings)
            return await session(env, client, case, action)

    return drive


def sink(*flags: str, action: Action = send, timeout: float = TIMEOUT, **options: Any) -> Drive:
    """Drive a plaintext Client against a fresh ``smtp-sink FLAGS``."""

    async def drive(case: Case, env: Env) -> Result:
        server = env.sink(*flags)
        settings: dict[str, Any] = {
            "tls": TLSMode.NONE,
            "local_hostname": LOCAL_HOSTNAME,
            "timeout": timeout,
            **options,
        }
        return await session(env, smtpx.Client(server.host, server.port, **settings), case, action)

    return drive


async def closed_port(case: Case, env: Env) -> Result:
    (port,) = find_free_ports(1)  # free: nothing listens there
    client = smtpx.Client("127.0.0.1", port, tls=TLSMode.NONE, timeout=TIMEOUT)
    return await session(env, client, case, send)


def tls_proxy_to_sink(*, expired: bool) -> Drive:
    """Implicit TLS terminated by a proxy (certificate from a fresh test CA, which the
    client trusts) in front of a plain smtp-sink."""

    async def drive(case: Case, env: Env) -> Result:
        server = env.sink()
        ca = LocalCA()
        context = ca.expired_server_context() if expired else ca.server_context()
        async with FaultProxy((server.host, server.port), tls=context) as env.proxy:
            client = smtpx.Client(
                env.proxy.host,
                env.proxy.port,
                tls=TLSMode.IMPLICIT,
                tls_context=ca.client_context(),
                local_hostname=LOCAL_HOSTNAME,
                timeout=TIMEOUT,
            )
            return await session(env, client, case, send)

    return drive


# -- extra checks ----------------------------------------------------------------------------


def caused_by_refusal(outcome: Outcome, env: Env) -> None:
    assert isinstance(outcome, smtpx.ConnectError)
    assert outcome.__cause__ is not None
    chain: list[BaseException] = []
    cause: BaseException | None = outcome
    while cause is not None:
        chain.append(cause)
        cause = cause.__cause__
    assert any(isinstance(c, ConnectionRefusedError) for c in chain), chain


def postfix_extensions(outcome: Outcome, env: Env) -> None:
    assert isinstance(outcome, smtpx.Ok)
    lines = outcome.reply.lines
    assert len(lines) >= 8, lines
    assert lines[0] == "mx.smtpx.test"
    assert env.extensions["size"] == str(SIZE_LIMIT)
    for name in ("pipelining", "starttls", "enhancedstatuscodes", "8bitmime", "chunking"):
        assert name in env.extensions, (name, env.extensions)
    assert "auth" not in env.extensions  # AUTH only after STARTTLS


def split_postfix_extensions(outcome: Outcome, env: Env) -> None:
    postfix_extensions(outcome, env)
    split_into_bytes(outcome, env)


def split_into_bytes(outcome: Outcome, env: Env) -> None:
    assert env.proxy is not None
    assert env.proxy.server_writes > 200  # the replies really went out byte by byte


def sink_extensions(outcome: Outcome, env: Env) -> None:
    assert isinstance(outcome, smtpx.Ok)
    assert outcome.reply.lines[-1] == ""  # smtp-sink ends its EHLO with a bare "250 "
    for name in ("pipelining", "8bitmime", "enhancedstatuscodes", "dsn"):
        assert name in env.extensions, (name, env.extensions)
    assert "size" not in env.extensions


# -- the cases -------------------------------------------------------------------------------

DELIVERED = Expect(smtpx.SendResult, 250, Command.DATA_END, "2.0.0")


def _rcpt_expect(local: str) -> Expect:
    reply = RECIPIENT_REPLIES[local]
    error: type[smtpx.SMTPError] = {
        "soft450": smtpx.MailboxBusy,
        "soft451": smtpx.LocalError,
        "soft452": smtpx.MailboxFullTemporary,
        "hard550": smtpx.NoSuchMailbox,
        "hard551": smtpx.UserNotLocal,
        "hard552": smtpx.MailboxFullTemporary,  # 552 to RCPT: transient, RFC 5321 §4.5.3.1.10
        "hard553": smtpx.MailboxNameInvalid,
        "close421": smtpx.ServiceUnavailable,
    }[local]
    return Expect(error, reply.code, Command.RCPT, reply.enhanced, f"{local}@{DOMAIN}")


RCPT_NOTES = {
    "hard552": "552 to RCPT is transient (RFC 5321 §4.5.3.1.10: it may be a mailbox over "
    "quota for now), so the lone-recipient case is AllRecipientsDeferred",
    "soft452": "4.2.2 refines 452 to a full mailbox",
    "hard550": "5.1.1 refines 550 to a non-existent mailbox",
}


def postfix_recipient_cases() -> Iterator[Case]:
    for local, reply in RECIPIENT_REPLIES.items():
        address = f"{local}@{DOMAIN}"
        refusal = _rcpt_expect(local)
        does = f"`RCPT TO:<{local}@…>` → `{reply.code} {reply.enhanced} … {reply.text}`"
        if reply.closes:
            does += ", then closes"
            yield Case(
                f"postfix-rcpt-{local}-alone",
                POSTFIX,
                does,
                postfix(),
                refusal,
                recipients=(address,),
                connected=False,
                note="421 ends the session: the recipient is undelivered, not refused",
            )
            yield Case(
                f"postfix-rcpt-{local}-after-good",
                POSTFIX,
                does + " (a good recipient was accepted first)",
                postfix(),
                refusal,
                recipients=(GOOD, address),
                connected=False,
                note="the accepted recipient did not get the message either: both undelivered",
            )
            continue
        every = smtpx.AllRecipientsDeferred if refusal.retryable else smtpx.AllRecipientsRejected
        yield Case(
            f"postfix-rcpt-{local}-alone",
            POSTFIX,
            does,
            postfix(),
            Expect(every, None, Command.RCPT),
            recipients=(address,),
            refused=((address, refusal),),
            connected=True,
            note=RCPT_NOTES.get(local, ""),
        )
        yield Case(
            f"postfix-rcpt-{local}-mixed",
            POSTFIX,
            does + "; a good recipient too",
            postfix(),
            DELIVERED,
            recipients=(address, GOOD),
            refused=((address, refusal),),
            connected=True,
        )


def postfix_size_at_limit_cases() -> Iterator[Case]:
    """A message of exactly SIZE_LIMIT octets passes SIZE at MAIL FROM; with the headers
    Postfix adds it is over: refused where the message ends, with BDAT or with DATA."""
    for name, chunking, command, how in (
        (
            "bdat",
            True,
            Command.BDAT,
            f"the reply to `BDAT {SIZE_LIMIT} LAST` (CHUNKING, "
            "which Postfix offers and smtpx uses by default)",
        ),
        ("end-of-data", False, Command.DATA_END, "with `chunking=False`, end of DATA"),
    ):
        yield Case(
            f"postfix-size-at-limit-{name}",
            POSTFIX,
            f"message of exactly {SIZE_LIMIT} octets passes SIZE at MAIL FROM; with the "
            f"headers Postfix adds it is over the limit: {how} → `552 5.3.4 Error: message "
            "file too big`",
            postfix(action=send_message(message_of(SIZE_LIMIT)), chunking=chunking),
            Expect(smtpx.MessageTooLarge, 552, command, "5.3.4"),
            recipients=(GOOD,),
            connected=True,
        )


def postfix_sender_cases() -> Iterator[Case]:
    errors: dict[str, type[smtpx.SMTPError]] = {
        "hard553sender": smtpx.MailboxNameInvalid,
        "soft451sender": smtpx.LocalError,
        "hard550sender": smtpx.MailboxUnavailable,  # 5.7.1 is policy, not "no such mailbox"
        "close421sender": smtpx.ServiceUnavailable,
    }
    for local, reply in SENDER_REPLIES.items():
        does = f"`MAIL FROM:<{local}@…>` → `{reply.code} {reply.enhanced} … {reply.text}`"
        yield Case(
            f"postfix-sender-{local}",
            POSTFIX,
            does + (", then closes" if reply.closes else ""),
            postfix(),
            Expect(errors[local], reply.code, Command.MAIL, reply.enhanced),
            recipients=(GOOD,),
            sender=f"{local}@{DOMAIN}",
            connected=not reply.closes,
        )


POSTFIX_CASES = [
    Case(
        "postfix-deliver-starttls",
        POSTFIX,
        "STARTTLS, certificate verified against the test CA; mail accepted",
        postfix(),
        DELIVERED,
        recipients=(GOOD,),
        connected=True,
    ),
    Case(
        "postfix-deliver-implicit-tls",
        POSTFIX,
        "implicit TLS port (smtpd_tls_wrappermode); mail accepted",
        postfix(smtps=True),
        DELIVERED,
        recipients=(GOOD,),
        connected=True,
    ),
    Case(
        "postfix-ehlo-multiline",
        POSTFIX,
        "EHLO → multi-line `250-mx.smtpx.test` … `250 CHUNKING` (plaintext, before STARTTLS)",
        postfix(tls=TLSMode.NONE, action=ehlo),
        Expect(smtpx.Ok, 250, Command.EHLO),
        connected=True,
        check=postfix_extensions,
    ),
    *postfix_recipient_cases(),
    *postfix_sender_cases(),
    Case(
        "postfix-size-over-limit-client-check",
        POSTFIX,
        f"advertises `SIZE {SIZE_LIMIT}`; the message is {SIZE_LIMIT + 1} octets",
        postfix(action=send_message(message_of(SIZE_LIMIT + 1))),
        Expect(smtpx.MessageTooLarge, None, Command.MAIL),
        recipients=(GOOD,),
        connected=True,
        note="smtpx refuses before MAIL FROM: nothing is sent",
    ),
    *postfix_size_at_limit_cases(),
    Case(
        "postfix-delivered-with-data",
        POSTFIX,
        "`chunking=False`: MAIL, RCPT and DATA pipelined, then the message and its final "
        "`.` → `250 2.0.0 Ok: queued`",
        postfix(chunking=False),
        DELIVERED,
        recipients=(GOOD,),
        connected=True,
    ),
    Case(
        "postfix-size-param-at-mail",
        POSTFIX,
        f"`Client.mail(sender, ['SIZE={SIZE_LIMIT + 1}'])` → `552 5.3.4 Message size "
        "exceeds fixed limit`",
        postfix(action=mail_size_over),
        Expect(smtpx.MessageTooLarge, 552, Command.MAIL, "5.3.4"),
        connected=True,
    ),
    Case(
        "postfix-auth-good-starttls",
        POSTFIX,
        "AUTH PLAIN after STARTTLS, good credentials → `235 2.7.0`",
        postfix(credentials=("smtpx", "smtpx-test-password")),
        DELIVERED,
        recipients=(GOOD,),
        connected=True,
    ),
    Case(
        "postfix-auth-good-implicit-tls",
        POSTFIX,
        "AUTH PLAIN on the implicit TLS port, good credentials → `235 2.7.0`",
        postfix(smtps=True, credentials=("smtpx", "smtpx-test-password")),
        DELIVERED,
        recipients=(GOOD,),
        connected=True,
    ),
    Case(
        "postfix-auth-bad",
        POSTFIX,
        "AUTH PLAIN, wrong password → `535 5.7.8 Error: authentication failed`",
        postfix(credentials=("smtpx", "wrong password")),
        Expect(smtpx.AuthFailed, 535, Command.AUTH, "5.7.8"),
        recipients=(GOOD,),
        connected=False,
        note="`connect()` closes a session it could not finish setting up",
    ),
    Case(
        "postfix-auth-plaintext-refused",
        POSTFIX,
        "credentials with `TLSMode.NONE` (no opt-in): nothing is sent",
        postfix(tls=TLSMode.NONE, credentials=("smtpx", "smtpx-test-password")),
        Expect(smtpx.PlaintextAuthRefused, None, Command.AUTH),
        recipients=(GOOD,),
        connected=False,
    ),
    Case(
        "postfix-auth-plaintext-opt-in-not-offered",
        POSTFIX,
        "`allow_plaintext_auth=True` without TLS: Postfix offers no AUTH before STARTTLS "
        "(`smtpd_tls_auth_only`)",
        postfix(
            tls=TLSMode.NONE,
            credentials=("smtpx", "smtpx-test-password"),
            allow_plaintext_auth=True,
        ),
        Expect(smtpx.AuthNotOffered, None, Command.AUTH),
        recipients=(GOOD,),
        connected=False,
        note="credentials given, no AUTH offered: a configuration error, never a silent skip",
    ),
    Case(
        "postfix-starttls-system-ca",
        POSTFIX,
        "STARTTLS; the client trusts only the system CAs, not the test CA",
        postfix(system_ca=True),
        Expect(smtpx.CertificateInvalid, None, Command.STARTTLS),
        recipients=(GOOD,),
        connected=False,
    ),
    Case(
        "postfix-implicit-tls-system-ca",
        POSTFIX,
        "implicit TLS; the client trusts only the system CAs",
        postfix(smtps=True, system_ca=True),
        Expect(smtpx.CertificateInvalid, None, Command.CONNECT),
        recipients=(GOOD,),
        connected=False,
    ),
    Case(
        "postfix-starttls-wrong-host",
        POSTFIX,
        "STARTTLS reached as 127.0.0.2 (a proxy): the certificate names localhost and "
        "127.0.0.1 only",
        postfix(proxy={"listen_host": "127.0.0.2"}),
        Expect(smtpx.CertificateInvalid, None, Command.STARTTLS),
        recipients=(GOOD,),
        connected=False,
    ),
    Case(
        "postfix-implicit-tls-wrong-host",
        POSTFIX,
        "implicit TLS reached as 127.0.0.2 (a proxy): the certificate does not name it",
        postfix(smtps=True, proxy={"listen_host": "127.0.0.2"}),
        Expect(smtpx.CertificateInvalid, None, Command.CONNECT),
        recipients=(GOOD,),
        connected=False,
    ),
    Case(
        "postfix-implicit-tls-to-plain-port",
        POSTFIX,
        "`TLSMode.IMPLICIT` to the plaintext port: the server's `220` greeting arrives "
        "where a TLS record was expected",
        postfix(tls=TLSMode.IMPLICIT),
        Expect(smtpx.TLSModeMismatch, None, Command.CONNECT),
        recipients=(GOOD,),
        connected=False,
        note="TLSModeMismatch (permanent; OpenSSL: wrong version number), saying to use "
        "STARTTLS; not a ProtocolError: no SMTP reply was parsed",
    ),
    Case(
        "postfix-plaintext-to-implicit-tls-port",
        POSTFIX,
        "plaintext client (STARTTLS mode) to the implicit TLS port: both sides wait",
        postfix(smtps=True, tls=TLSMode.STARTTLS, timeout=PROBED),
        Expect(smtpx.TLSModeMismatch, None, Command.CONNECT),
        recipients=(GOOD,),
        connected=False,
        note="no greeting within 2 s; a TLS handshake on a second connection succeeds, so "
        "the error says to use implicit TLS (permanent), long before the time-out",
    ),
    Case(
        "postfix-split-deliver",
        POSTFIX,
        "every reply split into 1-byte TCP segments (proxy, plaintext session)",
        postfix(tls=TLSMode.NONE, proxy={"split": True}),
        DELIVERED,
        recipients=(GOOD,),
        connected=True,
        check=split_into_bytes,
    ),
    Case(
        "postfix-split-ehlo-multiline",
        POSTFIX,
        "the multi-line EHLO reply split into 1-byte TCP segments",
        postfix(tls=TLSMode.NONE, proxy={"split": True}, action=ehlo),
        Expect(smtpx.Ok, 250, Command.EHLO),
        connected=True,
        check=split_postfix_extensions,
    ),
    Case(
        "postfix-split-rcpt-soft450-mixed",
        POSTFIX,
        "1-byte segments; `RCPT TO:<soft450@…>` → `450 4.2.1`, a good recipient too",
        postfix(tls=TLSMode.NONE, proxy={"split": True}),
        DELIVERED,
        recipients=(f"soft450@{DOMAIN}", GOOD),
        refused=((f"soft450@{DOMAIN}", _rcpt_expect("soft450")),),
        connected=True,
        check=split_into_bytes,
    ),
    Case(
        "postfix-split-rcpt-close421",
        POSTFIX,
        "1-byte segments; `RCPT TO:<close421@…>` → `421 4.3.2`, then closes",
        postfix(tls=TLSMode.NONE, proxy={"split": True}),
        _rcpt_expect("close421"),
        recipients=(GOOD, f"close421@{DOMAIN}"),
        connected=False,
        check=split_into_bytes,
    ),
]


# smtp-sink: every command it can fault x every fault.  Reply texts (measured):
SOFT = "`450 4.3.0 Error: command failed`"
HARD = "`500 5.3.0 Error: command failed`"
CLOSE_421 = "`421 4.0.0 Server closing connection`"
SINK_RCPTS = (f"first@{DOMAIN}", f"second@{DOMAIN}")


@dataclass(frozen=True)
class SinkRow:
    """One smtp-sink command and smtpx's outcome for each fault flag."""

    name: str  # as smtp-sink spells it
    command: Command
    action: Action
    soft: Expect  # -r
    hard: Expect  # -f
    close421: Expect  # -Q
    silent: Expect  # -q
    delay: Expect  # -W name:DELAY (with -p)
    kept: bool  # is the connection kept after -r / -f?
    extra: tuple[str, ...] = ()  # flags every case of the row needs
    refuses_recipients: bool = False  # -r/-f refuse every recipient (RCPT)


def _e(
    outcome: type[Outcome], code: int | None, command: Command, enh: str | None = None
) -> Expect:
    return Expect(outcome, code, command, enh)


def _row(
    name: str,
    command: Command,
    action: Action = send,
    *,
    kept: bool,
    extra: tuple[str, ...] = (),
    hard: Expect | None = None,
    silent: type[Outcome] = smtpx.ConnectionLost,
    delay: type[Outcome] = smtpx.ResponseTimeout,
) -> SinkRow:
    return SinkRow(
        name,
        command,
        action,
        soft=_e(smtpx.MailboxBusy, 450, command, "4.3.0"),
        hard=hard or _e(smtpx.CommandUnrecognized, 500, command, "5.3.0"),
        close421=_e(smtpx.ServiceUnavailable, 421, command, "4.0.0"),
        silent=_e(silent, None, command),
        delay=_e(delay, None, command),
        kept=kept,
        extra=extra,
    )


RCPT_ROW = SinkRow(
    "RCPT",
    Command.RCPT,
    send,
    soft=_e(smtpx.AllRecipientsDeferred, None, Command.RCPT),
    hard=_e(smtpx.AllRecipientsRejected, None, Command.RCPT),
    close421=Expect(smtpx.ServiceUnavailable, 421, Command.RCPT, "4.0.0", SINK_RCPTS[0]),
    silent=Expect(smtpx.ConnectionLost, None, Command.RCPT, None, SINK_RCPTS[0]),
    delay=Expect(smtpx.ResponseTimeout, None, Command.RCPT, None, SINK_RCPTS[0]),
    kept=True,
    refuses_recipients=True,
)

SINK_ROWS = (
    _row(
        "CONNECT",
        Command.CONNECT,
        kept=False,
        silent=smtpx.ConnectError,
        delay=smtpx.ConnectTimeout,
    ),
    _row("EHLO", Command.EHLO, kept=False, hard=DELIVERED),
    _row("HELO", Command.HELO, kept=False, extra=("-e",)),
    _row("MAIL", Command.MAIL, kept=True),
    RCPT_ROW,
    _row("DATA", Command.DATA, kept=True),
    _row(
        ".",
        Command.DATA_END,
        kept=True,
        silent=smtpx.DeliveryUnknown,
        delay=smtpx.DeliveryUnknown,
    ),
    _row("RSET", Command.RSET, rset, kept=True),
    _row("NOOP", Command.NOOP, noop, kept=True),
    _row("VRFY", Command.VRFY, vrfy, kept=True),
    SinkRow(
        "QUIT",
        Command.QUIT,
        send_then_quit,
        soft=DELIVERED,
        hard=DELIVERED,
        close421=DELIVERED,
        silent=DELIVERED,
        delay=DELIVERED,
        kept=False,
    ),
)

SINK_NOTES = {
    ("EHLO", "-f"): "500 to EHLO: smtpx falls back to HELO (RFC 5321 §3.2) and delivers",
    ("HELO", ""): "with `-e` smtp-sink answers EHLO with 500, so smtpx says HELO",
    ("CONNECT", "-q"): "the server closes before the greeting: a connect error, nothing was sent",
    (".", "-q"): "lost after the final '.': the server may have the message; never retried",
    (".", "-W"): "no reply after the final '.': the server may have the message; never retried",
    ("QUIT", ""): "the message was accepted before QUIT; `quit()` ignores QUIT's fate",
    ("RCPT", "-r"): "every RCPT refused with 450: each recipient carries its MailboxBusy",
    ("RCPT", "-f"): "every RCPT refused with 500: each recipient carries its CommandUnrecognized",
}


def _sink_recipients(row: SinkRow) -> tuple[str, ...]:
    return SINK_RCPTS if row.action in (send, send_then_quit) else ()


def sink_matrix_cases() -> Iterator[Case]:
    for row in SINK_ROWS:
        recipients = _sink_recipients(row)
        if row.name == "CONNECT":
            to, silent = "as the greeting", "closes without a greeting"
        else:
            to = f"to {'end of data' if row.name == '.' else row.name}"
            silent = f"closes without replying {to}"
        faults = (
            ("-r", row.soft, f"{SOFT} {to}"),
            ("-f", row.hard, f"{HARD} {to}"),
            ("-Q", row.close421, f"{CLOSE_421} {to}, then closes"),
            ("-q", row.silent, silent),
            ("-W", row.delay, f"waits {DELAY}s before replying {to}"),
        )
        for flag, expect, effect in faults:
            delayed = flag == "-W"
            argument = f"{row.name.lower()}:{DELAY}" if delayed else row.name
            flags = (*row.extra, *(("-p",) if delayed else ()), flag, argument)
            refused: tuple[tuple[str, Expect], ...] = ()
            if row.refuses_recipients and flag in ("-r", "-f"):
                error, code, enhanced = (
                    (smtpx.MailboxBusy, 450, "4.3.0")
                    if flag == "-r"
                    else (smtpx.CommandUnrecognized, 500, "5.3.0")
                )
                refused = tuple(
                    (r, Expect(error, code, Command.RCPT, enhanced, r)) for r in recipients
                )
            if row.name == "QUIT" or (flag == "-f" and row.name == "EHLO"):
                connected = row.name != "QUIT"
            elif flag in ("-r", "-f"):
                connected = row.kept
            else:
                connected = False
            yield Case(
                f"sink-{flag[1:]}-{'dot' if row.name == '.' else row.name.lower()}",
                SINK,
                f"`{' '.join(flags)}`: {effect}",
                sink(*flags, action=row.action, timeout=SHORT if delayed else TIMEOUT),
                expect,
                recipients=recipients,
                refused=refused,
                connected=connected,
                note=SINK_NOTES.get((row.name, flag), SINK_NOTES.get((row.name, ""), "")),
            )


SINK_CASES = [
    Case(
        "sink-deliver",
        SINK,
        "no flags: accepts everything (PIPELINING: MAIL, RCPTs and DATA in one write)",
        sink(),
        DELIVERED,
        recipients=SINK_RCPTS,
        connected=True,
    ),
    Case(
        "sink-ehlo-bare-last-line",
        SINK,
        "EHLO → multi-line reply whose last line is a bare `250 `",
        sink(action=ehlo),
        Expect(smtpx.Ok, 250, Command.EHLO),
        connected=True,
        check=sink_extensions,
    ),
    *sink_matrix_cases(),
    Case(
        "sink-e-no-esmtp",
        SINK,
        "`-e`: EHLO → `500 5.5.1 Error: unknown command`; HELO works",
        sink("-e"),
        DELIVERED,
        recipients=SINK_RCPTS,
        connected=True,
        note="HELO fallback; no extensions, so no PIPELINING and no SIZE",
    ),
    Case(
        "sink-w-data-lockstep",
        SINK,
        f"`-p -w {DELAY}`: waits {DELAY}s before the 354 to DATA",
        sink("-p", "-w", str(DELAY), timeout=SHORT),
        _e(smtpx.ResponseTimeout, None, Command.DATA),
        recipients=SINK_RCPTS,
        connected=False,
    ),
    Case(
        "sink-w-data-pipelined",
        SINK,
        f"`-w {DELAY}` with PIPELINING: holds every pipelined reply until the delayed 354",
        sink("-w", str(DELAY), timeout=SHORT),
        _e(smtpx.ResponseTimeout, None, Command.MAIL),
        recipients=SINK_RCPTS,
        connected=False,
        note="the first reply awaited (MAIL's) is the one that times out",
    ),
    Case(
        "sink-W-rcpt-pipelined",
        SINK,
        f"`-W rcpt:{DELAY}` with PIPELINING: answers out of order (DATA's 503 before the "
        "delayed RCPT reply), then stalls",
        sink("-W", f"rcpt:{DELAY}", timeout=SHORT),
        Expect(smtpx.ResponseTimeout, None, Command.RCPT, None, SINK_RCPTS[1]),
        recipients=SINK_RCPTS,
        refused=(
            (
                SINK_RCPTS[0],
                Expect(smtpx.BadCommandSequence, 503, Command.RCPT, "5.5.1", SINK_RCPTS[0]),
            ),
        ),
        connected=False,
        note="a server bug smtpx cannot see through: DATA's 503 arrives where the first "
        "RCPT's reply belongs and is reported as that recipient's refusal; it still ends "
        "typed, nothing delivered",
    ),
    Case(
        "sink-A-0",
        SINK,
        "`-A 0`: after the 354, at once `550 This violates SMTP` and close, before the "
        "message is sent",
        sink("-A", "0"),
        _e(smtpx.ProtocolError, None, Command.DATA_END),
        recipients=SINK_RCPTS,
        connected=False,
        note="the 550 arrives before the message was sent, when no command waits for a "
        "reply: it answers nothing, so smtpx never pairs it with an end of data it did not "
        "send; nothing was delivered, and every recipient is undelivered",
        # on a loaded machine the 354 can be read alone and the message written before
        # the 550 arrives: then the 550 answers the end of data, a plain refusal, and
        # whether the close after it has been read yet is timing
        races=(_e(smtpx.MailboxUnavailable, 550, Command.DATA_END),),
    ),
    Case(
        "sink-A-1",
        SINK,
        "`-A 1`: after the 354, waits 1s, then `550 This violates SMTP` and close, without "
        "reading the message",
        sink("-A", "1"),
        _e(smtpx.MailboxUnavailable, 550, Command.DATA_END),
        recipients=SINK_RCPTS,
        # the reply to the final "." ends the transaction (RFC 5321 §4.1.1.4), so nothing
        # more is sent: whether the server's close has been read yet is timing
        connected=None,
        note="the 550 arrives while smtpx awaits the reply to the final '.'",
    ),
    Case(
        "sink-starttls-required",
        SINK,
        "no STARTTLS in EHLO; the client uses the default `TLSMode.STARTTLS`",
        sink(tls=TLSMode.STARTTLS),
        Expect(smtpx.TLSNotOffered, None, Command.STARTTLS),
        recipients=SINK_RCPTS,
        connected=False,
        note="no silent plaintext fallback",
    ),
]


NETWORK_CASES = [
    Case(
        "network-connection-refused",
        NETWORK,
        "nothing listens on the port: connection refused",
        closed_port,
        Expect(smtpx.ConnectError, None, Command.CONNECT),
        recipients=(GOOD,),
        connected=False,
        check=caused_by_refusal,
        note="`__cause__` keeps aiosmtplib's error, whose cause is `ConnectionRefusedError`",
    ),
    Case(
        "network-tls-valid-certificate",
        NETWORK,
        "implicit TLS by a proxy in front of smtp-sink, valid certificate from a test CA",
        tls_proxy_to_sink(expired=False),
        DELIVERED,
        recipients=(GOOD,),
        connected=True,
        note="the control for the next case: only the certificate's dates differ",
    ),
    Case(
        "network-tls-expired-certificate",
        NETWORK,
        "the same, but the certificate expired yesterday",
        tls_proxy_to_sink(expired=True),
        Expect(smtpx.CertificateInvalid, None, Command.CONNECT),
        recipients=(GOOD,),
        connected=False,
    ),
]

CASES: list[Case] = [*POSTFIX_CASES, *SINK_CASES, *NETWORK_CASES]


# -- the tests -------------------------------------------------------------------------------


def test_case_ids_are_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert {case.server for case in CASES} == set(SERVERS)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_fault(case: Case, request: pytest.FixtureRequest) -> None:
    env = Env(request)
    outcome: Outcome
    try:
        async with asyncio.timeout(HANG):
            outcome = await case.drive(case, env)
    except smtpx.SMTPError as error:  # anything else is unclassified: the test errors
        outcome = error

    assert Expect.of(outcome) in (case.expect, *case.races), repr(outcome)

    # No recipient vanished: each is accepted, refused, or undelivered -- exactly once.
    if isinstance(outcome, smtpx.SendResult):
        accounted = [*outcome.accepted, *outcome.rejected]
        refusals = outcome.rejected
    elif isinstance(outcome, smtpx.SMTPError):
        accounted = [*outcome.undelivered, *outcome.rejected]
        refusals = outcome.rejected
    else:
        accounted, refusals = [], {}
    assert sorted(accounted) == sorted(case.recipients), outcome
    assert {r: Expect.of(error) for r, error in refusals.items()} == dict(case.refused)
    # the connection state is the expected outcome's; an outcome a race allows (the
    # server's reply read before its close, say) may find the close not read yet
    if case.connected is not None and Expect.of(outcome) == case.expect:
        assert env.connected is case.connected, "connection state after the outcome"
    if case.check is not None:
        case.check(outcome, env)


def test_compatibility_page_is_current() -> None:
    require_real_servers("smtp-sink")  # the page names the installed Postfix version
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_compat.py"), "--check"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, (
        "docs/compatibility.md is stale: run scripts/gen_compat.py\n" + result.stderr
    )
