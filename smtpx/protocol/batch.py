"""Messages back to back on one session, each transaction pipelined behind the one before.

RFC 2920 §3.1 lets message content start a pipelined group, so on a server that offers
PIPELINING the end of one message (DATA's final ``.``) goes out in the same write as
the next transaction's MAIL, RCPTs and DATA: a connection with messages queued spends
one round trip per message instead of two.  The session allows that only when the
end's reply closes the server's transaction whatever it says
(``Transaction.closes_at_end``); otherwise the next message waits, as it would one at
a time.  The batch never queues a message behind ``BDAT … LAST``: with CHUNKING a
message takes one round trip already, and the next one's own end would be on the
wire before the previous reply, so one lost connection would leave both unknown.

When the session closes at an earlier message's command (its reply missing, or a
421) while a message is queued behind it with its end not handed out, that message
goes back to ``left()``: nothing of it was delivered, and it is sent on a new session
as it would have been one at a time.

Each message is its own ``MailFlow``: every reply is classified against its own
command, one message's failure never changes another's outcome, and an interruption
is judged on each message's own transaction in the ledger, so only a message whose
end had been handed out can be ``DeliveryUnknown``.  ``MailBatch`` hands the flows
out in order; the pump runs each to its end (its result or error is that message's
outcome) and asks for the next::

    batch = MailBatch(session, envelopes)
    while (flow := batch.next_flow()) is not None:
        run flow as any other (see ``smtpx.protocol.flow``)
    batch.left()      # the messages not sent when the session closed: send them anew
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Iterator

from smtpx import errors as e
from smtpx._commands import Command
from smtpx._envelope import Envelope
from smtpx.protocol.flow import Action, Flow, Steps
from smtpx.protocol.ledger import Entry
from smtpx.protocol.mail import MailFlow
from smtpx.protocol.session import Session
from smtpx.protocol.states import Intent
from smtpx.results import SendResult

__all__ = ["Leading", "MailBatch"]

_SEND, _RECEIVE = Action.SEND, Action.RECEIVE
_MAIL = Intent.MAIL
_DATA_END = Command.DATA_END

#: What a batch sends: a prepared envelope, or the error preparing a message gave (it
#: is that message's outcome, in its place in the order).
Item = Envelope | e.SMTPError


class MailBatch:
    """``items`` sent in order on ``session`` (greeted, EHLO'd, no transaction), each
    transaction behind the end of the one before when the session allows it.

    ``items`` is read lazily, one ahead of what has been sent, so a generator of
    envelopes is prepared as the connection gets to it.  ``chunking`` allows BDAT when
    the server offers it, as for ``MailFlow``.
    """

    def __init__(self, session: Session, items: Iterable[Item], *, chunking: bool = True) -> None:
        self.session = session
        self.chunking = chunking
        self._items: Iterator[Item] = iter(items)
        self._started: deque[Flow[SendResult]] = deque()
        self._left: Iterator[Item] = iter(())

    def next_flow(self) -> Leading | None:
        """The flow of the oldest message not yet handed out; None when every message
        was, or when the session closed with none under way (``left()`` has the rest)."""
        if self.session.closed and self._started:
            self._take_back()
        started = self._started
        if not started:
            if self.session.closed:
                return None
            item = next(self._items, None)
            if item is None:
                return None
            started.append(self._flow(item))
        return Leading(self, started.popleft())

    def _take_back(self) -> None:
        """The session closed at an earlier message's command (no reply, or a 421)
        while a message waited behind it: if that one's end was never handed out,
        nothing of it can have been delivered, so it goes back to the messages not
        started (sent on a new session, as one at a time) rather than failing for what
        ended the message before it.  Messages that failed before queueing anything
        keep their outcomes, in order."""
        kept: deque[Flow[SendResult]] = deque()
        back: list[Item] = []
        blamed = self._where_it_closed()
        for flow in self._started:
            transaction = flow.transaction if isinstance(flow, MailFlow) else None
            if (
                isinstance(flow, MailFlow)
                and transaction is not None
                and blamed is not None
                and blamed.start < transaction.mail.start  # an earlier message's entry
                and _queued_without_end(flow)
            ):
                back.append(flow.envelope)
            else:  # it failed before queueing anything, or the server may have it
                kept.append(flow)
        if back:
            self._started = kept
            self._items = itertools.chain(back, self._items)

    def _where_it_closed(self) -> Entry | None:
        """The entry the session closed at: the one whose reply closed it (a 421, a
        reply that is not SMTP), else the oldest still waiting for its reply."""
        session = self.session
        closer = session.error
        if closer is not None:
            for entry in session.ledger.entries:
                if entry.result is closer:
                    return entry
        return session.ledger.outstanding()

    def stop(self) -> None:
        """Start no further message: ``next_flow()`` hands out only those under way."""
        self._left, self._items = self._items, iter(())

    def left(self) -> Iterator[Item]:
        """The messages not started, in order (after the session closed under the batch,
        or ``stop()``)."""
        return itertools.chain(self._left, self._items)

    def _flow(self, item: Item) -> Flow[SendResult]:
        if isinstance(item, e.SMTPError):
            return _Failed(self.session, item)
        return MailFlow(self.session, item, pipelining=True, chunking=self.chunking)

    def _follow(self) -> bool:
        """Queue the next message's transaction behind the one under way, if the session
        allows it now; True if octets were queued.  A message that fails before queueing
        anything (its outcome waits in order) makes room for the one after it."""
        session = self.session
        transaction = session.ledger.transaction
        end = transaction.end if transaction is not None else None
        if end is not None and end.command is not _DATA_END and not end.answered:
            return False  # behind BDAT … LAST: see the module docstring
        while all(flow.over for flow in self._started) and session.may(_MAIL):
            item = next(self._items, None)
            if item is None:
                return False
            flow = self._flow(item)
            self._started.append(flow)
            if flow.next_action() is _SEND:  # its MAIL, RCPTs and DATA (or BDAT) queued
                return True
        return False


def _queued_without_end(flow: MailFlow) -> bool:
    """Whether ``flow`` queued its transaction and not all of its end was handed out."""
    transaction = flow.transaction
    if transaction is None:
        return False
    end = transaction.end
    return end is None or end.written < end.size


class Leading(Flow[SendResult]):
    """The oldest message's flow (``flow``: its ``MailFlow``), run by the pump: while it
    waits for the server, the next message's transaction is queued behind its end when
    the session allows."""

    def __init__(self, batch: MailBatch, flow: Flow[SendResult]) -> None:
        self.batch = batch
        self.flow = flow
        super().__init__(flow.session)

    def __repr__(self) -> str:
        return f"<MailBatch leading {self.flow!r}>"

    def steps(self) -> Steps[SendResult]:  # not used: next_action() delegates
        raise AssertionError("unreachable")
        yield  # pragma: no cover

    def next_action(self) -> Action:
        flow = self.flow
        action = flow.next_action()
        if action is _SEND or action is _RECEIVE:
            if self.batch._follow() and action is _RECEIVE:
                return _SEND
            return action
        self.result, self.error = flow.result, flow.error
        return action


class _Failed(Flow[SendResult]):
    """A message whose preparation failed: its error is its outcome; nothing is sent."""

    def __init__(self, session: Session, error: e.SMTPError) -> None:
        self._error = error
        super().__init__(session)

    def steps(self) -> Steps[SendResult]:
        raise self._error
        yield  # pragma: no cover
