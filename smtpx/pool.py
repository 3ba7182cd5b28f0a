"""``Pool``: up to N reused connections to one server, shared safely between tasks.

Each send borrows an idle connection (or opens one), so concurrent sends run
in parallel and sequential ones reuse a warm, authenticated session.  A
connection idle for a while is checked with NOOP before reuse; one the server
closed is replaced transparently; one that carried ``max_messages`` is retired;
one idle for ``idle_timeout`` is QUIT by a reaper task when its time is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Unpack

import attrs

from smtpx import errors as e
from smtpx._dsn import DSN
from smtpx._message import MessageInput
from smtpx._reasons import Reason
from smtpx.client import Client
from smtpx.config import ClientConfig, ClientOptions, Configured, resolve_config
from smtpx.protocol.interruptions import Interruption, verdict
from smtpx.protocol.session import Session
from smtpx.results import SendResult
from smtpx.retry import RetryEvent, RetryPolicy

__all__ = ["Pool", "PoolStats", "RateLimiter"]


def _stale(client: Client, session: Session | None) -> bool:
    """Whether a send failed because the reused connection behind ``session`` had gone
    stale, and a fresh connection may safely try again: the session was interrupted
    (or closed by a 421, judged from the ledger like a loss at that point) and the
    verdict knows of no recipient whose delivery is unknown.  The ledger decides, never
    the command that happened to be under way."""
    if session is None or client.session is not session or not session.closed:
        return False
    judged = session.verdict
    if judged is None and isinstance(session.error, e.ServiceUnavailable):
        judged = verdict(session.ledger, Interruption.CONNECTION_LOST)
    return judged is not None and judged.unknown == ()


@attrs.define
class PoolStats:
    connections_opened: int = 0
    connections_retired: int = 0
    messages: int = 0
    stale_retries: int = 0
    slowdowns: int = 0  # rate-limited refusals that slowed the shared rate


@attrs.define(eq=False)
class _Slot:
    client: Client
    messages: int = 0
    last_used: float = attrs.field(factory=time.monotonic)


def _is_seconds(value: object) -> bool:
    """A finite, non-negative number that is not a bool."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


class RateLimiter:
    """At most ``rate`` acquisitions per second, shared by every caller (a token bucket).

    ``slow_down()`` lowers the rate for a while, when a server says it is rate
    limiting us; a ``Pool`` calls it on every ``rate_limited`` refusal.
    """

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        max_slowdown: float = 64.0,
    ) -> None:
        valid = (
            _is_seconds(rate)
            and rate > 0
            and type(burst) is int
            and burst >= 1
            and _is_seconds(max_slowdown)
            and max_slowdown >= 1
        )
        if not valid:
            raise e.UsageError(
                "rate must be a positive number, burst an int of at least 1 and "
                f"max_slowdown at least 1, not {rate!r}, {burst!r}, {max_slowdown!r}"
            )
        self._base = 1.0 / rate
        self.burst = burst
        self.max_slowdown = max_slowdown
        self._sleep, self._clock = sleep, clock
        self._next = clock()
        self._slowdown, self._slow_until = 1.0, clock()

    @property
    def slowdown(self) -> float:
        """How many times slower than configured the limiter runs now (1.0: not slowed)."""
        if self._slowdown > 1.0 and self._clock() >= self._slow_until:
            self._slowdown = 1.0  # the hold is over: back to the configured rate
        return self._slowdown

    @property
    def interval(self) -> float:
        """Seconds between acquisitions now."""
        return self._base * self.slowdown

    @property
    def rate(self) -> float:
        """Acquisitions per second now."""
        return 1.0 / self.interval

    def slow_down(self, factor: float = 2.0, hold: float = 300.0) -> None:
        """Run ``factor`` times slower for the next ``hold`` seconds.

        Calls while slowed compound (up to ``max_slowdown``) and restart the hold;
        after it, the configured rate applies again.
        """
        if factor < 1 or hold < 0:
            raise e.UsageError(
                f"factor must be at least 1 and hold not negative: {factor}, {hold}"
            )
        self._slowdown = min(self.slowdown * factor, self.max_slowdown)
        self._slow_until = self._clock() + hold

    async def acquire(self) -> None:
        # Reserve the next free instant synchronously (no await in between), so
        # concurrent callers queue up one interval apart.
        now = self._clock()
        interval = self.interval
        self._next = max(self._next, now - interval * (self.burst - 1))
        wait = self._next - now
        self._next += interval
        if wait > 0:
            await self._sleep(wait)


