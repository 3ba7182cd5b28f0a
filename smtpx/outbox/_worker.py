"""The delivery loop: claim due recipients, send, record each recipient's outcome.

Order of writes for one attempt, each committed before the next step:

1. claim: the due recipients get the attempt's id (``attempts`` + 1);
2. from the client's ``before_end_of_message`` hook: "the end may leave" for the
   recipients it names -- before one octet of the end is written;
3. settle: each recipient's verdict (``_verdicts``), the attempt's id cleared.

A worker killed anywhere leaves rows with an attempt id; the next ``run`` turns
those marked at step 2 into ``delivery_unknown`` and sends the others again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import smtpx
from smtpx.outbox._bodies import Bodies
from smtpx.outbox._errors import StorageError, storage_errors
from smtpx.outbox._store import Job, Store
from smtpx.outbox._values import State, Verdict
from smtpx.outbox._verdicts import verdicts

__all__ = ["Worker"]

logger = logging.getLogger("smtpx.outbox")

Sender = smtpx.Client | smtpx.Pool

# An orphaned body file (a put killed between the file and its row) is removed once
# it is this old: younger ones may belong to a put still under way in another process.
ORPHAN_AGE = 3600.0


class Worker:
    def __init__(
        self,
        *,
        store: Store,
        bodies: Bodies,
        via: Sender,
        concurrency: int,
        policy: smtpx.RetryPolicy,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        poll_interval: float,
        wake: asyncio.Event,
        stop: asyncio.Event,
        grace: float,
    ) -> None:
        self.store, self.bodies, self.via = store, bodies, via
        self.concurrency, self.policy = concurrency, policy
        self.clock, self.sleep, self.poll_interval = clock, sleep, poll_interval
        self.wake, self.stop, self.grace = wake, stop, grace
        self.tasks: dict[asyncio.Task[None], int] = {}

    async def run(self, *, until_idle: bool) -> None:
        with storage_errors():
            unknown, back = self.store.recover(self.clock())
            self.bodies.sweep(self.store.body_files(), ORPHAN_AGE)
        if unknown or back:
            logger.warning(
                "recovered from a stopped worker: %d recipient(s) delivery unknown, "
                "%d to send again",
                unknown,
                back,
            )
        try:
            await self._loop(until_idle)
        finally:
            await self._drain()

    async def _loop(self, until_idle: bool) -> None:
        while True:
            self._reap()
            now = self.clock()
            with storage_errors():
                _, files = self.store.expire(now)
                self._remove(files)
                if not self.stop.is_set():
                    free = self.concurrency - len(self.tasks)
                    for job in self.store.due(now, free, set(self.tasks.values())):
                        task = asyncio.create_task(self.deliver(job))
                        self.tasks[task] = job.message_id
                if self.stop.is_set():
                    return
                if until_idle and not self.tasks and not self.store.anything_to_send():
                    return
                self.wake.clear()
                next_due = None if self.tasks else self.store.next_due(())
            await self._wait(next_due, now)

    async def _wait(self, next_due: float | None, now: float) -> None:
        """Until an attempt ends, a put or stop arrives, or the next recipient is due."""
        events = [asyncio.create_task(self.wake.wait()), asyncio.create_task(self.stop.wait())]
        waiters: set[asyncio.Task[object]] = {*events, *self.tasks}
        sleeper = None
        if not self.tasks:
            delay = self.poll_interval if next_due is None else max(0.0, next_due - now)
            sleeper = asyncio.create_task(self._sleep(min(delay, self.poll_interval)))
            waiters.add(sleeper)
        try:
            timeout = self.poll_interval if self.tasks else None
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (*events, *([sleeper] if sleeper else [])):
                task.cancel()
            await asyncio.gather(*events, *([sleeper] if sleeper else []), return_exceptions=True)

    async def _sleep(self, seconds: float) -> None:
        logger.debug("waiting %.3fs for the next recipient due", seconds)
        await self.sleep(seconds)

    def _reap(self) -> None:
        """Forget finished attempts; a failure of the store in one stops the run."""
        for task in [t for t in self.tasks if t.done()]:
            del self.tasks[task]
            if not task.cancelled() and (error := task.exception()) is not None:
                raise error

    async def _drain(self) -> None:
        """Let attempts under way finish (for ``grace`` seconds), then cancel the rest."""
        if not self.tasks:
            return
        tasks = list(self.tasks)
        if self.stop.is_set():
            await asyncio.wait(tasks, timeout=self.grace)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.tasks.clear()

    def _remove(self, files: list[str]) -> None:
        for name in files:
            self.bodies.remove(name)

    async def deliver(self, job: Job) -> None:
        """One attempt of a claimed job: send, and record each recipient's outcome."""
        end_written: set[str] = set()

        def before_end(recipients: tuple[str, ...]) -> None:
            with storage_errors():
                self.store.mark_end(job.attempt, recipients, self.clock())
            end_written.update(recipients)
            logger.debug(
                "attempt %d: end of message %d may leave for %d recipient(s)",
                job.attempt,
                job.message_id,
                len(recipients),
            )

        outcome: smtpx.SendResult | smtpx.SMTPError
        try:
            data = await self._body(job.message_id)
            with smtpx.before_end_of_message(before_end):
                outcome = await self.via.send(data, sender=job.sender, recipients=job.recipients)
        except smtpx.SMTPError as error:
            if type(error) is smtpx.UsageError:
                # Not a verdict on the recipients: how the outbox is run (a closed pool).
                with storage_errors():
                    self.store.abandon(job, self.clock(), self.clock())
                raise
            outcome = error
        except asyncio.CancelledError:
            with contextlib.suppress(StorageError), storage_errors():
                self.store.abandon(job, self.clock(), self.clock())
            raise
        except StorageError:
            raise  # nothing can be recorded: the run stops (the next one recovers)
        except Exception:
            logger.exception("attempt %d of message %d failed", job.attempt, job.message_id)
            now = self.clock()
            with storage_errors():
                self.store.abandon(job, now, now + self.policy.backoff.delay(1, None))
            return
        now = self.clock()
        decided = verdicts(
            job.recipients,
            outcome,
            end_written=end_written,
            attempts=job.attempts,
            policy=self.policy,
            now=now,
        )
        with storage_errors():
            self._remove(self.store.settle(job, decided, now))
        self._report(job, outcome, decided, now)

    async def _body(self, message_id: int) -> bytes:
        with storage_errors():
            body, name = self.store.body(message_id)
            if body is not None:
                return bytes(body)
            if name is None:
                raise StorageError(f"message {message_id} has no body left to send")
            return await asyncio.to_thread(self.bodies.read, name)

    def _report(
        self,
        job: Job,
        outcome: smtpx.SendResult | smtpx.SMTPError,
        decided: dict[str, Verdict],
        now: float,
    ) -> None:
        counts: dict[str, int] = {}
        for verdict in decided.values():
            counts[verdict.state.value] = counts.get(verdict.state.value, 0) + 1
        logger.info(
            "attempt %d of message %d: %s",
            job.attempt,
            job.message_id,
            ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
        )
        deferred = [(a, v) for a, v in decided.items() if v.state is State.DEFERRED]
        if self.policy.on_retry is None or not deferred:
            return
        first, verdict = deferred[0]
        error = outcome.rejected.get(first)
        if error is None and isinstance(outcome, smtpx.SMTPError):
            error = outcome
        if error is not None and verdict.due is not None:
            pending = tuple(a for a, _ in deferred)
            event = smtpx.RetryEvent(job.attempts.get(first, 1), error, verdict.due - now, pending)
            self.policy.on_retry(event)
