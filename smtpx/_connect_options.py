"""Checks of the options that say where a connection comes from: ``source_address``,
``sock``, the certificate and key files, ``key_password``, and which of them (and of
``tls_context``, ``verify``, ``credentials``) may go together.  Used by ``ClientConfig``."""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import TYPE_CHECKING, Any

import attrs

from smtpx.errors import UsageError

if TYPE_CHECKING:
    from smtpx.config import ClientConfig

__all__ = ["check_origin", "key_password", "path", "sock", "source_address"]


def source_address(value: object) -> tuple[str, int] | None:
    """``(ip, port)`` to bind before connecting; port 0 lets the system choose."""
    if value is None:
        return None
    if isinstance(value, tuple | list) and len(value) == 2:
        ip, port = value
        if _is_ip(ip) and type(port) is int and 0 <= port <= 65535:
            return (ip, port)
    raise UsageError(
        f"source_address must be an (ip, port) pair such as ('192.0.2.7', 0), not {value!r}"
    )


def _is_ip(value: object) -> bool:
    try:
        ipaddress.ip_address(value)  # type: ignore[arg-type]  # anything else: ValueError
    except ValueError:
        return False
    return isinstance(value, str)


def sock(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, socket.socket):
        raise UsageError(f"sock must be a connected socket.socket, not {type(value).__name__}")
    if value.type != socket.SOCK_STREAM:
        raise UsageError(f"sock must be a stream (SOCK_STREAM) socket, not {value.type!r}")
    try:
        value.getpeername()
    except OSError as exc:
        raise UsageError(f"sock must be connected to the server already: {exc}") from None


def path(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        if isinstance(path, str):
            return path
    raise UsageError(f"a certificate or key file is a path (str), not {type(value).__name__}")


def key_password(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    kind = type(value).__name__
    del value  # a password: keep it out of this frame's locals in a traceback
    raise UsageError(f"key_password must be a str or None, not {kind}")


def check_origin(config: ClientConfig) -> None:
    """The options that only make sense together, or not at all together."""
    if config.sock is not None and (config.proxy is not None or config.source_address):
        raise UsageError(
            "sock= is a connection already made: proxy= and source_address= cannot apply to it"
        )
    if config.cert_file is None and (config.key_file or config.key_password is not None):
        raise UsageError("key_file and key_password need cert_file (the client certificate)")
    own_context = config.ca_file is not None or config.cert_file is not None or not config.verify
    if config.tls_context is not None and own_context:
        raise UsageError(
            "ca_file, cert_file and verify=False configure smtpx's own TLS context: with "
            "tls_context=, load the certificate into it (load_cert_chain) or set its "
            "verify_mode yourself"
        )
    if not config.verify and config.credentials is not None and not config.allow_insecure_auth:
        raise UsageError(
            "verify=False with credentials would send them to whoever answers: refused "
            "unless allow_insecure_auth=True (development only)"
        )
