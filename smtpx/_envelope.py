"""``Envelope``: who a message is from and to, and the exact bytes DATA will carry.

``smtpx.prepare()`` builds one from what the caller gives ``send()``; the session core
sends it as it stands.
"""

from __future__ import annotations

from typing import Any

import attrs

from smtpx._data import dot_stuff
from smtpx._dsn import DSN
from smtpx.errors import UsageError

__all__ = ["Envelope"]


def _bytes(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bytes):
        name = attribute.alias
        raise UsageError(f"Envelope's {name} must be bytes, not {type(value).__name__}")


def _head(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _bytes(instance, attribute, value)
    if isinstance(value, bytes) and value and not value.endswith(b"\r\n"):
        raise UsageError("Envelope's head must be whole lines, each ending with CRLF")


@attrs.frozen(eq=False)
class Envelope:
    """Who the message is from and to, and the exact bytes DATA will carry.

    ``data`` is those bytes: CRLF line endings, ending with CRLF, Bcc removed; what
    SIZE counts and BDAT carries.  They are kept in two parts, joined only when
    ``data`` is read: ``head``, the header lines ``prepare()`` added (``Date``,
    ``Message-ID``; empty when it added none; with the message's other header lines
    when it removed a Bcc), and ``content``, the message as given, or its body
    (``Envelope(sender, recipients, data, ...)`` sets it), so that adding a header
    never copies the message.  Sending uses ``parts``.  Two envelopes are equal (and
    hash alike) when they would send the same, however ``data`` is split.
    """

    sender: str
    recipients: tuple[str, ...]
    #: The message below ``head``: the whole of ``data`` when ``head`` is empty.
    content: bytes = attrs.field(alias="data", validator=_bytes)
    smtputf8: bool  # an address or a header needs SMTPUTF8
    eight_bit: bool  # the content has octets over 127 (BODY=8BITMIME)
    #: Delivery status notifications to ask for (RFC 3461), and whether a server without
    #: DSN is an error (``ExtensionRequired``) or the request is left out.
    dsn: DSN | None = None
    dsn_required: bool = True
    #: REQUIRETLS (RFC 8689): the message travels only over TLS, all the way.
    require_tls: bool = False
    #: Header lines sent above ``content``, each ending with CRLF.
    head: bytes = attrs.field(default=b"", kw_only=True, validator=_head)

    def _key(self) -> tuple[object, ...]:
        # what the envelope means, not how its octets are split between head and content
        return (
            self.sender,
            self.recipients,
            self.data,
            self.smtputf8,
            self.eight_bit,
            self.dsn,
            self.dsn_required,
            self.require_tls,
        )

    def __eq__(self, other: object) -> bool:
        """Equal when they would send the same: the same ``data``, however it is split."""
        if not isinstance(other, Envelope):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def data(self) -> bytes:
        """``head`` and ``content`` as one bytes object (``content`` itself, not a copy,
        when ``head`` is empty)."""
        return self.head + self.content if self.head else self.content

    @property
    def parts(self) -> tuple[bytes, ...]:
        """``data`` as the parts it is kept in, none of them empty: what is sent."""
        if not self.head:
            return (self.content,) if self.content else ()
        return (self.head, self.content) if self.content else (self.head,)

    @property
    def size(self) -> int:
        """``len(data)``, without joining the parts: what SIZE (RFC 1870) announces."""
        return len(self.head) + len(self.content)

    @property
    def payload(self) -> bytes:
        """What DATA carries: ``data`` dot-stuffed (``data`` itself when no line starts
        with "."); the final "." follows it.  Derived when sent, as BDAT needs none."""
        return dot_stuff(self.data)
