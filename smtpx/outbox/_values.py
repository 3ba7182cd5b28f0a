"""What the outbox reports: a recipient's state, its last error, and counts."""

from __future__ import annotations

import enum

import attrs

__all__ = ["Failure", "MessageStatus", "OutboxStats", "RecipientStatus", "State", "Verdict"]


class State(enum.Enum):
    """Where one recipient of a stored message stands.

    ``PENDING`` and ``DEFERRED`` are still to be sent; ``DELIVERY_UNKNOWN`` waits
    for a decision (``Outbox.release``); the other three are final.
    """

    PENDING = "pending"  # not sent yet, or sent without its end leaving: send it
    DEFERRED = "deferred"  # refused for now; sent again from ``due`` on
    ACCEPTED = "accepted"  # the server answered 2xx after the end of the message
    REFUSED = "refused"  # refused for good (5xx, or an error no retry fixes)
    DELIVERY_UNKNOWN = "delivery_unknown"  # the end may have left; no reply was recorded
    EXPIRED = "expired"  # given up: older than max_age, or out of attempts

    @property
    def final(self) -> bool:
        return self in _FINAL

    @property
    def to_send(self) -> bool:
        return self in (State.PENDING, State.DEFERRED)


_FINAL = frozenset({State.ACCEPTED, State.REFUSED, State.EXPIRED})


@attrs.frozen
class Failure:
    """The error behind a recipient's last refusal, as stored: plain values, no objects.

    ``error`` is the smtpx class name (``NoSuchMailbox``), ``code``/``enhanced`` the
    reply's, ``reason`` the error's ``reason`` when it has one, ``text`` the message.
    """

    error: str
    text: str
    code: int | None = None
    enhanced: str | None = None
    reason: str | None = None

    @classmethod
    def of(cls, error: BaseException) -> Failure:
        code = getattr(error, "code", None)
        enhanced = getattr(error, "enhanced", None)
        reason = getattr(error, "reason", None)
        return cls(
            error=type(error).__name__,
            text=str(error),
            code=code if isinstance(code, int) else None,
            enhanced=str(enhanced) if enhanced is not None else None,
            reason=_reason_text(reason),
        )


def _reason_text(reason: object) -> str | None:
    if reason is None:
        return None
    value = getattr(reason, "value", None)  # an enum's value reads better than its repr
    return str(value) if isinstance(value, str) else str(reason)


@attrs.frozen
class Verdict:
    """What one attempt decided for one recipient."""

    state: State
    failure: Failure | None = None
    due: float | None = None  # DEFERRED: not before this time (the outbox's clock)


@attrs.frozen
class RecipientStatus:
    """One recipient of a stored message, as the database has it now."""

    message_id: int
    address: str
    state: State
    attempts: int
    due: float | None  # when it is sent next (pending, deferred)
    updated: float
    failure: Failure | None
    in_flight: bool  # an attempt is under way (or was, when its worker died)


@attrs.frozen
class MessageStatus:
    """A stored message and each of its recipients."""

    id: int
    key: str | None
    sender: str
    size: int
    created: float
    expires: float | None
    recipients: tuple[RecipientStatus, ...]

    @property
    def finished(self) -> bool:
        """Every recipient is in a final state: nothing left to send or decide."""
        return all(r.state.final for r in self.recipients)


@attrs.frozen
class OutboxStats:
    """Counts over the whole outbox (``Outbox.stats()``, ``smtpx outbox status``)."""

    messages: int
    recipients: dict[State, int]
    in_flight: int
    next_due: float | None  # the earliest time a recipient is to be sent
    oldest: float | None  # when the oldest message still to send was put

    def count(self, state: State) -> int:
        return self.recipients.get(state, 0)
