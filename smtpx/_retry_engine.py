"""The retry engine: attempts of one message, each only to the recipients still pending.

``send_with_retry`` drives tenacity with a :class:`RetryPolicy` (``smtpx.retry``);
:class:`Recipients` keeps the books between attempts: who accepted, who was refused
for good, who for now, and so who the next attempt sends to.  The engine needs of the
client only ``host`` and ``send_envelope``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

import attrs
import tenacity
from tenacity.stop import stop_base

from smtpx import errors as e
from smtpx._envelope import Envelope
from smtpx._reasons import Reason
from smtpx._reply import Reply
from smtpx.results import SendResult
from smtpx.retry import SLOW_REASONS, RetryEvent, RetryPolicy, reasons_of

__all__ = ["Recipients", "Sender", "send_with_retry"]

logger = logging.getLogger("smtpx.retry")  # the logger users configure for retries


class Sender(Protocol):
    """What the engine needs of a client: one attempt at an envelope, and its host."""

    @property
    def host(self) -> str: ...

    async def send_envelope(self, envelope: Envelope, /) -> SendResult: ...


class Recipients:
    """Where each recipient of one message stands across attempts.

    ``accepted`` took the message; ``final`` were refused for good and ``deferred`` for
    now (each with its last error); ``pending`` are those the next attempt sends to.
    ``history`` holds every failed attempt's error, in order.
    """

    def __init__(self, recipients: Iterable[str], policy: RetryPolicy) -> None:
        self.policy = policy
        self.accepted: list[str] = []
        self.final: dict[str, e.SMTPError] = {}
        self.deferred: dict[str, e.SMTPError] = {}
        self.pending: list[str] = list(recipients)
        self.history: list[e.SMTPError] = []
        self.last_reply: Reply | None = None
        self.answered_by: tuple[str | None, int | None] = (None, None)  # who sent it

    def settle(self, rejected: Mapping[str, e.SMTPError]) -> None:
        """File each refusal: deferred if retryable, else final (and no longer deferred)."""
        for recipient, error in rejected.items():
            if self.policy.is_retryable(error):
                self.deferred[recipient] = error
            else:
                self.final[recipient] = error
                self.deferred.pop(recipient, None)

    def failed(self, error: e.SMTPError) -> bool:
        """File an attempt that raised ``error``; whether some recipients are left to
        retry although ``error`` itself is final (refused for good by some only)."""
        self.history.append(error)
        self.settle(dict(error.rejected))
        undelivered = error.undelivered or (() if error.rejected else tuple(self.pending))
        for recipient in undelivered:
            if self.policy.is_retryable(error):
                self.deferred[recipient] = error
            else:
                self.final.setdefault(recipient, error)
                self.deferred.pop(recipient, None)
        self.pending = [r for r in self.pending if r not in self.final]
        return isinstance(error, e.RecipientsRefused) and bool(self.pending)

    def succeeded(self, result: SendResult) -> None:
        """File an attempt that went through; those it deferred become the pending ones."""
        self.accepted.extend(result.accepted)
        self.last_reply = result.reply
        self.answered_by = (result.host, result.port)
        for recipient in result.accepted:
            self.deferred.pop(recipient, None)
        self.settle(dict(result.rejected))
        self.pending = [r for r, err in result.rejected.items() if self.policy.is_retryable(err)]
        if self.pending:
            self.history.append(self.deferred[self.pending[0]])

    def pending_errors(self) -> list[e.SMTPError]:
        """The errors the pending recipients were last refused with (else the last one)."""
        return [self.deferred[r] for r in self.pending if r in self.deferred] or self.history[-1:]

    def refusals(self) -> dict[str, e.SMTPError]:
        """Every recipient not accepted, with its last error."""
        return {**self.deferred, **self.final}


class _StopBeforeDeadline(stop_base):
    def __init__(
        self,
        policy: RetryPolicy,
        started: float,
        wait: Callable[[tenacity.RetryCallState], float],
    ) -> None:
        self.deadline = started + policy.timeout
        self.clock = policy.clock
        self.wait = wait

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self.clock() + self.wait(retry_state) > self.deadline


class _StillPending(e.TransientError):
    """Internal: the transaction went through, but some recipients were deferred."""


def _report_deliverability(policy: RetryPolicy, host: str, errors: list[e.SMTPError]) -> None:
    # Once per policy and host: a campaign that meets a blocklist sees one warning, not
    # one per message and attempt.
    for error in errors:
        for reason in reasons_of(error) & SLOW_REASONS:
            if (host, reason) in policy.reported:
                continue
            policy.reported.add((host, reason))
            logger.warning(
                "deliverability problem at %s: %s (%r); retrying on a long schedule",
                host,
                reason,
                error,
            )


class _Retry:
    """One ``send_with_retry`` call: its attempts, and the waits planned between them."""

    def __init__(self, client: Sender, envelope: Envelope, policy: RetryPolicy) -> None:
        self.client = client
        self.envelope = envelope
        self.policy = policy
        self.recipients = Recipients(envelope.recipients, policy)
        self.planned: dict[int, tuple[float, Reason]] = {}  # failed attempt -> wait, why

    async def attempt(self) -> None:
        books = self.recipients
        try:
            now = attrs.evolve(self.envelope, recipients=tuple(books.pending))
            result = await self.client.send_envelope(now)
        except e.SMTPError as error:
            if books.failed(error):
                # Refused for good by some, for now by others: retry the others.
                raise _StillPending(f"{len(books.pending)} recipient(s) deferred") from error
            raise
        books.succeeded(result)
        if books.pending:
            raise _StillPending(f"{len(books.pending)} recipient(s) deferred")

    def plan(self, state: tenacity.RetryCallState) -> tuple[float, Reason]:
        # The longest of the waits the refusals still pending call for, drawn once per
        # attempt (the jitter is random) for the wait, the deadline stop and before_sleep:
        # tenacity before 8.3 asks the stop before the wait and has no
        # ``RetryCallState.upcoming_sleep``; later releases ask the wait first.
        attempt = state.attempt_number
        if attempt not in self.planned:
            self.planned[attempt] = self.policy.wait(attempt, self.recipients.pending_errors())
        return self.planned[attempt]

    def wait(self, state: tenacity.RetryCallState) -> float:
        return self.plan(state)[0]

    def before_sleep(self, state: tenacity.RetryCallState) -> None:
        books = self.recipients
        error = books.history[-1]
        seconds, why = self.plan(state)
        logger.warning(
            "attempt %d failed (%r); retrying %d recipient(s) in %.1fs (%s)",
            state.attempt_number,
            error,
            len(books.pending),
            seconds,
            why,
        )
        refusals = [books.deferred.get(r, error) for r in books.pending]
        _report_deliverability(self.policy, str(self.client.host), refusals)
        if self.policy.on_retry is not None:
            event = RetryEvent(state.attempt_number, error, seconds, tuple(books.pending), why)
            self.policy.on_retry(event)

    async def run(self) -> SendResult:
        policy, books = self.policy, self.recipients
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(policy.attempts)
            | _StopBeforeDeadline(policy, policy.clock(), self.wait),
            wait=self.wait,
            retry=tenacity.retry_if_exception(policy.is_retryable),
            sleep=policy.sleep,
            before_sleep=self.before_sleep,
            reraise=True,
        )
        try:
            await retrying(self.attempt)
        except e.SMTPError:
            if not books.accepted:  # nobody has the message: raise the last real error
                error = e.enrich(
                    books.history[-1], attempts=books.history, rejected=books.refusals()
                )
                raise error from error.__cause__
        assert books.last_reply is not None  # an attempt went through: someone accepted
        host, port = books.answered_by
        return SendResult(
            tuple(books.accepted), books.refusals(), books.last_reply, host=host, port=port
        )


async def send_with_retry(client: Sender, envelope: Envelope, policy: RetryPolicy) -> SendResult:
    """Send ``envelope``, retrying transient failures for the recipients still pending.

    Returns a ``SendResult`` as soon as every recipient has accepted or been
    refused for good, or when the retries are spent and at least one recipient
    accepted (the others then carry their last error in ``rejected``).  Raises
    the last typed error, with ``attempts`` listing every failed attempt's
    error, when no recipient accepted at all.
    """
    return await _Retry(client, envelope, policy).run()
