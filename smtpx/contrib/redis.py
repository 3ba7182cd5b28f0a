"""Limits shared by every process and machine that sends through one account: in Redis.

A :class:`smtpx.Pool`'s ``rate_limit`` holds per process: twenty workers sending through
one provider account each believe they have the whole budget.  Here the budget lives in
Redis, decided by one Lua script per request, so every pool that names the same ``key``
shares it::

    from redis.asyncio import Redis
    from smtpx.contrib.redis import SharedLimitPool

    r = Redis(host="redis.internal")
    pool = SharedLimitPool(
        "email-smtp.eu-west-1.amazonaws.com", redis=r, key="ses-prod",
        rate=14, max_concurrent=10, credentials=(user, password),
    )

- **rate** (:class:`SharedRateLimit`): a token bucket kept as one timestamp (the
  generic cell rate algorithm): each send reserves the next free instant, atomically,
  on Redis's own clock, so machines whose clocks differ still share one pace.
- **concurrency** (:class:`SharedConcurrency`): at most ``max_concurrent`` sends at
  once, as leases in a sorted set; a process that dies holding one frees it when its
  lease (``lease`` seconds: longer than a send can take) runs out.

When Redis cannot be reached, a send fails with :class:`LimitUnavailable`, a
``TransientError``: nothing was sent, and smtpx's retry, the outbox and the arq task
treat it as "try again later" rather than sending past the limit.  Install the
``redis`` extra (redis-py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import attrs
from redis.asyncio import Redis
from redis.exceptions import RedisError

import smtpx

__all__ = [
    "LimitUnavailable",
    "Reservation",
    "SharedConcurrency",
    "SharedLimitPool",
    "SharedRateLimit",
]

# Times are integer microseconds of Redis's clock (TIME), exact in Lua's doubles.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local at = tonumber(redis.call('GET', KEYS[1]) or '0')
local earliest = now - interval * (burst - 1)
if at < earliest then at = earliest end
local after = at + interval
local ttl = math.ceil((after - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%d', after), 'PX', ttl)
return {string.format('%d', at), string.format('%d', now)}
"""

_TAKE_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  local lease = tonumber(ARGV[3])
  redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], math.ceil(lease / 1000) + 1000)
  return 1
end
return 0
"""


class LimitUnavailable(smtpx.TransientError):
    """The shared limit in Redis could not be consulted; nothing was sent."""

    summary = "the shared sending limit (Redis) could not be reached"


@contextlib.contextmanager
def _redis_errors(what: str) -> Any:
    try:
        yield
    except (RedisError, OSError) as exc:
        raise LimitUnavailable(f"{what}: {exc}") from exc


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not key or not key.isprintable():
        raise smtpx.UsageError(f"key must be a non-empty printable str, not {key!r}")
    return key


@attrs.frozen
class Reservation:
    """One send's place in the shared pace: ``at`` (Redis's clock, seconds since the
    epoch) is its instant, ``wait`` how long the caller sleeps to reach it."""

    at: float
    wait: float


class SharedRateLimit(smtpx.RateLimiter):
    """At most ``rate`` sends per second (bursts of ``burst``) for every process whose
    limiter names the same ``key``.  A ``RateLimiter``: give it to ``Pool(rate_limit=)``."""

    def __init__(
        self,
        client: Redis,
        key: str,
        rate: float,
        burst: int = 1,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(rate, burst, sleep=sleep)
        self.key = _check_key(key)
        self._script = client.register_script(_RESERVE)
        self._sleep_for = sleep

    async def reserve(self) -> Reservation:
        """Take the next free instant in the shared pace (without sleeping)."""
        interval = round(self.interval * 1_000_000)
        with _redis_errors(f"reserving a send under {self.key!r}"):
            at, now = await self._script(keys=[self.key], args=[interval, self.burst])
        return Reservation(int(at) / 1e6, max(0, int(at) - int(now)) / 1e6)

    async def acquire(self) -> None:
        reservation = await self.reserve()
        if reservation.wait > 0:
            await self._sleep_for(reservation.wait)


class SharedConcurrency:
    """At most ``limit`` holders at once of the slots named ``key``, across processes.

    ``async with limit.slot(): ...``.  A slot is a lease of ``lease`` seconds: make it
    longer than what it guards can take (a send's ``total_timeout``).  Waiting callers
    ask again every ``poll`` seconds; there is no queue, so no order among them.
    """

    def __init__(
        self,
        client: Redis,
        key: str,
        limit: int,
        *,
        lease: float = 600.0,
        poll: float = 0.05,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if type(limit) is not int or limit < 1:
            raise smtpx.UsageError(f"limit must be an int of at least 1, not {limit!r}")
        for name, value in (("lease", lease), ("poll", poll)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise smtpx.UsageError(f"{name} must be a positive number, not {value!r}")
        self.client, self.key, self.limit = client, _check_key(key), limit
        self.lease, self.poll, self._sleep = float(lease), float(poll), sleep
        self._take = client.register_script(_TAKE_SLOT)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        holder = secrets.token_hex(12)
        lease = round(self.lease * 1_000_000)
        while True:
            with _redis_errors(f"taking a slot of {self.key!r}"):
                taken = await self._take(keys=[self.key], args=[holder, self.limit, lease])
            if taken:
                break
            await self._sleep(self.poll)
        try:
            yield
        finally:
            # A lost release is not fatal: the lease runs out.
            with contextlib.suppress(RedisError, OSError):
                await self.client.zrem(self.key, holder)


class SharedLimitPool(smtpx.Pool):
    """A ``Pool`` whose rate and concurrent sends are shared, through Redis, by every
    pool that names the same ``key`` (a provider account, say).

    ``rate`` sends per second (bursts of ``burst``) and at most ``max_concurrent`` sends
    at once; either may be None.  A send waiting for a slot asks again every ``poll``
    seconds; at most ``size`` sends of one pool wait so.  Other arguments are those of
    ``Pool``.
    """

    def __init__(
        self,
        host: str | smtpx.ClientConfig | None = None,
        port: int | None = None,
        *,
        redis: Redis,
        key: str,
        rate: float | None = None,
        burst: int = 1,
        max_concurrent: int | None = None,
        lease: float = 600.0,
        poll: float = 0.005,
        **pool_options: Any,
    ) -> None:
        key = _check_key(key)
        limiter = SharedRateLimit(redis, f"{key}:rate", rate, burst) if rate is not None else None
        super().__init__(host, port, rate_limit=limiter, **pool_options)
        self.shared_key = key
        self.concurrency = (
            SharedConcurrency(redis, f"{key}:slots", max_concurrent, lease=lease, poll=poll)
            if max_concurrent is not None
            else None
        )
        # No more of this process's sends ask Redis for a slot than it has connections.
        self._local = asyncio.Semaphore(self.size)

    async def send(
        self,
        message: smtpx.MessageInput,
        *,
        sender: str | None = None,
        recipients: Iterable[str] | None = None,
        retry: smtpx.RetryPolicy | None = None,
        dsn: smtpx.DSN | None = None,
        dsn_required: bool = True,
        require_tls: bool = False,
    ) -> smtpx.SendResult:
        send = functools.partial(
            super().send,
            message,
            sender=sender,
            recipients=recipients,
            retry=retry,
            dsn=dsn,
            dsn_required=dsn_required,
            require_tls=require_tls,
        )
        if self.concurrency is None:
            return await send()
        async with self._local, self.concurrency.slot():
            return await send()
