"""TLS settings: how a client secures its connection, and the default context."""

from __future__ import annotations

import enum
import ssl

from smtpx.errors import UsageError

__all__ = ["TLSMode", "client_context", "default_context"]


class TLSMode(enum.Enum):
    """How the connection is secured.

    ``STARTTLS`` (the default) upgrades a plaintext connection and fails with
    ``TLSNotOffered`` when the server does not offer it; there is no silent
    plaintext fallback.  ``OPPORTUNISTIC`` upgrades when offered and carries on
    in plaintext otherwise: choose it explicitly, never by default.
    """

    IMPLICIT = "implicit"  # TLS from the first byte (port 465)
    STARTTLS = "starttls"  # upgrade required (port 587)
    OPPORTUNISTIC = "opportunistic"  # upgrade when offered
    NONE = "none"  # plaintext, for loopback and tests

    @property
    def default_port(self) -> int:
        return {TLSMode.IMPLICIT: 465, TLSMode.STARTTLS: 587}.get(self, 25)


def default_context(cafile: str | None = None) -> ssl.SSLContext:
    """Verify the certificate and host name against the system CAs (or ``cafile``); TLS 1.2+."""
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def client_context(
    *,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    key_password: str | None = None,
    verify: bool = True,
) -> ssl.SSLContext:
    """``default_context(ca_file)`` with a client certificate loaded (``cert_file``, and
    ``key_file`` when the key is apart; ``key_password`` for an encrypted key), and with
    verification off when ``verify`` is False.  A file that cannot be loaded is a
    ``UsageError`` naming it."""
    try:
        context = default_context(ca_file)
        if cert_file is not None:
            context.load_cert_chain(cert_file, key_file, key_password)
    except (OSError, ssl.SSLError) as exc:
        del key_password  # keep the key's password out of a traceback's locals
        files = {"ca_file": ca_file, "cert_file": cert_file, "key_file": key_file}
        named = ", ".join(f"{name}={path!r}" for name, path in files.items() if path)
        raise UsageError(f"could not load {named}: {exc.strerror or exc}") from exc
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
