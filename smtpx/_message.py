"""Turning what the caller gives ``send()`` into an envelope and the bytes for DATA.

Every check happens here, before anything is sent: addresses (``smtpx._address``),
header fields of message objects (``smtpx._headers.check_field``), the bytes
(``smtpx._data``).  A message lacking ``Date`` or ``Message-ID`` gets them here, once
per ``send()``, so that a retry resends the same Message-ID.
"""

from __future__ import annotations

import datetime
import email.policy
import functools
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from email.errors import MessageError
from email.header import Header
from email.message import EmailMessage, Message
from email.utils import format_datetime, make_msgid

from smtpx._address import check_address, needs_smtputf8
from smtpx._data import normalize
from smtpx._dsn import DSN
from smtpx._envelope import Envelope
from smtpx._headers import (
    ENVELOPE_FIELDS,
    addresses,
    check_field,
    field_names,
    field_values,
    header_block,
)
from smtpx.errors import InvalidEnvelope, InvalidMessage, UsageError

__all__ = ["ComposedMessage", "MessageInput", "prepare"]

MessageInput = EmailMessage | Message | bytes | str
"""What ``send()`` and ``prepare()`` take as a message: an email object, bytes or text."""


class ComposedMessage(EmailMessage):
    """An ``EmailMessage`` made by ``smtpx.compose``, whose Bcc recipients travel beside
    it (``bcc``) instead of in a header: its bytes never name them, and ``send()`` puts
    them in the envelope."""

    def __init__(self, policy: email.policy.Policy | None = None) -> None:
        super().__init__(policy=policy)
        self.bcc: tuple[str, ...] = ()


def messages_of(messages: object, what: str) -> Iterator[MessageInput | Envelope]:
    """``messages`` (an iterable of messages or envelopes) as an iterator;
    ``UsageError`` for anything else, and for one message given where many are
    expected (iterating it would yield its characters or parts, not messages)."""
    if isinstance(messages, str | bytes | bytearray | memoryview | Message | Envelope):
        raise UsageError(
            f"{what} takes an iterable of messages, not one {type(messages).__name__}: "
            "pass [message], or use send()"
        )
    if not isinstance(messages, Iterable):
        raise UsageError(
            f"{what} takes an iterable of messages (EmailMessage, bytes, str or "
            f"Envelope), not {type(messages).__name__}"
        )
    return iter(messages)


