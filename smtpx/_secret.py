"""``Secret``: bytes that never show themselves, for credentials on their way to the socket;
``Credentials``, which build their AUTH responses as ``Secret`` bytes.

Error trackers (Sentry, rich, ``traceback.TracebackException(capture_locals=True)``)
print the local variables of every frame in a traceback.  Every AUTH line smtpx
builds is a ``Secret`` from the moment it exists until the transport writes it, so no
frame holds it as plain ``bytes`` or ``str``: its ``repr`` is redacted.
"""

from __future__ import annotations

import hmac
from base64 import b64encode

import attrs

__all__ = ["Credentials"]


class Secret(bytes):
    """``bytes`` whose ``repr`` and ``str`` are redacted; otherwise ordinary bytes."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__


@attrs.frozen(repr=False)
class Credentials:
    """A user name and password; the password never appears in a repr or a log.

    The AUTH responses are built here as ``Secret`` bytes, in single expressions,
    so that no frame ever holds the password or an encoding of it as a plain local
    (tracebacks formatted with their locals show only redacted values)."""

    username: str
    password: str = attrs.field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***')"

    def plain(self) -> Secret:
        """AUTH PLAIN's initial response (RFC 4616): base64 of NUL user NUL password."""
        return Secret(b64encode(b"\0%s\0%s" % (self.username.encode(), self.password.encode())))

    def login_username(self) -> Secret:
        """AUTH LOGIN's first response: the user name in base64."""
        return Secret(b64encode(self.username.encode()))

    def login_password(self) -> Secret:
        """AUTH LOGIN's second response: the password in base64."""
        return Secret(b64encode(self.password.encode()))

    def cram_md5(self, nonce: bytes) -> Secret:
        """AUTH CRAM-MD5's response (RFC 2195): user, space, HMAC-MD5 of the nonce, base64."""
        return Secret(
            b64encode(
                b"%s %s"
                % (
                    self.username.encode(),
                    hmac.new(self.password.encode(), nonce, "md5").hexdigest().encode(),
                )
            )
        )
