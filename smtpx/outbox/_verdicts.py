"""From one attempt's outcome to a verdict per recipient (pure: no I/O, no clock).

The rules, in order, for each recipient of the attempt:

1. A reply that names the recipient stands: accepted (2xx after the end), or the
   RCPT refusal in ``rejected``.
2. ``DeliveryUnknown``, or any failure *without a reply* (lost connection, time-out,
   garbled reply) after this attempt recorded that the end may have left for the
   recipient, is ``delivery_unknown``: the server may have the message.  The client
   decides this for most shapes already; the outbox's own record covers the rest (a
   loss while reading the replies of a pipelined write that carried the whole message).
3. A failure of the session rather than of the message -- authentication, TLS, a
   relay host that does not resolve, credentials that would cross in plain text --
   defers the recipient even when it is permanent for a direct send: one wrong
   password must not refuse a whole queue for good.  (Postfix does the same for a 535:
   ``smtp_sasl_auth_soft_bounce = yes``, its default.)
4. Otherwise a retryable error defers the recipient (for the delay smtpx suggests,
   the server's hint honoured), until the policy's attempts are spent (then
   ``expired``); anything else refuses it for good.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import smtpx
from smtpx.outbox._values import Failure, State, Verdict

__all__ = ["verdicts"]

# Failures of the connection's set-up: they say nothing about the message or recipients.
SESSION_FAILURES = (
    smtpx.AuthError,
    smtpx.TLSError,
    smtpx.HostNotFound,
    smtpx.PlaintextAuthRefused,
)


def verdicts(
    recipients: Collection[str],
    outcome: smtpx.SendResult | smtpx.SMTPError,
    *,
    end_written: Collection[str],
    attempts: Mapping[str, int],
    policy: smtpx.RetryPolicy,
    now: float,
) -> dict[str, Verdict]:
    """The verdict for every one of ``recipients`` after ``outcome``."""
    decided: dict[str, Verdict] = {}
    if isinstance(outcome, smtpx.SendResult):
        for address in outcome.accepted:
            decided[address] = Verdict(State.ACCEPTED)
        refusals: Mapping[str, smtpx.SMTPError] = outcome.rejected
        failure: smtpx.SMTPError | None = None
    else:
        refusals, failure = outcome.rejected, outcome
    for address, refusal in refusals.items():
        decided[address] = _refused(refusal, attempts.get(address, 1), policy, now)
    for address in recipients:
        if address in decided:
            continue
        if failure is None:  # a SendResult that names neither: nothing says it arrived
            failure = smtpx.DeliveryUnknown("the result did not name this recipient")
        unknown = address in end_written and _no_answer(failure)
        if unknown and not policy.retry_delivery_unknown:
            decided[address] = Verdict(State.DELIVERY_UNKNOWN, Failure.of(failure))
            continue
        decided[address] = _refused(failure, attempts.get(address, 1), policy, now)
    return decided


def _no_answer(error: smtpx.SMTPError) -> bool:
    """True when nothing the server said decides the outcome."""
    if isinstance(error, smtpx.DeliveryUnknown | smtpx.ProtocolError):
        return True
    return error.reply is None and isinstance(error, smtpx.NetworkError)


def _refused(
    error: smtpx.SMTPError, attempt: int, policy: smtpx.RetryPolicy, now: float
) -> Verdict:
    failure = Failure.of(error)
    if isinstance(error, smtpx.DeliveryUnknown) and not policy.retry_delivery_unknown:
        return Verdict(State.DELIVERY_UNKNOWN, failure)
    if not (policy.is_retryable(error) or isinstance(error, SESSION_FAILURES)):
        return Verdict(State.REFUSED, failure)
    if attempt >= policy.attempts:
        return Verdict(State.EXPIRED, failure)
    delay = smtpx.suggested_delay(error, attempt, policy.backoff)
    return Verdict(State.DEFERRED, failure, due=now + delay)
