"""The SMTP commands smtpx knows, as an enum (the rows of the command table)."""

from __future__ import annotations

import enum

__all__ = ["Command"]


class Command(enum.Enum):
    """One step of an SMTP session whose reply smtpx classifies.

    ``CONNECT`` is the greeting the server sends when the connection opens.
    ``DATA`` is the reply to the ``DATA`` verb (normally 354) and ``DATA_END``
    the reply after the final ``.`` (normally 250): both come from the table's
    DATA row, but they mean different things, and a failure after the final
    ``.`` may leave delivery unknown.  ``BDAT`` is the reply to the message
    sent as one ``BDAT <size> LAST`` chunk (CHUNKING, RFC 3030), which plays
    the part of ``DATA_END``.
    """

    # Members are singletons compared by identity: hash them by identity too (C speed;
    # Enum's own __hash__ is Python code, and every reply looks its command up).
    __hash__ = object.__hash__

    CONNECT = "CONNECT"
    EHLO = "EHLO"
    HELO = "HELO"
    STARTTLS = "STARTTLS"
    AUTH = "AUTH"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    DATA_END = "DATA_END"
    BDAT = "BDAT"
    RSET = "RSET"
    VRFY = "VRFY"
    EXPN = "EXPN"
    HELP = "HELP"
    NOOP = "NOOP"
    QUIT = "QUIT"

    @property
    def label(self) -> str:
        """How the step reads in a sentence: ``MAIL FROM``, ``end of DATA``."""
        return _LABELS.get(self, self.value)

    @property
    def ends_message(self) -> bool:
        """Whether this reply decides delivery: once the message's last octet is sent, a
        lost connection or time-out leaves it unknown whether the server took it."""
        return self in _ENDS_MESSAGE

    def __str__(self) -> str:
        return self.label


_LABELS = {
    Command.CONNECT: "connection greeting",
    Command.MAIL: "MAIL FROM",
    Command.RCPT: "RCPT TO",
    Command.DATA_END: "end of DATA",
    Command.BDAT: "BDAT LAST",
}
_ENDS_MESSAGE = frozenset({Command.DATA_END, Command.BDAT})
