"""``Secret``: bytes that never show themselves, for credentials on their way to the socket.

Error trackers (Sentry, rich, ``traceback.TracebackException(capture_locals=True)``)
print the local variables of every frame in a traceback.  Every AUTH line smtpx
builds is a ``Secret`` from the moment it exists until the transport writes it, so no
frame holds it as plain ``bytes`` or ``str``: its ``repr`` is redacted.
"""

from __future__ import annotations

__all__ = ["Secret"]


class Secret(bytes):
    """``bytes`` whose ``repr`` and ``str`` are redacted; otherwise ordinary bytes."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__
