"""Pool semantics against the scripted server: limits, reuse, reconnect, close, fairness."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import smtpx
from smtpx.testing import ScriptedServer

PLAIN: dict[str, Any] = {"tls": smtpx.TLSMode.NONE, "local_hostname": "client.test"}


def message(n: int) -> bytes:
    return (
        f"From: a@example.com\r\nTo: b{n}@example.com\r\nSubject: {n}\r\n\r\nbody {n}\r\n".encode()
    )


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    async with ScriptedServer() as scripted:
        yield scripted


def subjects(server: ScriptedServer) -> list[int]:
    return [int(m.data.split(b"Subject: ")[1].split(b"\r\n")[0]) for m in server.messages]


async def test_sequential_sends_reuse_one_connection(server: ScriptedServer) -> None:
    async with smtpx.Pool(server.host, server.port, **PLAIN) as pool:
        for n in range(5):
            await pool.send(message(n))
    assert server.connections == 1
    assert subjects(server) == list(range(5))
    assert pool.stats.connections_opened == 1


async def test_concurrency_never_exceeds_size_and_nothing_is_lost(server: ScriptedServer) -> None:
    async with smtpx.Pool(server.host, server.port, size=3, **PLAIN) as pool:
        results = await asyncio.gather(*(pool.send(message(n)) for n in range(30)))
    assert all(r.accepted for r in results)
    assert server.connections <= 3
    assert sorted(subjects(server)) == list(range(30))


async def test_max_messages_retires_a_connection(server: ScriptedServer) -> None:
    async with smtpx.Pool(server.host, server.port, max_messages=3, **PLAIN) as pool:
        for n in range(7):
            await pool.send(message(n))
    assert server.connections == 3
    assert pool.stats.connections_retired >= 2


async def test_connection_closed_by_the_server_is_replaced_transparently(
    server: ScriptedServer,
) -> None:
    async with smtpx.Pool(server.host, server.port, **PLAIN) as pool:
        await pool.send(message(0))
        # the server times the idle connection out: 421 and close at the next MAIL
        server.on("MAIL", reply="421 4.4.2 Idle timeout", close=True, times=1)
        result = await pool.send(message(1))
    assert result.accepted == ("b1@example.com",)
    assert pool.stats.stale_retries == 1
    assert server.connections == 2
    assert subjects(server) == [0, 1]


async def test_a_fresh_connection_failing_is_not_retried_silently(server: ScriptedServer) -> None:
    server.on("MAIL", reply="421 4.3.2 Shutting down", close=True, times=1)
    async with smtpx.Pool(server.host, server.port, **PLAIN) as pool:
        with pytest.raises(smtpx.ServiceUnavailable):
            await pool.send(message(0))
        await pool.send(message(1))
    assert subjects(server) == [1]


async def test_idle_connection_is_health_checked_before_reuse(server: ScriptedServer) -> None:
    async with smtpx.Pool(server.host, server.port, check_after=0.0, **PLAIN) as pool:
        await pool.send(message(0))
        server.on("NOOP", close=True, times=1)  # the check finds the connection dead
        await pool.send(message(1))
        await pool.send(message(2))  # the check passes this time
    assert subjects(server) == [0, 1, 2]
    assert server.connections == 2
    assert sum(1 for line in server.transcript if line.upper() == b"NOOP") == 2


async def test_idle_timeout_closes_old_connections(server: ScriptedServer) -> None:
    async with smtpx.Pool(server.host, server.port, idle_timeout=0.0, **PLAIN) as pool:
        await pool.send(message(0))
        await pool.send(message(1))
    assert server.connections == 2


def quits(server: ScriptedServer) -> int:
    return sum(1 for line in server.transcript if line.upper() == b"QUIT")


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition`` (an event on the server), without asserting how fast it comes:
    the bound only keeps a broken build from hanging the suite."""
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.005)


@pytest.mark.parametrize("idle_timeout", [0.0, 0.05])
async def test_an_idle_connection_is_quit_on_time_not_at_the_next_send(
    server: ScriptedServer, idle_timeout: float
) -> None:
    async with smtpx.Pool(server.host, server.port, idle_timeout=idle_timeout, **PLAIN) as pool:
        await pool.send(message(0))
        # nothing else is sent: only the pool's own timer can make the QUIT happen
        await until(lambda: quits(server) == 1)
        assert pool.stats.connections_retired == 1
        assert repr(pool).endswith("idle=0 in_flight=0>")
        await pool.send(message(1))  # a fresh connection, then quit on time too
        await until(lambda: quits(server) == 2)
    assert server.connections == 2 and quits(server) == 2  # close() had nothing left
    assert subjects(server) == [0, 1]


async def test_a_connection_kept_busy_is_not_reaped(server: ScriptedServer) -> None:
    async with smtpx.Pool(server.host, server.port, idle_timeout=3600.0, **PLAIN) as pool:
        for n in range(3):
            await pool.send(message(n))
        assert quits(server) == 0
    assert server.connections == 1 and quits(server) == 1  # QUIT by close() alone


