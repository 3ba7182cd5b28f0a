"""ScriptedServer: the aiosmtpd server, its rules and its recording (see ``smtpx.testing``)."""

from __future__ import annotations

import asyncio
import email.policy
import logging
import ssl
import sys
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any, AnyStr, Final, NoReturn, Self

import attrs
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from smtpx.testing._oauth import MECHANISMS, OAuthAccounts, OAuthMechanisms

# aiosmtpd logs to "mail.log" (e.g. a client's unrecognised command); keep it out of the
# user's terminal unless their logging configuration asks for it.
logging.getLogger("mail.log").addHandler(logging.NullHandler())

__all__ = ["COMMANDS", "ReceivedMessage", "Rule", "ScriptedServer"]

COMMANDS: Final = frozenset(
    {"CONNECT", "EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "DATA_END"}
    | {"BDAT", "RSET", "VRFY", "EXPN", "HELP", "NOOP", "QUIT"}
)
"""The names :meth:`ScriptedServer.on` accepts. ``CONNECT`` is the greeting, ``DATA`` the
reply to the DATA verb (normally 354), ``DATA_END`` the reply after the final dot and
``BDAT`` the reply to a ``BDAT ... LAST`` chunk (with ``chunking=True``)."""


@attrs.frozen
class ReceivedMessage:
    """A message the server accepted (a 2xx reply after the final "." or BDAT LAST).

    ``data`` is the message content as received, dot-unstuffed, with CRLF line endings.
    Options are the ESMTP parameters of MAIL and RCPT, upper-cased by aiosmtpd.
    """

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    mail_options: tuple[str, ...] = ()
    rcpt_options: tuple[str, ...] = ()

    @property
    def message(self) -> EmailMessage:
        """The content parsed as an ``EmailMessage`` (headers decoded, parts walkable)."""
        return BytesParser(policy=email.policy.default).parsebytes(self.data)

    @property
    def subject(self) -> str | None:
        """The decoded Subject header, or None when there is none."""
        subject = self.message["Subject"]
        return None if subject is None else str(subject)

    @property
    def text(self) -> str:
        """Every ``text/*`` part of the content, decoded and joined by newlines."""
        parts = []
        for part in self.message.walk():
            if part.get_content_maintype() == "text" and not part.is_multipart():
                content = part.get_content()
                parts.append(content if isinstance(content, str) else str(content))
        return "\n".join(parts)

    def describe(self) -> str:
        """One line for failure messages: sender, recipients and subject."""
        to = ", ".join(f"<{r}>" for r in self.rcpt_tos)
        return f"from <{self.mail_from}> to {to} subject {self.subject!r}"


@attrs.define(eq=False)
class Rule:
    """A scripted reaction to one command, as returned by :meth:`ScriptedServer.on`.

    ``hits`` counts how many times the rule has been applied.
    """

    command: str
    reply: str | None = None
    close: bool = False
    hang: bool = False
    raw: bytes | None = None
    match: str | None = None
    times: int | None = None
    record: bool | None = None
    hits: int = 0

    def matches(self, command: str, argument: str) -> bool:
        """Whether this rule applies to *command* with this argument line now."""
        if self.command != command or (self.times is not None and self.hits >= self.times):
            return False
        return self.match is None or self.match.casefold() in argument.casefold()

    @property
    def substitutes(self) -> bool:
        """True for a positive (1xx-3xx) reply without close/hang: the server's normal
        handling runs (so session state advances) but this text is sent instead."""
        return (
            self.reply is not None
            and not (self.close or self.hang)
            and self.reply[:1] in ("1", "2", "3")
        )

    @property
    def records(self) -> bool:
        """For DATA_END and BDAT: whether the message counts as received."""
        if self.record is not None:
            return self.record
        sent = self.reply.encode() if self.reply is not None else (self.raw or b"")
        return sent[:1] == b"2"


def _encode_reply(reply: str) -> bytes:
    lines = reply.rstrip("\r\n").split("\n")
    return b"".join(line.rstrip("\r").encode() + b"\r\n" for line in lines)


async def _forever() -> NoReturn:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")  # pragma: no cover


class _Handler(OAuthMechanisms):
    """aiosmtpd handler: EHLO extension list, AUTH check and DATA_END / BDAT rules."""

    def __init__(self, scripted: ScriptedServer) -> None:
        self._scripted = scripted

    def oauth_accounts(self) -> OAuthAccounts | None:
        return self._scripted.oauth

    async def handle_EHLO(
        self, smtp: SMTP, session: Session, envelope: Envelope, hostname: str, lines: list[str]
    ) -> list[str]:
        session.host_name = hostname  # aiosmtpd leaves this to the hook when one exists
        hidden = set()
        if not self._scripted.eightbitmime:
            hidden.add("8BITMIME")
        if not self._scripted.offers_auth:
            hidden.add("AUTH")
        kept = [line for line in lines if line[4:].split(" ")[0].upper() not in hidden]
        if self._scripted.pipelining:
            kept.insert(1, "250-PIPELINING")
        if self._scripted.chunking:
            kept.insert(1, "250-CHUNKING")
        return kept

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(smtp, _ScriptedSMTP)
        return await self.finish(smtp, envelope, "DATA_END")

    async def finish(self, smtp: _ScriptedSMTP, envelope: Envelope, command: str) -> str:
        """The end of a message (DATA_END or BDAT): record it and reply, by the rules."""
        data = envelope.original_content or b""
        rule = self._scripted._take(command, data.decode("utf-8", "replace"))
        if rule is None or rule.records:
            message = ReceivedMessage(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=bytes(data),
                mail_options=tuple(envelope.mail_options),
                rcpt_options=tuple(envelope.rcpt_options),
            )
            self._scripted.messages.append(message)
        if rule is None:
            return "250 OK"
        await smtp._perform(rule)
        smtp._mute_next = True  # aiosmtpd pushes what we return; the rule already replied
        return ""

    def authenticate(
        self, smtp: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        credentials = self._scripted.credentials or {}
        if isinstance(data, LoginPassword):
            login = data.login.decode("utf-8", "replace")
            if login in credentials and credentials[login] == data.password.decode(
                "utf-8", "replace"
            ):
                return AuthResult(success=True, auth_data=data)
        return AuthResult(success=False, handled=False)


class _Session(Session):
    """aiosmtpd's session without its deprecated ``login_data``, which aiosmtpd itself sets
    on every successful AUTH, logging a deprecation warning on "mail.log" each time (into
    the logs of every test that logs in). ``auth_data`` holds the same login."""

    @property
    def login_data(self) -> Any:
        return getattr(self.auth_data, "login", None)

    @login_data.setter
    def login_data(self, value: Any) -> None:
        pass  # aiosmtpd's copy of auth_data's login; nothing reads it here


class _ScriptedSMTP(SMTP):
    """One connection: aiosmtpd's protocol with every command routed through the rules."""

    def _create_session(self) -> Session:
        return _Session(self.loop)

    def __init__(self, scripted: ScriptedServer, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, loop=asyncio.get_running_loop(), **kwargs)
        self._scripted = scripted
        self._handler_ref = handler
        self._greeted = False
        self._no_service = False  # after a 554 greeting only QUIT is served
        self._in_data = False
        self._substitute: str | None = None
        self._swallow = False
        self._mute_next = False
        methods: dict[str, Callable[[str | None], Awaitable[None]]] = self._smtp_methods
        self._chunks = bytearray()  # BDAT chunks of the message so far
        for verb, method in list(methods.items()):
            if verb in COMMANDS and verb != "BDAT":  # BDAT takes its rule after the chunk
                methods[verb] = self._scripted_method(verb, method)

    def _scripted_method(
        self, verb: str, method: Callable[[str | None], Awaitable[None]]
    ) -> Callable[[str | None], Awaitable[None]]:
        async def dispatch(arg: str | None) -> None:
            rule = self._scripted._take(verb, arg or "")
            if rule is None:
                if self._no_service and verb != "QUIT":
                    await self.push("503 5.5.1 Error: no SMTP service here")
                elif verb == "AUTH" and not self._scripted.offers_auth:
                    await self.push("502 5.5.1 Error: AUTH not available")
                else:
                    await self._run(verb, method, arg)
            elif rule.substitutes and verb != "AUTH":
                self._substitute, self._swallow = rule.reply, verb != "DATA"
                try:
                    await self._run(verb, method, arg)
                finally:
                    self._substitute, self._swallow = None, False
            else:
                if verb == "AUTH" and (rule.reply or "").startswith("235"):
                    assert self.session is not None
                    self.session.authenticated = True
                await self._perform(rule)

        return dispatch

    async def smtp_BDAT(self, arg: str | None) -> None:
        """CHUNKING (RFC 3030), which aiosmtpd lacks.  The chunk is read before any
        answer, whatever the answer, or its octets would be taken for commands."""
        if not self._scripted.chunking:
            await self.push("500 5.5.2 Error: command not recognized")
            return
        size, _, last = (arg or "").partition(" ")
        if not size.isdigit() or last.strip().upper() not in ("", "LAST"):
            await self.push("501 5.5.4 Syntax: BDAT size [LAST]")
            return
        try:
            self._chunks += await self._reader.readexactly(int(size))
        except asyncio.IncompleteReadError:
            return  # the client went away mid-chunk
        if not last:
            await self.push("250 2.0.0 Ok: chunk received")
            return
        data, self._chunks = bytes(self._chunks), bytearray()
        envelope = self.envelope
        assert envelope is not None
        limit = self._scripted.size_limit
        if envelope.mail_from is None:
            status = "503 5.5.1 Error: need MAIL command"
        elif not envelope.rcpt_tos:
            status = "554 5.5.1 Error: no valid recipients"
        elif limit is not None and len(data) > limit:
            status = "552 5.3.4 Error: message file too big"
        else:
            envelope.original_content = data
            status = await self._handler_ref.finish(self, envelope, "BDAT")
        self.envelope = self._create_envelope()  # the transaction is over either way
        await self.push(status)

    async def _run(
        self, verb: str, method: Callable[[str | None], Awaitable[None]], arg: str | None
    ) -> None:
        self._in_data = verb == "DATA"  # lines read meanwhile are message content
        try:
            await method(arg)
        finally:
            self._in_data = False

    async def _perform(self, rule: Rule) -> None:
        """Carry out a rule's actions; never returns for close/hang."""
        if rule.raw is not None:
            self._writer.write(rule.raw)
        elif rule.reply is not None:
            self._writer.write(_encode_reply(rule.reply))
        if rule.close:
            if self.transport is not None:
                self.transport.close()
            await _forever()  # connection_lost() cancels this task
        await self._writer.drain()
        if rule.hang:
            await _forever()

    async def push(self, status: AnyStr) -> None:
        text: str | bytes = status
        if not self._greeted:  # aiosmtpd's first push is the 220 greeting
            self._greeted = True
            rule = self._scripted._take("CONNECT", "")
            if rule is not None:
                self._no_service = (rule.reply or "").startswith("554")
                await self._perform(rule)
                return
        if self._mute_next:
            self._mute_next = False
            return
        if self._substitute is not None:
            text, self._substitute = self._substitute, None
        elif self._swallow:
            return
        self._writer.write(_encode_reply(text) if isinstance(text, str) else text + b"\r\n")
        await self._writer.drain()

    def _cb_client_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        super()._cb_client_connected(reader, writer)
        readuntil = reader.readuntil

        # StreamReader.readline() reads through readuntil(), so this records the AUTH
        # continuation lines that aiosmtpd reads with readline() too, each once.
        async def recording_readuntil(separator: bytes = b"\n") -> bytes:
            return self._record(await readuntil(separator))

        reader.readuntil = recording_readuntil  # type: ignore[method-assign,assignment]

    def _record(self, line: bytes) -> bytes:
        if not self._in_data and line.endswith(b"\n"):
            self._scripted.transcript.append(line.removesuffix(b"\n").removesuffix(b"\r"))
        return line

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._scripted._live.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._scripted._live.discard(self)
        super().connection_lost(error)

    def abort(self) -> None:
        # After STARTTLS, aborting the TCP transport also ends the TLS layer above it, and
        # leaves the TLS transport alone (see _abort); implicit TLS has only the TLS one.
        transport = self._original_transport or self.transport
        if isinstance(transport, asyncio.Transport):
            _abort(transport)
        # An aborted STARTTLS handshake never calls connection_lost(): cancel directly.
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()


# CPython 3.11.0-3.11.3: a TLS transport closed twice (aiosmtpd does so after QUIT) drops
# its protocol, and abort() then raises AttributeError (python/cpython gh-98539, fixed in
# 3.11.4 by gh-104474).  The fixed abort() does nothing in that state; do the same.
_TLS_ABORT_AFTER_CLOSE_RAISES: Final = sys.version_info < (3, 11, 4)


def _abort(transport: asyncio.Transport) -> None:
    try:
        transport.abort()
    except AttributeError:
        if not (_TLS_ABORT_AFTER_CLOSE_RAISES and transport.is_closing()):
            raise


class ScriptedServer:
    """An SMTP server (on 127.0.0.1 by default) whose replies tests can script.

    Use as ``async with ScriptedServer(...) as server:`` (or :meth:`start` /
    :meth:`stop`); then connect to ``server.host``, ``server.port``.

    :param host: the address to listen on (``"::1"`` for IPv6).
    :param port: the port to listen on; 0 (the default) picks a free one, which
        :attr:`port` holds once started.
    :param hostname: name in the greeting and EHLO reply.
    :param tls_context: server-side context; enables STARTTLS (advertised in EHLO).
    :param implicit_tls: the whole listener speaks TLS (like port 465); needs
        *tls_context*. STARTTLS is then not offered.
    :param credentials: ``{username: password}`` accepted by AUTH PLAIN and LOGIN
        (235 on success, ``535 5.7.8 Authentication credentials invalid`` otherwise).
        ``None``: AUTH is not advertised and answered with 502.
    :param auth_require_tls: offer AUTH only once the connection is encrypted (AUTH
        over plain text then gets 538).
    :param size_limit: advertise ``SIZE n`` and enforce it (552); ``None``: no SIZE.
    :param smtputf8: advertise SMTPUTF8 (when hidden, non-ASCII commands get 500).
    :param eightbitmime: advertise 8BITMIME (BODY=8BITMIME is accepted either way).
    :param pipelining: advertise PIPELINING (commands are always processed in order).
    :param chunking: advertise CHUNKING and accept ``BDAT`` (RFC 3030), which plain
        aiosmtpd does not; rules for ``"BDAT"`` answer the ``BDAT ... LAST`` chunk.
    :param oauth: offer XOAUTH2 and OAUTHBEARER, accepting the bearer tokens of these
        :class:`OAuthAccounts` (which record each SASL message received).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        hostname: str = "localhost",
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        credentials: dict[str, str] | None = None,
        auth_require_tls: bool = False,
        size_limit: int | None = None,
        smtputf8: bool = True,
        eightbitmime: bool = True,
        pipelining: bool = True,
        chunking: bool = False,
        oauth: OAuthAccounts | None = None,
    ) -> None:
        if implicit_tls and tls_context is None:
            raise ValueError("implicit_tls needs a tls_context")
        if type(port) is not int or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int from 0 to 65535, not {port!r}")
        self.hostname = hostname
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.credentials = credentials
        self.auth_require_tls = auth_require_tls
        self.size_limit = size_limit
        self.smtputf8 = smtputf8
        self.eightbitmime = eightbitmime
        self.pipelining = pipelining
        self.chunking = chunking
        self.oauth = oauth
        self.host = host
        self.port = port
        self.messages: list[ReceivedMessage] = []
        """Messages accepted at DATA_END or BDAT, in order."""
        self.transcript: list[bytes] = []
        """Command lines received (without CRLF; AUTH responses included, message
        content excluded), in order, across connections."""
        self.connections = 0
        """Number of TCP connections accepted."""
        self._rules: list[Rule] = []
        self._server: asyncio.Server | None = None
        self._live: set[_ScriptedSMTP] = set()

    def on(
        self,
        command: str,
        *,
        reply: str | None = None,
        close: bool = False,
        hang: bool = False,
        raw: bytes | None = None,
        match: str | None = None,
        times: int | None = None,
        record: bool | None = None,
    ) -> Rule:
        """Script the server's reaction to *command* (one of :data:`COMMANDS`).

        The reply (a str, lines separated by "\\n" and sent with CRLF) or *raw* bytes
        are sent first; then the connection is dropped if *close*, or the server never
        answers again if *hang*. A positive *reply* (1xx-3xx) alone only replaces the
        text: the command still takes effect (e.g. the recipient is added). A negative
        one means the command is refused and has no effect.

        :param match: apply only if the argument line (e.g. ``FROM:<a@b> SIZE=10``;
            the message content for DATA_END and BDAT; empty for CONNECT and DATA) contains
            this, case-insensitively.
        :param times: apply only the first *times* matches, then fall through.
        :param record: DATA_END and BDAT only: whether the message counts as received. By
            default it does if the reply (or raw) starts with "2"; use ``close=True,
            record=True`` for "accepted, but the reply was lost".
        :returns: the :class:`Rule`; rules are tried in the order they were added and
            the first that matches applies.
        """
        command = command.upper()
        if command not in COMMANDS:
            raise ValueError(f"unknown command {command!r}; expected one of {sorted(COMMANDS)}")
        if reply is not None and raw is not None:
            raise ValueError("give reply or raw, not both")
        if close and hang:
            raise ValueError("give close or hang, not both")
        if reply is None and raw is None and not (close or hang):
            raise ValueError("a rule needs an action: reply, raw, close or hang")
        if record is not None and command not in ("DATA_END", "BDAT"):
            raise ValueError("record applies to DATA_END and BDAT rules only")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        rule = Rule(command, reply, close, hang, raw, match, times, record)
        self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove all rules: back to the default, accept-everything behaviour."""
        self._rules.clear()

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The rules added with :meth:`on`, in order (each with its ``hits``)."""
        return tuple(self._rules)

    def received_by(self, recipient: str) -> list[ReceivedMessage]:
        """Messages accepted for *recipient* (compared case-insensitively)."""
        wanted = recipient.casefold()
        return [m for m in self.messages if any(r.casefold() == wanted for r in m.rcpt_tos)]

    def _take(self, command: str, argument: str) -> Rule | None:
        for rule in self._rules:
            if rule.matches(command, argument):
                rule.hits += 1
                return rule
        return None

    def _make_protocol(self) -> _ScriptedSMTP:
        self.connections += 1
        handler = _Handler(self)
        return _ScriptedSMTP(
            self,
            handler,
            hostname=self.hostname,
            ident="ESMTP smtpx.testing",
            data_size_limit=self.size_limit,
            enable_SMTPUTF8=self.smtputf8,
            tls_context=None if self.implicit_tls else self.tls_context,
            auth_require_tls=self.auth_require_tls and not self.implicit_tls,
            authenticator=handler.authenticate,
            auth_exclude_mechanism=self.oauth.excluded() if self.oauth else MECHANISMS,
        )

    @property
    def offers_auth(self) -> bool:
        return self.credentials is not None or self.oauth is not None

    async def start(self) -> None:
        """Start listening on :attr:`host` and :attr:`port` (0: a free one, then set here)."""
        if self._server is not None:
            raise RuntimeError("server already started")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._make_protocol,
            self.host,
            self.port,
            ssl=self.tls_context if self.implicit_tls else None,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and abort every open connection, hanging ones included."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        if hasattr(server, "abort_clients"):  # Python 3.13+: also pending TLS handshakes
            server.abort_clients()
        live, self._live = list(self._live), set()
        for protocol in live:
            protocol.abort()
        tasks = [p._handler_coroutine for p in live if p._handler_coroutine is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
