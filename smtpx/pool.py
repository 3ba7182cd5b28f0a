"""``Pool``: up to N reused connections to one server, shared safely between tasks.

Each send borrows an idle connection (or opens one), so concurrent sends run
in parallel and sequential ones reuse a warm, authenticated session.  A
connection idle for a while is checked with NOOP before reuse; one the server
closed is replaced transparently; one that carried ``max_messages`` is retired.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Unpack

import attrs

from smtpx import errors as e
from smtpx._commands import Command
from smtpx._message import MessageInput
from smtpx.client import Client
from smtpx.config import ClientConfig, ClientOptions, resolve_config
from smtpx.results import SendResult
from smtpx.retry import RetryPolicy

# Failures that mean "this reused connection had gone stale" when they come
# before the message was sent: nothing was delivered, so a fresh connection
# may safely try again once.
_STALE = (e.ConnectionLost, e.ServiceUnavailable)
_BEFORE_DATA = frozenset({Command.MAIL, Command.RSET, Command.NOOP})


@attrs.define
class PoolStats:
    connections_opened: int = 0
    connections_retired: int = 0
    messages: int = 0
    stale_retries: int = 0


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
    """At most ``rate`` acquisitions per second, shared by every caller (a token bucket)."""

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not _is_seconds(rate) or rate == 0 or type(burst) is not int or burst < 1:
            raise e.UsageError(
                f"rate must be a positive number and burst an int of at least 1, "
                f"not {rate!r}, {burst!r}"
            )
        self.interval = 1.0 / rate
        self.burst = burst
        self._sleep, self._clock = sleep, clock
        self._next = clock()

    async def acquire(self) -> None:
        # Reserve the next free instant synchronously (no await in between), so
        # concurrent callers queue up one interval apart.
        now = self._clock()
        self._next = max(self._next, now - self.interval * (self.burst - 1))
        wait = self._next - now
        self._next += self.interval
        if wait > 0:
            await self._sleep(wait)


class Pool:
    """A pool of ``Client`` connections to one server.

    ``size`` caps open connections, ``max_messages`` the messages one
    connection carries before it is retired, ``idle_timeout`` how long an idle
    connection is kept, ``check_after`` how long a connection may sit idle
    before a NOOP health check precedes its reuse, and ``rate_limit`` the
    messages per second across the whole pool.  Other keyword arguments are
    those of ``Client``.
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
        self.stats = PoolStats()

    @property
    def host(self) -> str:
        return self.config.host

    @property
    def port(self) -> int:
        return self.config.port

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
    ) -> SendResult:
        """Send on a pooled connection; same results and errors as ``Client.send``."""
        if self._closed:
            raise e.UsageError("the pool is closed")
        recipients = list(recipients) if recipients is not None else None
        self._in_flight += 1
        self._drained.clear()
        try:
            if self._limiter is not None:
                await self._limiter.acquire()
            async with self._slots:
                slot = await self._borrow()
                reused = slot.messages > 0
                try:
                    try:
                        result = await slot.client.send(
                            message, sender=sender, recipients=recipients, retry=retry
                        )
                    except _STALE as error:
                        if not (reused and error.command in _BEFORE_DATA):
                            raise
                        self.stats.stale_retries += 1
                        slot.client.close()
                        result = await slot.client.send(
                            message, sender=sender, recipients=recipients, retry=retry
                        )
                    return result
                finally:
                    slot.messages += 1
                    self.stats.messages += 1
                    await self._give_back(slot)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._drained.set()

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

    async def _retire(self, slot: _Slot) -> None:
        self.stats.connections_retired += 1
        with contextlib.suppress(e.SMTPError):
            await slot.client.quit()

    async def close(self, timeout: float | None = None) -> None:
        """Refuse new sends, let the ones under way finish, then QUIT every connection."""
        self._closed = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), timeout)
        idle, self._idle = self._idle, []
        await asyncio.gather(*(self._retire(slot) for slot in idle))
