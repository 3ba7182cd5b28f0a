"""An `arq <https://arq-docs.helpmanual.io>`_ task that sends with smtpx and reschedules
transient failures, for the recipients still pending only.

Install ``smtpx[arq]``. In the worker::

    from smtpx.contrib.arq import Mailer, send_mail

    async def startup(ctx):
        ctx["smtpx"] = Mailer("smtp.example.com", credentials=("app", password))

    async def shutdown(ctx):
        await ctx["smtpx"].close()

    class WorkerSettings:
        functions = [send_mail]
        on_startup = startup
        on_shutdown = shutdown

In the application: ``await enqueue_mail(redis, message)`` (an ``EmailMessage``, bytes or
str; sender and recipients from the headers unless given).

What a job does:

- Sends once, through the worker's :class:`smtpx.Pool`.
- Recipients refused for now (450 greylisting, 452, a 421, a lost connection...) are sent
  again by a **new job**, deferred by :func:`smtpx.suggested_delay` (which honours a
  "try again in N minutes" in the server's reply), carrying only those recipients:
  nobody who accepted gets a second copy.
- Permanent refusals are never retried: when nobody accepted, the job fails with the
  typed error (``AllRecipientsRejected``, ``AuthFailed``, ...); when some did, the
  refusals are in the job's result.
- ``DeliveryUnknown`` (the connection was lost after the final ".") is not retried: the
  server may have the message.
- After ``max_attempts`` attempts the job gives up: it fails with the last error if
  nobody accepted, else it reports the recipients given up on.

From a durable outbox instead (:class:`smtpx.outbox.Outbox`), each recipient's state
kept in its database by the worker that sends: add :func:`deliver_from_outbox` (one
attempt) and :func:`dispatch_outbox` (a pass of ``Outbox.dispatch``, as a cron job) to
the worker's functions, and put the outbox in its ``ctx``::

    from arq import cron
    from smtpx.outbox import Outbox
    from smtpx.contrib.arq import OUTBOX_KEY, deliver_from_outbox, dispatch_outbox

    async def startup(ctx):
        ctx["smtpx"] = Mailer("smtp.example.com", credentials=("app", password))
        ctx[OUTBOX_KEY] = Outbox("/var/lib/myapp/outbox.db")

    class WorkerSettings:
        functions = [deliver_from_outbox]
        cron_jobs = [cron(dispatch_outbox, second=set(range(0, 60, 5)))]
        on_startup = startup

In the application, after ``outbox.put(...)``:
``await outbox.dispatch(outbox_enqueuer(redis))``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypedDict

from arq.connections import ArqRedis

import smtpx
from smtpx import MessageInput, prepare
from smtpx.outbox import Outbox

__all__ = [
    "CONTEXT_KEY",
    "OUTBOX_KEY",
    "MailOutcome",
    "Mailer",
    "deliver_from_outbox",
    "dispatch_outbox",
    "enqueue_mail",
    "outbox_enqueuer",
    "send_mail",
]

logger = logging.getLogger("smtpx.contrib.arq")

CONTEXT_KEY = "smtpx"
"""Where :func:`send_mail` finds its :class:`Mailer` in the worker's ``ctx``."""
OUTBOX_KEY = "smtpx_outbox"
"""Where the outbox tasks find the worker's :class:`~smtpx.outbox.Outbox` in ``ctx``."""


class MailOutcome(TypedDict):
    """What a :func:`send_mail` job returns (its arq result)."""

    attempt: int
    accepted: list[str]
    rejected: dict[str, str]  # refused for good: recipient -> the typed error, as text
    retrying: list[str]  # handed to the next job
    retry_job: str | None  # that job's id
    defer: float | None  # seconds the next job was deferred by
    gave_up: dict[str, str]  # still deferred after max_attempts: recipient -> last error


class Mailer:
    """The SMTP side of the task: a pool of connections and the retry limits.

    :param max_attempts: attempts per recipient, the first included.
    :param backoff: the waits between attempts (a server's hint is honoured on top).
    :param task_name: the name the task is registered under in the worker (arq uses the
        function's name, ``send_mail``, unless you wrap it with ``arq.worker.func``).
    :param pool_options: those of :class:`smtpx.Pool` and :class:`smtpx.Client`.
    """

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        max_attempts: int = 8,
        backoff: smtpx.Backoff | None = None,
        task_name: str = "send_mail",
        **pool_options: Any,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self.backoff = backoff or smtpx.Backoff()
        self.task_name = task_name
        self.pool = smtpx.Pool(host, port, **pool_options)

    def delay(self, error: smtpx.SMTPError, attempt: int) -> float:
        """Seconds to defer the next attempt after ``error`` ended attempt ``attempt``."""
        return smtpx.suggested_delay(_hint_source(error), attempt, self.backoff)

    async def close(self) -> None:
        await self.pool.close()


def _longest_hint(errors: Iterable[smtpx.SMTPError]) -> smtpx.SMTPError:
    """The error whose reply asks for the longest wait (the first one if none does)."""
    candidates = list(errors)
    hinted = [c for c in candidates if smtpx.server_hint(c) is not None]
    return max(hinted, key=lambda c: smtpx.server_hint(c) or 0.0) if hinted else candidates[0]


def _hint_source(error: smtpx.SMTPError) -> smtpx.SMTPError:
    # AllRecipientsDeferred has no reply of its own: the hints are in its refusals.
    return _longest_hint([error, *error.rejected.values()])


def _describe(errors: Mapping[str, smtpx.SMTPError]) -> dict[str, str]:
    return {recipient: str(error) for recipient, error in errors.items()}


