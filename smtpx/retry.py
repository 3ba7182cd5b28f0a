"""Retrying transient failures with tenacity, without ever sending a mail twice.

What is retried: ``TransientError`` (4xx replies, 421, lost connections and
time-outs before the final ``.``).  What never is: permanent errors, usage
errors, protocol errors, and, unless you opt in, ``DeliveryUnknown`` (the
server may already have the message).  Each attempt sends only to the
recipients that have not accepted the message yet; recipients refused
permanently are reported and dropped from later attempts.

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
from typing import TYPE_CHECKING

import attrs
import tenacity
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from smtpx import errors as e
from smtpx._message import Envelope
from smtpx._reply import Reply
from smtpx.results import SendResult

if TYPE_CHECKING:
    from smtpx.client import Client

logger = logging.getLogger("smtpx.retry")

# "try again in 5 minutes", "retry after 60 seconds", "greylisted for 300s"
_HINT = re.compile(
    r"(?:try again|retry|wait|greylist\w*)\D{0,30}?(\d{1,6})\s*"
    r"(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?)?\b",
    re.IGNORECASE,
)
_UNIT = {"s": 1, "m": 60, "h": 3600}


def server_hint(error: BaseException) -> float | None:
    """The delay, in seconds, that the server's reply text asks for, if it names one.

    For an error that gathers refusals (every recipient deferred), the longest
    delay any of them asks for.
    """
    reply = getattr(error, "reply", None)
    hints = [_hint_in(reply.text)] if reply is not None else []
    rejected = getattr(error, "rejected", None) or {}
    hints += [server_hint(refusal) for refusal in rejected.values() if refusal is not error]
    found = [hint for hint in hints if hint is not None]
    return max(found) if found else None


def _hint_in(text: str) -> float | None:
    match = _HINT.search(text)
    if match is None:
        return None
    unit = (match[2] or "s")[0].lower()
    return float(match[1]) * _UNIT[unit]


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

    def delay(self, attempt: int, error: BaseException | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        delay = min(self.maximum, self.initial * self.base ** (attempt - 1))
        delay += delay * self.jitter * random.random()
        delay = min(delay, self.maximum)
        hint = server_hint(error) if (self.honour_hint and error is not None) else None
        if hint is not None:
            delay = max(delay, min(hint, self.max_hint))
        return delay


def suggested_delay(
    error: BaseException, attempt: int = 1, backoff: Backoff | None = None
) -> float:
    """The delay smtpx would wait before retrying ``error`` (for a task queue's countdown)."""
    return (backoff or Backoff()).delay(attempt, error)


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
    """

    attempts: int = 5
    timeout: float = 600.0
    backoff: Backoff = Backoff()
    retry_delivery_unknown: bool = False
    on_retry: Callable[[RetryEvent], None] | None = None
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def for_testing(cls, clock: VirtualClock | None = None, **kwargs: object) -> RetryPolicy:
        """A policy that never really sleeps; waits are recorded in ``clock.sleeps``."""
        clock = clock or VirtualClock()
        return cls(sleep=clock.sleep, clock=clock.monotonic, **kwargs)  # type: ignore[arg-type]

    def is_retryable(self, error: BaseException) -> bool:
        return is_retryable(error, delivery_unknown=self.retry_delivery_unknown)


class _StopBeforeDeadline(stop_base):
    def __init__(self, policy: RetryPolicy, started: float) -> None:
        self.deadline = started + policy.timeout
        self.clock = policy.clock

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self.clock() + (retry_state.upcoming_sleep or 0.0) > self.deadline


class _StillPending(e.TransientError):
    """Internal: the transaction went through, but some recipients were deferred."""


async def send_with_retry(client: Client, envelope: Envelope, policy: RetryPolicy) -> SendResult:
    """Send ``envelope``, retrying transient failures for the recipients still pending.

    Returns a ``SendResult`` as soon as every recipient has accepted or been
    refused for good, or when the retries are spent and at least one recipient
    accepted (the others then carry their last error in ``rejected``).  Raises
    the last typed error, with ``attempts`` listing every failed attempt's
    error, when no recipient accepted at all.
    """
    accepted: list[str] = []
    final: dict[str, e.SMTPError] = {}  # refused for good
    deferred: dict[str, e.SMTPError] = {}  # refused for now
    pending = list(envelope.recipients)
    history: list[e.SMTPError] = []
    last_reply: Reply | None = None

    def settle(rejected: dict[str, e.SMTPError]) -> None:
        for recipient, error in rejected.items():
            (deferred if policy.is_retryable(error) else final)[recipient] = error
            if not policy.is_retryable(error):
                deferred.pop(recipient, None)

    async def attempt() -> None:
        nonlocal pending, last_reply
        try:
            envelope_now = attrs.evolve(envelope, recipients=tuple(pending))
            result = await client.send_envelope(envelope_now)
        except e.SMTPError as error:
            history.append(error)
            settle(dict(error.rejected))
            undelivered = error.undelivered or (() if error.rejected else tuple(pending))
            for recipient in undelivered:
                if policy.is_retryable(error):
                    deferred[recipient] = error
                else:
                    final.setdefault(recipient, error)
                    deferred.pop(recipient, None)
            pending = [r for r in pending if r not in final]
            if isinstance(error, e.RecipientsRefused) and pending:
                # Refused for good by some, for now by others: retry the others.
                raise _StillPending(f"{len(pending)} recipient(s) deferred") from error
            raise
        accepted.extend(result.accepted)
        last_reply = result.reply
        for recipient in result.accepted:
            deferred.pop(recipient, None)
        settle(dict(result.rejected))
        pending = [r for r, err in result.rejected.items() if policy.is_retryable(err)]
        if pending:
            history.append(deferred[pending[0]])
            raise _StillPending(f"{len(pending)} recipient(s) deferred")

    def hint_source() -> e.SMTPError:
        # The deferred refusal asking for the longest wait; else the last error.
        hinted = [err for err in deferred.values() if server_hint(err) is not None]
        return max(hinted, key=lambda err: server_hint(err) or 0.0) if hinted else history[-1]

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = history[-1]
        wait = state.upcoming_sleep or 0.0
        logger.warning(
            "attempt %d failed (%r); retrying %d recipient(s) in %.1fs",
            state.attempt_number,
            error,
            len(pending),
            wait,
        )
        if policy.on_retry is not None:
            policy.on_retry(RetryEvent(state.attempt_number, error, wait, tuple(pending)))

    retrying = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(policy.attempts)
        | _StopBeforeDeadline(policy, policy.clock()),
        wait=lambda state: policy.backoff.delay(state.attempt_number, hint_source()),
        retry=tenacity.retry_if_exception(policy.is_retryable),
        sleep=policy.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        await retrying(attempt)
    except e.SMTPError:
        if not accepted:  # nobody has the message: raise the last real error
            error = history[-1]
            error.attempts = tuple(history)
            error.rejected = {**deferred, **final}
            raise error from error.__cause__
    assert last_reply is not None  # an attempt went through, so some recipient accepted
    return SendResult(tuple(accepted), {**deferred, **final}, last_reply)
