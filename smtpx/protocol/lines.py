"""Command lines and DATA payloads as octets, checked; the extensions an EHLO reply offers."""

from __future__ import annotations

import re
from collections.abc import Iterable

from smtpx._secret import Secret
from smtpx.errors import InvalidEnvelope, InvalidMessage

__all__ = ["check_payload", "command_line", "parse_extensions", "secret_line"]

# Any C0 control or DEL in a command line could end it early and inject another.
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


def command_line(args: Iterable[bytes]) -> bytes:
    """One command line, CRLF-terminated; ``InvalidEnvelope`` if an argument has a control."""
    line = b" ".join(args)
    if _CONTROL.search(line):
        # the line itself stays out of the message: it could be an AUTH step
        raise InvalidEnvelope("a command argument contains a control character (CR, LF, NUL...)")
    return line + b"\r\n"


def has_control(line: bytes, end: int) -> bool:
    """Whether ``line[:end]`` holds a control character (the check of ``command_line``)."""
    return _CONTROL.search(line, 0, end) is not None


def secret_line(args: Iterable[bytes]) -> Secret:
    """An AUTH line: as ``command_line``, but a ``Secret`` from the join to the write, so
    that no frame holds the credentials it carries as plain bytes."""
    line = Secret(b" ".join(args))
    if _CONTROL.search(line):
        raise InvalidEnvelope("a command argument contains a control character (CR, LF, NUL...)")
    return Secret(line + b"\r\n")


def check_payload(payload: bytes) -> bytes:
    """``payload`` when it is dot-stuffed CRLF data that cannot end DATA early (one
    search; the caller vouches for the normalisation)."""
    if b"\r\n.\r\n" in payload or payload.startswith(b".\r\n"):
        raise InvalidMessage("the DATA payload is not dot-stuffed CRLF data")
    return check_payload_end(payload)


def check_payload_end(payload: bytes) -> bytes:
    """``payload`` when it ends with CRLF (or is empty), so that the final "." that
    follows it starts a line of its own."""
    if payload[-2:] not in (b"\r\n", b""):
        raise InvalidMessage("the DATA payload does not end with CRLF")
    return payload


def parse_extensions(lines: tuple[str, ...]) -> tuple[dict[str, str], tuple[str, ...]]:
    """The extensions of an EHLO reply's lines (lower-cased keyword -> parameters) and
    the AUTH mechanisms it offers (upper-cased).

    The first line names the server (RFC 5321 §4.1.1.1); each other line is
    ``keyword [parameters]`` (RFC 1869 §4.3).  ``AUTH=PLAIN LOGIN``, the form some old
    servers use, is read as AUTH too.
    """
    extensions: dict[str, str] = {}
    mechanisms: list[str] = []
    for line in lines[1:]:
        text = line.strip()
        if not text:
            continue
        keyword, _, params = text.partition(" ")
        keyword = keyword.lower()
        if keyword.startswith("auth="):
            keyword, params = "auth", text[5:]
        extensions[keyword] = params
        if keyword == "auth":
            for mechanism in params.upper().split():
                if mechanism not in mechanisms:
                    mechanisms.append(mechanism)
    return extensions, tuple(mechanisms)
