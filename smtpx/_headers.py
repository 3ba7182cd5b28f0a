"""Envelope addresses from a raw header block, without building an ``email.message``.

``send(bytes)`` takes sender and recipients from the From/Sender/To/Cc/Bcc
headers.  Parsing the header block with ``email.parser`` was most of a small
message's CPU, so this module reads the block the way ``email.feedparser``
does (same rules for where headers end, folding, stray lines; a test holds the
two equal) and hands anything but the plainest address lists to
``email.utils.getaddresses``.
"""

from __future__ import annotations

import re
from email.utils import getaddresses

from smtpx.errors import InvalidEnvelope

ENVELOPE_FIELDS = ("sender", "from", "to", "cc", "bcc")

# email.feedparser's headerRE: a header line, a continuation, or a Unix "From " line.
_HEADER_LINE = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:|[\t ]")
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# The common case, read in two regex passes: no folding, no "From " line, no stray line.
_SIMPLE_BLOCK = re.compile(rb"(?:[\x21-\x39\x3b-\x7e]+:[^\r\n]*\r\n)*")
_ENVELOPE_FIELD = re.compile(rb"^(sender|from|to|cc|bcc):[ \t]*([^\r\n]*)\r\n", re.I | re.M)


def header_block(data: bytes) -> bytes:
    """The header block of CRLF-normalised ``data``: everything before the first empty line."""
    if data.startswith(b"\r\n"):
        return b""
    end = data.find(b"\r\n\r\n")
    return data if end == -1 else data[: end + 2]


def field_values(head: bytes) -> dict[str, list[bytes]]:
    """The raw values of the envelope fields in ``head`` (CRLF lines), by lower-case name.

    As ``email.feedparser`` with ``compat32``: the block ends at the first line
    that is not a header; "From " lines and a leading continuation are skipped;
    a folded value keeps its CRLFs.
    """
    if _SIMPLE_BLOCK.fullmatch(head):  # one line per field, every line a header
        found: dict[str, list[bytes]] = {}
        for field, value in _ENVELOPE_FIELD.findall(head):
            found.setdefault(field.lower().decode("ascii"), []).append(value)
        return found
    values: dict[str, list[bytes]] = {}
    name: str | None = None  # the field being read, if it is an envelope field
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
        name = field if field in ENVELOPE_FIELDS else None
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