async def test_closing_while_the_reaper_waits_quits_once(server: ScriptedServer) -> None:
    pool = smtpx.Pool(server.host, server.port, idle_timeout=3600.0, **PLAIN)
    await pool.send(message(0))
    await pool.close()  # must not wait an hour for the reaper
    assert quits(server) == 1 and pool.stats.connections_retired == 1


async def test_refusals_are_typed_and_leave_the_connection_reusable(
    server: ScriptedServer,
) -> None:
    server.on("RCPT", match="b0@", reply="550 5.1.1 No such user")
    async with smtpx.Pool(server.host, server.port, **PLAIN) as pool:
        with pytest.raises(smtpx.AllRecipientsRejected):
            await pool.send(message(0))
        await pool.send(message(1))
    assert server.connections == 1


async def test_graceful_close_finishes_sends_under_way(server: ScriptedServer) -> None:
    pool = smtpx.Pool(server.host, server.port, size=2, **PLAIN)
    sends = [asyncio.create_task(pool.send(message(n))) for n in range(6)]
    await asyncio.sleep(0)  # let them start
    await pool.close()
    results = await asyncio.gather(*sends)
    assert len(results) == 6 and sorted(subjects(server)) == list(range(6))
    with pytest.raises(smtpx.UsageError):
        await pool.send(message(9))
    assert sum(1 for line in server.transcript if line.upper() == b"QUIT") == server.connections


async def test_waiting_sends_are_served_in_order(server: ScriptedServer) -> None:
    async with smtpx.Pool(server.host, server.port, size=1, **PLAIN) as pool:
        await asyncio.gather(*(pool.send(message(n)) for n in range(8)))
    assert subjects(server) == list(range(8))


async def test_retry_composes_with_the_pool_and_disconnects_lose_nothing(
    server: ScriptedServer,
) -> None:
    # every fourth RCPT drops the connection; retries resend on a new one
    server.on("RCPT", match="b3@", reply="421 4.3.2 Bye", close=True, times=1)
    server.on("RCPT", match="b7@", close=True, times=1)
    clock = smtpx.VirtualClock()
    policy = smtpx.RetryPolicy.for_testing(clock)
    async with smtpx.Pool(server.host, server.port, size=4, **PLAIN) as pool:
        results = await asyncio.gather(*(pool.send(message(n), retry=policy) for n in range(12)))
    assert all(len(r.accepted) == 1 for r in results)
    assert sorted(subjects(server)) == list(range(12))  # each exactly once


async def test_rate_limit_is_shared_across_the_pool(server: ScriptedServer) -> None:
    clock = smtpx.VirtualClock()
    limiter = smtpx.RateLimiter(10, sleep=clock.sleep, clock=clock.monotonic)
    async with smtpx.Pool(server.host, server.port, size=4, rate_limit=limiter, **PLAIN) as pool:
        await asyncio.gather(*(pool.send(message(n)) for n in range(5)))
    # five sends at 10/s: the first goes at once, the others 0.1 s apart
    # (virtual time: each sleep advances the clock, so each waits one interval)
    assert clock.sleeps == pytest.approx([0.1] * 4)
    assert clock.now == pytest.approx(0.4)


def test_bad_pool_arguments_are_usage_errors() -> None:
    with pytest.raises(smtpx.UsageError):
        smtpx.Pool("localhost", size=0)
    with pytest.raises(smtpx.UsageError):
        smtpx.RateLimiter(0)


class FakeTime:
    """A clock that only the limiter's own sleeps move forward."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(round(seconds, 9))
        self.now += seconds


async def waits_of(limiter: smtpx.RateLimiter, time: FakeTime, n: int) -> list[float]:
    """The wait before each of ``n`` acquisitions made one after the other."""
    waits = []
    for _ in range(n):
        before = len(time.waits)
        await limiter.acquire()
        waits.append(time.waits[-1] if len(time.waits) > before else 0.0)
    return waits


@pytest.mark.parametrize("burst", [1, 2, 5, 20])
async def test_the_burst_starts_empty_as_the_pool_page_says(burst: int) -> None:
    # docs/pool.md: a fresh limiter sends at the plain rate; the burst is earned by idleness
    time = FakeTime()
    limiter = smtpx.RateLimiter(10.0, burst, sleep=time.sleep, clock=time.clock)
    assert await waits_of(limiter, time, 4) == [0.0, 0.1, 0.1, 0.1]


@pytest.mark.parametrize("burst", [1, 2, 5, 20])
@pytest.mark.parametrize("idle", [0.05, 0.3, 1.9, 60.0])
async def test_idleness_earns_one_send_per_interval_up_to_the_burst(
    burst: int, idle: float
) -> None:
    time = FakeTime()
    limiter = smtpx.RateLimiter(10.0, burst, sleep=time.sleep, clock=time.clock)
    await limiter.acquire()
    time.now += 0.1 + idle  # the next send was due 0.1 s later; then idle that long
    earned = min(burst - 1, int(round(idle * 10, 6)))
    waits = await waits_of(limiter, time, earned + 2)
    assert waits[: earned + 1] == [0.0] * (earned + 1)  # the due one, then the credit
    assert waits[earned + 1] > 0  # then the plain pace again
