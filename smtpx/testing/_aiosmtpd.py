"""ScriptedServer's SMTP protocol: aiosmtpd's, with every command routed through the rules.

The one module that touches aiosmtpd's private names: each is listed in
``PRIVATE_NAMES``, and a test checks that each exists on the installed aiosmtpd (CI runs
the lowest and the newest allowed releases).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, AnyStr, Final, NoReturn, Protocol

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from smtpx.testing._oauth import MECHANISMS, OAuthAccounts
from smtpx.testing._rules import COMMANDS, ReceivedMessage, Rule

__all__ = ["PRIVATE_NAMES", "Script", "ScriptedSMTP", "abort_all", "make_protocol"]

# aiosmtpd logs to "mail.log" (e.g. a client's unrecognised command); keep it out of the
# user's terminal unless their logging configuration asks for it.
logging.getLogger("mail.log").addHandler(logging.NullHandler())

#: aiosmtpd's private names used below, by where they are found: on the ``SMTP`` class,
#: on an instance once made, and on an instance once a client has connected.
PRIVATE_NAMES: Final = {
    "class": ("_create_session", "_create_envelope", "_cb_client_connected"),
    "instance": ("_smtp_methods", "_timeout_handle", "_original_transport", "_handler_coroutine"),
    "connection": ("_reader", "_writer"),
}

Take = Callable[[str, str], Rule | None]
"""The server's rule for a command and its argument line (counted as a hit), if any."""


class Script(Protocol):
    """What the protocol reads of its ``ScriptedServer``."""

    hostname: str
    tls_context: ssl.SSLContext | None
    implicit_tls: bool
    credentials: dict[str, str] | None
    oauth: OAuthAccounts | None
    auth_require_tls: bool
    size_limit: int | None
    smtputf8: bool
    eightbitmime: bool
    pipelining: bool
    chunking: bool
    messages: list[ReceivedMessage]
    transcript: list[bytes]


def _encode_reply(reply: str) -> bytes:
    lines = reply.rstrip("\r\n").split("\n")
    return b"".join(line.rstrip("\r").encode() + b"\r\n" for line in lines)


async def _forever() -> NoReturn:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")  # pragma: no cover


class _Handler:
    """aiosmtpd handler: EHLO extension list, AUTH check and DATA_END / BDAT rules."""

    def __init__(self, scripted: Script, take: Take) -> None:
        self._scripted = scripted
        self._rule_for = take

    # XOAUTH2 and OAUTHBEARER, which aiosmtpd lacks: aiosmtpd offers a handler's
    # auth_<MECHANISM> methods (unless excluded, see make_protocol)
    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer_login(server, "XOAUTH2", args)

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer_login(server, "OAUTHBEARER", args)

    async def _bearer_login(self, server: SMTP, mechanism: str, args: list[str]) -> AuthResult:
        accounts: OAuthAccounts | None = self._scripted.oauth
        if accounts is None:
            return AuthResult(success=False, handled=False)

        async def challenge(text: str) -> bytes | None:
            answer = await server.challenge_auth(text)
            return answer if isinstance(answer, bytes) else None

        transport = server.transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        port = int(sockname[1]) if sockname else 0
        initial = args[1] if len(args) > 1 else None
        user, reply = await accounts.login(mechanism, initial, challenge, port)
        if user is not None:  # auth_data is logged by aiosmtpd: the user, not the token
            return AuthResult(success=True, auth_data=user)
        if reply is None:
            return AuthResult(success=False, handled=True)  # aiosmtpd already replied
        return AuthResult(success=False, handled=False, message=reply)

    async def handle_EHLO(
        self, smtp: SMTP, session: Session, envelope: Envelope, hostname: str, lines: list[str]
    ) -> list[str]:
        session.host_name = hostname  # aiosmtpd leaves this to the hook when one exists
        hidden = set()
        if not self._scripted.eightbitmime:
            hidden.add("8BITMIME")
        if not _offers_auth(self._scripted):
            hidden.add("AUTH")
        kept = [line for line in lines if line[4:].split(" ")[0].upper() not in hidden]
        if self._scripted.pipelining:
            kept.insert(1, "250-PIPELINING")
        if self._scripted.chunking:
            kept.insert(1, "250-CHUNKING")
        return kept

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(smtp, ScriptedSMTP)
        return await self.finish(smtp, envelope, "DATA_END")

    async def finish(self, smtp: ScriptedSMTP, envelope: Envelope, command: str) -> str:
        """The end of a message (DATA_END or BDAT): record it and reply, by the rules."""
        data = envelope.original_content or b""
        rule = self._rule_for(command, data.decode("utf-8", "replace"))
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


class ScriptedSMTP(SMTP):
    """One connection: aiosmtpd's protocol with every command routed through the rules."""

    def _create_session(self) -> Session:
        return _Session(self.loop)

    def __init__(
        self,
        scripted: Script,
        handler: _Handler,
        take: Take,
        live: set[ScriptedSMTP],
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, loop=asyncio.get_running_loop(), **kwargs)
        self._scripted = scripted
        self._rule_for = take
        self._live_set = live
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
            rule = self._rule_for(verb, arg or "")
            if rule is None:
                if self._no_service and verb != "QUIT":
                    await self.push("503 5.5.1 Error: no SMTP service here")
                elif verb == "AUTH" and not _offers_auth(self._scripted):
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
            rule = self._rule_for("CONNECT", "")
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
        self._live_set.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._live_set.discard(self)
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


def make_protocol(script: Script, take: Take, live: set[ScriptedSMTP]) -> ScriptedSMTP:
    """The protocol for one new connection to *script*'s server."""
    handler = _Handler(script, take)
    return ScriptedSMTP(
        script,
        handler,
        take,
        live,
        hostname=script.hostname,
        ident="ESMTP smtpx.testing",
        data_size_limit=script.size_limit,
        enable_SMTPUTF8=script.smtputf8,
        tls_context=None if script.implicit_tls else script.tls_context,
        auth_require_tls=script.auth_require_tls and not script.implicit_tls,
        authenticator=handler.authenticate,
        auth_exclude_mechanism=script.oauth.excluded() if script.oauth else MECHANISMS,
    )


def _offers_auth(script: Script) -> bool:
    return script.credentials is not None or script.oauth is not None


async def abort_all(protocols: Iterable[ScriptedSMTP]) -> None:
    """Abort every connection, hanging ones included, and wait (a second at most) for
    their handlers to end."""
    protocols = list(protocols)
    for protocol in protocols:
        protocol.abort()
    tasks = [p._handler_coroutine for p in protocols if p._handler_coroutine is not None]
    if tasks:
        await asyncio.wait(tasks, timeout=1.0)
