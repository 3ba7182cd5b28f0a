"""Turning what the caller gives ``send()`` into an envelope and the bytes for DATA."""

from __future__ import annotations

import email.policy
import re
from collections.abc import Iterable
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, HeaderParser
from email.utils import getaddresses

import attrs

from smtpx._address import check_address, needs_smtputf8
from smtpx._data import encode_data
from smtpx.errors import InvalidEnvelope, InvalidMessage

MessageInput = EmailMessage | Message | bytes | str


@attrs.frozen
class Envelope:
    """Who the message is from and to, and the exact bytes DATA will carry."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes  # CRLF line endings, not yet dot-stuffed
    payload: bytes  # what follows DATA: dot-stuffed, ending CRLF.CRLF
    smtputf8: bool  # an address or a header needs SMTPUTF8
    eight_bit: bool  # the content has octets over 127 (BODY=8BITMIME)


def prepare(
    message: MessageInput,
    *,
    sender: str | None = None,
    recipients: Iterable[str] | None = None,
) -> Envelope:
    """Build the envelope; raise ``InvalidEnvelope`` before anything is sent."""
    if isinstance(message, str):
        message = message.encode("utf-8")
    headers: Message | None = None
    if isinstance(message, Message):
        headers = message
        data = _serialize(message)
        _check_no_header_injection(message, data)
    elif isinstance(message, bytes | bytearray | memoryview):
        data = bytes(message)
    else:
        raise InvalidEnvelope(
            f"send() takes an EmailMessage, bytes or str, not {type(message).__name__}"
        )

    if headers is None and (sender is None or recipients is None):
        headers = _header_block(data)
    if sender is None:
        assert headers is not None
        found = _addresses(headers, "Sender") or _addresses(headers, "From")
        if not found:
            raise InvalidEnvelope("no sender given and the message has no From or Sender header")
        sender = found[0]
    check_address(sender, role="sender", allow_null=True)

    if recipients is None:
        assert headers is not None
        rcpts = [
            *_addresses(headers, "To"),
            *_addresses(headers, "Cc"),
            *_addresses(headers, "Bcc"),
        ]
    else:
        if isinstance(recipients, str):
            raise InvalidEnvelope("recipients must be a list of addresses, not one str")
        rcpts = list(recipients)
    unique = tuple(dict.fromkeys(check_address(r, role="recipient") for r in rcpts))
    if not unique:
        raise InvalidEnvelope("the message has no recipients (no To, Cc or Bcc, none given)")

    data = _strip_bcc(data)
    header_block = data.split(b"\r\n\r\n", 1)[0]
    return Envelope(
        sender=sender,
        recipients=unique,
        data=data,
        payload=encode_data(data),  # refuses NUL and over-long lines before anything is sent
        smtputf8=needs_smtputf8(sender)
        or any(map(needs_smtputf8, unique))
        or not header_block.isascii(),
        eight_bit=not data.isascii(),
    )


def _header_block(data: bytes) -> Message:
    """Only the header block, parsed with the plain compat32 policy: envelope addresses
    need no structured header objects, and building them was most of send()'s CPU."""
    head = re.split(rb"\r?\n\r?\n", data, maxsplit=1)[0]
    text = head.decode("utf-8", "surrogateescape")
    return HeaderParser(policy=email.policy.compat32).parsestr(text, headersonly=True)


def _addresses(headers: Message, name: str) -> list[str]:
    # raw_items(): the stored values, without the (costly) policy parsing of get_all()
    wanted = name.lower()
    values = [str(v) for key, v in headers.raw_items() if key.lower() == wanted]
    if any(_CONTROL.search(v) for v in values):
        raise InvalidEnvelope(f"the {name} header contains a control character")
    return [address for _, address in getaddresses(values) if address]


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _serialize(message: Message) -> bytes:
    policy = email.policy.SMTP
    try:
        return message.as_bytes(policy=policy)
    except UnicodeEncodeError:
        # Non-ASCII addresses in headers: only legal with SMTPUTF8 (RFC 6532).
        return message.as_bytes(policy=email.policy.SMTPUTF8)


def _check_no_header_injection(message: Message, data: bytes) -> None:
    """A CR or LF in a header value (user input in a Subject, say) must not add headers.

    ``EmailMessage`` refuses such values itself; the legacy ``Message`` class
    does not, so we count the headers that would be sent.
    """
    sent = BytesHeaderParser(policy=email.policy.compat32).parsebytes(data)
    if len(sent.keys()) != len(message.keys()):
        raise InvalidMessage(
            "a header value contains CR or LF that would add headers to the message"
        )


_BCC = re.compile(rb"^Bcc:.*(?:\r\n[ \t].*)*\r\n", re.IGNORECASE | re.MULTILINE)


def _strip_bcc(data: bytes) -> bytes:
    """Remove every Bcc header from the header block: Bcc is never transmitted."""
    data = re.sub(rb"\r?\n", b"\r\n", data)
    head, sep, body = data.partition(b"\r\n\r\n")
    return _BCC.sub(b"", head + b"\r\n").removesuffix(b"\r\n") + sep + body
