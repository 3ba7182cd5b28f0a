"""The octets queued to go out, in order, handed to the edge in slices.

A slice of a large payload is a view of the caller's own buffer, not a copy; an
entry's octets are let go once all of them were handed out (the ledger keeps only
their sizes).
"""

from __future__ import annotations

from collections import deque

from smtpx._secret import Secret
from smtpx.protocol.ledger import Entry

__all__ = ["Outgoing"]


class Outgoing:
    """A queue of ledger entries whose octets are not all handed out yet."""

    __slots__ = ("_entries", "_offset", "_secret", "pending", "taken")

    def __init__(self) -> None:
        self._entries: deque[Entry] = deque()
        self._offset = 0  # octets of the first entry already handed out
        self._secret = False  # an AUTH line is queued: what is handed out stays a Secret
        #: Octets queued and not handed out yet.
        self.pending = 0
        #: Octets handed out so far.
        self.taken = 0

    def __bool__(self) -> bool:
        return bool(self._entries)

    def append(self, entry: Entry) -> None:
        self._entries.append(entry)
        self.pending += entry.size
        if type(entry.parts[0]) is Secret:
            self._secret = True

    def clear(self) -> None:
        self._entries.clear()
        self._offset = 0
        self.pending = 0
        self._secret = False

    def take(self, limit: int) -> bytes | memoryview:
        """Up to ``limit`` octets, in order (empty when there are none)."""
        entries = self._entries
        pending = self.pending
        if pending <= limit and not self._offset:
            # the usual case: everything queued fits in one write (a pipelined group)
            parts = [part for entry in entries for part in entry.parts]
            for entry in entries:
                entry.parts = ()
            entries.clear()
            self.taken += pending
            self.pending = 0
            if len(parts) == 1:
                return parts[0]
            if self._secret:
                self._secret = False
                return Secret(b"".join(parts))
            return b"".join(parts)
        pieces: list[bytes | memoryview] = []
        room = limit
        while entries and room:
            entry = entries[0]
            before, skip = room, self._offset
            for part in entry.parts:
                size = len(part)
                if skip >= size:
                    skip -= size
                    continue
                take = min(size - skip, room)
                pieces.append(part if take == size else memoryview(part)[skip : skip + take])
                room -= take
                skip = 0
                if not room:
                    break
            self._offset += before - room
            if self._offset == entry.size:
                entries.popleft()
                entry.parts = ()  # the ledger keeps sizes; the octets are the caller's
                self._offset = 0
        self.taken += limit - room
        self.pending -= limit - room
        if len(pieces) == 1:
            return pieces[0]
        if self._secret:
            self._secret = bool(entries)
            return Secret(b"".join(pieces))
        return b"".join(pieces)
