"""``Client``: an SMTP session over aiosmtplib in which every reply is classified.

Each method sends one command and returns its typed success result or raises
its typed error; ``send()`` drives a whole transaction and reports each
recipient.  Every aiosmtplib, ``ssl`` or ``OSError`` failure is translated into
an ``smtpx`` error, with the original kept as ``__cause__``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Any, Unpack

from aiosmtplib.errors import (
    SMTPConnectResponseError,
    SMTPException,
    SMTPResponseException,
)
from aiosmtplib.response import SMTPResponse

from smtpx import _auth, _transaction
from smtpx import errors as e
from smtpx._address import check_address, check_hostname, param_arg, text_arg
from smtpx._auth import Credentials
from smtpx._classify import classify
from smtpx._commands import Command
from smtpx._data import END_OF_DATA, encode_data, normalize
from smtpx._end_of_message import current_hook
from smtpx._message import Envelope, MessageInput, prepare
from smtpx._reply import Reply
from smtpx._tls import TLSMode, default_context
from smtpx._transcript import log_reply, log_sent, record, transcript
from smtpx._translate import translate
from smtpx._wire import Transport, command_line, secret_line
from smtpx.config import ClientConfig, ClientOptions, credentials_pair, resolve_config
from smtpx.results import Authenticated, Ready, SendResult, StartData, Success
from smtpx.retry import RetryPolicy, send_with_retry


@functools.cache
def _fqdn() -> str:
    return socket.getfqdn()


class Client:
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
        self._stage: Command | None = None  # the step under way, for the total time-out
        self._smtp: Transport | None = None
        self._lock = asyncio.Lock()
        self.greeting: Reply | None = None

    # The options, read from the config (frozen: make a new Client to change one).

    @property
    def host(self) -> str:
        return self.config.host

    @property
    def port(self) -> int:
        return self.config.port

    @property
    def tls(self) -> TLSMode:
        return self.config.tls

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
    def connected(self) -> bool:
        return self._smtp is not None and self._smtp.is_connected

    @property
    def encrypted(self) -> bool:
        return self._smtp is not None and self._smtp.encrypted

    @property
    def extensions(self) -> Mapping[str, str]:
        """The ESMTP extensions of the last EHLO, lower-cased names (``size``, ``pipelining``).

        A read-only view, not a copy: ``send()`` consults it several times per message."""
        if self._smtp is None:
            return MappingProxyType({})
        return MappingProxyType(self._smtp.esmtp_extensions)

    @property
    def auth_mechanisms(self) -> tuple[str, ...]:
        if self._smtp is None:
            return ()
        return tuple(m.upper() for m in self._smtp.server_auth_methods)

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
        self._smtp = Transport(
            hostname=self.host,
            port=self.port,
            use_tls=implicit,
            start_tls=False,
            tls_context=self._context() if implicit else None,
            local_hostname=self.local_hostname,
            timeout=self.timeout,
        )
        await self._run(Command.CONNECT, self._smtp.connect())
        ready = self._checked(Command.CONNECT)
        assert isinstance(ready, Ready)
        self.greeting = ready.reply
        try:
            await self.ehlo()
            if self.tls in (TLSMode.STARTTLS, TLSMode.OPPORTUNISTIC) and not self.encrypted:
                if "starttls" in self.extensions:
                    await self.starttls()
                elif self.tls is TLSMode.STARTTLS:
                    raise e.TLSNotOffered(
                        f"{self.host}:{self.port} did not offer STARTTLS; use TLSMode.IMPLICIT "
                        "for port 465, or choose TLSMode.OPPORTUNISTIC explicitly to allow "
                        "plaintext",
                        command=Command.STARTTLS,
                    )
            if self._credentials is not None:
                await self.login()
        except BaseException:
            # A half-set-up session (no EHLO, no TLS, not authenticated) must not be
            # reused by the next send(), which only connects when not connected.
            self.close()
            raise
        return ready

    def close(self) -> None:
        """Drop the connection without QUIT (after an error, or on cancellation)."""
        if self._smtp is not None:
            self._smtp.close()
        self._smtp = None

    async def quit(self) -> None:
        """Say QUIT politely and close; errors while quitting are of no consequence."""
        if self.connected:
            with contextlib.suppress(e.SMTPError):
                await self.command(Command.QUIT, b"QUIT")
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
        envelope = prepare(message, sender=sender, recipients=recipients)
        async with self._lock:
            if retry is not None:
                return await send_with_retry(self, envelope, retry)
            return await self.send_envelope(envelope)

    async def send_envelope(self, envelope: Envelope) -> SendResult:
        """One attempt at a prepared envelope, within ``total_timeout`` (lock held)."""
        try:
            async with asyncio.timeout(self.total_timeout):
                if not self.connected:
                    try:
                        await self.connect()
                    except e.SMTPError as failure:
                        failure.undelivered = envelope.recipients  # nobody got it
                        raise
                return await _transaction.run(self, envelope)
        except TimeoutError as exc:
            stage = self._stage
            detail = f"the send took longer than total_timeout={self.total_timeout}s"
            error: e.SMTPError
            if stage is not None and stage.ends_message:
                error = e.DeliveryUnknown(detail, command=stage)
            else:
                error = e.ResponseTimeout(detail, command=stage)
            error.undelivered = envelope.recipients
            raise error from exc

    # -- one method per command -------------------------------------------------

    async def ehlo(self) -> Success:
        """EHLO, falling back to HELO when the server does not know EHLO (500, 502)."""
        host = (self.local_hostname or "localhost").encode("ascii")
        try:
            result = await self.command(Command.EHLO, b"EHLO", host)
        except (e.CommandUnrecognized, e.CommandNotImplemented):
            return await self.helo()
        assert self._smtp is not None
        self._smtp.last_ehlo_response = SMTPResponse(result.reply.code, result.reply.text)
        return result

    async def helo(self) -> Success:
        """HELO: the session then has no ESMTP extensions, whatever an earlier EHLO said."""
        host = (self.local_hostname or "localhost").encode("ascii")
        result = await self.command(Command.HELO, b"HELO", host)
        assert self._smtp is not None
        self._smtp.esmtp_extensions, self._smtp.server_auth_methods = {}, []
        self._smtp.supports_esmtp = False
        return result

    async def starttls(self) -> Ready:
        """STARTTLS, the handshake (certificate verified), and EHLO again (RFC 3207 §4.2)."""
        smtp = self._require()
        if "starttls" not in self.extensions:
            raise e.TLSNotOffered(command=Command.STARTTLS)
        if self.transcript:
            log_sent(Command.STARTTLS, (b"STARTTLS",))
        await self._run(Command.STARTTLS, smtp.starttls(tls_context=self._context()))
        ready = self._checked(Command.STARTTLS)
        assert isinstance(ready, Ready)
        await self.ehlo()
        return ready

    async def login(
        self, credentials: tuple[str, str] | Credentials | None = None
    ) -> Authenticated:
        """AUTH with the best mechanism both sides know; the server's reply decides.

        Uses the client's ``credentials`` unless others are given here."""
        given = credentials_pair(credentials) if credentials is not None else None
        return await _auth.login(self, given or self._credentials)

    async def mail(self, sender: str, options: Iterable[str] = ()) -> Success:
        """MAIL FROM:<sender> with ESMTP parameters (``SIZE=...``, ``BODY=8BITMIME``)."""
        return await self.command(Command.MAIL, *self.mail_args(sender, options))

    async def rcpt(self, recipient: str, options: Iterable[str] = ()) -> Success:
        """RCPT TO:<recipient>; a refusal raises an error carrying ``recipient``."""
        args = self.rcpt_args(recipient, options)
        return await self.command(Command.RCPT, *args, recipient=recipient)

    @staticmethod
    def mail_args(sender: str, options: Iterable[str] = ()) -> tuple[bytes, ...]:
        check_address(sender, role="sender", allow_null=True)
        return (b"MAIL", f"FROM:<{sender}>".encode(), *map(param_arg, options))

    @staticmethod
    def rcpt_args(recipient: str, options: Iterable[str] = ()) -> tuple[bytes, ...]:
        check_address(recipient, role="recipient")
        return (b"RCPT", f"TO:<{recipient}>".encode(), *map(param_arg, options))

    async def data(self, message: bytes) -> Success:
        """DATA, then the message (line endings normalised, dot-stuffed) and the final ".".

        A connection lost or timed out after the message was sent raises
        ``DeliveryUnknown``: the server may have accepted it.
        """
        return await self._data_encoded(encode_data(message))

    async def _data_encoded(self, payload: bytes, to: tuple[str, ...] = ()) -> Success:
        start = await self.command(Command.DATA, b"DATA")
        if not isinstance(start, StartData):  # pragma: no cover - classify guarantees it
            raise e.UnexpectedReply(command=Command.DATA, reply=start.reply)
        return await self._send_payload(payload, to)

    async def _send_payload(self, payload: bytes, to: tuple[str, ...] = ()) -> Success:
        """After a 354: the dot-stuffed message, its final ".", the reply as DATA_END.

        ``to``: who gets the message if its end arrives (for ``before_end_of_message``)."""
        return await self._send_message(Command.DATA_END, payload, END_OF_DATA, to=to)

    async def bdat(self, message: bytes) -> Success:
        """The message as one ``BDAT <size> LAST`` chunk (CHUNKING, RFC 3030).

        Line endings are normalised; nothing is dot-stuffed.  Needs a server
        that offers CHUNKING (``ExtensionRequired`` otherwise).  As with
        ``data()``, a loss after the last octet raises ``DeliveryUnknown``.
        """
        if "chunking" not in self.extensions:
            raise e.ExtensionRequired("the server does not offer CHUNKING", command=Command.BDAT)
        return await self._bdat(normalize(message))

    @staticmethod
    def bdat_args(data: bytes) -> tuple[bytes, ...]:
        return (b"BDAT", b"%d" % len(data), b"LAST")

    async def _bdat(self, data: bytes, to: tuple[str, ...] = ()) -> Success:
        args = self.bdat_args(data)
        if self.transcript:
            log_sent(Command.BDAT, args)
        return await self._send_message(Command.BDAT, command_line(args), data, to=to)

    async def _send_message(
        self, command: Command, *parts: bytes, to: tuple[str, ...] = ()
    ) -> Success:
        """Write the message (``parts``) and classify the reply that decides delivery."""
        smtp = self._smtp
        if smtp is None:
            raise e.ConnectionLost("not connected; call connect() first", command=command)
        protocol = smtp.reply_protocol

        if self.transcript:
            size = sum(map(len, parts))
            transcript.debug(">>> [message: %d octets]", size, extra=record(">>>", command))

        async def send_message() -> SMTPResponse:
            if not smtp.is_connected:
                # The server closed before the message was sent (smtp-sink -A): a reply
                # it sent first is its answer; without one, nothing was delivered.
                try:
                    return await protocol.read_response(timeout=0)
                except (SMTPException, TimeoutError) as exc:
                    raise e.ConnectionLost(
                        "the server closed the connection before the message was sent",
                        command=command,
                    ) from exc
            try:
                await protocol.write_all(*parts)
            except (SMTPException, OSError) as exc:
                # The message's end never went out, so the server cannot have taken it.
                raise e.ConnectionLost(
                    "the connection was lost while the message was being sent; it was "
                    "not delivered (its end was never sent)",
                    command=command,
                ) from exc
            return await protocol.read_response(timeout=self.timeout)

        if smtp.is_connected:
            self._before_end(to)  # nothing awaits between this and the write in send_message
        await self._run(command, send_message())
        return self._checked(command)

    async def rset(self) -> Success:
        return await self.command(Command.RSET, b"RSET")

    async def noop(self) -> Success:
        return await self.command(Command.NOOP, b"NOOP")

    async def vrfy(self, address: str) -> Success:
        return await self.command(Command.VRFY, b"VRFY", text_arg(address))

    async def expn(self, mailing_list: str) -> Success:
        return await self.command(Command.EXPN, b"EXPN", text_arg(mailing_list))

    async def help(self, topic: str | None = None) -> Success:
        args = [b"HELP"] + ([text_arg(topic)] if topic else [])
        return await self.command(Command.HELP, *args)

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
        smtp = self._require()
        protocol = smtp.reply_protocol
        results: list[Success | e.SMTPError] = []
        lines = b"".join(command_line(args) for _, args, _ in steps)
        if self.transcript:
            for command, args, _ in steps:
                log_sent(command, args)

        async def write() -> None:
            await protocol.write_all(lines, chunk)

        if steps[-1][0] is Command.BDAT:  # the whole message, its end included, goes now
            self._before_end(tuple(r for c, _, r in steps if c is Command.RCPT and r))
        await self._run(steps[0][0], write())
        for command, _, recipient in steps:
            # each read is its own step: a loss or time-out names the command it hit
            await self._run(
                command, protocol.read_response(timeout=self.timeout), recipient=recipient
            )
            reply = smtp.last_reply
            assert reply is not None
            result = classify(command, reply, recipient=recipient)
            if self.transcript:
                log_reply(command, reply, result)
            results.append(result)
            if isinstance(result, e.ServiceUnavailable | e.ProtocolError):
                self.close()
                break
        return results

    async def command(
        self, command: Command, *args: bytes, recipient: str | None = None
    ) -> Success:
        """Send one command line and classify its reply as ``command``."""
        protocol = self._require().reply_protocol
        # An AUTH line carries credentials: a Secret, whose repr is redacted, to the write.
        line = secret_line(args) if command is Command.AUTH else command_line(args)
        if self.transcript:
            log_sent(command, args)
        await self._run(command, protocol.exchange(line, self.timeout), recipient=recipient)
        return self._checked(command, recipient=recipient)

    def _before_end(self, to: tuple[str, ...]) -> None:
        """Run the task's ``before_end_of_message`` hook; if it raises, nothing is written."""
        hook = current_hook()
        if hook is None or not to:  # no recipient: an empty DATA ending nothing deliverable
            return
        try:
            hook(to)
        except BaseException:
            self.close()  # mid-transaction, the session cannot go on
            raise

    # -- the edge: translate everything below into smtpx ---------------------------

    def _require(self) -> Transport:
        if self._smtp is None or not self._smtp.is_connected:
            raise e.ConnectionLost("not connected; call connect() first")
        return self._smtp

    async def _run(self, command: Command, step: Any, *, recipient: str | None = None) -> None:
        """Await one network step; on failure, close and raise the classified smtpx error."""
        self._stage = command
        try:
            await step
        except asyncio.CancelledError:
            # A cancelled command leaves aiosmtplib desynchronised: never reuse it.
            self.close()
            raise
        except e.SMTPError as error:
            self.close()
            if error.command is None:
                error.command = command
            if error.recipient is None:
                error.recipient = recipient
            raise
        except SMTPConnectResponseError as exc:
            # a negative greeting: its reply is classified like any other
            raise self._checked_error(Command.CONNECT) from exc
        except SMTPResponseException as exc:
            if exc.code < 200 or self._last_reply() is None:
                self.close()
                raise e.ProtocolError(exc.message, command=command) from exc
            raise self._checked_error(command, recipient=recipient) from exc
        except BaseException as exc:
            self.close()
            raise translate(exc, command, recipient) from exc

    def _last_reply(self) -> Reply | None:
        return self._smtp.last_reply if self._smtp is not None else None

    def _checked(self, command: Command, *, recipient: str | None = None) -> Success:
        reply = self._last_reply()
        if reply is None:  # pragma: no cover - a step that succeeded always left a reply
            raise e.ProtocolError("no reply recorded", command=command)
        result = classify(command, reply, recipient=recipient)
        if self.transcript:
            log_reply(command, reply, result)
        if isinstance(result, e.SMTPError):
            if isinstance(result, e.ServiceUnavailable | e.ProtocolError):
                self.close()  # 421 closes the channel; a protocol error desynchronises it
            raise result
        return result

    def _checked_error(self, command: Command, *, recipient: str | None = None) -> e.SMTPError:
        try:
            self._checked(command, recipient=recipient)
        except e.SMTPError as error:
            return error
        return e.UnexpectedReply(command=command, reply=self._last_reply())


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
