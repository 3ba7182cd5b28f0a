"""ScriptedServer: the server, its rules and its recording (see ``smtpx.testing``).

The SMTP protocol itself, on aiosmtpd, is in ``smtpx.testing._aiosmtpd``.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Self

from smtpx.testing._aiosmtpd import ScriptedSMTP, abort_all, make_protocol
from smtpx.testing._oauth import OAuthAccounts
from smtpx.testing._rules import COMMANDS, ReceivedMessage, Rule

__all__ = ["COMMANDS", "ReceivedMessage", "Rule", "ScriptedServer"]


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
        self._live: set[ScriptedSMTP] = set()

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

    def _make_protocol(self) -> ScriptedSMTP:
        self.connections += 1
        return make_protocol(self, self._take, self._live)

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
        live = list(self._live)
        self._live.clear()  # the set the protocols remove themselves from
        await abort_all(live)
        await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