class Pool(Configured):
    """A pool of ``Client`` connections to one server.

    ``size`` caps open connections, ``max_messages`` the messages one
    connection carries before it is retired, ``idle_timeout`` how long an idle
    connection is kept, ``check_after`` how long a connection may sit idle
    before a NOOP health check precedes its reuse, and ``rate_limit`` the
    messages per second across the whole pool.  When the server refuses with a
    ``rate_limited`` reason (during retries too), the pool slows that shared
    rate down (``RateLimiter.slow_down``): every sender to this host backs off,
    not just the one refused.  Other keyword arguments are those of ``Client``.
    """

    def __init__(
        self,
        host: str | ClientConfig | None = None,
        port: int | None = None,
        *,
        size: int = 8,
        max_messages: int = 100,
        idle_timeout: float = 60.0,
        check_after: float = 5.0,
        rate_limit: float | RateLimiter | None = None,
        config: ClientConfig | None = None,
        **client_options: Unpack[ClientOptions],
    ) -> None:
        self.config = resolve_config(host, port, config, client_options)
        for name, value in (("size", size), ("max_messages", max_messages)):
            if type(value) is not int or value < 1:
                raise e.UsageError(f"{name} must be an int of at least 1, not {value!r}")
        for name, number in (("idle_timeout", idle_timeout), ("check_after", check_after)):
            if not _is_seconds(number):
                raise e.UsageError(f"{name} must be a number of seconds, not {number!r}")
        if not (
            rate_limit is None or isinstance(rate_limit, RateLimiter) or _is_seconds(rate_limit)
        ):
            raise e.UsageError(
                "rate_limit must be messages per second, a RateLimiter or None, "
                f"not {rate_limit!r}"
            )
        self.size = size
        self.max_messages = max_messages
        self.idle_timeout = idle_timeout
        self.check_after = check_after
        if isinstance(rate_limit, int | float):
            rate_limit = RateLimiter(rate_limit)
        self._limiter = rate_limit
        self._slots = asyncio.Semaphore(size)
        self._idle: list[_Slot] = []
        self._in_flight = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self._closed = False
        self._reaper: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()  # wakes the reaper early, to end
        self.stats = PoolStats()

    def __repr__(self) -> str:
        if "config" not in self.__dict__:  # a traceback from inside __init__ shows it too
            return "<smtpx.Pool (not set up)>"
        return (
            f"<smtpx.Pool {self.host}:{self.port} size={self.size} "
            f"idle={len(self._idle)} in_flight={self._in_flight}>"
        )

    async def __aenter__(self) -> Pool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def send(
        self,
        message: MessageInput,
        *,
        sender: str | None = None,
        recipients: Iterable[str] | None = None,
        retry: RetryPolicy | None = None,
        dsn: DSN | None = None,
        dsn_required: bool = True,
        require_tls: bool = False,
    ) -> SendResult:
        """Send on a pooled connection; same results and errors as ``Client.send``."""
        if self._closed:
            raise e.UsageError("the pool is closed")
        if self.config.dry_run:  # no connection to borrow: prepared, checked, sunk
            dry = Client(config=self.config)
            return await dry.send(message, sender=sender, recipients=recipients, retry=retry)
        recipients = list(recipients) if recipients is not None else None
        if retry is not None and self._limiter is not None:
            retry = attrs.evolve(retry, on_retry=self._watching(retry.on_retry))
        self._in_flight += 1
        self._drained.clear()
        try:
            if self._limiter is not None:
                await self._limiter.acquire()
            async with self._slots:
                slot = await self._borrow()
                # the session the send starts on, if it reuses an open connection
                reused = slot.client.session if slot.client.connected else None
                send = functools.partial(
                    slot.client.send,
                    message,
                    sender=sender,
                    recipients=recipients,
                    retry=retry,
                    dsn=dsn,
                    dsn_required=dsn_required,
                    require_tls=require_tls,
                )
                try:
                    try:
                        result = await self._watched(send())
                    except e.SMTPError:
                        if not _stale(slot.client, reused):
                            raise
                        self.stats.stale_retries += 1
                        slot.client.close()
                        result = await self._watched(send())
                    return result
                finally:
                    slot.messages += 1
                    self.stats.messages += 1
                    await self._give_back(slot)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._drained.set()

    async def _watched(self, sending: Awaitable[SendResult]) -> SendResult:
        # The outcome of a send, noticed on its way out: a rate limit slows the pool.
        try:
            result = await sending
        except e.SMTPError as error:
            self._notice([error, *error.rejected.values()])
            raise
        self._notice(list(result.rejected.values()))
        return result

    def _watching(
        self, user_hook: Callable[[RetryEvent], None] | None
    ) -> Callable[[RetryEvent], None]:
        def on_retry(event: RetryEvent) -> None:
            self._notice([event.error, *event.error.rejected.values()])
            if user_hook is not None:
                user_hook(event)

        return on_retry

    def _notice(self, errors: list[e.SMTPError]) -> None:
        if self._limiter is not None and any(
            error.reason is Reason.RATE_LIMITED for error in errors
        ):
            self._limiter.slow_down()
            self.stats.slowdowns += 1

    async def _borrow(self) -> _Slot:
        while self._idle:
            slot = self._idle.pop()
            idle = time.monotonic() - slot.last_used
            if not slot.client.connected or idle > self.idle_timeout:
                await self._retire(slot)
                continue
            if idle > self.check_after:
                try:
                    await slot.client.noop()
                except e.SMTPError:
                    await self._retire(slot)
                    continue
            return slot
        self.stats.connections_opened += 1
        return _Slot(Client(config=self.config))

    async def _give_back(self, slot: _Slot) -> None:
        # A send that failed with the session intact (a refusal, after RSET) leaves
        # the connection usable; a lost or desynchronised one is already closed.
        usable = slot.client.connected and slot.messages < self.max_messages
        if self._closed or not usable:
            await self._retire(slot)
            return
        slot.last_used = time.monotonic()
        self._idle.append(slot)
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap_idle())

    async def _reap_idle(self) -> None:
        """QUIT each idle connection once it has been idle for ``idle_timeout``, on time
        rather than at the next borrow (the server would otherwise drop it on its own
        schedule).  One task per pool; it ends when no connection is idle."""
        while self._idle and not self._closed:
            now = time.monotonic()
            expired = [s for s in self._idle if now - s.last_used >= self.idle_timeout]
            if not expired:
                oldest = min(slot.last_used for slot in self._idle)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), oldest + self.idle_timeout - now)
                continue
            # out of the idle list before the first await: no send can borrow them now
            self._idle = [slot for slot in self._idle if slot not in expired]
            await asyncio.gather(*(self._retire(slot) for slot in expired))

    async def _retire(self, slot: _Slot) -> None:
        self.stats.connections_retired += 1
        with contextlib.suppress(e.SMTPError):
            await slot.client.quit()

    async def close(self, timeout: float | None = None) -> None:
        """Refuse new sends, let the ones under way finish, then QUIT every connection."""
        self._closed = True
        self._closing.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), timeout)
        idle, self._idle = self._idle, []
        await asyncio.gather(*(self._retire(slot) for slot in idle))
        if self._reaper is not None:  # it ends once its QUITs under way are done
            await self._reaper
