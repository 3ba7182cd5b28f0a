"""A `Celery <https://docs.celeryq.dev>`_ task that sends with smtpx and retries transient
failures, for the recipients still pending only.

Install ``smtpx[celery]``. Where the Celery app is defined (the worker imports it)::

    from smtpx.contrib.celery import Mailer, register

    mailer = Mailer("smtp.example.com", credentials=("app", password), max_attempts=8)
    send_mail = register(app, mailer)  # the task, named "smtpx.send_mail"

In the application: ``enqueue_mail(send_mail, message)`` (an ``EmailMessage``, bytes or
str; sender and recipients from the headers unless given) returns the ``AsyncResult``.

What the task does:

- Sends once, over the worker process's connection (opened on first use, reopened when
  the server drops it).
- Recipients refused for now (450 greylisting, 452, a 421, a lost connection before the
  final ".") are sent again by Celery's ``retry``, counted down by
  :func:`smtpx.suggested_delay` (which honours a "try again in N minutes" in the
  server's reply), carrying only those recipients: nobody who accepted gets a second copy.
- Permanent refusals are never retried: when nobody accepted, the task fails with the
  typed error (``AllRecipientsRejected``, ``AuthFailed``, ...); when some did, the
  refusals are in its result.
- ``DeliveryUnknown`` (the connection was lost after the final ".") fails the task
  without a retry: the server may have the message.
- After ``max_attempts`` attempts it gives up: it fails with the last error if nobody
  accepted, else its result lists the recipients given up on.

The result (:class:`MailOutcome`, a dict) adds up every attempt of the task.

From a durable outbox instead (:class:`smtpx.outbox.Outbox`), with every recipient's
state kept in its database by the worker that sends::

    deliver, dispatch = register_outbox(app, "/var/lib/myapp/outbox.db", mailer)

    # in the application, after outbox.put(...):
    await outbox.dispatch(outbox_enqueuer(deliver))
    # and every few seconds, to hand out retries and take back lost attempts:
    app.conf.beat_schedule = {"smtpx-outbox": {"task": dispatch.name, "schedule": 5.0}}

``deliver`` runs :meth:`Outbox.deliver <smtpx.outbox.Outbox.deliver>` for one attempt
in whichever worker process takes it; retries follow the outbox's policy, handed out by
the next ``dispatch``, not Celery's.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypedDict, TypeVar

from celery import Celery, Task  # type: ignore[import-untyped]
from celery.result import AsyncResult  # type: ignore[import-untyped]

import smtpx
from smtpx import MessageInput, prepare
from smtpx.loopthread import LoopThread
from smtpx.outbox import Outbox

__all__ = [
    "DISPATCH_TASK_NAME",
    "OUTBOX_TASK_NAME",
    "TASK_NAME",
    "MailOutcome",
    "Mailer",
    "enqueue_mail",
    "outbox_enqueuer",
    "register",
    "register_outbox",
]

T = TypeVar("T")

logger = logging.getLogger("smtpx.contrib.celery")

TASK_NAME = "smtpx.send_mail"
"""The name :func:`register` gives the task unless told otherwise."""
OUTBOX_TASK_NAME = "smtpx.outbox_deliver"
"""The name :func:`register_outbox` gives the task that delivers one outbox attempt."""
DISPATCH_TASK_NAME = "smtpx.outbox_dispatch"
"""The name :func:`register_outbox` gives the task that runs ``Outbox.dispatch``."""


class MailOutcome(TypedDict):
    """What the task returns (its Celery result), over all its attempts."""

    attempts: int
    accepted: list[str]
    rejected: dict[str, str]  # not sent, and no retry would help: recipient -> the error
    unknown: list[str]  # DeliveryUnknown on a retry: the server may have the message
    gave_up: dict[str, str]  # still deferred after max_attempts: recipient -> last error
    delays: list[float]  # the countdown before each retry, in seconds


class Mailer:
    """The SMTP side of the task: where to send, and the retry limits.

    :param max_attempts: attempts per recipient, the first included.
    :param backoff: the waits between attempts (a server's hint is honoured on top).
    :param client_options: those of :class:`smtpx.Client` (``credentials``, ``tls``...).
    """

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        max_attempts: int = 8,
        backoff: smtpx.Backoff | None = None,
        **client_options: Any,
    ) -> None:
        if type(max_attempts) is not int or max_attempts < 1:
            raise smtpx.UsageError(f"max_attempts must be an int of at least 1: {max_attempts!r}")
        self.max_attempts = max_attempts
        self.backoff = backoff or smtpx.Backoff()
        # checked now, in the application and the worker alike, not at the first send
        self.config = smtpx.ClientConfig.from_options(host, port, client_options)
        self._client: smtpx.SyncClient | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def client(self) -> smtpx.SyncClient:
        """This process's client: made on first use, after the worker has forked."""
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                self._client, self._pid = smtpx.SyncClient(config=self.config), os.getpid()
            return self._client

    def delay(self, error: smtpx.SMTPError, attempt: int) -> float:
        """Seconds before the next attempt after ``error`` ended attempt ``attempt``."""
        return smtpx.suggested_delay(_hint_source(error), attempt, self.backoff)

    def close(self) -> None:
        """QUIT this process's connection, if open."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.quit()


def _hint_source(error: smtpx.SMTPError) -> smtpx.SMTPError:
    """The error whose reply asks for the longest wait: AllRecipientsDeferred has no reply
    of its own, its refusals have."""
    candidates = [error, *error.rejected.values()]
    hinted = [c for c in candidates if smtpx.server_hint(c) is not None]
    return max(hinted, key=lambda c: smtpx.server_hint(c) or 0.0) if hinted else error


def _describe(errors: Mapping[str, smtpx.SMTPError]) -> dict[str, str]:
    return {recipient: str(error) for recipient, error in errors.items()}


def _attempt(
    mailer: Mailer, data: bytes, sender: str, recipients: list[str]
) -> tuple[list[str], dict[str, smtpx.SMTPError], dict[str, smtpx.SMTPError]]:
    """Send once: (accepted, deferred, refused), each refusal under its recipient.

    Raises what must not be retried: a permanent failure of the whole send, a usage
    error, ``DeliveryUnknown``; and a transient one that names no recipient to retry.
    """
    try:
        result = mailer.client().send(data, sender=sender, recipients=recipients)
    except smtpx.SMTPError as error:
        deferred: dict[str, smtpx.SMTPError] = {}
        refused: dict[str, smtpx.SMTPError] = {}
        for recipient, refusal in error.rejected.items():
            (deferred if smtpx.is_retryable(refusal) else refused)[recipient] = refusal
        if not isinstance(error, smtpx.RecipientsRefused):
            if not smtpx.is_retryable(error):
                raise  # permanent, a usage error, or DeliveryUnknown: never retried
            # Nobody refused and nobody named: the failure came before any RCPT
            # (connecting, MAIL), so it concerns everyone.
            undelivered = (
                error.undelivered if (error.undelivered or error.rejected) else recipients
            )
            deferred.update({r: error for r in undelivered if r not in deferred})
        if not deferred:
            raise
        return [], deferred, refused
    deferred, refused = {}, {}
    for recipient, refusal in result.rejected.items():
        (deferred if smtpx.is_retryable(refusal) else refused)[recipient] = refusal
    return list(result.accepted), deferred, refused


def register(app: Celery, mailer: Mailer, *, name: str = TASK_NAME, **task_options: Any) -> Task:
    """Register the sending task on ``app``, sending through ``mailer``; returns it.

    ``task_options`` are Celery's (``queue``, ``acks_late``...). Retries are the task's
    own (``max_attempts``): do not add ``autoretry_for``, which would resend to every
    recipient and after ``DeliveryUnknown``.
    """

    @app.task(name=name, bind=True, max_retries=mailer.max_attempts - 1, **task_options)  # type: ignore[untyped-decorator]
    def send_mail(
        self: Task,
        data: bytes,
        sender: str,
        recipients: list[str],
        progress: MailOutcome | None = None,
    ) -> MailOutcome:
        try:
            return _send_mail(self, mailer, data, sender, recipients, progress)
        except smtpx.SMTPError as error:
            storable = _storable(error)
            if storable is error:
                raise
            raise storable from error

    task: Task = send_mail
    return task


def _send_mail(
    task: Task,
    mailer: Mailer,
    data: bytes,
    sender: str,
    recipients: list[str],
    progress: MailOutcome | None,
) -> MailOutcome:
    """One attempt of the task; raises Celery's Retry for the recipients still pending."""
    outcome = progress or MailOutcome(
        attempts=0, accepted=[], rejected={}, unknown=[], gave_up={}, delays=[]
    )
    outcome["attempts"] += 1
    attempt = outcome["attempts"]
    try:
        accepted, deferred, refused = _attempt(mailer, data, sender, recipients)
    except smtpx.SMTPError as error:
        if not outcome["accepted"]:
            raise  # nobody has the message: the task fails with the typed error
        _settle(outcome, error, recipients)  # some have it: the task's result says who
        return outcome
    outcome["accepted"] += accepted
    outcome["rejected"].update(_describe(refused))
    pending = [r for r in recipients if r in deferred]
    if not pending:
        return outcome
    errors = {r: deferred[r] for r in pending}
    if attempt >= mailer.max_attempts:
        logger.warning("giving up after %d attempts on %s", attempt, pending)
        outcome["gave_up"] = _describe(errors)
        if not outcome["accepted"]:
            raise _last_error(errors)
        return outcome
    cause = max(errors.values(), key=lambda error: smtpx.server_hint(error) or 0.0)
    countdown = mailer.delay(cause, attempt)
    outcome["delays"].append(countdown)
    logger.warning(
        "attempt %d: %d recipient(s) deferred (%r); next attempt in %.1fs",
        attempt,
        len(pending),
        cause,
        countdown,
    )
    raise task.retry(
        args=(data, sender, pending), kwargs={"progress": outcome}, countdown=countdown
    )


def _storable(error: smtpx.SMTPError) -> smtpx.SMTPError:
    """``error``, or the same failure as a class a result backend finds by its name.

    With the JSON result serializer Celery stores an exception as its module, class name
    and arguments, and rebuilds it from them. The group raised when a lone recipient was
    refused is of a class made on the fly (also that recipient's own class): stored as
    the plain ``AllRecipientsDeferred`` / ``AllRecipientsRejected``, it is rebuilt as
    one, not as an unknown class.
    """
    kind: Any = sys.modules.get(type(error).__module__)
    for part in type(error).__qualname__.split("."):
        kind = getattr(kind, part, None)
    if kind is type(error) or not isinstance(error, smtpx.RecipientsRefused):
        return error
    plain = smtpx.AllRecipientsDeferred if error.retryable else smtpx.AllRecipientsRejected
    stored = plain(refusals=error.rejected, command=error.command)
    return smtpx.errors.enrich(stored, undelivered=error.undelivered, attempts=error.attempts)


def _settle(outcome: MailOutcome, error: smtpx.SMTPError, recipients: list[str]) -> None:
    """Record a failure that is not retried, after earlier attempts delivered to some."""
    if isinstance(error, smtpx.DeliveryUnknown):
        outcome["unknown"] += [r for r in recipients if r not in error.rejected]
        outcome["rejected"].update(_describe(error.rejected))
        return
    refusals = dict(error.rejected)
    for recipient in recipients:
        refusals.setdefault(recipient, error)
    outcome["rejected"].update(_describe(refusals))


def _last_error(errors: Mapping[str, smtpx.SMTPError]) -> smtpx.SMTPError:
    """What a task that nobody accepted fails with after its last attempt: the failure of
    the whole send, or every recipient's own refusal."""
    whole = next((error for error in errors.values() if error.recipient is None), None)
    return whole or smtpx.errors.recipients_refused(errors)


def enqueue_mail(
    task: Task,
    message: MessageInput,
    *,
    sender: str | None = None,
    recipients: Iterable[str] | None = None,
    **apply_options: Any,
) -> AsyncResult:
    """Queue ``message`` on the task :func:`register` returned; returns its result.

    ``apply_options`` are Celery's ``apply_async`` options (``countdown``, ``queue``...).
    The envelope is checked now, so a bad address fails here and not in the worker; the
    exact bytes are queued with it, so Bcc recipients get the message without the header.
    """
    envelope = prepare(message, sender=sender, recipients=recipients)
    result: AsyncResult = task.apply_async(
        args=(envelope.data, envelope.sender, list(envelope.recipients)), **apply_options
    )
    return result


class _OutboxProcess:
    """This worker process's outbox database and SMTP connection, on a loop thread of its
    own (``smtpx.loopthread``), all made on first use after the worker has forked (none
    of them survives a fork)."""

    def __init__(self, path: Path, mailer: Mailer, options: dict[str, Any]) -> None:
        self.path, self.mailer, self.options = path, mailer, options
        self._lock = threading.Lock()
        self._pid = 0
        self._thread: LoopThread | None = None
        self._outbox: Outbox | None = None
        self._client: smtpx.Client | None = None

    async def _open(self) -> None:
        # on the loop's thread: SQLite connections serve the thread that made them
        self._outbox = Outbox(self.path, **self.options)
        self._client = smtpx.Client(config=self.mailer.config)

    def run(self, work: Callable[[Outbox, smtpx.Client], Awaitable[T]]) -> T:
        with self._lock:  # one task at a time per process (a threads pool too)
            if self._pid != os.getpid() or self._thread is None:
                self._thread = LoopThread("smtpx-celery-outbox")
                self._thread.run(self._open())
                self._pid = os.getpid()
            outbox, client = self._outbox, self._client
            assert outbox is not None and client is not None

            async def job() -> T:
                return await work(outbox, client)

            return self._thread.run(job())


def register_outbox(
    app: Celery,
    path: str | os.PathLike[str],
    mailer: Mailer,
    *,
    name: str = OUTBOX_TASK_NAME,
    dispatch_name: str = DISPATCH_TASK_NAME,
    limit: int = 100,
    **outbox_options: Any,
) -> tuple[Task, Task]:
    """Register the two outbox tasks on ``app``; returns ``(deliver, dispatch)``.

    ``deliver(attempt)`` sends one attempt that ``Outbox.dispatch`` handed out, through
    ``mailer``'s server, recording each recipient's state in the outbox at ``path`` after
    every reply; its result maps each recipient to its state (None: the attempt was not
    this run's to send, e.g. the task ran twice). ``dispatch()`` runs one
    ``Outbox.dispatch`` pass in a worker, queueing ``deliver`` tasks (up to ``limit``):
    schedule it with Celery beat. ``outbox_options`` are :class:`~smtpx.outbox.Outbox`'s
    (``retry``, ``max_age``, ``lease``...); give the application's ``Outbox`` the same.
    Every worker must reach the database file (one machine, or a disk they share with
    working file locks).
    """
    process = _OutboxProcess(Path(path), mailer, outbox_options)

    @app.task(name=name)  # type: ignore[untyped-decorator]
    def deliver(attempt: int) -> dict[str, str] | None:
        states = process.run(lambda outbox, client: outbox.deliver(attempt, client))
        return None if states is None else {r: state.value for r, state in states.items()}

    @app.task(name=dispatch_name)  # type: ignore[untyped-decorator]
    def dispatch() -> int:
        enqueue = outbox_enqueuer(deliver)
        return process.run(lambda outbox, client: outbox.dispatch(enqueue, limit=limit))

    tasks: tuple[Task, Task] = (deliver, dispatch)
    return tasks


def outbox_enqueuer(deliver: Task, **apply_options: Any) -> Callable[[int], None]:
    """What ``Outbox.dispatch`` calls to queue one attempt on the ``deliver`` task
    :func:`register_outbox` returned (``apply_options``: ``queue``, ``priority``...)."""

    def enqueue(attempt: int) -> None:
        deliver.apply_async(args=(attempt,), **apply_options)

    return enqueue
