"""Flows: the decisions of an SMTP exchange, driven by any I/O pump.

A flow issues intents on a ``Session`` and reads the replies; the pump only moves
octets, by what ``next_action()`` says::

    while True:
        action = flow.next_action()
        if action is Action.SEND:        write session.data_to_send(), report wrote(n)
        elif action is Action.RECEIVE:   read, then session.receive_data(data)
        elif action is Action.START_TLS: handshake, then session.tls_established()
        elif action is Action.DONE:      return flow.result
        else:                            raise flow.error     (Action.FAILED)

On a lost connection, a time-out, a cancellation or a TLS failure the pump calls
``session.interrupt(...)``; the flow then fails with the error the ledger's verdict
gives (``smtpx.protocol.interruptions``).
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Callable, Generator
from typing import Generic, TypeVar

from smtpx import errors as e
from smtpx.protocol.ledger import Entry
from smtpx.protocol.session import Session
from smtpx.protocol.states import SessionClosed, State
from smtpx.results import Success

__all__ = ["Action", "Flow", "ReplyFlow", "Steps", "StepsFlow", "ok"]

T = TypeVar("T")


class Action(enum.Enum):
    """What the pump does next."""

    SEND = "write session.data_to_send()"
    RECEIVE = "read from the server into session.receive_data()"
    START_TLS = "do the TLS handshake, then call session.tls_established()"
    DONE = "the flow succeeded: flow.result"
    FAILED = "the flow failed: raise flow.error"


# Read on every step, as module constants: on Python 3.11 ``Action.SEND`` goes through
# EnumType's __getattr__ hook, ~0.1 µs each time.
_SEND, _RECEIVE, _START_TLS, _DONE = Action.SEND, Action.RECEIVE, Action.START_TLS, Action.DONE
_TLS_HANDSHAKE = State.TLS_HANDSHAKE

#: What a flow's steps yield: an entry whose reply they wait for, a pipelined group of
#: them (all its replies, or the one that closed the session), or the handshake.
Step = Entry | tuple[Entry, ...] | Action
Steps = Generator[Step, None, T]


def ok(result: Success | e.SMTPError | None) -> Success:
    """A reply's success result; its error is raised."""
    if isinstance(result, e.SMTPError):
        raise result
    assert result is not None  # a flow reads an entry only once it is answered
    return result


class Flow(Generic[T]):
    """Runs ``steps`` (a generator that yields what it waits for) against ``session``."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.result: T | None = None
        self.error: e.SMTPError | None = None
        #: Set by a flow that has decided its error and is only cleaning up (RSET):
        #: an interruption then changes nothing.
        self.decided: e.SMTPError | None = None
        self._steps = self.steps()
        self._waiting: Step | None = None
        self._over: Action | None = None

    def steps(self) -> Steps[T]:
        raise NotImplementedError

    @property
    def over(self) -> bool:
        """Whether the flow has succeeded or failed (``result`` or ``error`` is set)."""
        return self._over is not None

    def next_action(self) -> Action:
        """What the pump does next (see the module docstring)."""
        if self._over is not None:
            return self._over
        session = self.session
        while True:
            waiting = self._waiting
            if waiting is None:
                pass
            elif waiting is _START_TLS:
                if session.state is _TLS_HANDSHAKE:
                    return _START_TLS
                if session.closed:
                    return self._fail(self._stopped())
            elif type(waiting) is tuple:  # a pipelined group: wait for all its replies
                if waiting[-1].result is None:
                    if not session.closed:
                        return _SEND if session.has_output else _RECEIVE
                    closer = session.error
                    if closer is None or not any(entry.result is closer for entry in waiting):
                        return self._fail(self._stopped())
                    # else a reply in the group closed the session: the steps judge it
            elif waiting.result is None:  # type: ignore[union-attr]  # an Entry
                if session.closed:
                    return self._fail(self._stopped())
                return _SEND if session.has_output else _RECEIVE
            try:
                self._waiting = next(self._steps)
            except StopIteration as stop:
                self.result = stop.value
                self._over = _DONE
                return _DONE
            except SessionClosed as closed:
                # the session closed under the flow between two steps: what closed it
                # is the error, naming the command the flow was about to send
                error = self._stopped()
                if error.command is None:
                    e.enrich(error, command=closed.command, recipient=closed.recipient)
                return self._fail(error)
            except e.SMTPError as error:
                return self._fail(error)

    def _fail(self, error: e.SMTPError) -> Action:
        self.error = error
        self._over = Action.FAILED
        self._steps.close()
        return Action.FAILED

    def _stopped(self) -> e.SMTPError:
        if self.decided is not None:
            return self.decided
        return self.stopped()

    def stopped(self) -> e.SMTPError:
        """The error when the session closed under a step still waiting for its reply:
        the interruption's verdict, or what closed the session.  A flow may refine it."""
        session = self.session
        if session.verdict is not None:
            return session.verdict.error()
        if session.error is not None:
            return copy.copy(session.error)  # the session's own stays as it was
        waiting = self._waiting
        if isinstance(waiting, tuple):
            waiting = next(entry for entry in waiting if entry.result is None)
        command = waiting.command if isinstance(waiting, Entry) else None
        return e.ConnectionLost("the session was closed", command=command)


class ReplyFlow(Flow[Success]):
    """Waits for one entry's reply: its success result, or its error raised."""

    def __init__(self, session: Session, entry: Entry) -> None:
        self.entry = entry
        super().__init__(session)

    def steps(self) -> Steps[Success]:
        yield self.entry
        return ok(self.entry.result)


class StepsFlow(Flow[T]):
    """Runs the steps a generator function makes of ``session`` (an exchange of a few
    intents, such as DATA and its payload, or a pipelined group)."""

    def __init__(self, session: Session, make: Callable[[], Steps[T]], name: str = "") -> None:
        self._make = make
        self.name = name
        super().__init__(session)

    def __repr__(self) -> str:
        return f"<StepsFlow {self.name}>"

    def steps(self) -> Steps[T]:
        return (yield from self._make())
