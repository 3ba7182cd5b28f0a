"""Retrying transient failures with tenacity, without ever sending a mail twice.

What is retried: ``TransientError`` (4xx replies, 421, lost connections and
time-outs before the final ``.``).  What never is: permanent errors, usage
errors, protocol errors, and, unless you opt in, ``DeliveryUnknown`` (the
server may already have the message).  Each attempt sends only to the
recipients that have not accepted the message yet; recipients refused
permanently are reported and dropped from later attempts.

How long: exponential backoff with jitter, at least what the server asks
for (a delay in its text), and at least what its reason implies
(``ReasonWaits``): a greylisted recipient is not retried before the greylisting
delay has passed, a rate limit backs off longer, and a 4xx naming a blocklist
or the sender's reputation is retried on a long schedule and logged once as a
deliverability problem.

The same decisions are public for your own tenacity, Celery or arq code:
``is_retryable(exc)``, ``retry_if_transient()``, ``wait_suggested()`` and
``suggested_delay(exc, attempt)``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable

import attrs
import tenacity
from tenacity.wait import wait_base

from smtpx import errors as e
from smtpx._reasons import Reason

__all__ = [
    "GREYLIST_MINIMUM",
    "Backoff",
    "ReasonWaits",
    "RetryEvent",
    "RetryPolicy",
    "VirtualClock",
    "is_retryable",
    "retry_if_transient",
    "server_hint",
    "suggested_delay",
    "wait_suggested",
]

logger = logging.getLogger("smtpx.retry")

# A delay the reply asks for: "try again in 5 minutes", "retry after 60 seconds",
# "greylisted for 300s", "come back in 00:05:00".  The first number after the words
# counts only if it stands alone: not part of a dotted number (an IP address, a version,
# an enhanced code such as 4.7.1) and not glued to letters (ticket ids such as S77714 or
# [TSS04]).  A number without a unit is seconds ("try again in 300").
_ASKS = re.compile(
    r"(?:try(?:ing)? (?:it )?again|re-?try(?:ing)?|re-?send|wait(?:ing)?|come back"
    r"|gr[ae]y-?list\w*|deferred|again)\b",
    re.IGNORECASE,
)
_FIRST_DIGIT = re.compile(r"\d")
_AMOUNT = re.compile(
    r"(\d{1,6})(?!\d)(?:\s*(milliseconds?|msecs?|ms|seconds?|secs?|minutes?|mins?|hours?|hrs?"
    r"|days?|[smhd])(?![a-z]))?"
    r"(?![\w:]|[.,]\d)",
    re.IGNORECASE,
)
_CLOCK = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})(?![\w:]|[.,]\d)")
_GLUED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:#/-=")
_LINE_CODE = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}(?=\s|$)")
_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_WINDOW = 40  # how far after the words the number may stand


def server_hint(error: BaseException) -> float | None:
    """The delay, in seconds, that the server's reply text asks for, if it names one.

    Read on every line of the reply, in milliseconds, seconds, minutes, hours or
    days ("try again in 5 minutes", "retry after 300s", "come back in 00:05:00");
    a number without a unit ("try again in 300") is seconds.  An IP address, a
    ticket id or a version number is never read as a delay.  For an error that
    gathers refusals (every recipient deferred), the longest delay any of them asks for.
    """
    reply = getattr(error, "reply", None)
    hints = [_hint_in(reply.lines)] if reply is not None else []
    rejected = getattr(error, "rejected", None) or {}
    hints += [server_hint(refusal) for refusal in rejected.values() if refusal is not error]
    found = [hint for hint in hints if hint is not None]
    return max(found) if found else None


def _hint_in(lines: tuple[str, ...]) -> float | None:
    text = " ".join(_LINE_CODE.sub("", line) for line in lines)
    for asks in _ASKS.finditer(text):
        window = text[asks.end() : asks.end() + _WINDOW]
        digit = _FIRST_DIGIT.search(window)
        if digit is None:
            continue
        at = asks.end() + digit.start()
        if text[at - 1] in _GLUED:  # S77714, [TSS04], 192.0.2.1, v2
            continue
        clock = _CLOCK.match(text, at)
        if clock is not None:
            return float(int(clock[1]) * 3600 + int(clock[2]) * 60 + int(clock[3]))
        amount = _AMOUNT.match(text, at)
        if amount is not None:
            return float(amount[1]) * _seconds_per(amount[2])
    return None


def _seconds_per(unit: str | None) -> float:
    """Seconds in one ``unit`` as the reply wrote it; none written means seconds."""
    unit = (unit or "s").lower()
    if unit.startswith(("ms", "milli")):
        return 0.001
    return _UNIT[unit[0]]


def is_retryable(error: BaseException, *, delivery_unknown: bool = False) -> bool:
    """True for the failures smtpx retries: ``TransientError`` (and, if asked,
    ``DeliveryUnknown``)."""
    if isinstance(error, e.DeliveryUnknown):
        return delivery_unknown
    return isinstance(error, e.SMTPError) and error.retryable


def retry_if_transient(*, delivery_unknown: bool = False) -> tenacity.retry_base:
    """A tenacity ``retry=`` condition: retry exactly what smtpx would retry."""
    return tenacity.retry_if_exception(
        lambda exc: is_retryable(exc, delivery_unknown=delivery_unknown)
    )


@attrs.frozen
class Backoff:
    """Exponential backoff with full jitter, a cap, and the server's hint honoured."""

    initial: float = 2.0
    maximum: float = 300.0
    base: float = 2.0
    jitter: float = 1.0  # up to this fraction of the delay is added at random
    honour_hint: bool = True
    max_hint: float = 3600.0

    def __attrs_post_init__(self) -> None:
        if min(self.initial, self.maximum, self.jitter, self.max_hint) < 0 or self.base < 1:
            raise e.UsageError(
                f"delays and jitter must not be negative, nor base below 1: {self!r}"
            )

    def delay(self, attempt: int, error: BaseException | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        delay = min(self.maximum, self.initial * self.base ** (attempt - 1))
        delay += delay * self.jitter * random.random()
        delay = min(delay, self.maximum)
        hint = server_hint(error) if (self.honour_hint and error is not None) else None
        if hint is not None:
            delay = max(delay, min(hint, self.max_hint))
        return delay


# Greylisting servers refuse every retry before their delay has passed: postgrey's
# default --delay is 300 s, sqlgrey's reconnect_delay 5 minutes; retrying sooner only
# restarts nothing and wastes an attempt.
GREYLIST_MINIMUM = 300.0


@attrs.frozen
class ReasonWaits:
    """The least wait a refusal's reason implies, on top of the backoff and the hint.

    ``greylisted``: no retry before the greylisting delay: the one the reply names,
    else this (``GREYLIST_MINIMUM``, postgrey's default).  ``rate_limited``: back
    off from this, doubling each attempt.  ``reputation``: a 4xx naming a blocklist or the sender's
    reputation is retried on this long schedule, doubling each attempt.  Every
    wait is capped at ``maximum``.
    """

    greylisted: float = GREYLIST_MINIMUM
    rate_limited: float = 60.0
    reputation: float = 900.0
    maximum: float = 3600.0

    def __attrs_post_init__(self) -> None:
        if min(self.greylisted, self.rate_limited, self.reputation, self.maximum) < 0:
            raise e.UsageError(f"waits must not be negative: {self!r}")

    def least(self, attempt: int, reason: Reason, hint: float | None = None) -> float:
        """The least wait after failed attempt ``attempt`` (1-based) refused for ``reason``.

        ``hint`` is the delay the reply itself asks for (``server_hint``): a greylisting
        server that says "try again in 60 seconds" names its own delay, which then
        stands in for the ``greylisted`` default.
        """
        growth = 2.0 ** max(attempt - 1, 0)
        if reason is Reason.GREYLISTED:
            wait = self.greylisted if hint is None else hint
        elif reason is Reason.RATE_LIMITED:
            wait = self.rate_limited * growth
        elif reason in SLOW_REASONS:
            wait = self.reputation * growth
        else:
            return 0.0
        return min(wait, self.maximum)


#: Reasons whose 4xx means a deliverability problem: retried slowly, logged once.
SLOW_REASONS = frozenset({Reason.BLOCKLISTED, Reason.BAD_REPUTATION})


def reasons_of(error: BaseException) -> set[Reason]:
    """The reasons ``error`` stands for: its own, and those of the refusals it gathers."""
    found = {reason} if isinstance(reason := getattr(error, "reason", None), Reason) else set()
    rejected = getattr(error, "rejected", None) or {}
    for refusal in rejected.values():
        if refusal is not error and getattr(refusal, "retryable", False):
            found |= reasons_of(refusal)
    return found


def suggested_delay(
    error: BaseException,
    attempt: int = 1,
    backoff: Backoff | None = None,
    waits: ReasonWaits | None = None,
) -> float:
    """The delay smtpx would wait before retrying ``error`` (for a task queue's countdown).

    With ``waits`` (``ReasonWaits()``), at least what the refusal's reason implies, as
    ``send(..., retry=RetryPolicy())`` does.
    """
    delay = (backoff or Backoff()).delay(attempt, error)
    if waits is None:
        return delay
    hint = server_hint(error)
    return max([delay, *(waits.least(attempt, reason, hint) for reason in reasons_of(error))])


class wait_suggested(wait_base):  # noqa: N801 - named like tenacity's waits
    """A tenacity ``wait=``: smtpx's backoff, honouring the server's hint."""

    def __init__(self, backoff: Backoff | None = None) -> None:
        self.backoff = backoff or Backoff()

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        return self.backoff.delay(retry_state.attempt_number, error)


@attrs.frozen
class RetryEvent:
    """Passed to ``RetryPolicy.on_retry`` before each sleep."""

    attempt: int  # the attempt that failed, 1-based
    error: e.SMTPError
    wait: float  # seconds until the next attempt
    pending: tuple[str, ...]  # recipients the next attempt sends to
    #: The reason that set the wait (greylisted, rate_limited...), else the error's own.
    reason: Reason = Reason.OTHER


class VirtualClock:
    """A clock whose ``sleep`` returns at once and advances ``now``: for tests."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


@attrs.frozen
class RetryPolicy:
    """How ``send(..., retry=policy)`` retries.

    At most ``attempts`` attempts (the first included) and ``timeout`` seconds
    in all: smtpx stops *before* a wait that would cross the deadline.
    ``sleep`` and ``clock`` are injectable (see ``RetryPolicy.for_testing``).
    ``waits`` sets the least wait each reason implies (``ReasonWaits``); like the
    server's explicit delays, it is ignored when ``backoff.honour_hint`` is off.
    A blocklisted or bad-reputation deferral is logged once per policy and host.
    """

    attempts: int = 5
    timeout: float = 600.0
    backoff: Backoff = Backoff()
    retry_delivery_unknown: bool = False
    on_retry: Callable[[RetryEvent], None] | None = None
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    waits: ReasonWaits = ReasonWaits()
    #: (host, reason) pairs already logged as deliverability problems.
    reported: set[tuple[str, Reason]] = attrs.field(factory=set, init=False, repr=False, eq=False)

    @classmethod
    def for_testing(cls, clock: VirtualClock | None = None, **kwargs: object) -> RetryPolicy:
        """A policy that never really sleeps; waits are recorded in ``clock.sleeps``."""
        clock = clock or VirtualClock()
        return cls(sleep=clock.sleep, clock=clock.monotonic, **kwargs)  # type: ignore[arg-type]

    def is_retryable(self, error: BaseException) -> bool:
        return is_retryable(error, delivery_unknown=self.retry_delivery_unknown)

    def wait(self, attempt: int, errors: list[e.SMTPError]) -> tuple[float, Reason]:
        """The wait after failed attempt ``attempt`` whose pending recipients were refused
        with ``errors``, and the reason that set it."""
        choices = []
        for error in errors:
            choice = (self.backoff.delay(attempt, error), error.reason)
            if self.backoff.honour_hint:
                hint = server_hint(error)
                for reason in reasons_of(error):
                    choice = max(choice, (self.waits.least(attempt, reason, hint), reason))
            choices.append(choice)
        return max(choices, key=lambda choice: choice[0], default=(0.0, Reason.OTHER))
