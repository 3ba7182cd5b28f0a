"""Header fields: read from a raw header block, and checked in a message object.

``send(bytes)`` takes sender and recipients from the From/Sender/To/Cc/Bcc
headers.  Parsing the header block with ``email.parser`` was most of a small
message's CPU, so this module reads the block the way ``email.feedparser``
does (same rules for where headers end, folding, stray lines; a test holds the
two equal) and hands anything but the plainest address lists to
``email.utils.getaddresses``.

A message *object* is serialised by the ``email`` package, which writes a
header value's line breaks as they are: a value holding CR, LF or any other
break ``str.splitlines()`` knows (VT, FF, FS, GS, RS, NEL, U+2028, U+2029)
would add a header or end the header block early.  ``check_field`` refuses
every break that is not a fold, and ``field_names`` reads what was serialised.
"""

from __future__ import annotations

import re
from email.header import Header
from email.utils import getaddresses

from smtpx.errors import InvalidEnvelope, InvalidMessage

__all__ = [
    "ENVELOPE_FIELDS",
    "addresses",
    "check_field",
    "field_names",
    "field_values",
    "header_block",
]

ENVELOPE_FIELDS = ("sender", "from", "to", "cc", "bcc")
# also read, to know whether the message has them
READ_FIELDS = (*ENVELOPE_FIELDS, "date", "message-id")

# email.feedparser's headerRE: a header line, a continuation, or a Unix "From " line.
_HEADER_LINE = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:|[\t ]")
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# The common case, read in two regex passes: no folding, no "From " line, no stray line.
_SIMPLE_BLOCK = re.compile(rb"(?:[\x21-\x39\x3b-\x7e]+:[^\r\n]*\r\n)*")
_READ_FIELD = re.compile(
    rb"^(sender|from|to|cc|bcc|date|message-id):[ \t]*([^\r\n]*)\r\n", re.I | re.M
)


def header_block(data: bytes) -> bytes:
    """The header block of CRLF-normalised ``data``: everything before the first empty line."""
    if data.startswith(b"\r\n"):
        return b""
    end = data.find(b"\r\n\r\n")
    return data if end == -1 else data[: end + 2]


def field_values(head: bytes) -> dict[str, list[bytes]]:
    """The raw values of the ``READ_FIELDS`` in ``head`` (CRLF lines), by lower-case name.

    As ``email.feedparser`` with ``compat32``: the block ends at the first line
    that is not a header; "From " lines and a leading continuation are skipped;
    a folded value keeps its CRLFs.
    """
    if _SIMPLE_BLOCK.fullmatch(head):  # one line per field, every line a header
        found: dict[str, list[bytes]] = {}
        for field, value in _READ_FIELD.findall(head):
            found.setdefault(field.lower().decode("ascii"), []).append(value)
        return found
    values: dict[str, list[bytes]] = {}
    name: str | None = None  # the field being read, if it is one of READ_FIELDS
    current: list[bytes] = []
    lines = head.split(b"\r\n")
    if lines[-1] == b"":
        lines.pop()
    for line in lines:
        if not _HEADER_LINE.match(line):
            break  # the body starts here (feedparser: MissingHeaderBodySeparatorDefect)
        if line[:1] in b" \t":
            if current:
                current.append(line)
            continue
        if current:
            values.setdefault(name or "", []).append(b"\r\n".join(current))
            current = []
        if line.startswith(b"From "):
            continue  # a Unix mbox separator, not a header
        colon = line.find(b":")
        if colon == 0:
            continue  # no field name: feedparser skips it
        field = line[:colon].lower().decode("ascii")
        name = field if field in READ_FIELDS else None
        current = [line[colon + 1 :].lstrip(b" \t")] if name else []
    if current:
        values.setdefault(name or "", []).append(b"\r\n".join(current))
    return values


# The plainest address lists ("a@b.c", "Name <a@b.c>", comma-separated), which
# getaddresses() would read the same way; anything else (quotes, comments,
# groups, route addresses, encoded words) goes to getaddresses().
_ATOM = rb"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDR = rb"%s(?:\.%s)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*" % (_ATOM, _ATOM)
_PLAIN = re.compile(
    rb"[ \t\r\n]*(?:(%s)|[A-Za-z0-9 .!#$%%&'*+/=?^_`{|}~-]*<(%s)>)[ \t\r\n]*" % (_ADDR, _ADDR)
)


def addresses(values: list[bytes], field: str) -> list[str]:
    """The addresses in one field's raw values, in order; ``InvalidEnvelope`` on a control."""
    if not values:  # the field is absent (Sender, Cc, Bcc, usually)
        return []
    if any(_CONTROL.search(value) for value in values):
        raise InvalidEnvelope(f"the {field} header contains a control character")
    found: list[str] = []
    for value in values:
        for part in value.split(b","):
            match = _PLAIN.fullmatch(part)
            if match is None:
                return _parsed(values)
            found.append((match[1] or match[2]).decode("ascii"))
    return found


def _parsed(values: list[bytes]) -> list[str]:
    texts = [v.decode("utf-8", "surrogateescape") for v in values]
    return [address for _, address in getaddresses(texts) if address]


# RFC 5322 §3.6.8: a field name is printable ASCII but ":"
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")
# One field as serialised: "name:" and its value, then each fold: CRLF, WSP and some text
# (RFC 5322 §2.2.3; §3.2.2: no line of a folded field may be white space only).
_FIELDS = re.compile(rb"(?:[\x21-\x39\x3b-\x7e]+:[^\r\n]*\r\n(?:[ \t]+[^ \t\r\n][^\r\n]*\r\n)*)*")
_NAME_AT_LINE_START = re.compile(rb"^([^ \t:\r\n]+):", re.M)


def check_field(name: object, value: object) -> None:
    """Refuse (``InvalidMessage``) a header of a message object that would not go out
    as exactly that one field: a bad name, a value that is not text, a lone surrogate,
    or a line break that is not a fold (CRLF, then a space or tab, then text)."""
    if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
        raise InvalidMessage(
            f"the header name {name!r} is not printable ASCII without spaces or ':'"
        )
    if not isinstance(value, str | Header):
        raise InvalidMessage(f"the {name} header's value is a {type(value).__name__}, not a str")
    text = str(value)
    try:
        text.encode("utf-8", "surrogateescape")  # \udc80-\udcff: bytes from a parsed message
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        raise InvalidMessage(
            f"the {name} header holds a lone surrogate U+{code:04X}, which no encoding carries"
        ) from exc
    lines = text.splitlines()
    for line in lines[1:]:
        if line[:1] not in (" ", "\t") or not line.strip(" \t"):
            raise InvalidMessage(
                f"the {name} header's value {text[:80]!r} holds a line break that is not a fold "
                "(a break followed by a space or tab, then text): it would add a header or "
                "end the headers"
            )


def field_names(head: bytes) -> list[str] | None:
    """The names of the fields in a serialised header block, in order; None unless every
    line is a field or a fold of one."""
    if not _FIELDS.fullmatch(head):
        return None
    return [name.decode("ascii") for name in _NAME_AT_LINE_START.findall(head)]
