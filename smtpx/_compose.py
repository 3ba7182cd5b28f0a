"""``smtpx.compose``: a message built right by default, from text, HTML and attachments.

What the email package leaves to the caller is decided here: text and HTML as
``multipart/alternative`` (RFC 2046 §5.1.4: the plainest first), attachments in
``multipart/mixed`` with their type from ``mimetypes``, non-ASCII subjects and names
as RFC 2047 encoded words and filenames as RFC 2231 parameters (the email package's
own encoders, driven by its policy), bodies in 7-bit transfer encodings, Date and
Message-ID set, and Bcc recipients kept beside the message rather than in it.  No
templating: hand the text and HTML in rendered.
"""

from __future__ import annotations

import email.policy
import mimetypes
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from email.errors import NonASCIILocalPartDefect
from email.headerregistry import Address
from email.message import MIMEPart
from pathlib import Path

from smtpx._address import check_address, unprintable
from smtpx._message import ComposedMessage, MessageInput, date_now, new_message_id
from smtpx.errors import InvalidEnvelope, InvalidMessage, UsageError

__all__ = ["compose"]

# A path, or (filename, content) with an optional MIME type ("application/pdf").
Attachment = str | os.PathLike[str] | tuple[str, bytes] | tuple[str, bytes, str | None]
Recipients = str | Address | Iterable[str | Address]

# The email package's own policy, but every body in a 7-bit transfer encoding (quoted-
# printable or base64 for non-ASCII text): the message goes to any server as it is,
# 8BITMIME or not.
POLICY = email.policy.default.clone(cte_type="7bit")

# Fields compose writes from its arguments or the MIME structure: not in headers=.
_OWN_FIELDS = frozenset(
    {"from", "to", "cc", "bcc", "reply-to", "subject", "sender"}
    | {"mime-version", "content-type", "content-transfer-encoding", "content-disposition"}
)
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")  # RFC 5322 §3.6.8 ftext
_MIME_TYPE = re.compile(r"[A-Za-z0-9][\w!#$&^.+-]*/[A-Za-z0-9][\w!#$&^.+-]*", re.ASCII)
# What a compressed file is, when mimetypes reads its suffix as an encoding (.tar.gz).
_ENCODED_TYPES = {
    "gzip": "application/gzip",  # RFC 6713
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "compress": "application/x-compress",
    "br": "application/x-brotli",
}


def compose(
    sender: str | Address,
    to: Recipients,
    subject: str,
    *,
    text: str | None = None,
    html: str | None = None,
    attachments: Iterable[Attachment] = (),
    cc: Recipients = (),
    bcc: Recipients = (),
    reply_to: Recipients = (),
    headers: Mapping[str, str] | None = None,
) -> ComposedMessage:
    """A message ready for ``send()``: ``From`` ``sender``, ``To`` ``to``, ``Subject``.

    ``text`` and ``html`` are the body (both: ``multipart/alternative``); each of
    ``attachments`` is a path or ``(filename, bytes[, mime type])``, its type guessed
    from the filename when not given (``application/octet-stream`` when unknown).
    Addresses are ``"Name <a@example.com>"`` strings, ``email.headerregistry.Address``
    objects, or lists of them.  ``bcc`` recipients get the message but are in no
    header: they are kept in the message's ``bcc`` and ``send()`` adds them to the
    envelope.  ``headers`` adds fields of your own (``List-Unsubscribe``,
    ``In-Reply-To``; a ``Date`` or ``Message-ID`` of yours replaces the one made here).

    Raises ``InvalidEnvelope`` for a malformed address and ``InvalidMessage`` for a
    subject, name or header value holding a line break or another control character
    (a header injection), before anything is built.
    """
    message = ComposedMessage(policy=POLICY)
    message["From"] = _addresses(sender, "From", single=True)
    for name, value in (("To", to), ("Cc", cc), ("Reply-To", reply_to)):
        found = _addresses(value, name)
        if found:
            message[name] = found
    message.bcc = tuple(address.addr_spec for address in _addresses(bcc, "Bcc"))
    if not (message["To"] or message["Cc"] or message.bcc):
        raise InvalidEnvelope("compose() needs a recipient: to, cc or bcc")
    message["Subject"] = _text(subject, "subject")
    message["Date"] = date_now()
    message["Message-ID"] = new_message_id(message["From"].addresses[0].domain)
    for name, value in _extra_headers(headers):
        del message[name]  # a Date or Message-ID of the caller's replaces ours
        message[name] = value
    _set_body(message, _body(text, html, [_attachment(item) for item in attachments]))
    return message


def _addresses(value: object, field: str, *, single: bool = False) -> tuple[Address, ...]:
    items = [value] if isinstance(value, str | Address) else value
    try:
        items = list(items)  # type: ignore[call-overload]
    except TypeError:
        raise UsageError(
            f"{field} takes an address or a list of addresses, not {type(value).__name__}"
        ) from None
    found: list[Address] = []
    for item in items:
        found += _parse(item, field)
    if single and len(found) != 1:
        raise InvalidEnvelope(f"{field} takes one address, not {len(found)}")
    return tuple(found)


