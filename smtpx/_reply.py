"""``Reply``: one server reply as a value, and the strict parser for raw reply bytes."""

from __future__ import annotations

import attrs

from smtpx._enhanced import EnhancedStatus
from smtpx.errors import ProtocolError
from smtpx.protocol.limits import MAX_LINE_LENGTH, MAX_LINES

__all__ = ["Reply"]


def _check_code(reply: object, attribute: object, code: int) -> None:
    # Any int: classify() answers a code outside 200-599 with a ProtocolError.
    if type(code) is not int:
        raise TypeError(f"a reply code is an int, not {type(code).__name__}")


def _as_lines(lines: object) -> tuple[str, ...]:
    """``lines`` as a tuple of str; a str is split at its newlines (one per line)."""
    if isinstance(lines, str):
        return tuple(lines.split("\n")) if lines else ()
    if not isinstance(lines, list | tuple):
        raise TypeError(f"reply lines are a tuple of str, not {type(lines).__name__}")
    checked: list[str] = []
    for line in lines:
        if type(line) is not str:
            raise TypeError(f"reply lines are str, not {type(line).__name__}")
        checked.append(line)
    return tuple(checked)


def _first_enhanced(lines: tuple[str, ...]) -> EnhancedStatus | None:
    return EnhancedStatus.parse(lines[0]) if lines else None


@attrs.frozen
class Reply:
    """A complete server reply: ``code``, its text ``lines`` and the enhanced status, if any.

    ``lines`` hold the text after ``"250-"``/``"250 "`` on each line; ``raw`` the
    bytes as received, when they were.
    """

    code: int = attrs.field(validator=_check_code)
    lines: tuple[str, ...] = attrs.field(default=(), converter=_as_lines)
    # Read from the first line unless given (``Reply(550, "5.1.1 No such user")``).
    enhanced: EnhancedStatus | None = attrs.field(
        default=attrs.Factory(lambda reply: _first_enhanced(reply.lines), takes_self=True)
    )
    raw: bytes | None = attrs.field(default=None, repr=False, eq=False)

    @classmethod
    def build(cls, code: int, text: str = "", raw: bytes | None = None) -> Reply:
        """A reply from a code and its (possibly multi-line) text; the enhanced code is read
        from the first line."""
        lines = tuple(text.split("\n")) if text else ()
        enhanced = EnhancedStatus.parse(lines[0]) if lines else None
        return cls(code, lines, enhanced, raw)

    @classmethod
    def parse(cls, raw: bytes | str) -> Reply:
        """Parse exactly one complete reply, strictly.

        Raises ``ProtocolError`` (carrying the raw bytes) when a line lacks a
        three-digit code, the code is outside 200-599, continuation lines disagree
        on the code, a line is over-long, or anything follows the last line.
        """
        data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
        if not data:
            raise ProtocolError("empty reply", raw=data)
        if data.find(b"\n") >= len(data) - 1:
            return cls._parse_one_line(data)  # nearly every reply: the same rules, less work
        body = data[:-2] if data.endswith(b"\r\n") else data[:-1] if data.endswith(b"\n") else data
        raw_lines = [line.removesuffix(b"\r") for line in body.split(b"\n")]
        if len(raw_lines) > MAX_LINES:
            raise ProtocolError(f"reply has more than {MAX_LINES} lines", raw=data)
        code: int | None = None
        texts: list[str] = []
        for index, line in enumerate(raw_lines):
            last = index == len(raw_lines) - 1
            line_code = _line_code(line, data)
            if code is None:
                code = line_code
            elif line_code != code:
                raise ProtocolError(
                    f"continuation line has code {line_code}, first line had {code}", raw=data
                )
            separator = line[3:4]
            if separator not in (b" ", b"", b"-") or (separator == b"-") == last:
                raise ProtocolError(
                    "a reply's last line must read 'NNN text' and every other 'NNN-text'",
                    raw=data,
                )
            texts.append(line[4:].decode("utf-8", "replace"))
        assert code is not None  # body has at least one line
        return cls._parsed(code, tuple(texts), EnhancedStatus.parse(texts[0]), data)

    @classmethod
    def _parse_one_line(cls, data: bytes) -> Reply:
        line = data.removesuffix(b"\n").removesuffix(b"\r")
        code = _line_code(line, data)
        if line[3:4] not in (b" ", b""):
            raise ProtocolError(
                "a reply's last line must read 'NNN text' and every other 'NNN-text'", raw=data
            )
        text = line[4:].decode("utf-8", "replace")
        if not text:
            return cls._parsed(code, (), None, data)
        return cls._parsed(code, (text,), EnhancedStatus.parse(text), data)

    @classmethod
    def _parsed(
        cls, code: int, lines: tuple[str, ...], enhanced: EnhancedStatus | None, raw: bytes
    ) -> Reply:
        # The parser has checked every field: skip __init__'s checks on the hot path.
        reply = object.__new__(cls)
        set_field = object.__setattr__.__get__(reply)
        set_field("code", code)
        set_field("lines", lines)
        set_field("enhanced", enhanced)
        set_field("raw", raw)
        return reply

    @property
    def text(self) -> str:
        """The server's text, lines joined by newlines."""
        return "\n".join(self.lines)

    @property
    def message(self) -> str:
        """The server's text with the enhanced status code taken off each line."""
        if self.enhanced is None:
            return self.text
        prefix = str(self.enhanced)
        return "\n".join(line.removeprefix(prefix).lstrip() for line in self.lines)

    def __str__(self) -> str:
        return f"{self.code} {self.text}".rstrip()


def _line_code(line: bytes, data: bytes) -> int:
    if len(line) > MAX_LINE_LENGTH:
        raise ProtocolError(f"reply line longer than {MAX_LINE_LENGTH} octets", raw=data)
    digits = line[:3]
    if len(digits) != 3 or not digits.isdigit():
        raise ProtocolError("reply line does not start with a three-digit code", raw=data)
    code = int(digits)
    if not 200 <= code <= 599:
        raise ProtocolError(f"reply code {code} is outside 200-599", raw=data)
    return code
