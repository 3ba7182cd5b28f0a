"""Opening the connection: TCP (and TLS) through the event loop, and what its failures mean.

``Network`` opens the connection and does the STARTTLS handshake; ``connect_error`` and
``tls_error`` translate ``ssl``, ``OSError`` and asyncio's failures of either into smtpx
errors (rules 7 and 8 of the design), the original kept by the caller as ``__cause__``.

``NETWORK`` (a context variable) is the seam for tests: an in-memory ``Network`` runs
the real client over a scripted server without sockets.
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
import ssl
from typing import Any

from smtpx import errors as e
from smtpx._commands import Command

__all__ = ["DEFAULT_NETWORK", "NETWORK", "Network", "connect_error", "tls_error"]

# getaddrinfo's answers that the name does not exist (or has no address): permanent.
# EAI_AGAIN (the resolver could not answer) and the rest stay transient ConnectErrors.
_NO_SUCH_NAME = frozenset(
    code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)) if code is not None
)
# What OpenSSL reports when the first bytes from the peer are not a TLS record but,
# say, "220 mail.example.com ESMTP": the peer speaks plaintext SMTP.
_PLAINTEXT_ANSWER = frozenset(
    {"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE", "HTTP_REQUEST"}
)


class Network:
    """How connections are made: TCP (and TLS) through the running event loop."""

    async def connect(
        self,
        protocol: asyncio.BaseProtocol,
        host: str,
        port: int,
        context: ssl.SSLContext | None,
        timeout: float,
    ) -> asyncio.Transport:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            transport, _ = await loop.create_connection(
                lambda: protocol,
                host=host,
                port=port,
                ssl=context,
                server_hostname=host if context is not None else None,
                ssl_handshake_timeout=timeout if context is not None else None,
            )
        return transport

    async def start_tls(
        self,
        transport: asyncio.Transport,
        protocol: asyncio.BaseProtocol,
        context: ssl.SSLContext,
        host: str,
        timeout: float,
    ) -> asyncio.Transport:
        loop = asyncio.get_running_loop()
        upgraded = await loop.start_tls(
            transport, protocol, context, server_hostname=host, ssl_handshake_timeout=timeout
        )
        assert upgraded is not None  # None only for a transport already closing
        return upgraded  # type: ignore[return-value,unused-ignore]  # a Transport in fact

    async def speaks_tls(self, host: str, port: int, timeout: float) -> bool:
        """Whether ``host:port`` completes a TLS handshake (on a second, throwaway
        connection).  Only the handshake is made, certificate unchecked: it tells the
        mode of the port, nothing is sent over it, and the real connection verifies."""
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        probe.check_hostname = False
        probe.verify_mode = ssl.CERT_NONE
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, _ = await loop.create_connection(
                    asyncio.Protocol, host, port, ssl=probe, server_hostname=host
                )
        except (OSError, TimeoutError):  # ssl.SSLError is an OSError
            return False
        transport.abort()
        return True


NETWORK: contextvars.ContextVar[Network] = contextvars.ContextVar("smtpx_network")
DEFAULT_NETWORK = Network()


def connect_error(exc: BaseException, host: str, port: int) -> e.SMTPError:
    """The smtpx error for a failure to open the connection (rule 7, 8)."""
    where = f"{host}:{port}"
    kwargs: dict[str, Any] = {"command": Command.CONNECT}
    if isinstance(exc, TimeoutError):
        return e.ConnectTimeout(f"Timed out connecting to {host} on port {port}", **kwargs)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return e.CertificateInvalid(exc.verify_message or str(exc), **kwargs)
    if isinstance(exc, ssl.SSLError):
        if exc.reason in _PLAINTEXT_ANSWER:
            return e.TLSModeMismatch(
                f"{where} answered in plaintext, not TLS: it expects STARTTLS (as ports 587 "
                "and 25 do); use TLSMode.STARTTLS",
                **kwargs,
            )
        return e.TLSHandshakeFailed(str(exc) or type(exc).__name__, **kwargs)
    detail = f"Error connecting to {host} on port {port}: {exc}"
    if isinstance(exc, socket.gaierror) and exc.errno in _NO_SUCH_NAME:
        return e.HostNotFound(detail, **kwargs)
    if isinstance(exc, OSError | EOFError):
        return e.ConnectError(detail, **kwargs)
    return e.ProtocolError(f"unexpected {type(exc).__name__}: {exc}", **kwargs)


def tls_error(exc: BaseException) -> e.SMTPError:
    """The smtpx error for a failed STARTTLS handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return e.CertificateInvalid(exc.verify_message or str(exc), command=Command.STARTTLS)
    detail = str(exc) or type(exc).__name__
    return e.TLSHandshakeFailed(detail, command=Command.STARTTLS)
