"""What an interruption means for each recipient, decided from the ledger alone.

``verdict(ledger, what, unsent=...)`` is one pure function with this truth table,
applied to each recipient of the transaction under way (or the last one; or, when the
next transaction was pipelined behind the end of a message, to each of them on its own):

=====  ======================================================  ===================
row    the ledger at the interruption                          the recipient is
=====  ======================================================  ===================
1      MAIL was refused (its reply arrived)                    answered by it
2      its RCPT was refused (the reply arrived)                answered: refused
3      the end of the message was answered                     answered by it
4      the end was never queued, or not all of it was handed   safe to retry
       to the transport
5      the end was all handed over, but the edge reports some  safe to retry
       of it still unsent in the transport's buffer (plain
       TCP only)
6      the end was all handed over and nothing says it stayed  delivery unknown
       behind (left the buffer, unsent count unknown, or TLS)
=====  ======================================================  ===================

Rows are tried in order.  "The end" is the final ``.`` after DATA, or the last octet
of ``BDAT … LAST``.  A reply that is not SMTP counts as no reply.  Every kind of
interruption (connection lost, read time-out, total time-out, cancellation, TLS
error) gives the same verdicts, except that a TLS error never trusts an unsent
count, nor does an encrypted session: octets handed to a TLS layer may already be
on their way in a record.  The kind chooses only the error (``Verdict.error``):
``DeliveryUnknown`` whenever a recipient's delivery is unknown; otherwise the
answered refusal (MAIL's, or every recipient refused), or the kind's own error.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

from smtpx import errors as e
from smtpx._commands import Command
from smtpx.protocol.ledger import Entry, Ledger, Transaction
from smtpx.results import Success

__all__ = ["Fate", "Interruption", "Verdict", "verdict"]


class Interruption(enum.Enum):
    """What ended the session without a reply."""

    CONNECTION_LOST = "the connection was lost"
    READ_TIMEOUT = "no reply came in time"
    TOTAL_TIMEOUT = "the send took longer than its total time-out"
    CANCELLED = "the send was cancelled"
    TLS_ERROR = "a TLS error ended the connection"


class Fate(enum.Enum):
    """One recipient's verdict."""

    SAFE_TO_RETRY = "safe to retry: the end of the message never reached the server"
    UNKNOWN = "delivery unknown: the message's end was sent and its reply is missing"
    ANSWERED = "answered: the server's reply stands"


class Phase(enum.Enum):
    """Where the session was, for the choice of error."""

    GREETING = "waiting for the greeting"
    HANDSHAKE = "in the TLS handshake"
    SESSION = "in session"


@attrs.frozen
class Verdict:
    """The verdict on one interruption.

    ``command`` is the command whose reply was missing (None if none was awaited),
    ``recipient`` its recipient for a RCPT.  ``safe_to_retry``, ``unknown`` and
    ``answered`` partition the transaction's ``recipients``; ``answered`` maps each to the
    result that decided it (a RCPT refusal, MAIL's refusal, the end's reply).
    """

    what: Interruption
    phase: Phase
    command: Command | None
    recipient: str | None
    end_sent: bool
    recipients: tuple[str, ...]
    safe_to_retry: tuple[str, ...]
    unknown: tuple[str, ...]
    answered: Mapping[str, Success | e.SMTPError]
    mail_refusal: e.SMTPError | None = None
    detail: str | None = None

    def fate(self, recipient: str) -> Fate:
        if recipient in self.answered:
            return Fate.ANSWERED
        return Fate.UNKNOWN if recipient in self.unknown else Fate.SAFE_TO_RETRY

    @property
    def refused(self) -> dict[str, e.SMTPError]:
        """The recipients refused at RCPT, each with its refusal."""
        return {
            recipient: result
            for recipient, result in self.answered.items()
            if isinstance(result, e.SMTPError) and result.command is Command.RCPT
        }

    def error(self) -> e.SMTPError:
        """The error the interrupted step raises, with ``rejected`` (the RCPT refusals)
        and ``undelivered`` (everyone else the message did not reach for sure) set."""
        refused = self.refused
        error: e.SMTPError
        if self.unknown:
            error = e.DeliveryUnknown(
                f"{self.detail or self.what.value} after the end of the message was sent",
                command=self.command,
                recipient=self.recipient,
            )
        elif self.mail_refusal is not None:
            error = self.mail_refusal
        elif self.recipients and len(refused) == len(self.recipients):
            error = e.recipients_refused(refused, command=Command.RCPT)
        else:
            error = self._plain_error()
        return e.enrich(
            error,
            rejected={**refused, **error.rejected},
            undelivered=(
                r
                for r in self.recipients
                if r not in refused and not isinstance(self.answered.get(r), Success)
            ),
        )

    def _plain_error(self) -> e.SMTPError:
        what, phase = self.what, self.phase
        detail = self.detail or what.value
        command, recipient = self.command, self.recipient
        if command is not None and command.ends_message and not self.end_sent:
            detail += "; the message was not delivered (its end was never sent)"
        if phase is Phase.HANDSHAKE:
            command = Command.STARTTLS
        if what is Interruption.TLS_ERROR and phase is not Phase.SESSION:
            return e.TLSHandshakeFailed(detail, command=command)
        if phase is Phase.GREETING and what is Interruption.CONNECTION_LOST:
            return e.ConnectError(f"{detail} before the greeting", command=command)
        if phase is Phase.GREETING and what is Interruption.READ_TIMEOUT:
            return e.ConnectTimeout(f"{detail}: no greeting", command=command)
        if what in (Interruption.READ_TIMEOUT, Interruption.TOTAL_TIMEOUT):
            return e.ResponseTimeout(detail, command=command, recipient=recipient)
        return e.ConnectionLost(detail, command=command, recipient=recipient)


