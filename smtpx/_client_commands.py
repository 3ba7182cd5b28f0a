"""The state of ``Client``'s connection and one method per SMTP command.

``Client`` (``smtpx.client``) adds connecting, the lock and the whole transaction,
``send()``, to this base; every method here states one intent to the session core
(``smtpx.protocol``) and runs it over the asyncio edge (``smtpx._edge``), returning
the reply's typed success result or raising its typed error.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, TypeVar

from smtpx import errors as e
from smtpx._address import check_address, param_args
from smtpx._commands import Command
from smtpx._edge import Connection
from smtpx._network import Network
from smtpx._oauth import OAuth2
from smtpx._secret import Credentials
from smtpx._tls import client_context
from smtpx.config import ClientConfig, Configured, credentials_pair
from smtpx.protocol.flow import Flow, Steps, StepsFlow, ok
from smtpx.protocol.interruptions import Verdict
from smtpx.protocol.ledger import Entry
from smtpx.protocol.oauth import Bearer
from smtpx.protocol.session import Session
from smtpx.protocol.setup import AuthFlow, StartTLS, hello, secure
from smtpx.results import Authenticated, Ready, Success

__all__ = ["ClientCommands"]

T = TypeVar("T")


class ClientCommands(Configured):
    """The base of :class:`smtpx.Client`: its options, its connection's state, and one
    method per SMTP command (``ehlo`` ... ``command``, ``pipeline``)."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        # The server of the current (or last) connection, and the order the hosts were
        # tried in for it (one host unless hosts= lists several).
        self._order = config.endpoints
        self._endpoint = self._order[0]
        self._sock_used = False  # a sock= serves one connection
        self._local_hostname = config.local_hostname  # resolved on connect when None
        self._tls_context = config.tls_context
        self._session: Session | None = None
        self._connection: Connection | None = None
        self._network: Network | None = None
        self._total: asyncio.Timeout | None = None  # the total time-out while connecting
        self._total_at: float | None = None  # the send's deadline (loop time), for flows

    @property
    def host(self) -> str:
        """The server connected to (with ``hosts=``, the one that answered last)."""
        return self._endpoint[0]

    @property
    def port(self) -> int:
        return self._endpoint[1]

    # The options, read from the config (frozen: make a new Client to change one).

    @property
    def timeout(self) -> float:
        return self.config.timeout

    @property
    def total_timeout(self) -> float | None:
        return self.config.total_timeout

    @property
    def allow_plaintext_auth(self) -> bool:
        return self.config.allow_plaintext_auth

    @property
    def transcript(self) -> bool:
        return self.config.transcript

    @property
    def chunking(self) -> bool:
        return self.config.chunking

    @property
    def _credentials(self) -> Credentials | OAuth2 | None:
        return self.config.credentials

    @property
    def local_hostname(self) -> str | None:
        """The name given in EHLO: ``local_hostname``, or this host's FQDN once connected."""
        return self._local_hostname

    @property
    def session(self) -> Session | None:
        """The ``smtpx.protocol.Session`` of the current connection (None before the first)."""
        return self._session

    @property
    def verdict(self) -> Verdict | None:
        """What the last interruption of the current session meant for each recipient."""
        return self._session.verdict if self._session is not None else None

    @property
    def connected(self) -> bool:
        return self._connection is not None and self._connection.connected

    @property
    def encrypted(self) -> bool:
        return self.connected and self._session is not None and self._session.encrypted

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        """The TLS connection's ``ssl.SSLObject`` (certificate, cipher), None in plaintext."""
        connection = self._connection
        if connection is None or connection.transport is None or not self.connected:
            return None
        info = connection.transport.get_extra_info("ssl_object")
        return info if isinstance(info, ssl.SSLObject) else None

    @property
    def extensions(self) -> Mapping[str, str]:
        """The ESMTP extensions of the last EHLO, lower-cased names (``size``, ``pipelining``).

        A read-only view, not a copy: ``send()`` consults it several times per message."""
        if self._session is None:
            return MappingProxyType({})
        return self._session.extensions

    @property
    def auth_mechanisms(self) -> tuple[str, ...]:
        if self._session is None:
            return ()
        return self._session.auth_mechanisms

    def _context(self) -> ssl.SSLContext:
        if self._tls_context is None:
            config = self.config
            self._tls_context = client_context(
                ca_file=config.ca_file,
                cert_file=config.cert_file,
                key_file=config.key_file,
                key_password=config.key_password,
                verify=config.verify,
            )
        return self._tls_context

    # -- one method per command -------------------------------------------------

    async def ehlo(self) -> Success:
        """EHLO, falling back to HELO when the server does not know EHLO (500, 502)."""
        session = self._require()
        return await self._run(StepsFlow(session, lambda: hello(session), "EHLO"))

    async def helo(self) -> Success:
        """HELO: the session then has no ESMTP extensions, whatever an earlier EHLO said."""
        return await self._reply(lambda session: session.helo())

    async def starttls(self) -> Ready:
        """STARTTLS, the handshake (certificate verified), and EHLO again (RFC 3207 §4.2)."""
        session = self._require()
        if "starttls" not in self.extensions:
            raise e.TLSNotOffered(command=Command.STARTTLS)

        def steps() -> Steps[Ready]:
            ready = yield from secure(session, StartTLS.REQUIRE)
            assert ready is not None  # offered, and the session was not encrypted
            return ready

        return await self._run(StepsFlow(session, steps, "STARTTLS"))

    async def login(
        self, credentials: tuple[str, str] | Credentials | OAuth2 | None = None
    ) -> Authenticated:
        """AUTH with the best mechanism both sides know; the server's reply decides.

        Uses the client's ``credentials`` unless others are given here."""
        given = credentials_pair(credentials) if credentials is not None else None
        config = self.config
        if given is not None and not config.verify and not config.allow_insecure_auth:
            raise e.UsageError(
                "verify=False with credentials would send them to whoever answers: refused "
                "unless allow_insecure_auth=True (development only)",
                command=Command.AUTH,
            )
        chosen = given or self._credentials
        if isinstance(chosen, OAuth2):
            return await self._oauth_login(chosen)
        session = self._require()
        flow = AuthFlow(session, chosen, allow_plaintext=self.allow_plaintext_auth)
        return await self._run(flow)

    async def _oauth_login(self, oauth: OAuth2) -> Authenticated:
        """AUTH OAUTHBEARER or XOAUTH2 with a token from the provider; when the server
        refuses it, once more with a fresh one (the first may have expired)."""
        for last_try in (not oauth.refreshable, True):
            session = self._require()
            bearer = Bearer(oauth.username, await oauth.token(), self.host, self.port)
            flow = AuthFlow(session, bearer, allow_plaintext=self.allow_plaintext_auth)
            try:
                return await self._run(flow)
            except e.AuthFailed:
                if last_try:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def mail(self, sender: str, options: Iterable[str] = ()) -> Success:
        """MAIL FROM:<sender> with ESMTP parameters (``SIZE=...``, ``BODY=8BITMIME``)."""
        options = tuple(options)
        return await self._reply(lambda session: session.mail(sender, options))

    async def rcpt(self, recipient: str, options: Iterable[str] = ()) -> Success:
        """RCPT TO:<recipient>; a refusal raises an error carrying ``recipient``."""
        options = tuple(options)
        return await self._reply(lambda session: session.rcpt(recipient, options))

    @staticmethod
    def mail_args(sender: str, options: Iterable[str] = ()) -> tuple[bytes, ...]:
        check_address(sender, role="sender", allow_null=True)
        return (b"MAIL", f"FROM:<{sender}>".encode(), *param_args(options))

    @staticmethod
    def rcpt_args(recipient: str, options: Iterable[str] = ()) -> tuple[bytes, ...]:
        check_address(recipient, role="recipient")
        return (b"RCPT", f"TO:<{recipient}>".encode(), *param_args(options))

    async def data(self, message: bytes) -> Success:
        """DATA, then the message (line endings normalised, dot-stuffed) and the final ".".

        A connection lost or timed out after the message was sent raises
        ``DeliveryUnknown``: the server may have accepted it.
        """
        if not isinstance(message, bytes | bytearray | memoryview):
            raise e.InvalidMessage(
                f"the message must be bytes, not {type(message).__name__}",
                command=Command.DATA,
            )
        session = self._require()

        def steps() -> Steps[Success]:
            start = session.data()
            yield start
            ok(start.result)
            end = session.data_payload(bytes(message))
            yield end
            return ok(end.result)

        return await self._run(StepsFlow(session, steps, "DATA"))

    async def bdat(self, message: bytes) -> Success:
        """The message as one ``BDAT <size> LAST`` chunk (CHUNKING, RFC 3030).

        Line endings are normalised; nothing is dot-stuffed.  Needs a server
        that offers CHUNKING (``ExtensionRequired`` otherwise).  As with
        ``data()``, a loss after the last octet raises ``DeliveryUnknown``.
        """
        if not isinstance(message, bytes | bytearray | memoryview):
            raise e.InvalidMessage(
                f"the message must be bytes, not {type(message).__name__}",
                command=Command.BDAT,
            )
        if "chunking" not in self.extensions:
            raise e.ExtensionRequired("the server does not offer CHUNKING", command=Command.BDAT)
        return await self._reply(lambda session: session.bdat(bytes(message), last=True))

    @staticmethod
    def bdat_args(data: bytes) -> tuple[bytes, ...]:
        return (b"BDAT", b"%d" % len(data), b"LAST")

    async def rset(self) -> Success:
        return await self._reply(lambda session: session.rset())

    async def noop(self) -> Success:
        return await self._reply(lambda session: session.noop())

    async def vrfy(self, address: str) -> Success:
        return await self._reply(lambda session: session.vrfy(address))

    async def expn(self, mailing_list: str) -> Success:
        return await self._reply(lambda session: session.expn(mailing_list))

    async def help(self, topic: str | None = None) -> Success:
        return await self._reply(lambda session: session.help(topic))

    @property
    def pipelining(self) -> bool:
        """Whether the server advertised PIPELINING (RFC 2920) in its last EHLO."""
        return "pipelining" in self.extensions

    @property
    def uses_chunking(self) -> bool:
        """Whether ``send()`` uses BDAT: CHUNKING (RFC 3030) offered and ``chunking`` on."""
        return self.chunking and "chunking" in self.extensions

    async def pipeline(
        self,
        steps: Sequence[tuple[Command, tuple[bytes, ...], str | None]],
        *,
        chunk: bytes = b"",
    ) -> list[Success | e.SMTPError]:
        """Send several commands in one write and classify each reply against its own command.

        Returns one result or error *instance* per step, in order (nothing is
        raised for a negative reply).  A 421 ends the exchange: the server is
        closing, so the list is then shorter than ``steps``.  A lost connection
        or time-out raises, as for a single command.  ``chunk`` is written right
        after the lines: the octets of a final ``BDAT`` step.
        """
        session = self._require()

        def run() -> Steps[list[Success | e.SMTPError]]:
            group: list[Entry] = []
            for command, args, recipient in steps:
                if command is Command.BDAT:
                    last = args[-1:] == (b"LAST",)
                    group.append(session.bdat(chunk, last=last, normalized=True))
                else:
                    group.append(session.command(command, *args, recipient=recipient))
            yield tuple(group)
            return [entry.result for entry in group if entry.result is not None]

        return await self._run(StepsFlow(session, run, "pipeline"))

    async def command(
        self, command: Command, *args: bytes, recipient: str | None = None
    ) -> Success:
        """Send one command line and classify its reply as ``command``."""
        return await self._reply(
            lambda session: session.command(command, *args, recipient=recipient)
        )

    # -- driving the session over the edge ------------------------------------------

    def _require(self) -> Session:
        self._refuse_in_dry_run()
        session = self._session
        if session is None or not self.connected:
            if session is not None and session.error is not None:
                raise session.error  # what closed it: a 421, a reply out of step
            raise e.ConnectionLost("not connected; call connect() first")
        return session

    async def _reply(self, intent: Any) -> Success:
        """State one intent and wait for its reply: the success result, or its error."""
        self._refuse_in_dry_run()
        session = self._session
        if session is None or (self._connection is None or self._connection.lost):
            raise e.ConnectionLost("not connected; call connect() first")
        return await self._run(StepsFlow(session, lambda: _one(session, intent), "reply"))

    def _refuse_in_dry_run(self) -> None:
        if self.config.dry_run:
            raise e.UsageError("a dry-run client (dry_run=True) sends no commands: use send()")

    async def _run(self, flow: Flow[T]) -> T:
        connection, network = self._connection, self._network
        if connection is None or network is None:
            raise e.ConnectionLost("not connected; call connect() first")
        return await connection.run(
            flow,
            network=network,
            host=self.host,
            context=self._context,
            total=self._total,
            total_at=self._total_at if self._total is None else None,
            total_detail=f"the send took longer than total_timeout={self.total_timeout}s",
        )


def _one(session: Session, intent: Any) -> Steps[Success]:
    entry = intent(session)
    yield entry
    return ok(entry.result)
