"""``RateLimiter``: a token bucket shared by every sender of a pool, that slows down when
a server says it is rate limiting."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

from smtpx import errors as e

__all__ = ["RateLimiter"]


def is_seconds(value: object) -> bool:
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
            is_seconds(rate)
            and rate > 0
            and type(burst) is int
            and burst >= 1
            and is_seconds(max_slowdown)
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