def _missing(ledger: Ledger, transaction: Transaction | None) -> Entry | None:
    """The entry whose reply the interrupted step waited for: the oldest unanswered one
    from ``transaction``'s MAIL on (an older transaction's end may still be due before
    it), else the oldest of all."""
    if transaction is not None:
        start = transaction.mail.start
        for entry in ledger.entries:
            if entry.result is None and entry.start >= start:
                return entry
    return ledger.outstanding()


def _said(entry: Entry | None) -> bool:
    """Whether the server's reply to ``entry`` arrived and was SMTP in step."""
    return (
        entry is not None
        and entry.result is not None
        and not isinstance(entry.result, e.ProtocolError)
    )


def verdict(
    ledger: Ledger,
    what: Interruption,
    *,
    unsent: int | None = None,
    detail: str | None = None,
    transaction: Transaction | None = None,
) -> Verdict:
    """Judge an interruption on ``ledger`` (the truth table in this module's docstring).

    ``unsent``: how many of the octets reported handed to the transport were still in
    its buffer, unsent, when it happened; None when the edge cannot tell.
    ``transaction``: the one to judge, of ``ledger.transactions`` (the newest if None).
    """
    trusted = unsent is not None and not ledger.encrypted and what is not Interruption.TLS_ERROR
    sent = ledger.handed - min(unsent or 0, ledger.handed) if trusted else ledger.handed
    if transaction is None:
        transaction = ledger.transaction
    missing = _missing(ledger, transaction)
    if missing is not None and missing.command is Command.CONNECT:
        phase = Phase.GREETING
    elif ledger.handshaking:
        phase = Phase.HANDSHAKE
    else:
        phase = Phase.SESSION
    safe: list[str] = []
    unknown: list[str] = []
    answered: dict[str, Success | e.SMTPError] = {}
    end_sent = False
    mail_refusal: e.SMTPError | None = None
    everyone: dict[str, None] = {}
    if transaction is not None:
        end = transaction.end
        end_sent = end is not None and end.start + end.size <= sent
        mail = transaction.mail
        if _said(mail) and isinstance(mail.result, e.SMTPError):
            mail_refusal = mail.result
        rcpts = transaction.rcpts
        everyone = dict.fromkeys((*transaction.recipients, *rcpts))
        end_result = end.result if end is not None and _said(end) else None
        for recipient in everyone:
            rcpt = rcpts.get(recipient)
            said = rcpt.result if rcpt is not None and _said(rcpt) else None
            if mail_refusal is not None:
                answered[recipient] = mail_refusal
            elif isinstance(said, e.SMTPError):
                answered[recipient] = said
            elif end_result is not None:
                answered[recipient] = end_result
            elif end_sent:
                unknown.append(recipient)
            else:
                safe.append(recipient)
    return Verdict(
        what=what,
        phase=phase,
        command=missing.command if missing is not None else None,
        recipient=missing.recipient if missing is not None else None,
        end_sent=end_sent,
        recipients=tuple(everyone),
        safe_to_retry=tuple(safe),
        unknown=tuple(unknown),
        answered=answered,
        mail_refusal=mail_refusal,
        detail=detail,
    )
