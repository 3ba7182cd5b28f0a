"""Exceptions from below smtpx (aiosmtplib, ``ssl``, ``OSError``) → smtpx errors (rule 7, 8)."""

from __future__ import annotations

import socket
import ssl
from typing import Any

from aiosmtplib.errors import (
    SMTPConnectError,
    SMTPConnectTimeoutError,
    SMTPException,
    SMTPTimeoutError,
)

from smtpx import errors as e
from smtpx._commands import Command

# getaddrinfo's answers that the name does not exist (or has no address): permanent.
# EAI_AGAIN (the resolver could not answer) and the rest stay transient ConnectErrors.
_NO_SUCH_NAME = frozenset(
    code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)) if code is not None
)


def translate(exc: BaseException, command: Command, recipient: str | None) -> e.SMTPError:
    """The smtpx error for an exception raised below us (aiosmtplib, ssl, OSError)."""
    after_data = command.ends_message
    cause = exc.__cause__ if isinstance(exc, SMTPConnectError) else exc
    detail = str(exc) or type(exc).__name__
    kwargs: dict[str, Any] = {"command": command, "recipient": recipient}
    if isinstance(cause, ssl.SSLCertVerificationError):
        return e.CertificateInvalid(cause.verify_message or detail, **kwargs)
    if isinstance(cause, ssl.SSLError):
        return e.TLSHandshakeFailed(detail, **kwargs)
    if isinstance(cause, socket.gaierror) and cause.errno in _NO_SUCH_NAME:
        return e.HostNotFound(detail, **kwargs)
    if isinstance(exc, SMTPConnectTimeoutError):
        return e.ConnectTimeout(detail, **kwargs)
    if isinstance(exc, SMTPConnectError):
        return e.ConnectError(detail, **kwargs)
    if isinstance(exc, SMTPTimeoutError | TimeoutError):
        if after_data:
            return e.DeliveryUnknown(f"no reply after the final '.': {detail}", **kwargs)
        return e.ResponseTimeout(detail, **kwargs)
    if isinstance(exc, ValueError):
        return e.InvalidEnvelope(detail, **kwargs)
    if isinstance(exc, SMTPException | OSError | EOFError):
        if after_data:
            return e.DeliveryUnknown(f"connection lost after the final '.': {detail}", **kwargs)
        return e.ConnectionLost(detail, **kwargs)
    return e.ProtocolError(f"unexpected {type(exc).__name__}: {detail}", **kwargs)