def prepare(
    message: MessageInput,
    *,
    sender: str | None = None,
    recipients: Iterable[str] | None = None,
    add_missing_headers: bool = True,
    local_hostname: str | None = None,
    dsn: DSN | None = None,
    dsn_required: bool = True,
    require_tls: bool = False,
) -> Envelope:
    """Build the envelope; raise ``InvalidEnvelope`` or ``InvalidMessage`` before anything
    is sent.

    ``dsn`` (a ``smtpx.DSN``) asks for delivery status notifications, which go out only
    to a server that offers DSN (else ``ExtensionRequired``; with ``dsn_required=False``
    the message goes without them).  ``require_tls`` adds REQUIRETLS (RFC 8689) to MAIL
    FROM: only over TLS, to a server that offers it (else ``ExtensionRequired``).

    With ``add_missing_headers`` (the default), a message without a ``Date`` or a
    ``Message-ID`` header gets one, written above its first header (``Envelope.head``:
    the message itself is not copied); the rest of the message is unchanged.  The
    Message-ID's domain is ``local_hostname`` when that is a dotted domain name other
    than ``localhost``, else the sender's domain, else a random name under ``.invalid``
    (RFC 2606).  A caller's own headers are kept.
    """
    _check_options(dsn, dsn_required, require_tls)
    if isinstance(message, str):
        message = _utf8(message)
    # normalize() refuses NUL and over-long lines before anything is sent
    if isinstance(message, Message):
        # The object's own headers, decoded: serialised, a non-ASCII address would be
        # RFC 2047-encoded, which is not an address any more.
        legacy_values = _check_fields(message)
        fields = _object_fields(message)
        utf8 = _has_utf8_address(fields)
        data = normalize(_serialize(message, utf8=utf8, legacy_values=legacy_values))
        block = header_block(data)
        names = message.keys()
        if field_names(block) != names:
            raise InvalidMessage(
                "the serialised message's headers are not the message object's own: "
                "a header value would add headers or end the headers early"
            )
        present = {name.lower() for name in names}
    elif isinstance(message, bytes | bytearray | memoryview):
        data = normalize(bytes(message))  # bytes() does not copy a bytes object
        if data.startswith((b" ", b"\t")):
            raise InvalidMessage(
                "the message starts with a space or tab, which continues no header: "
                "parsers disagree on where its headers are"
            )
        block = header_block(data)
        reading = sender is None or recipients is None or add_missing_headers
        fields = field_values(block) if reading else {}
        present = set(fields)
    else:
        raise InvalidEnvelope(
            f"send() takes an EmailMessage, bytes or str, not {type(message).__name__}"
        )

    role = "sender"
    if sender is None:
        for role in ("Sender header", "From header"):
            found = _addresses(fields, role.split()[0])
            if found:
                sender = found[0]
                break
        else:
            raise InvalidEnvelope("no sender given and the message has no From or Sender header")
    check_address(sender, role=role, allow_null=True)

    if recipients is None:
        rcpts = [
            (address, f"{name} header")
            for name in ("To", "Cc", "Bcc")
            for address in _addresses(fields, name)
        ]
        if isinstance(message, ComposedMessage):
            rcpts += [(address, "bcc recipient") for address in message.bcc]
    else:
        if isinstance(recipients, str):
            raise InvalidEnvelope("recipients must be a list of addresses, not one str")
        try:
            rcpts = [(r, "recipient") for r in recipients]
        except TypeError as exc:
            raise InvalidEnvelope(
                f"recipients must be a list of addresses, not {type(recipients).__name__}"
            ) from exc
    unique = tuple(dict.fromkeys(check_address(r, role=role) for r, role in rcpts))
    if not unique:
        raise InvalidEnvelope("the message has no recipients (no To, Cc or Bcc, none given)")

    head = b""  # lines sent above data (Envelope.head): putting them there copies no data
    if _BCC.search(block):  # Bcc is never transmitted; the other header lines go apart
        # the body is the one copy made of the message (joined again, it was two)
        data, head = data[len(block) :], _BCC.sub(b"", block)
        block = head
    if add_missing_headers and not {"date", "message-id"} <= present:
        added = _missing_headers(present, local_hostname, sender, fields)
        if not _starts_with_headers(head or data):
            # the message is all body: the headers need the empty line, and are all of them
            added, block = added + b"\r\n", b""
        head = added + head
    return Envelope(
        sender=sender,
        recipients=unique,
        data=data,
        head=head,
        # the added lines are ASCII: only the message's own headers can need SMTPUTF8
        smtputf8=needs_smtputf8(sender) or any(map(needs_smtputf8, unique)) or not block.isascii(),
        eight_bit=not (data.isascii() and head.isascii()),
        dsn=dsn,
        dsn_required=dsn_required,
        require_tls=require_tls,
    )


def _check_options(dsn: object, dsn_required: object, require_tls: object) -> None:
    if dsn is not None and not isinstance(dsn, DSN):
        raise UsageError(f"dsn must be a smtpx.DSN or None, not {type(dsn).__name__}")
    for name, flag in (("dsn_required", dsn_required), ("require_tls", require_tls)):
        if not isinstance(flag, bool):
            raise UsageError(f"{name} must be True or False, not {flag!r}")


def _utf8(message: str) -> bytes:
    try:
        return message.encode("utf-8")
    except UnicodeEncodeError as exc:
        code, where = ord(message[exc.start]), _where(message, exc.start)
        raise InvalidMessage(
            f"the message (a str) holds a lone surrogate U+{code:04X} {where}, which UTF-8 "
            "cannot encode: pass valid text, or the message's bytes"
        ) from exc


def _where(text: str, index: int) -> str:
    """Where ``index`` of a message's text is: in which header, or in the body."""
    before = text[:index].replace("\r\n", "\n").replace("\r", "\n")
    if before.startswith("\n") or "\n\n" in before:
        return "in the body"
    lines = before.split("\n")
    while len(lines) > 1 and lines[-1][:1] in (" ", "\t"):
        lines.pop()  # a fold: the field began on an earlier line
    name, colon, _ = lines[-1].partition(":")
    return f"in the {name} header" if colon and name else "in the headers"


def _addresses(fields: dict[str, list[bytes]], name: str) -> list[str]:
    return addresses(fields.get(name.lower(), []), name)


def _check_fields(message: Message) -> bool:
    """Every header of every part: one field each on the wire (see ``check_field``).
    True when a value is an ``email.header.Header``."""
    legacy_values = False
    for part in message.walk():
        for name, value in part.raw_items():
            check_field(name, value)
            legacy_values = legacy_values or isinstance(value, Header)
    return legacy_values


