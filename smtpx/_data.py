"""The bytes that follow DATA: normalised, dot-stuffed, terminated; nothing can end them early.

RFC 5321 §4.5.2 (transparency) and §4.5.3.1.6 (998 octets per line).  A lone
CR or LF becomes CRLF, so a ``\\n.\\n`` in user content cannot end the message
(the "SMTP smuggling" class); a NUL byte is refused.
"""

from __future__ import annotations

import re

from smtpx.errors import InvalidMessage

MAX_LINE = 998  # octets, without CRLF

_LINE_ENDINGS = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)


def encode_data(message: bytes) -> bytes:
    """Return the DATA payload for ``message``, ending with ``CRLF.CRLF``."""
    if b"\0" in message:
        raise InvalidMessage("the message contains a NUL byte, which SMTP cannot carry")
    lines = _LINE_ENDINGS.split(message)
    if lines and lines[-1] == b"":
        lines.pop()
    longest = max((len(line) for line in lines), default=0)
    if longest > MAX_LINE:
        raise InvalidMessage(
            f"a line of {longest} octets exceeds SMTP's {MAX_LINE}; send an EmailMessage "
            "(smtpx encodes it) or encode the body as quoted-printable or base64"
        )
    body = b"\r\n".join(lines)
    body = _LEADING_DOT.sub(b"..", body)
    return body + b"\r\n.\r\n" if body else b".\r\n"


def message_size(payload: bytes) -> int:
    """The SIZE (RFC 1870 §3) of a DATA payload: without dot-stuffing and the final "."."""
    body = payload[: -len(b".\r\n")]
    stuffed = body.count(b"\r\n.") + body.startswith(b".")
    return len(body) - stuffed
