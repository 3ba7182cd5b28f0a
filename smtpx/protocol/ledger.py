"""The ledger: what has been written of every command and payload, and what answered it.

Octets leave in the order the session queued them, so one counter of the octets
handed to the transport tells, for every entry, whether it is not written, partly
written or fully written.  Each entry that expects a reply gets it, in order
(RFC 2920 §3.1: replies come in the order of the commands).  The entries of the
current mail transaction are kept together (``Ledger.transaction``): that is what
an interruption is judged on (``smtpx.protocol.interruptions``).  With PIPELINING the
next transaction may start behind the end of a message whose reply is still due
(RFC 2920 §3.1); ``Ledger.transactions`` then holds both, each judged on its own.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from smtpx import errors as e
from smtpx._commands import Command
from smtpx._reply import Reply
from smtpx.results import Success

__all__ = ["Entry", "Ledger", "Transaction", "WriteState"]


class WriteState(enum.Enum):
    """How much of an entry has been handed to the transport."""

    NOT_WRITTEN = "not written"
    PARTLY_WRITTEN = "partly written"
    WRITTEN = "fully written"


class Entry:
    """One command line (or the DATA payload with its final ``.``, or one BDAT chunk
    with its command line) in the order it goes out; each expects one reply.

    ``command`` names the reply it expects (``DATA_END`` for the payload), ``recipient``
    is the RCPT address, ``start`` its first octet's offset in the session's output,
    ``size`` its length.  ``reply`` and ``result`` (the classified reply: a success
    result or an error instance) are set when its reply arrives.  The octets themselves
    are dropped once handed out, and never appear in a repr (an AUTH line carries
    credentials).
    """

    __slots__ = (
        "_ledger",
        "barrier",
        "command",
        "ends_message",
        "parts",
        "recipient",
        "reply",
        "result",
        "size",
        "start",
    )

    def __init__(
        self,
        ledger: Ledger,
        command: Command,
        parts: tuple[bytes, ...],
        recipient: str | None = None,
        ends_message: bool = False,
        barrier: bool = True,
    ) -> None:
        self._ledger = ledger
        self.command = command
        self.parts = parts
        self.size = sum(map(len, parts)) if len(parts) != 1 else len(parts[0])
        self.start = ledger.queued
        self.recipient = recipient
        #: Whether this entry's last octet is the end of the message (the final ``.``
        #: after DATA, the last octet of ``BDAT … LAST``).
        self.ends_message = ends_message
        #: Whether nothing may follow it before its reply (RFC 2920 §3.1, RFC 3207, RFC 4954).
        self.barrier = barrier
        self.reply: Reply | None = None
        self.result: Success | e.SMTPError | None = None

    @property
    def written(self) -> int:
        """Octets of this entry handed to the transport."""
        return min(max(self._ledger.handed - self.start, 0), self.size)

    @property
    def write_state(self) -> WriteState:
        written = self.written
        if written == self.size:
            return WriteState.WRITTEN
        return WriteState.PARTLY_WRITTEN if written else WriteState.NOT_WRITTEN

    @property
    def answered(self) -> bool:
        return self.result is not None

    @property
    def refused(self) -> bool:
        """Whether its reply was negative (or not a reply at all)."""
        return isinstance(self.result, e.SMTPError)

    def __repr__(self) -> str:
        who = f" <{self.recipient}>" if self.recipient is not None else ""
        reply = f" reply={self.reply.code}" if self.reply is not None else ""
        return (
            f"<Entry {self.command.name}{who} {self.write_state.value} "
            f"{self.written}/{self.size}{reply}>"
        )


class Transaction:
    """The entries of one mail transaction: MAIL, a RCPT per recipient, the end."""

    __slots__ = ("end", "mail", "rcpts", "recipients")

    def __init__(self, mail: Entry, recipients: tuple[str, ...]) -> None:
        self.mail = mail
        #: Everyone the transaction is meant for, named in a RCPT yet or not.
        self.recipients = recipients
        self.rcpts: dict[str, Entry] = {}
        #: The entry whose last octet ends the message, once queued.
        self.end: Entry | None = None

    @property
    def finished(self) -> bool:
        """Whether the server has answered the end of the message (or refused MAIL)."""
        return (self.end is not None and self.end.answered) or self.mail.refused

    @property
    def closes_at_end(self) -> bool:
        """Whether the server's transaction is over once the end of the message is
        answered, whatever the answer: the final ``.`` of DATA always ends it (RFC 5321
        §4.1.1.4: the buffers are cleared); ``BDAT … LAST`` does when MAIL and a RCPT
        were accepted (the chunk then completes a transaction the server holds, rather
        than answering a sequence it refused).  Only then may the next transaction
        follow the end before its reply, and no RSET is needed after it."""
        end = self.end
        if end is None:
            return False
        if end.command is Command.DATA_END:
            return True
        mail = self.mail
        return (
            mail.answered
            and not mail.refused
            and any(entry.answered and not entry.refused for entry in self.rcpts.values())
        )

    def rcpt_results(self) -> Mapping[str, Success | e.SMTPError]:
        return {r: entry.result for r, entry in self.rcpts.items() if entry.result is not None}


class Ledger:
    """Every entry of the session still of interest, and the write counters.

    ``queued`` counts the octets queued, ``handed`` those the edge reported handed to
    its transport.  Entries of finished exchanges are dropped when the next
    transaction starts, so a long-lived connection keeps a short ledger.
    """

    __slots__ = ("encrypted", "entries", "handed", "handshaking", "queued", "transactions")

    def __init__(self, *, encrypted: bool = False) -> None:
        self.entries: list[Entry] = []
        self.queued = 0
        self.handed = 0
        #: The transactions still of interest, oldest first: the newest, and one whose
        #: end's reply is still due when the next was pipelined behind it.
        self.transactions: list[Transaction] = []
        #: Whether the octets go through TLS: the edge cannot then tell which of the
        #: octets it handed over are still unsent.
        self.encrypted = encrypted
        #: Whether a TLS handshake is under way (STARTTLS answered 220).
        self.handshaking = False

    def add(self, entry: Entry) -> Entry:
        self.entries.append(entry)
        self.queued += entry.size
        return entry

    @property
    def transaction(self) -> Transaction | None:
        """The newest transaction (None before the first MAIL)."""
        transactions = self.transactions
        return transactions[-1] if transactions else None

    def begin_transaction(self, mail: Entry, recipients: tuple[str, ...]) -> None:
        # what came before is answered, but for the end of a message the session let
        # this MAIL follow: forget the rest
        self.entries = [entry for entry in self.entries if entry.result is None]
        kept = [t for t in self.transactions if t.end is not None and not t.end.answered]
        kept.append(Transaction(mail, recipients))
        self.transactions = kept

    def outstanding(self) -> Entry | None:
        """The oldest entry still waiting for its reply."""
        for entry in self.entries:
            if entry.result is None:
                return entry
        return None