async def send_mail(
    ctx: dict[str, Any],
    message: bytes | str,
    *,
    sender: str | None = None,
    recipients: list[str] | None = None,
    attempt: int = 1,
) -> MailOutcome:
    """The arq task: send ``message``; reschedule what was deferred; see the module doc."""
    mailer: Mailer = ctx[CONTEXT_KEY]
    envelope = prepare(message, sender=sender, recipients=recipients)  # bad input: fails now
    everyone = list(envelope.recipients)
    accepted: list[str] = []
    deferred: dict[str, smtpx.SMTPError] = {}
    refused: dict[str, smtpx.SMTPError] = {}
    error: smtpx.SMTPError | None = None
    try:
        # envelope.data: the exact bytes, with any Date/Message-ID added once, so that a
        # follow-up attempt sends the same Message-ID and not a new one.
        result = await mailer.pool.send(envelope.data, sender=envelope.sender, recipients=everyone)
    except smtpx.SMTPError as exc:
        error = exc
        for recipient, refusal in exc.rejected.items():
            (deferred if smtpx.is_retryable(refusal) else refused)[recipient] = refusal
        if isinstance(exc, smtpx.RecipientsRefused):
            pass  # every recipient refused: each one's own refusal decides
        elif smtpx.is_retryable(exc):
            # Nobody refused and nobody named: the failure came before any RCPT
            # (connecting, MAIL), so it concerns everyone.
            undelivered = exc.undelivered if (exc.undelivered or exc.rejected) else everyone
            deferred.update({r: exc for r in undelivered if r not in deferred})
        else:
            raise  # permanent, a usage error, or DeliveryUnknown: never retried
        if not deferred:
            raise
    else:
        accepted = list(result.accepted)
        for recipient, refusal in result.rejected.items():
            (deferred if smtpx.is_retryable(refusal) else refused)[recipient] = refusal
    pending = [r for r in everyone if r in deferred]
    outcome = MailOutcome(
        attempt=attempt,
        accepted=accepted,
        rejected=_describe(refused),
        retrying=[],
        retry_job=None,
        defer=None,
        gave_up={},
    )
    if not pending:
        return outcome
    cause = error or _longest_hint(deferred[r] for r in pending)
    if attempt >= mailer.max_attempts:
        logger.warning("giving up after %d attempts on %s: %r", attempt, pending, cause)
        if error is not None:
            raise error  # nobody accepted: the job fails with the typed error
        outcome["gave_up"] = _describe({r: deferred[r] for r in pending})
        return outcome
    delay = mailer.delay(cause, attempt)
    redis: ArqRedis = ctx["redis"]
    # The follow-up's id derives from this job's: should arq run this job again (a worker
    # killed before it finished), the follow-up is not enqueued twice.
    job = await redis.enqueue_job(
        mailer.task_name,
        envelope.data,
        sender=envelope.sender,
        recipients=pending,
        attempt=attempt + 1,
        _job_id=f"{ctx.get('job_id') or 'smtpx'}:retry",
        _defer_by=delay,
    )
    logger.warning(
        "attempt %d: %d recipient(s) deferred (%r); next attempt in %.1fs",
        attempt,
        len(pending),
        cause,
        delay,
    )
    outcome["retrying"] = pending
    outcome["retry_job"] = job.job_id if job is not None else None
    outcome["defer"] = delay
    return outcome


async def enqueue_mail(
    redis: ArqRedis,
    message: MessageInput,
    *,
    sender: str | None = None,
    recipients: Iterable[str] | None = None,
    task_name: str = "send_mail",
    **job_options: Any,
) -> str | None:
    """Enqueue a :func:`send_mail` job; returns its id (None if that ``_job_id`` exists).

    ``job_options`` are arq's (``_job_id``, ``_defer_by``, ``_queue_name``...). The
    envelope is checked now, so a bad address fails here and not in the worker.
    """
    # The exact bytes, and the envelope from the headers now: Bcc is no longer in them.
    envelope = prepare(message, sender=sender, recipients=recipients)
    job = await redis.enqueue_job(
        task_name,
        envelope.data,
        sender=envelope.sender,
        recipients=list(envelope.recipients),
        **job_options,
    )
    return job.job_id if job is not None else None


async def deliver_from_outbox(ctx: dict[str, Any], attempt: int) -> dict[str, str] | None:
    """The arq task for one attempt ``Outbox.dispatch`` handed out: sent through the
    worker's pool, each recipient's state recorded in the outbox after every reply.
    Returns each recipient's state; None when the attempt was not this job's to send
    (the job ran twice, or it was taken back after its lease)."""
    outbox: Outbox = ctx[OUTBOX_KEY]
    mailer: Mailer = ctx[CONTEXT_KEY]
    states = await outbox.deliver(attempt, mailer.pool)
    return None if states is None else {r: state.value for r, state in states.items()}


async def dispatch_outbox(ctx: dict[str, Any]) -> int:
    """One ``Outbox.dispatch`` pass in the worker (a cron job): queues a
    :func:`deliver_from_outbox` job per attempt due; returns how many."""
    outbox: Outbox = ctx[OUTBOX_KEY]
    return await outbox.dispatch(outbox_enqueuer(ctx["redis"]))


def outbox_enqueuer(
    redis: ArqRedis, *, function: str = "deliver_from_outbox", **job_options: Any
) -> Callable[[int], Awaitable[object]]:
    """What ``Outbox.dispatch`` calls to queue one attempt as a
    :func:`deliver_from_outbox` job (``job_options``: ``_queue_name``...)."""

    async def enqueue(attempt: int) -> object:
        return await redis.enqueue_job(function, attempt, **job_options)

    return enqueue
