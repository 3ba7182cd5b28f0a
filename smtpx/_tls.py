"""TLS settings: how a client secures its connection, and the default context."""

from __future__ import annotations

import enum
import ssl

__all__ = ["TLSMode", "default_context"]


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
