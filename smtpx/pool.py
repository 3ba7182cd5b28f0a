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
import itertools
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from types import TracebackType
from typing import Unpack

import attrs

from smtpx import errors as e
from smtpx._dsn import DSN
from smtpx._envelope import Envelope
from smtpx._fanout import in_order
from smtpx._message import MessageInput, messages_of
from smtpx._rate_limit import RateLimiter, is_seconds
from smtpx._reasons import Reason
from smtpx.client import Client
from smtpx.config import ClientConfig, ClientOptions, Configured, resolve_config
from smtpx.protocol.interruptions import Interruption, verdict
from smtpx.protocol.session import Session
from smtpx.results import SendResult
from smtpx.retry import RetryEvent, RetryPolicy

__all__ = ["Pool", "PoolStats"]


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
        if self.config.sock is not None:
            raise e.UsageError("sock= is one connection: a Pool opens several (give host=)")
        for name, value in (("size", size), ("max_messages", max_messages)):
            if type(value) is not int or value < 1:
                raise e.UsageError(f"{name} must be an int of at least 1, not {value!r}")
        for name, number in (("idle_timeout", idle_timeout), ("check_after", check_after)):
            if not is_seconds(number):
                raise e.UsageError(f"{name} must be a number of seconds, not {number!r}")
        if not (
            rate_limit is None or isinstance(rate_limit, RateLimiter) or is_seconds(rate_limit)
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
        async with self._borrowed() as slot:
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

    @contextlib.asynccontextmanager
    async def _borrowed(self) -> AsyncIterator[_Slot]:
        """A connection of the pool, within the rate limit, given back afterwards; the
        pool counts it as in flight (``close()`` waits for it)."""
        self._in_flight += 1
        self._drained.clear()
        try:
            if self._limiter is not None:
                await self._limiter.acquire()
            async with self._slots:
                slot = await self._borrow()
                try:
                    yield slot
                finally:
                    await self._give_back(slot)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._drained.set()

    async def send_many(
        self, messages: Iterable[MessageInput | Envelope]
    ) -> AsyncGenerator[SendResult | e.SMTPError, None]:
        """``Client.send_many`` over the pool: up to ``size`` connections each send the
        next message not yet taken, pipelined as there; the outcomes come in the order of
        ``messages``.  A connection is retired after ``max_messages`` as for ``send``;
        with a rate limit, each connection takes at most one message ahead of it."""
        given = messages_of(messages, "send_many()")
        if self._closed:
            raise e.UsageError("the pool is closed")
        if self.config.dry_run:  # no connection to borrow: prepared, checked, sunk
            async with contextlib.aclosing(Client(config=self.config).send_many(given)) as dry:
                async for outcome in dry:
                    yield outcome
            return
        lanes = self.size
        async with contextlib.aclosing(in_order(given, lanes, self._lane, 4 * lanes)) as out:
            async for outcome in out:
                yield outcome

    async def _lane(
        self, feed: Iterator[MessageInput | Envelope]
    ) -> AsyncGenerator[SendResult | e.SMTPError, None]:
        """Messages from ``feed``, each connection carrying up to ``max_messages``."""
        while (first := next(feed, None)) is not None:
            async with self._borrowed() as slot:
                room = itertools.islice(feed, max(self.max_messages - slot.messages - 1, 0))
                async for outcome in slot.client.send_many(itertools.chain((first,), room)):
                    slot.messages += 1
                    self.stats.messages += 1
                    if isinstance(outcome, e.SMTPError):
                        self._notice([outcome, *outcome.rejected.values()])
                    else:
                        self._notice(list(outcome.rejected.values()))
                    yield outcome
                    if self._limiter is not None:
                        await self._limiter.acquire()

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
