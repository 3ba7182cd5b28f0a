"""The edge where bytes meet smtpx: aiosmtplib's transport with smtpx's strict reply parser.

aiosmtplib 5.x parses replies leniently (it ignores the codes of continuation
lines) and builds its ``SMTPProtocol`` inside ``SMTP._create_connection``.  We
subclass both so that every reply is parsed by ``Reply.parse`` from its raw
bytes (design rule 4) and kept as ``protocol.last_reply``.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Callable, Iterable
from typing import Any

from aiosmtplib import SMTP
from aiosmtplib.errors import (
    SMTPConnectError,
    SMTPConnectResponseError,
    SMTPConnectTimeoutError,
    SMTPReadTimeoutError,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)
from aiosmtplib.protocol import SMTPProtocol
from aiosmtplib.response import SMTPResponse

from smtpx._reply import MAX_LINE_LENGTH, MAX_LINES, Reply
from smtpx._secret import Secret
from smtpx.errors import InvalidEnvelope, ProtocolError, TLSModeMismatch

# Any C0 control or DEL in a command line could end it early and inject another.
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


def command_line(args: Iterable[bytes]) -> bytes:
    """One command line, CRLF-terminated; ``InvalidEnvelope`` if an argument has a control."""
    line = b" ".join(args)
    _check_line(line)
    return line + b"\r\n"


def secret_line(args: Iterable[bytes]) -> Secret:
    """An AUTH line: as ``command_line``, but a ``Secret`` from the join to the write."""
    line = Secret(b" ".join(args))
    _check_line(line)
    return Secret(line + b"\r\n")


def _check_line(line: bytes) -> None:
    if _CONTROL.search(line):
        # the line itself stays out of the message: it could be an AUTH step
        raise InvalidEnvelope("a command argument contains a control character (CR, LF, NUL...)")


_SLICE = 64 * 1024  # octets per write of a large message
_READ_SIZE = 64 * 1024  # octets per read from the socket
MAX_UNREAD = 1024 * 1024  # reply octets kept unread; a thousand pipelined replies fit


def _expire(waiter: asyncio.Future[SMTPResponse]) -> None:
    if not waiter.done():
        waiter.set_exception(SMTPReadTimeoutError("Timed out waiting for server response"))


class ReplyProtocol(SMTPProtocol, asyncio.BufferedProtocol):
    """``SMTPProtocol`` whose replies are parsed strictly and handed to ``on_reply``."""

    def __init__(self, on_reply: Callable[[Reply], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_reply = on_reply
        self._read_into = memoryview(bytearray(_READ_SIZE))

    # A buffered protocol: the transport reads into one buffer we own.  With plain
    # data_received(), asyncio allocates a 256 KiB bytes object per read (an
    # mmap, mremap and munmap per reply once glibc's threshold has settled low).

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_into

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._read_into[:nbytes])

    # aiosmtplib drops bytes that arrive while no reply is awaited, and parses only
    # one reply per chunk.  With PIPELINING (RFC 2920) several replies arrive at
    # once, so we keep every byte and serve buffered replies first.

    def data_received(self, data: bytes | memoryview) -> None:
        waiter = self._response_waiter
        if waiter is None:
            return  # connection already lost
        self._buffer.extend(data)
        if len(self._buffer) > MAX_UNREAD:
            # A server streaming between our commands must not grow the buffer forever:
            # stop reading, and the next read gets the error.
            raw = bytes(self._buffer[:200])
            del self._buffer[:]
            if self.transport is not None:
                self.transport.pause_reading()  # type: ignore[attr-defined]
            if not waiter.done():
                error = ProtocolError(f"over {MAX_UNREAD} octets that answer nothing", raw=raw)
                self._set_response_exception(waiter, error)
            return
        if self._response_pending and not waiter.done():
            try:
                response = self._read_response_from_buffer()
            except Exception as exc:  # delivered to the reader
                self._set_response_exception(waiter, exc)
                return
            if response is not None:
                waiter.set_result(response)

    async def read_response(self, timeout: float | None = None) -> SMTPResponse:
        # A complete reply already buffered comes first -- also when the connection
        # was lost after it arrived (a 421 then a close): the reply, not the loss, is
        # the answer.  Only a reply the waiter already holds is older than the buffer.
        waiter = self._response_waiter
        if waiter is None:
            raise SMTPServerDisconnected("Connection lost")
        holds_reply = waiter.done() and not waiter.cancelled() and waiter.exception() is None
        if self._buffer and not holds_reply:
            response = self._read_response_from_buffer()
            if response is not None:
                return response
        # aiosmtplib wraps the wait in asyncio.wait_for, a task-level timeout that
        # costs more than the rest of a command's round trip on loopback; a timer
        # on the waiter does the same job.
        self._response_pending = True
        timer = None
        if timeout is not None and not waiter.done():
            if timeout <= 0:
                _expire(waiter)
            else:
                timer = self._loop.call_later(timeout, _expire, waiter)
        try:
            return await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._response_pending = False
            self._response_waiter = None if self.transport is None else self._loop.create_future()

    async def write_all(self, *parts: bytes) -> None:
        """Write ``parts`` in order: commands, a (possibly large) message, its end.

        One ``write()`` of a 10 MiB message would copy what the socket does not
        take at once into the transport's buffer; writing slices of the same
        bytes and waiting while the transport is over its high-water mark keeps
        that buffer small.  Raises ``ConnectionResetError`` if the connection is
        lost before the last part was written.
        """
        if sum(map(len, parts)) <= _SLICE:
            self.write(b"".join(parts))
            return
        for part in parts:
            view = memoryview(part)
            for start in range(0, len(view), _SLICE):
                self.write(view[start : start + _SLICE])  # type: ignore[arg-type]  # any buffer
                await self._drain_helper()

    async def exchange(self, line: bytes, timeout: float | None) -> SMTPResponse:
        """Write one command line and wait for its reply."""
        self._response_pending = True  # a reply arriving right after the write is ours
        self.write(line)
        if line == b"QUIT\r\n":
            self._quit_sent = True  # a close after QUIT is its answer, not a loss
        return await self.read_response(timeout)

    def _read_response_from_buffer(self) -> SMTPResponse | None:
        offset = 0
        lines = 0
        while True:
            lines += 1
            if lines > MAX_LINES:
                raise ProtocolError(
                    f"reply has more than {MAX_LINES} lines", raw=bytes(self._buffer[:200])
                )
            end = self._buffer.find(b"\n", offset)
            if end == -1:
                if len(self._buffer) - offset > MAX_LINE_LENGTH:
                    raise ProtocolError(
                        f"reply line longer than {MAX_LINE_LENGTH} octets",
                        raw=bytes(self._buffer[:200]),
                    )
                return None
            line = self._buffer[offset : end + 1]
            offset = end + 1
            if line[3:4] != b"-":
                break
        raw = bytes(self._buffer[:offset])
        del self._buffer[:offset]
        reply = Reply.parse(raw)
        self._on_reply(reply)
        return SMTPResponse(reply.code, reply.text)


# What OpenSSL reports when the first bytes from the peer are not a TLS record but,
# say, "220 mail.example.com ESMTP": the peer speaks plaintext SMTP.
_PLAINTEXT_ANSWER = frozenset(
    {"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE", "HTTP_REQUEST"}
)

# With no greeting after this long, check whether the port expects TLS from its
# first byte (as port 465 does): it then waits for our ClientHello and never greets.
GREETING_PROBE_AFTER = 2.0


async def speaks_tls(host: str, port: int, timeout: float) -> bool:
    """Whether ``host:port`` completes a TLS handshake (on a second, throwaway connection).

    Only the handshake is made, certificate unchecked: it tells the mode of the
    port, nothing is sent over it, and the real connection still verifies."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE
    loop = asyncio.get_running_loop()
    try:
        transport, _ = await asyncio.wait_for(
            loop.create_connection(asyncio.Protocol, host, port, ssl=probe, server_hostname=host),
            timeout,
        )
    except (OSError, TimeoutError):  # ssl.SSLError is an OSError
        return False
    transport.abort()
    return True


