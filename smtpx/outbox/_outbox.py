"""``Outbox``: messages stored on disk until every recipient has an answer."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import inspect
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType

import smtpx
from smtpx.outbox._bodies import Bodies
from smtpx.outbox._errors import storage_errors
from smtpx.outbox._store import Store
from smtpx.outbox._values import MessageStatus, OutboxStats, RecipientStatus, State
from smtpx.outbox._worker import Worker

__all__ = ["DEFAULT_MAX_AGE", "DEFAULT_POLICY", "INLINE_LIMIT", "Outbox"]

DEFAULT_MAX_AGE = 5 * 24 * 3600.0  # five days, as MTAs keep a queued message
DEFAULT_POLICY = smtpx.RetryPolicy(
    attempts=20, backoff=smtpx.Backoff(initial=30.0, maximum=3600.0)
)
INLINE_LIMIT = 64 * 1024  # larger messages are stored as files beside the database

logger = logging.getLogger("smtpx.outbox")


def _seconds(name: str, value: object, *, positive: bool = True) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (positive and value == 0)
    ):
        raise smtpx.UsageError(f"{name} must be a positive number of seconds, not {value!r}")
    return float(value)


class Outbox:
    """A durable outbox in one SQLite file: ``put`` stores, ``run`` delivers.

    ``await outbox.put(message, recipients=..., key=...)`` returns once the message is
    on disk.  ``await outbox.run(client_or_pool)`` sends what is due, records every
    recipient's outcome, and never sends again to a recipient whose message may have
    reached the server without an answer (``delivery_unknown``: see ``unknown()`` and
    ``release()``).

    :param path: the database file (created if missing); large messages go in the
        directory ``<path>-bodies`` beside it.
    :param max_age: seconds after ``put`` at which recipients not sent yet expire.
    :param retry: attempts and backoff per recipient (``RetryPolicy``; its ``timeout``,
        ``sleep`` and ``clock`` are not used: ``max_age``, ``sleep`` and ``clock`` are).
    :param inline_limit: messages up to this many octets are stored in the database.
    :param busy_timeout: seconds to wait for another process's write to the database.
    :param fsync: flush every commit to disk (SQLite ``synchronous=FULL``), so a stored
        message and every recorded outcome survive a power cut.  ``False`` survives a
        killed process only, and stores about ten times faster (docs/outbox.md).
    :param clock: wall-clock time (``time.time``); ``sleep``: how ``run`` waits.
    :param poll_interval: how often an idle ``run`` looks for messages other processes put.
    :param trace: called with each SQL statement run (SQLite's trace callback).
    :param lease: seconds an attempt handed to a task queue (``dispatch``) is its
        worker's: one not delivered within it is taken back by the next ``dispatch``
        (``deliver`` gives up sending after half of it, so a live one never is).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_age: float = DEFAULT_MAX_AGE,
        retry: smtpx.RetryPolicy | None = None,
        inline_limit: int = INLINE_LIMIT,
        busy_timeout: float = 5.0,
        fsync: bool = True,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        poll_interval: float = 1.0,
        trace: Callable[[str], None] | None = None,
        lease: float = 900.0,
    ) -> None:
        self.path = Path(path)
        self.lease = _seconds("lease", lease)
        self.max_age = _seconds("max_age", max_age)
        if retry is not None and not isinstance(retry, smtpx.RetryPolicy):
            raise smtpx.UsageError(f"retry must be a RetryPolicy or None, not {retry!r}")
        self.retry = retry or DEFAULT_POLICY
        if type(inline_limit) is not int or inline_limit < 0:
            raise smtpx.UsageError(f"inline_limit must be an int >= 0, not {inline_limit!r}")
        self.inline_limit = inline_limit
        self.poll_interval = _seconds("poll_interval", poll_interval)
        if not isinstance(fsync, bool):
            raise smtpx.UsageError(f"fsync must be True or False, not {fsync!r}")
        self._clock, self._sleep = clock, sleep
        with storage_errors():
            self._store = Store(
                self.path,
                timeout=_seconds("busy_timeout", busy_timeout),
                fsync=fsync,
                trace=trace,
            )
        self._bodies = Bodies(self.path.with_name(self.path.name + "-bodies"))
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._running = False

    def __repr__(self) -> str:
        return f"<smtpx.Outbox {str(self.path)!r}>"

    # -- life cycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the database (a ``run`` under way must have returned)."""
        self._store.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Outbox:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- putting --------------------------------------------------------------------------

    async def put(
        self,
        message: smtpx.MessageInput,
        *,
        sender: str | None = None,
        recipients: Iterable[str] | None = None,
        key: str | None = None,
        max_age: float | None = None,
    ) -> int:
        """Store ``message`` for its recipients; returns its id once it is on disk.

        Sender and recipients come from the headers unless given, exactly as for
        ``Client.send`` (checked now: a bad address raises ``InvalidEnvelope`` here).
        A second ``put`` with the same ``key`` stores nothing and returns the first id.
        """
        if key is not None and (not isinstance(key, str) or not key or not key.isprintable()):
            raise smtpx.UsageError(f"key must be a non-empty printable str, not {key!r}")
        age = self.max_age if max_age is None else _seconds("max_age", max_age)
        envelope = smtpx.prepare(message, sender=sender, recipients=recipients)
        with storage_errors():
            if key is not None and (existing := self._store.find_key(key)) is not None:
                return existing
            size = envelope.size
            body_file = None
            if size > self.inline_limit:  # written part by part: a large message is not copied
                body_file = await asyncio.to_thread(self._bodies.write, *envelope.parts)
            now = self._clock()
            try:
                message_id, stored = self._store.add(
                    key=key,
                    sender=envelope.sender,
                    recipients=envelope.recipients,
                    size=size,
                    body=None if body_file else envelope.data,
                    body_file=body_file,
                    now=now,
                    expires=now + age,
                )
            except BaseException:
                if body_file:
                    self._bodies.remove(body_file)
                raise
            if not stored and body_file:  # another process put the same key meanwhile
                self._bodies.remove(body_file)
        self._wake.set()
        return message_id

    # -- delivering -----------------------------------------------------------------------

    async def run(
        self,
        via: smtpx.Client | smtpx.Pool,
        *,
        concurrency: int | None = None,
        until_idle: bool = False,
        grace: float = 30.0,
    ) -> None:
        """Deliver what is due through ``via`` until ``stop()`` (or, with ``until_idle``,
        until no recipient is left to send).

        ``concurrency`` messages are sent at once (default: a pool's ``size``, else 1).
        One ``run`` per database at a time, across processes (a lock file beside it).
        On ``stop()``, attempts under way get ``grace`` seconds to finish.
        """
        if not isinstance(via, smtpx.Client | smtpx.Pool):
            raise smtpx.UsageError(f"run() sends through a Client or a Pool, not {via!r}")
        if concurrency is None:
            concurrency = via.size if isinstance(via, smtpx.Pool) else 1
        if type(concurrency) is not int or concurrency < 1:
            raise smtpx.UsageError(f"concurrency must be an int >= 1, not {concurrency!r}")
        if self._running:
            raise smtpx.UsageError("this outbox is already running")
        self._running = True
        self._stop.clear()
        try:
            with self._worker_lock():
                worker = self._worker(via, concurrency, _seconds("grace", grace, positive=False))
                await worker.run(until_idle=until_idle)
        finally:
            self._running = False

    async def dispatch(self, enqueue: Callable[[int], object], *, limit: int = 100) -> int:
        """Hand what is due to a task queue: claim up to ``limit`` messages' due recipients,
        one attempt each, and call ``enqueue(attempt)`` for each attempt (awaited when it
        returns an awaitable); a worker then runs ``deliver(attempt, ...)``.  Returns how
        many attempts were enqueued.

        Each pass also expires what is past ``max_age`` and takes back the attempts whose
        ``lease`` ran out (a worker killed, a task lost): as after a killed ``run``, a
        recipient whose end may have left becomes ``delivery_unknown``, the others are
        due again.  Call it after ``put`` and periodically (a beat or cron task).  Use
        either ``dispatch`` or ``run`` on one database, not both.
        """
        if type(limit) is not int or limit < 1:
            raise smtpx.UsageError(f"limit must be an int >= 1, not {limit!r}")
        now = self._clock()
        with storage_errors():
            self._store.recover(now, started_before=now - self.lease)
            _, files = self._store.expire(now)
            for name in files:
                self._bodies.remove(name)
            jobs = self._store.due(now, limit, ())
        for done, job in enumerate(jobs):
            try:
                queued = enqueue(job.attempt)
                if inspect.isawaitable(queued):
                    await queued
            except BaseException:
                with storage_errors():  # not queued: due again at once
                    for left in jobs[done:]:
                        self._store.abandon(left, now, now)
                raise
        return len(jobs)

    async def deliver(
        self, attempt: int, via: smtpx.Client | smtpx.Pool
    ) -> dict[str, State] | None:
        """Deliver one attempt that ``dispatch`` handed out, through ``via``, recording
        each recipient's outcome as ``run`` does (the end marker before the end of the
        message, every verdict after the reply).  Returns each recipient's state
        afterwards; None when the attempt is not this worker's to send: another
        ``deliver`` took it first (a task run twice, or run again after its worker
        died mid-send), or ``dispatch`` took it back after its lease.
        """
        if not isinstance(via, smtpx.Client | smtpx.Pool):
            raise smtpx.UsageError(f"deliver() sends through a Client or a Pool, not {via!r}")
        with storage_errors():
            job = self._store.take(attempt, self._clock())
        if job is None:
            return None
        worker = self._worker(via, 1, 0.0)
        try:
            # well inside the lease: a send still under way is never taken back
            async with asyncio.timeout(self.lease / 2):
                await worker.deliver(job)
        except TimeoutError:
            logger.warning(
                "attempt %d: still sending after %.0fs, stopped", attempt, self.lease / 2
            )
        with storage_errors():
            status = self._store.status(job.message_id)
        if status is None:
            return None
        return {r.address: r.state for r in status.recipients if r.address in job.recipients}

    def _worker(self, via: smtpx.Client | smtpx.Pool, concurrency: int, grace: float) -> Worker:
        return Worker(
            store=self._store,
            bodies=self._bodies,
            via=via,
            concurrency=concurrency,
            policy=self.retry,
            clock=self._clock,
            sleep=self._sleep,
            poll_interval=self.poll_interval,
            wake=self._wake,
            stop=self._stop,
            grace=grace,
        )

    def stop(self) -> None:
        """Ask ``run`` to return: it claims nothing new and lets attempts under way end."""
        self._stop.set()

    @contextlib.contextmanager
    def _worker_lock(self) -> Iterator[None]:
        # Two workers on one database would each take the other's attempts for dead ones.
        lock_path = self.path.with_name(self.path.name + ".lock")
        with storage_errors():
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise smtpx.UsageError(
                    f"another worker is running on {self.path} (it holds {lock_path})"
                ) from None
            yield
        finally:
            os.close(fd)  # releases the lock; a killed process releases it too

    # -- views and decisions --------------------------------------------------------------

    def stats(self) -> OutboxStats:
        """Counts of messages and of recipients in each state."""
        with storage_errors():
            return self._store.stats()

    def status(self, message_id: int) -> MessageStatus | None:
        """A stored message and each recipient's state, or None for an unknown id."""
        with storage_errors():
            return self._store.status(message_id)

    def unknown(self) -> list[RecipientStatus]:
        """Recipients whose message may have been delivered without an answer: decide
        each one (``release`` sends it again), as no retry will."""
        with storage_errors():
            return self._store.unknown()

    def release(self, message_id: int, recipients: Iterable[str] | None = None) -> int:
        """Send message ``message_id`` again to its ``delivery_unknown`` recipients (all,
        or those listed): for when you know the server did not take it.  Returns how
        many were released."""
        chosen = None if recipients is None else set(recipients)
        with storage_errors():
            released = self._store.release(message_id, chosen, self._clock())
        if released:
            self._wake.set()
        return released

    def check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` of the database: ``"ok"`` when sound."""
        with storage_errors():
            return self._store.integrity()
