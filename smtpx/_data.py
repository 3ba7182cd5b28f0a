"""The bytes that follow DATA: normalised, dot-stuffed; nothing can end them early.

RFC 5321 §4.5.2 (transparency) and §4.5.3.1.6 (998 octets per line).  A lone
CR or LF becomes CRLF, so a ``\\n.\\n`` in user content cannot end the message
(the "SMTP smuggling" class); a NUL byte is refused.

Each step is one pass in C over the message and is skipped when it would
change nothing, so a well-formed message is never copied: memory stays close
to the message's own size (docs/performance.md).
"""

from __future__ import annotations

import re

from smtpx.errors import InvalidMessage

MAX_LINE = 998  # octets, without CRLF
END_OF_DATA = b".\r\n"  # sent after the payload, which ends with CRLF

_LINE_ENDINGS = re.compile(rb"\r\n|\r|\n")
_LONG_LINE = re.compile(rb"^[^\r\n]{%d}" % (MAX_LINE + 1), re.MULTILINE)
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)


def normalize(message: bytes) -> bytes:
    """``message`` with CRLF line endings and a final CRLF; refuses NUL and over-long lines."""
    if b"\0" in message:
        raise InvalidMessage("the message contains a NUL byte, which SMTP cannot carry")
    crlf = message.count(b"\r\n")
    if not crlf == message.count(b"\r") == message.count(b"\n"):
        message = _LINE_ENDINGS.sub(b"\r\n", message)
    if message and not message.endswith(b"\r\n"):
        message += b"\r\n"
    # ^ only matches at line starts, so this is one pass, not one per position
    long_line = _LONG_LINE.search(message)
    if long_line is not None:
        end = message.find(b"\r\n", long_line.start())
        raise InvalidMessage(
            f"a line of {end - long_line.start()} octets exceeds SMTP's {MAX_LINE}; send an "
            "EmailMessage (smtpx encodes it) or encode the body as quoted-printable or base64"
        )
    return message


def dot_stuff(data: bytes) -> bytes:
    """Double every line-leading "." of normalised ``data`` (``data`` itself if none)."""
    if data.startswith(b".") or b"\n." in data:
        return _LEADING_DOT.sub(b"..", data)
    return data


def encode_data(message: bytes) -> bytes:
    """The DATA payload for ``message``: normalised and dot-stuffed, without the final "."."""
    return dot_stuff(normalize(message))