class Transport(SMTP):
    """``aiosmtplib.SMTP`` connecting with ``ReplyProtocol`` (host and port only).

    ``last_reply`` outlives the connection, so a reply that made aiosmtplib
    close (a 421, a negative greeting) can still be classified.
    """

    last_reply: Reply | None = None
    _replies: ReplyProtocol | None = None

    def _record(self, reply: Reply) -> None:
        self.last_reply = reply

    @property
    def reply_protocol(self) -> ReplyProtocol:
        """The connection's protocol, kept after the server closes (aiosmtplib forgets
        it) so that replies the server sent before closing can still be read."""
        if self._replies is None:
            raise SMTPServerDisconnected("Server not connected")
        return self._replies

    @property
    def encrypted(self) -> bool:
        return self.is_connected and self.get_transport_info("sslcontext") is not None

    async def _read_greeting(
        self, protocol: ReplyProtocol, host: str, port: int, timeout: float | None
    ) -> SMTPResponse:
        """The 220 greeting; a plaintext connection to an implicit-TLS port fails fast."""
        if self.use_tls or timeout is None or timeout <= GREETING_PROBE_AFTER:
            return await protocol.read_response(timeout=timeout)
        try:
            return await protocol.read_response(timeout=GREETING_PROBE_AFTER)
        except SMTPTimeoutError:
            pass
        # Still silent: wait on, and meanwhile ask the port whether it expects TLS.
        remaining = timeout - GREETING_PROBE_AFTER
        greeting = asyncio.ensure_future(protocol.read_response(timeout=remaining))
        probe = asyncio.ensure_future(speaks_tls(host, port, remaining))
        try:
            await asyncio.wait((greeting, probe), return_when=asyncio.FIRST_COMPLETED)
            if not greeting.done() and await probe:
                raise TLSModeMismatch(
                    f"{host}:{port} sent no greeting and speaks TLS from the first byte "
                    "(implicit TLS, as port 465 does); use TLSMode.IMPLICIT"
                )
            return await greeting
        finally:
            for task in (greeting, probe):
                task.cancel()

    async def _create_connection(self, timeout: float | None) -> SMTPResponse:
        loop = asyncio.get_running_loop()
        protocol = ReplyProtocol(
            self._record, loop=loop, connection_lost_callback=self._on_connection_lost
        )
        tls_context: ssl.SSLContext | None = None
        if self.use_tls:
            tls_context = await self._get_tls_context()
        host = self.hostname or "localhost"
        port = self.port if self.port is not None else self._get_default_port()
        try:
            transport, _ = await asyncio.wait_for(
                loop.create_connection(
                    lambda: protocol,
                    host=host,
                    port=port,
                    ssl=tls_context,
                    server_hostname=host if tls_context is not None else None,
                    ssl_handshake_timeout=timeout if tls_context is not None else None,
                    local_addr=self.source_address,
                ),
                timeout=timeout,
            )
        except TimeoutError as exc:
            raise SMTPConnectTimeoutError(
                f"Timed out connecting to {host} on port {port}"
            ) from exc
        except ssl.SSLError as exc:
            if exc.reason in _PLAINTEXT_ANSWER:
                raise TLSModeMismatch(
                    f"{host}:{port} answered in plaintext, not TLS: it expects STARTTLS "
                    "(as ports 587 and 25 do); use TLSMode.STARTTLS",
                ) from exc
            raise  # classified as a TLS failure, not a connect failure
        except OSError as exc:
            raise SMTPConnectError(f"Error connecting to {host} on port {port}: {exc}") from exc

        self.protocol = self._replies = protocol
        self.transport = transport
        try:
            response = await self._read_greeting(protocol, host, port, timeout)
        except SMTPServerDisconnected as exc:
            raise SMTPConnectError(f"{host}:{port} closed the connection before greeting") from exc
        except SMTPTimeoutError as exc:
            raise SMTPConnectTimeoutError("Timed out waiting for the greeting") from exc
        if response.code != 220:
            raise SMTPConnectResponseError(response.code, response.message)
        return response
