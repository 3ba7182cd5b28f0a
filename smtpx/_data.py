"""The bytes that follow DATA: normalised, dot-stuffed; nothing can end them early.

RFC 5321 §4.5.2 (transparency) and §4.5.3.1.6 (998 octets per line).  A lone
CR or LF becomes CRLF, so a ``\\n.\\n`` in user content cannot end the message
(the "SMTP smuggling" class); a NUL byte is refused.

Each step is one pass in C over the message and is skipped when it would
change nothing, so a well-formed message is never copied: memory stays close
to the message's own size (docs/performance.md).
"""

from __future__ import annotations

from smtpx.errors import InvalidMessage

__all__ = [
    "END_OF_DATA",
    "dot_stuff",
    "dot_stuff_parts",
    "encode_data",
    "last_octets",
    "normalize",
]

MAX_LINE = 998  # octets, without CRLF
END_OF_DATA = b".\r\n"  # sent after the payload, which ends with CRLF


def normalize(message: bytes) -> bytes:
    """``message`` with CRLF line endings and a final CRLF; refuses NUL and over-long lines."""
    if not isinstance(message, bytes):  # a str (say) given to data() or bdat()
        if not isinstance(message, bytearray | memoryview):
            raise InvalidMessage(f"the message must be bytes, not {type(message).__name__}")
        message = bytes(message)
    if b"\0" in message:
        raise InvalidMessage("the message contains a NUL byte, which SMTP cannot carry")
    # bytes.replace, not re.sub: re.sub builds a bytes object per line before joining
    if b"\r" not in message:
        if b"\n" in message:
            message = message.replace(b"\n", b"\r\n")
    elif not message.count(b"\r\n") == message.count(b"\r") == message.count(b"\n"):
        message = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if message and not message.endswith(b"\r\n"):
        message += b"\r\n"
    start = _long_line(message)
    if start is not None:
        length = message.find(b"\r\n", start) - start
        raise InvalidMessage(
            f"a line of {length} octets exceeds SMTP's {MAX_LINE}; "
            "send an EmailMessage (smtpx encodes it) or encode the body as quoted-printable "
            "or base64"
        )
    return message


def _long_line(data: bytes) -> int | None:
    """Where the first line over MAX_LINE octets starts in CRLF ``data``, or None.

    A short line's LF lies within MAX_LINE + 2 octets of its start, so we jump
    from the last LF of one such window to the next: one C ``rfind`` per
    kilobyte instead of one step per line (or per octet, as a regex would).
    """
    window = MAX_LINE + 2
    start = 0
    while len(data) - start > window:
        newline = data.rfind(b"\n", start, start + window)
        if newline == -1:
            return start
        start = newline + 1
    return None  # what is left is shorter than one over-long line and its CRLF


def dot_stuff(data: bytes) -> bytes:
    """Double every line-leading "." of normalised ``data`` (``data`` itself if none)."""
    if b"\n." in data:
        data = data.replace(b"\n.", b"\n..")
    return b"." + data if data.startswith(b".") else data


def dot_stuff_parts(parts: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """``dot_stuff`` of the parts' concatenation, part by part, never joining them.

    A part's first octet leads a line when the part before it ends with LF (or it is
    the first part); only then is its leading "." doubled.  Every other line-leading
    "." follows an LF inside its own part.  Empty parts are dropped; a part with no
    line-leading "." is returned as it is, not copied."""
    stuffed: list[bytes] = []
    line_leading = True
    for part in parts:
        if not part:
            continue
        if b"\n." in part:
            part = part.replace(b"\n.", b"\n..")
        if line_leading and part.startswith(b"."):
            stuffed.append(b".")  # a part of its own: the message is not copied for it
        stuffed.append(part)
        line_leading = part.endswith(b"\n")
    return tuple(stuffed)


def last_octets(parts: tuple[bytes, ...]) -> bytes:
    """The last two octets of the parts' concatenation (fewer if it is shorter)."""
    tail = b""
    for part in reversed(parts):  # usually the last part alone: it is a line
        tail = part[-2:] + tail
        if len(tail) >= 2:
            break
    return tail[-2:]


def encode_data(message: bytes) -> bytes:
    """The DATA payload for ``message``: normalised and dot-stuffed, without the final "."."""
    return dot_stuff(normalize(message))