def _object_fields(message: Message) -> dict[str, list[bytes]]:
    fields: dict[str, list[bytes]] = {}
    for key, value in message.raw_items():
        name = key.lower()
        if name in ENVELOPE_FIELDS:
            # check_field() let only surrogates for undecodable bytes through
            fields.setdefault(name, []).append(str(value).encode("utf-8", "surrogateescape"))
    return fields


def _has_utf8_address(fields: dict[str, list[bytes]]) -> bool:
    return any(
        needs_smtputf8(address)
        for name, values in fields.items()
        for address in addresses(values, name)
    )


# email.header.Header values only the compat32 policy can serialise
_COMPAT32 = email.policy.compat32.clone(linesep="\r\n")


def _serialize(message: Message, *, utf8: bool, legacy_values: bool) -> bytes:
    try:
        if legacy_values:
            return message.as_bytes(policy=_COMPAT32)
        if not utf8:
            try:
                return message.as_bytes(policy=email.policy.SMTP)
            except UnicodeEncodeError:
                pass
        # Non-ASCII addresses in headers: only legal with SMTPUTF8 (RFC 6532).
        return message.as_bytes(policy=email.policy.SMTPUTF8)
    # What the email package raises for a message it cannot write (a payload that is
    # not text, an unknown charset, a header it refuses to fold): the caller's mistake.
    except (MessageError, UnicodeError, LookupError, TypeError, AttributeError) as exc:
        raise InvalidMessage(f"the email package cannot serialise this message: {exc}") from exc


# -- the headers every message should carry ---------------------------------------------

# A host name fit for a Message-ID: dotted, LDH labels, a top-level label that starts
# with a letter (so not an IP address), 253 octets at most (RFC 1035 §2.3.4).
_DOMAIN_NAME = re.compile(
    r"(?=.{1,253}\Z)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?",
    re.ASCII,
)
_LOCAL_NAMES = frozenset({"localhost", "localdomain"})
_now = time.time  # the clock of the Date header (tests set their own)


@functools.lru_cache(maxsize=2)
def _date(second: int) -> str:
    """A Date value (RFC 5322 §3.3), in UTC: formatted once per second of the clock."""
    return format_datetime(datetime.datetime.fromtimestamp(second, datetime.UTC))


def _missing_headers(
    present: set[str], local_hostname: str | None, sender: str, fields: dict[str, list[bytes]]
) -> bytes:
    """The Date and Message-ID lines the message lacks, CRLF-terminated, ASCII."""
    lines = []
    if "date" not in present:
        lines.append(f"Date: {date_now()}\r\n")
    if "message-id" not in present:
        domains = (local_hostname, sender.rpartition("@")[2], *_from_domains(fields))
        lines.append(f"Message-ID: {new_message_id(*domains)}\r\n")
    return "".join(lines).encode("ascii")


def date_now() -> str:
    """A Date value for now (RFC 5322 §3.3), in UTC."""
    return _date(int(_now()))


def new_message_id(*domains: str | None) -> str:
    """A new Message-ID, ``<...@domain>``: the first of ``domains`` fit for one (a dotted
    name, not ``localhost``, not an address), else a random name under ``.invalid``."""
    domain = next(filter(None, map(_usable_domain, domains)), None)
    return make_msgid(domain=domain or f"{secrets.token_hex(6)}.invalid")


def _from_domains(fields: dict[str, list[bytes]]) -> list[str]:
    """The From header's domains, for a null sender (a bounce names no sender)."""
    return [address.rpartition("@")[2] for address in _addresses(fields, "From")]


@functools.lru_cache(maxsize=256)
def _usable_domain(name: str | None) -> str | None:
    """``name`` as an ASCII domain for a Message-ID, or None if it is none (``localhost``,
    a single label, an address literal, an IP address, not a host name at all)."""
    if not name:
        return None
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if not _DOMAIN_NAME.fullmatch(name):
        return None
    labels = name.lower().split(".")
    return None if labels[0] in _LOCAL_NAMES or labels[-1] in _LOCAL_NAMES else name


def _starts_with_headers(data: bytes) -> bool:
    """Whether normalised ``data`` opens with its header block, as ``email.feedparser``
    reads it: a field, a Unix "From " line, or the empty line of an empty block."""
    return not data or data.startswith(b"\r\n") or _HEADER_START.match(data) is not None


# the start of a header line (email.feedparser's headerRE but for folds, refused before)
_HEADER_START = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:")

# One Bcc field with its continuation lines, in a header block with CRLF line ends.
_BCC = re.compile(rb"^Bcc:.*(?:\r\n[ \t].*)*\r\n", re.IGNORECASE | re.MULTILINE)
