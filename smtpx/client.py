"""``Client``: an SMTP session in which every reply is classified.

Each method states an intent to the session core (``smtpx.protocol``) and returns
the reply's typed success result or raises its typed error; ``send()`` drives a
whole transaction and reports each recipient.  Connecting and sending are here; the
methods of single commands (``ehlo`` ... ``pipeline``) and the connection's state
are in the base class, ``smtpx._client_commands.ClientCommands``.  The asyncio edge
(``smtpx._edge``) moves the octets and translates every ``ssl``, ``OSError`` and
asyncio failure into an ``smtpx`` error, with the original kept as ``__cause__``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, Unpack

import attrs

from smtpx import errors as e
from smtpx._address import check_hostname
from smtpx._batch_send import send_batches
from smtpx._client_commands import ClientCommands
from smtpx._commands import Command
from smtpx._dry_run import NOT_CONNECTED, deliver_nowhere
from smtpx._dsn import DSN
from smtpx._edge import open_connection
from smtpx._envelope import Envelope
from smtpx._hosts import fails_over, start_of
from smtpx._message import MessageInput, messages_of, prepare
from smtpx._network import Origin
from smtpx._oauth import OAuth2
from smtpx._reply import Reply
from smtpx._retry_engine import send_with_retry
from smtpx._secret import Credentials
from smtpx._tls import TLSMode
from smtpx.config import ClientConfig, ClientOptions, resolve_config
from smtpx.protocol.batch import Leading
from smtpx.protocol.mail import MailFlow
from smtpx.protocol.session import Session
from smtpx.protocol.setup import SetupFlow, StartTLS
from smtpx.results import Ready, SendResult
from smtpx.retry import RetryPolicy

__all__ = ["Client"]

logger = logging.getLogger("smtpx.client")

_STARTTLS_MODE = {
    TLSMode.STARTTLS: StartTLS.REQUIRE,
    TLSMode.OPPORTUNISTIC: StartTLS.IF_OFFERED,
    TLSMode.NONE: StartTLS.NEVER,
    TLSMode.IMPLICIT: StartTLS.NEVER,
}


@functools.cache
def _fqdn() -> str:
    return socket.getfqdn()


class Client(ClientCommands):
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
        super().__init__(resolve_config(host, port, config, options))
        self._lock = asyncio.Lock()
        self.greeting: Reply | None = None

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

    async def connect(self) -> Ready:
        """Connect, read the greeting, EHLO, secure the session per ``tls``, authenticate.

        With ``hosts=``, the hosts are tried in the order of ``strategy`` until one
        connects; a failure that another server could not mend (a bad certificate, a
        refused login) is raised at once.

        With ``dry_run=True``: nothing (a stand-in ``Ready``), as nothing is sent."""
        if self.config.dry_run:
            return NOT_CONNECTED
        endpoints = self.config.endpoints
        first = start_of(endpoints, self.config.strategy)
        return await self._connect_any(endpoints[first:] + endpoints[:first])

    async def _connect_any(self, order: tuple[tuple[str, int], ...]) -> Ready:
        self._order = order
        for index, endpoint in enumerate(order):
            self._endpoint = endpoint
            try:
                return await self._connect_here()
            except e.SMTPError as error:
                if index == len(order) - 1 or not fails_over(error):
                    raise
                logger.warning(
                    "%s:%d failed (%s: %s); trying %s:%d",
                    *endpoint,
                    type(error).__name__,
                    error,
                    *order[index + 1],
                )
        raise AssertionError("unreachable: the last host's failure is raised")

    def _hosts_after(self) -> tuple[tuple[str, int], ...]:
        """The hosts still to try after the current one, in this connection's order."""
        order = self._order
        return order[order.index(self._endpoint) + 1 :] if self._endpoint in order else ()

    async def _connect_here(self) -> Ready:
        if self.connected:
            self.close()
        if self._local_hostname is None:
            self._local_hostname = check_hostname(await asyncio.to_thread(_fqdn))
        implicit = self.tls is TLSMode.IMPLICIT
        session = self._session = Session(self._local_hostname, encrypted=implicit)
        self._connection = None
        config = self.config
        if config.sock is not None:
            if self._sock_used:
                raise e.ConnectError(
                    "the socket given as sock= served one connection, which closed it: "
                    "a client given sock= connects once",
                    command=Command.CONNECT,
                )
            self._sock_used = True
        if not config.verify and self.tls is not TLSMode.NONE:
            logger.warning(
                "connecting to %s:%d with verify=False: the server's certificate is not "
                "checked, so anyone on the path can pose as it (development only)",
                self.host,
                self.port,
            )
        try:
            self._connection, self._network = await open_connection(
                session,
                self.host,
                self.port,
                context=self._context() if implicit else None,
                timeout=self.timeout,
                transcript=self.transcript,
                probe=not implicit and config.proxy is None and config.sock is None,
                origin=Origin(config.source_address, config.sock, config.proxy),
            )
            credentials = self._credentials
            setup = SetupFlow(
                session,
                starttls=_STARTTLS_MODE[self.tls],
                secret=credentials if isinstance(credentials, Credentials) else None,
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
            if isinstance(credentials, OAuth2):  # the provider is awaited here, not in a flow
                await self._oauth_login(credentials)
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
        dsn: DSN | None = None,
        dsn_required: bool = True,
        require_tls: bool = False,
    ) -> SendResult:
        """Send ``message`` (an ``EmailMessage``, bytes or str) and report each recipient.

        Sender and recipients come from the headers (From/Sender; To, Cc, Bcc)
        unless given; Bcc is never transmitted.  Addresses are checked before
        anything is sent.  Refused recipients are listed in ``rejected``; when
        every recipient is refused, ``AllRecipientsDeferred`` (all transient) or
        ``AllRecipientsRejected`` is raised.  Connects (again) when needed.

        With ``retry``, transient failures are retried for the recipients that
        have not accepted yet (see ``smtpx.retry``).

        ``dsn`` (``smtpx.DSN``) asks for delivery status notifications (RFC 3461): sent
        when the server offers DSN, else ``ExtensionRequired`` (with
        ``dsn_required=False``, the message goes without them).  ``require_tls=True``
        adds REQUIRETLS (RFC 8689): ``ExtensionRequired`` unless the session is
        encrypted and the server offers it.  Both are checked before MAIL FROM.
        """
        if self._local_hostname is None and not self.config.dry_run:
            # the EHLO name, and the domain of a Message-ID
            self._local_hostname = check_hostname(await asyncio.to_thread(_fqdn))
        envelope = prepare(
            message,
            sender=sender,
            recipients=recipients,
            add_missing_headers=self.config.add_missing_headers,
            local_hostname=self._local_hostname,
            dsn=dsn,
            dsn_required=dsn_required,
            require_tls=require_tls,
        )
        async with self._lock:
            if retry is not None and not self.config.dry_run:  # a dry run cannot fail
                return await send_with_retry(self, envelope, retry)
            return await self.send_envelope(envelope)

    async def send_many(
        self, messages: Iterable[MessageInput | Envelope]
    ) -> AsyncGenerator[SendResult | e.SMTPError, None]:
        """Send ``messages`` back to back; yield each one's outcome in order: its
        ``SendResult``, or the ``SMTPError`` it failed with (``rejected`` and
        ``undelivered`` set, as ``send()`` would raise it).

        With PIPELINING the end of one message goes out with the next one's MAIL, RCPTs
        and DATA: one round trip per message instead of two; each reply is judged
        against its own command, and one message's failure never changes another's.
        Sender and recipients come from the headers (or pass envelopes from
        ``smtpx.protocol.prepare``); a message that cannot be prepared yields its error
        in its place.  The messages not started when the connection closes go on a new
        one; if connecting fails, each yields that failure.  One attempt each
        (``total_timeout`` per message), under the client's lock until the loop ends;
        leaving the loop early finishes the message under way and starts no other.
        """
        given = messages_of(messages, "send_many()")
        if self._local_hostname is None and not self.config.dry_run:
            self._local_hostname = check_hostname(await asyncio.to_thread(_fqdn))
        items = map(self._prepared, given)
        async with self._lock:
            if self.config.dry_run:
                sink = self.config.sink
                for item in items:
                    yield deliver_nowhere(item, sink) if isinstance(item, Envelope) else item
                return
            batches = send_batches(
                items, session=self._session_for, run=self._one_of_many, chunking=self.chunking
            )
            async with contextlib.aclosing(batches) as outcomes:
                async for outcome in outcomes:
                    yield outcome

    def _prepared(self, message: MessageInput | Envelope) -> Envelope | e.SMTPError:
        if isinstance(message, Envelope):
            return message
        try:
            return prepare(
                message,
                add_missing_headers=self.config.add_missing_headers,
                local_hostname=self._local_hostname,
            )
        except e.SMTPError as error:
            return error

    def _deadline(self) -> float | None:
        limit = self.total_timeout
        return None if limit is None else asyncio.get_running_loop().time() + limit

    async def _session_for(self, envelope: Envelope) -> Session:
        if not self.connected:
            await self._connect_by(self._deadline(), envelope, self.connect)
        assert self._session is not None
        return self._session

    async def _one_of_many(self, flow: Leading) -> SendResult | e.SMTPError:
        self._total_at = self._deadline()
        try:
            result = await self._run(flow)
        except e.SMTPError as error:
            return error
        finally:
            self._total_at = None
        return attrs.evolve(result, host=self.host, port=self.port)

    async def send_envelope(self, envelope: Envelope) -> SendResult:
        """One attempt at a prepared envelope, within ``total_timeout`` (lock held).

        With ``dry_run=True``, the envelope goes to the ``sink`` and nothing connects."""
        if self.config.dry_run:
            return deliver_nowhere(envelope, self.config.sink)
        # The deadline is handed to the connection's read timer for the flows, so a
        # send on a connection already open arms no timer of its own.
        deadline = self._total_at = self._deadline()
        try:
            if not self.connected:
                await self._connect_by(deadline, envelope, self.connect)
            while True:
                session = self._session
                assert session is not None
                flow = MailFlow(session, envelope, pipelining=True, chunking=self.chunking)
                try:
                    result = await self._run(flow)
                except e.SMTPError as refused:
                    rest = self._hosts_after()
                    if not rest or not _refused_before_the_end(refused, session):
                        raise
                    logger.warning(
                        "%s:%d refused MAIL (%s); trying %s:%d",
                        *self._endpoint,
                        refused,
                        *rest[0],
                    )
                    self.close()
                    await self._connect_by(
                        deadline, envelope, functools.partial(self._connect_any, rest)
                    )
                    continue
                return attrs.evolve(result, host=self.host, port=self.port)
        finally:
            self._total_at = None

    async def _connect_by(
        self,
        deadline: float | None,
        envelope: Envelope,
        connect: Callable[[], Coroutine[Any, Any, Ready]],
    ) -> None:
        """Connect within the send's total time-out; a failure leaves every recipient
        undelivered (nothing of the message was sent)."""
        try:
            async with asyncio.timeout_at(deadline) as total:
                self._total = total
                await connect()
        except e.SMTPError as failure:
            e.enrich(failure, undelivered=envelope.recipients)  # nobody got it
            raise
        except TimeoutError as exc:
            # expired outside a flow (connecting, the greeting)
            self.close()
            detail = f"the send took longer than total_timeout={self.total_timeout}s"
            error = e.ResponseTimeout(detail, command=Command.CONNECT)
            raise e.enrich(error, undelivered=envelope.recipients) from exc
        finally:
            self._total = None


def _refused_before_the_end(error: e.SMTPError, session: Session) -> bool:
    """Whether the next host may be tried after ``error`` in a transaction: MAIL refused
    for now (or lost) while the ledger shows nothing of the message's end written."""
    if error.command is not Command.MAIL or not fails_over(error) or error.rejected:
        return False
    transaction = session.ledger.transaction
    return transaction is None or transaction.end is None or transaction.end.written == 0
