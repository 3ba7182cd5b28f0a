"""Turning what the caller gives ``send()`` into an envelope and the bytes for DATA."""

from __future__ import annotations

import email.policy
import re
from collections.abc import Iterable
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser

import attrs

from smtpx._address import check_address, needs_smtputf8
from smtpx._data import dot_stuff, normalize
from smtpx._headers import ENVELOPE_FIELDS, addresses, field_values, header_block
from smtpx.errors import InvalidEnvelope, InvalidMessage

MessageInput = EmailMessage | Message | bytes | str


@attrs.frozen
class Envelope:
    """Who the message is from and to, and the exact bytes DATA will carry."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes  # CRLF line endings, ending with CRLF, Bcc removed: what SIZE and BDAT carry
    smtputf8: bool  # an address or a header needs SMTPUTF8
    eight_bit: bool  # the content has octets over 127 (BODY=8BITMIME)

    @property
    def payload(self) -> bytes:
        """What DATA carries: ``data`` dot-stuffed (``data`` itself when no line starts
        with "."); the final "." follows it.  Derived when sent, as BDAT needs none."""
        return dot_stuff(self.data)


def prepare(
    message: MessageInput,
    *,
    sender: str | None = None,
    recipients: Iterable[str] | None = None,
) -> Envelope:
    """Build the envelope; raise ``InvalidEnvelope`` before anything is sent."""
    if isinstance(message, str):
        message = message.encode("utf-8")
    # normalize() refuses NUL and over-long lines before anything is sent
    if isinstance(message, Message):
        # The object's own headers, decoded: serialised, a non-ASCII address would be
        # RFC 2047-encoded, which is not an address any more.
        fields = _object_fields(message)
        data = normalize(_serialize(message, utf8=_has_utf8_address(fields)))
        head = header_block(data)
        _check_no_header_injection(message, head)
    elif isinstance(message, bytes | bytearray | memoryview):
        data = normalize(bytes(message))  # bytes() does not copy a bytes object
        head = header_block(data)
        fields = field_values(head) if sender is None or recipients is None else {}
    else:
        raise InvalidEnvelope(
            f"send() takes an EmailMessage, bytes or str, not {type(message).__name__}"
        )

    if sender is None:
        found = _addresses(fields, "Sender") or _addresses(fields, "From")
        if not found:
            raise InvalidEnvelope("no sender given and the message has no From or Sender header")
        sender = found[0]
    check_address(sender, role="sender", allow_null=True)

    if recipients is None:
        rcpts = [
            *_addresses(fields, "To"),
            *_addresses(fields, "Cc"),
            *_addresses(fields, "Bcc"),
        ]
    else:
        if isinstance(recipients, str):
            raise InvalidEnvelope("recipients must be a list of addresses, not one str")
        rcpts = list(recipients)
    unique = tuple(dict.fromkeys(check_address(r, role="recipient") for r in rcpts))
    if not unique:
        raise InvalidEnvelope("the message has no recipients (no To, Cc or Bcc, none given)")

    if _BCC.search(head):  # Bcc is never transmitted
        data = _BCC.sub(b"", head) + data[len(head) :]
        head = header_block(data)
    return Envelope(
        sender=sender,
        recipients=unique,
        data=data,
        smtputf8=needs_smtputf8(sender) or any(map(needs_smtputf8, unique)) or not head.isascii(),
        eight_bit=not data.isascii(),
    )


def _addresses(fields: dict[str, list[bytes]], name: str) -> list[str]:
    return addresses(fields.get(name.lower(), []), name)


def _object_fields(message: Message) -> dict[str, list[bytes]]:
    fields: dict[str, list[bytes]] = {}
    for key, value in message.raw_items():
        name = key.lower()
        if name in ENVELOPE_FIELDS:
            fields.setdefault(name, []).append(str(value).encode("utf-8", "surrogateescape"))
    return fields


def _has_utf8_address(fields: dict[str, list[bytes]]) -> bool:
    return any(
        needs_smtputf8(address)
        for name, values in fields.items()
        for address in addresses(values, name)
    )


def _serialize(message: Message, *, utf8: bool) -> bytes:
    if not utf8:
        try:
            return message.as_bytes(policy=email.policy.SMTP)
        except UnicodeEncodeError:
            pass
    # Non-ASCII addresses in headers: only legal with SMTPUTF8 (RFC 6532).
    return message.as_bytes(policy=email.policy.SMTPUTF8)


def _check_no_header_injection(message: Message, head: bytes) -> None:
    """A CR or LF in a header value (user input in a Subject, say) must not add headers.

    ``EmailMessage`` refuses such values itself; the legacy ``Message`` class
    does not, so we count the headers that would be sent.
    """
    sent = BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
    if len(sent.keys()) != len(message.keys()):
        raise InvalidMessage(
            "a header value contains CR or LF that would add headers to the message"
        )


# One Bcc field with its continuation lines, in a header block with CRLF line ends.
_BCC = re.compile(rb"^Bcc:.*(?:\r\n[ \t].*)*\r\n", re.IGNORECASE | re.MULTILINE)
