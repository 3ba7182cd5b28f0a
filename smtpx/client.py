"""``Client``: an SMTP session in which every reply is classified.

Each method states an intent to the session core (``smtpx.protocol``) and returns
the reply's typed success result or raises its typed error; ``send()`` drives a
whole transaction and reports each recipient.  The asyncio edge (``smtpx._edge``)
moves the octets and translates every ``ssl``, ``OSError`` and asyncio failure
into an ``smtpx`` error, with the original kept as ``__cause__``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Any, TypeVar, Unpack

from smtpx import errors as e
from smtpx._address import check_address, check_hostname, param_args
from smtpx._commands import Command
from smtpx._edge import Connection, open_connection
from smtpx._message import Envelope, MessageInput, prepare
from smtpx._network import Network
from smtpx._reply import Reply
from smtpx._secret import Credentials
from smtpx._tls import TLSMode, default_context
from smtpx.config import ClientConfig, ClientOptions, Configured, credentials_pair, resolve_config
from smtpx.protocol.flow import Flow, Steps, StepsFlow, ok
from smtpx.protocol.interruptions import Verdict
from smtpx.protocol.ledger import Entry
from smtpx.protocol.mail import MailFlow
from smtpx.protocol.session import Session
from smtpx.protocol.setup import AuthFlow, SetupFlow, StartTLS, hello, secure
from smtpx.results import Authenticated, Ready, SendResult, Success
from smtpx.retry import RetryPolicy, send_with_retry

__all__ = ["Client", "send"]

T = TypeVar("T")

_STARTTLS_MODE = {
    TLSMode.STARTTLS: StartTLS.REQUIRE,
    TLSMode.OPPORTUNISTIC: StartTLS.IF_OFFERED,
    TLSMode.NONE: StartTLS.NEVER,
    TLSMode.IMPLICIT: StartTLS.NEVER,
}


@functools.cache
def _fqdn() -> str:
    return socket.getfqdn()


class Client(Configured):
    """An SMTP client session.  Use as ``async with Client(...) as client:``.

    Takes a host and keyword options, or one ``ClientConfig``; every option is
    checked at once (a wrong one raises ``UsageError``).  ``tls`` (a ``TLSMode``
    or its value, ``"starttls"``, in any case) defaults to ``TLSMode.STARTTLS``
    with certificate verification: a server that does not offer STARTTLS raises ``TLSNotOffered``.
    ``credentials`` are a ``(username, password)`` pair or ``Credentials``;
    they are never sent over plaintext unless ``allow_plaintext_auth=True``.
    ``timeout`` applies to connecting and to each reply; ``total_timeout`` caps
    a whole ``send()`` (connecting included), so a server that trickles bytes
    cannot hold it forever.  ``transcript=True`` logs every command and reply on
    the ``smtpx.transcript`` logger at DEBUG, with AUTH arguments redacted.
    ``chunking=False`` sends with DATA even when the server offers CHUNKING
    (by default a message goes as one ``BDAT`` chunk there: no dot-stuffing,
    and with PIPELINING the whole transaction in one write).
    ``add_missing_headers=False`` sends a message without a ``Date`` or
    ``Message-ID`` header as it is (by default both are added).
    """

    def __init__(
        self,
        host: str | ClientConfig | None = None,
        port: int | None = None,
        *,
        config: ClientConfig | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        self.config = resolve_config(host, port, config, options)
        self._local_hostname = self.config.local_hostname  # resolved on connect when None
        self._tls_context = self.config.tls_context
        self._session: Session | None = None
        self._connection: Connection | None = None
        self._network: Network | None = None
        self._total: asyncio.Timeout | None = None  # the total time-out of the send under way
        self._lock = asyncio.Lock()
        self.greeting: Reply | None = None

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
    def _credentials(self) -> Credentials | None:
        return self.config.credentials

    @property
    def local_hostname(self) -> str | None:
        """The name given in EHLO: ``local_hostname``, or this host's FQDN once connected."""
        return self._local_hostname

    def __repr__(self) -> str:
        if "config" not in self.__dict__:  # a traceback from inside __init__ shows it too
            return "<smtpx.Client (not set up)>"
        state = "connected" if self.connected else "not connected"
        user = f" user={self._credentials.username!r}" if self._credentials else ""
        return f"<smtpx.Client {self.host}:{self.port} tls={self.tls.value}{user} {state}>"

    # -- connection ---------------------------------------------------------------

    @property
    def lock(self) -> asyncio.Lock:
        """The lock ``send()`` holds: take it to run other steps between sends."""
        return self._lock

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

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.quit()

    def _context(self) -> ssl.SSLContext:
        if self._tls_context is None:
            self._tls_context = default_context()
        return self._tls_context

    async def connect(self) -> Ready:
        """Connect, read the greeting, EHLO, secure the session per ``tls``, authenticate."""
        if self.connected:
            self.close()
        if self._local_hostname is None:
            self._local_hostname = check_hostname(await asyncio.to_thread(_fqdn))
        implicit = self.tls is TLSMode.IMPLICIT
        session = self._session = Session(self._local_hostname, encrypted=implicit)
        self._connection = None
        try:
            self._connection, self._network = await open_connection(
                session,
                self.host,
                self.port,
                context=self._context() if implicit else None,
                timeout=self.timeout,
                transcript=self.transcript,
                probe=not implicit,
            )
            setup = SetupFlow(
                session,
                starttls=_STARTTLS_MODE[self.tls],
                secret=self._credentials,
                allow_plaintext_auth=self.allow_plaintext_auth,
            )
            try:
                ready = await self._run(setup)
            except e.TLSNotOffered as error:
                raise e.TLSNotOffered(
                    f"{self.host}:{self.port} did not offer STARTTLS; use TLSMode.IMPLICIT "
                    "for port 465, or choose TLSMode.OPPORTUNISTIC explicitly to allow "
                    "plaintext",
                    command=Command.STARTTLS,
                ) from error.__cause__
        except BaseException:
            # A half-set-up session (no EHLO, no TLS, not authenticated) must not be
            # reused by the next send(), which only connects when not connected.
            self.close()
            raise
        self.greeting = ready.reply
        return ready

    def close(self) -> None:
        """Drop the connection without QUIT (after an error, or on cancellation)."""
        if self._session is not None:
            self._session.close()
        if self._connection is not None:
            self._connection.abort()

    async def quit(self) -> None:
        """Say QUIT politely and close; errors while quitting are of no consequence."""
        if self.connected:
            with contextlib.suppress(e.SMTPError):
                await self._reply(lambda session: session.quit())
        self.close()

    # -- the whole transaction -----------------------------------------------------

    async def send(
        self,
        message: MessageInput,
        *,
        sender: str | None = None,
        recipients: Iterable[str] | None = None,
        retry: RetryPolicy | None = None,
    ) -> SendResult:
        """Send ``message`` (an ``EmailMessage``, bytes or str) and report each recipient.

        Sender and recipients come from the headers (From/Sender; To, Cc, Bcc)
        unless given; Bcc is never transmitted.  Addresses are checked before
        anything is sent.  Refused recipients are listed in ``rejected``; when
        every recipient is refused, ``AllRecipientsDeferred`` (all transient) or
        ``AllRecipientsRejected`` is raised.  Connects (again) when needed.

        With ``retry``, transient failures are retried for the recipients that
        have not accepted yet (see ``smtpx.retry``).
        """
        if self._local_hostname is None:  # the EHLO name, and the domain of a Message-ID
            self._local_hostname = check_hostname(await asyncio.to_thread(_fqdn))
        envelope = prepare(
            message,
            sender=sender,
            recipients=recipients,
            add_missing_headers=self.config.add_missing_headers,
            local_hostname=self._local_hostname,
        )
        async with self._lock:
            if retry is not None:
                return await send_with_retry(self, envelope, retry)
            return await self.send_envelope(envelope)

    async def send_envelope(self, envelope: Envelope) -> SendResult:
        """One attempt at a prepared envelope, within ``total_timeout`` (lock held)."""
        detail = f"the send took longer than total_timeout={self.total_timeout}s"
        try:
            async with asyncio.timeout(self.total_timeout) as total:
                self._total = total
                if not self.connected:
                    try:
                        await self.connect()
                    except e.SMTPError as failure:
                        e.enrich(failure, undelivered=envelope.recipients)  # nobody got it
                        raise
                session = self._session
                assert session is not None
                flow = MailFlow(session, envelope, pipelining=True, chunking=self.chunking)
                return await self._run(flow)
        except TimeoutError as exc:
            # expired outside a flow (connecting, the greeting): nothing was sent
            self.close()
            error = e.ResponseTimeout(detail, command=Command.CONNECT)
            raise e.enrich(error, undelivered=envelope.recipients) from exc
        finally:
            self._total = None

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
        self, credentials: tuple[str, str] | Credentials | None = None
    ) -> Authenticated:
        """AUTH with the best mechanism both sides know; the server's reply decides.

        Uses the client's ``credentials`` unless others are given here."""
        given = credentials_pair(credentials) if credentials is not None else None
        session = self._require()
        flow = AuthFlow(
            session, given or self._credentials, allow_plaintext=self.allow_plaintext_auth
        )
        return await self._run(flow)

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
        session = self._session
        if session is None or not self.connected:
            if session is not None and session.error is not None:
                raise session.error  # what closed it: a 421, a reply out of step
            raise e.ConnectionLost("not connected; call connect() first")
        return session

    async def _reply(self, intent: Any) -> Success:
        """State one intent and wait for its reply: the success result, or its error."""
        session = self._session
        if session is None or (self._connection is None or self._connection.lost):
            raise e.ConnectionLost("not connected; call connect() first")
        return await self._run(StepsFlow(session, lambda: _one(session, intent), "reply"))

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
            total_detail=f"the send took longer than total_timeout={self.total_timeout}s",
        )


def _one(session: Session, intent: Any) -> Steps[Success]:
    entry = intent(session)
    yield entry
    return ok(entry.result)


async def send(
    message: MessageInput,
    *,
    host: str,
    port: int | None = None,
    sender: str | None = None,
    recipients: Iterable[str] | None = None,
    retry: RetryPolicy | None = None,
    **options: Unpack[ClientOptions],
) -> SendResult:
    """Send one message on a new connection, then quit.  ``options`` are those of ``Client``.

    The connection is made by ``send`` itself, so with ``retry`` a failure to
    connect is retried too.
    """
    client = Client(host, port, **options)
    try:
        return await client.send(message, sender=sender, recipients=recipients, retry=retry)
    finally:
        await client.quit()
