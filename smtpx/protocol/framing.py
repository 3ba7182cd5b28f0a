"""Framing: server bytes in, complete ``Reply`` values out, incrementally and strictly.

A reply may arrive split at any octet across any number of reads, or several replies
in one read (PIPELINING); either way the framer yields the same replies, and a
malformed or over-long one is the same ``ProtocolError``.  Each octet is scanned
once: a read resumes the search for the end of a line where the previous one
stopped.  Complete replies are parsed by ``Reply.parse`` (the strict parser), and
the line limits are checked here as the octets arrive, so an endless line or an
endless multi-line reply never accumulates.
"""

from __future__ import annotations

from smtpx._reply import Reply
from smtpx.errors import ProtocolError
from smtpx.protocol.limits import MAX_LINE_LENGTH, MAX_LINES, MAX_UNREAD

__all__ = ["ReplyFramer"]

# Most replies repeat byte for byte ("250 2.1.5 Ok"); a Reply is an immutable value,
# so an equal reply can be handed out again instead of parsed again.
_CACHE: dict[bytes, Reply] = {}
_CACHE_SIZE = 1024
_CACHEABLE = 512  # octets: one-line replies and the usual EHLO reply


def _too_long(buffer: bytearray) -> ProtocolError:
    return ProtocolError(
        f"reply line longer than {MAX_LINE_LENGTH} octets", raw=bytes(buffer[:200])
    )


class ReplyFramer:
    """Frames the server's byte stream into replies.

    ``receive_data(data)`` takes octets as they arrive; ``next_reply()`` returns the
    next complete reply, or None until more octets arrive.  A ``ProtocolError`` (bad
    framing, an over-long line, more than ``MAX_LINES`` lines, more than
    ``MAX_UNREAD`` octets not yet framed) leaves the stream out of step: the session
    that owns the framer closes.
    """

    __slots__ = ("_buffer", "_line_start", "_lines", "_scan")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scan = 0  # where the search for the next LF resumes
        self._line_start = 0  # where the line being framed starts
        self._lines = 0  # complete lines of the reply being framed

    @property
    def unread(self) -> int:
        """Octets received and not yet handed out as part of a reply."""
        return len(self._buffer)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Take octets from the server (any amount, split anywhere)."""
        if len(self._buffer) + len(data) > MAX_UNREAD:
            raw = bytes(self._buffer[:200])
            raise ProtocolError(f"over {MAX_UNREAD} octets that answer nothing", raw=raw)
        self._buffer += data

    def next_reply(self) -> Reply | None:
        """The next complete reply, or None if more octets are needed."""
        buffer = self._buffer
        while True:
            end = buffer.find(b"\n", self._scan)
            start = self._line_start
            if end == -1:
                # a line may still end in CR LF: 1000 octets and a CR are not too long yet
                if len(buffer) - start > MAX_LINE_LENGTH + 1:
                    raise _too_long(buffer)
                self._scan = len(buffer)
                return None
            length = end - start
            if length and buffer[end - 1] == 13:  # CR
                length -= 1
            if length > MAX_LINE_LENGTH:
                raise _too_long(buffer)
            self._scan = self._line_start = end + 1
            if length < 4 or buffer[start + 3] != 45:  # not "NNN-": the reply's last line
                break
            self._lines += 1
            if self._lines >= MAX_LINES:
                # a continuation line promises one more line than the limit allows
                raise ProtocolError(
                    f"reply has more than {MAX_LINES} lines", raw=bytes(buffer[:200])
                )
        if end + 1 == len(buffer):  # the usual case: the buffer held just this reply
            raw = bytes(buffer)
            buffer.clear()
        else:
            raw = bytes(buffer[: end + 1])
            del buffer[: end + 1]
        self._scan = self._line_start = self._lines = 0
        return parse_reply(raw)


def parse_reply(raw: bytes) -> Reply:
    """``Reply.parse(raw)``, answered from a small cache for the replies servers repeat."""
    reply = _CACHE.get(raw)
    if reply is None:
        reply = Reply.parse(raw)  # raises ProtocolError, which is never cached
        if len(raw) <= _CACHEABLE:
            if len(_CACHE) >= _CACHE_SIZE:
                _CACHE.clear()
            _CACHE[raw] = reply
    return reply