def _parse(item: object, field: str) -> list[Address]:
    if isinstance(item, Address):
        text = str(item)
    elif isinstance(item, str):
        text = item
    else:
        raise UsageError(f"a {field} address is a str or an Address, not {type(item).__name__}")
    problem = _line_break_or_control(text)
    if problem is not None:
        raise InvalidEnvelope(f"the {field} address {text!r} holds {problem}")
    if isinstance(item, Address):
        addresses = [item]
    else:
        header = POLICY.header_factory(field, text)
        addresses = [a for group in header.groups for a in group.addresses]
        # A non-ASCII local part is an address with SMTPUTF8 (RFC 6532), which the email
        # package flags as a defect; check_address() below judges the address itself.
        defects = [d for d in header.defects if not isinstance(d, NonASCIILocalPartDefect)]
        if defects or not addresses:
            raise InvalidEnvelope(f"the {field} address {text!r} is not an address")
    for address in addresses:
        check_address(address.addr_spec, role=f"{field} address")
    return addresses


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{what} must be a str, not {type(value).__name__}")
    problem = _line_break_or_control(value)
    if problem is not None:
        raise InvalidMessage(f"the {what} {value[:80]!r} holds {problem}: no header can carry it")
    return value


# What no header may hold: control characters (CR, LF, NUL, VT, FF, FS, GS, RS, NEL...),
# line and paragraph separators (str.splitlines() breaks at each), lone surrogates.
# Other spaces (a no-break space) and format characters (an emoji's zero-width
# joiner) are text, which the encoded words of RFC 2047 carry.
_REFUSED = frozenset({"Cc", "Zl", "Zp", "Cs"})


def _line_break_or_control(text: str) -> str | None:
    """What the first character of ``text`` that no header may hold is, or None."""
    if text.isprintable():  # the common case, in one pass in C
        return None
    for char in text:
        if unicodedata.category(char) in _REFUSED:
            return unprintable(char)
    return None


def _extra_headers(headers: Mapping[str, str] | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if not isinstance(headers, Mapping):
        raise UsageError(
            f"headers must be a mapping of names to str, not {type(headers).__name__}"
        )
    fields = []
    for name, value in headers.items():
        if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
            raise InvalidMessage(f"the header name {name!r} is not printable ASCII without ':'")
        if name.lower() in _OWN_FIELDS:
            raise UsageError(
                f"headers= cannot set {name}: compose() writes it (from its arguments, or "
                "from the message's structure)"
            )
        fields.append((name, _text(value, f"{name} header")))
    return fields


def _attachment(item: object) -> tuple[str, bytes, str]:
    """(filename, content, mime type) of one attachment."""
    if isinstance(item, str | os.PathLike):
        path = Path(item)
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise InvalidMessage(
                f"cannot read the attachment {str(path)!r}: {exc.strerror}"
            ) from exc
        name, mime = path.name, None
    elif isinstance(item, tuple) and len(item) in (2, 3):
        name, content = item[0], item[1]
        mime = item[2] if len(item) == 3 else None
        if not isinstance(content, bytes | bytearray | memoryview):
            raise UsageError(f"an attachment's content is bytes, not {type(content).__name__}")
        content = bytes(content)
        if mime is not None and (not isinstance(mime, str) or not _MIME_TYPE.fullmatch(mime)):
            raise UsageError(f"an attachment's type is 'type/subtype' or None, not {mime!r}")
    else:
        raise UsageError(
            "an attachment is a path or a (filename, bytes[, mime type]) tuple, "
            f"not {type(item).__name__}"
        )
    name = _text(name, "attachment filename")
    if not name.strip():
        raise UsageError("an attachment needs a filename (not spaces alone)")
    return name, content, mime or _guess(name)


def _guess(filename: str) -> str:
    mime, encoding = mimetypes.guess_type(filename, strict=False)
    if encoding is not None:
        return _ENCODED_TYPES.get(encoding, "application/octet-stream")
    return mime or "application/octet-stream"


def _body(
    text: str | None, html: str | None, attachments: list[tuple[str, bytes, str]]
) -> MIMEPart:
    """The body as a tree of ``MIMEPart`` (parts carry no MIME-Version of their own)."""
    if text is not None:
        text = _body_text(text, "text")
    if html is not None:
        html = _body_text(html, "html")
    body = MIMEPart(policy=POLICY)
    if html is None:
        body.set_content(text or "")
    elif text is None:
        body.set_content(html, subtype="html")
    else:
        body.set_content(text)
        body.add_alternative(html, subtype="html")
    for filename, content, mime in attachments:
        maintype, _, subtype = mime.partition("/")
        body.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return body


def _body_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{what}= must be a str, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidMessage(f"{what}= holds a lone surrogate, which UTF-8 cannot encode") from exc
    if "\0" in value:
        raise InvalidMessage(f"{what}= holds a NUL character, which no message may carry")
    return value


def _set_body(message: ComposedMessage, body: MIMEPart) -> None:
    """Move ``body``'s content and its Content-* fields into ``message``."""
    message["MIME-Version"] = "1.0"
    for name, value in body.items():
        message[name] = value
    message.set_payload(body.get_payload())


def message_or_compose(
    message: MessageInput | None,
    sender: str | None,
    *,
    to: Recipients | None,
    subject: str | None,
    text: str | None,
    html: str | None,
) -> MessageInput:
    """The message ``send(message)`` was given, or the one ``send(to=, subject=, text=)``
    describes, composed; both at once is a ``UsageError``."""
    shortcuts = {"to": to, "subject": subject, "text": text, "html": html}
    named = [f"{name}=" for name, value in shortcuts.items() if value is not None]
    if message is not None:
        if named:
            raise UsageError(
                f"give a message or {', '.join(named)}, not both: the message has its own"
            )
        return message
    if sender is None or to is None:
        raise UsageError(
            "send() needs a message, or sender= and to= (with subject=, text= or html=) "
            "to compose one"
        )
    return compose(sender, to, subject if subject is not None else "", text=text, html=html)
