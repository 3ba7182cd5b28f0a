"""``Pool.send_many`` (on aiosmtpd) and the in-order fan-out beneath it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import smtpx
from smtpx._fanout import in_order
from smtpx.testing import ScriptedServer

PLAIN: dict[str, Any] = {"tls": smtpx.TLSMode.NONE, "local_hostname": "client.test"}


def message(n: int) -> bytes:
    return (
        f"From: a@example.com\r\nTo: b{n}@example.com\r\nSubject: {n}\r\n\r\nbody {n}\r\n".encode()
    )


def subjects(server: ScriptedServer) -> list[int]:
    return [int(m.data.split(b"Subject: ")[1].split(b"\r\n")[0]) for m in server.messages]


async def test_outcomes_in_order_over_every_connection() -> None:
    async with ScriptedServer(pipelining=True) as server:
        server.on("RCPT", match="b7@", reply="550 5.1.1 No such user")
        server.on("RCPT", match="b21@", reply="452 4.2.2 Mailbox full")
        async with smtpx.Pool(server.host, server.port, size=4, **PLAIN) as pool:
            got = [o async for o in pool.send_many(message(n) for n in range(40))]
            assert pool.stats.connections_opened <= 4 and pool.stats.messages == 40
        for n, outcome in enumerate(got):
            if n == 7:
                assert isinstance(outcome, smtpx.AllRecipientsRejected)
            elif n == 21:
                assert isinstance(outcome, smtpx.AllRecipientsDeferred)
            else:
                assert isinstance(outcome, smtpx.SendResult)
                assert outcome.accepted == (f"b{n}@example.com",)
        assert sorted(subjects(server)) == [n for n in range(40) if n not in (7, 21)]


async def test_max_messages_retires_connections_under_way() -> None:
    async with ScriptedServer(pipelining=True) as server:
        async with smtpx.Pool(server.host, server.port, size=2, max_messages=3, **PLAIN) as pool:
            got = [o async for o in pool.send_many(message(n) for n in range(10))]
            assert pool.stats.connections_opened >= 4  # 10 messages, at most 3 each
        assert all(isinstance(o, smtpx.SendResult) for o in got)
        assert sorted(subjects(server)) == list(range(10))


async def test_leaving_early_finishes_what_is_under_way_and_the_pool_goes_on() -> None:
    async with (
        ScriptedServer(pipelining=True) as server,
        smtpx.Pool(server.host, server.port, size=2, **PLAIN) as pool,
    ):
        many = pool.send_many(message(n) for n in range(1000))
        async with contextlib.aclosing(many) as outcomes:
            async for outcome in outcomes:
                assert isinstance(outcome, smtpx.SendResult)
                break
        sent = sorted(subjects(server))
        assert sent == list(range(len(sent))) and 1 <= len(sent) < 1000
        # nothing is left running: no message after those goes out later
        await asyncio.sleep(0)
        assert len(server.messages) == len(sent)
        assert (await pool.send(message(5000))).accepted == ("b5000@example.com",)


async def test_a_rate_limit_paces_the_messages() -> None:
    clock = smtpx.VirtualClock()
    limiter = smtpx.RateLimiter(10, sleep=clock.sleep, clock=clock.monotonic)
    async with (
        ScriptedServer(pipelining=True) as server,
        smtpx.Pool(server.host, server.port, size=1, rate_limit=limiter, **PLAIN) as pool,
    ):
        got = [o async for o in pool.send_many(message(n) for n in range(5))]
    assert all(isinstance(o, smtpx.SendResult) for o in got)
    # one acquisition before the first message and one after each: 0.1 s apart
    assert clock.sleeps == pytest.approx([0.1] * 5)


async def test_a_closed_pool_refuses() -> None:
    pool = smtpx.Pool("127.0.0.1", 25, **PLAIN)
    await pool.close()
    with pytest.raises(smtpx.UsageError, match="closed"):
        async for _ in pool.send_many([message(0)]):
            pass


# -- the fan-out, on its own ------------------------------------------------------------


def slow_every(step: int, lanes_seen: list[int]) -> Any:
    """A lane that takes ``(n % step)`` scheduler turns per item: lanes race unevenly."""

    async def lane(feed: Iterator[int]) -> AsyncIterator[int]:
        lanes_seen.append(1)
        for item in feed:
            for _ in range(item % step):
                await asyncio.sleep(0)
            yield item * 10

    return lane


@pytest.mark.parametrize("lanes", [1, 2, 3, 7])
@pytest.mark.parametrize("count", [0, 1, 5, 33])
@pytest.mark.parametrize("window", [1, 4])
async def test_fan_out_keeps_the_order_and_takes_each_item_once(
    lanes: int, count: int, window: int
) -> None:
    seen: list[int] = []
    taken: list[int] = []

    def items() -> Iterator[int]:
        for n in range(count):
            taken.append(n)
            yield n

    got = [x async for x in in_order(items(), lanes, slow_every(5, seen), window)]
    assert got == [n * 10 for n in range(count)]
    assert taken == list(range(count)) and len(seen) == lanes


async def test_fan_out_bounds_what_waits_for_the_caller() -> None:
    produced: list[int] = []

    async def lane(feed: Iterator[int]) -> AsyncIterator[int]:
        for item in feed:
            produced.append(item)
            yield item

    stream = in_order(range(100), 3, lane, window=4)
    async with contextlib.aclosing(stream):
        first = await anext(stream)
        for _ in range(20):
            await asyncio.sleep(0)
        # the caller took one: at most window + one in hand per lane were produced
        assert first == 0 and len(produced) <= 1 + 4 + 3


async def test_a_failing_lane_fails_the_caller_and_stops_the_others() -> None:
    cancelled: list[bool] = []

    async def lane(feed: Iterator[int]) -> AsyncIterator[int]:
        try:
            for item in feed:
                if item == 3:
                    raise RuntimeError("lane broke")
                await asyncio.sleep(0)
                yield item
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    with pytest.raises(RuntimeError, match="lane broke"):
        async for _ in in_order(range(50), 3, lane, window=2):
            pass


async def test_a_dry_run_connects_nowhere() -> None:
    sunk: list[Any] = []
    async with smtpx.Pool("mx.invalid", dry_run=True, sink=sunk.append) as pool:
        got = [o async for o in pool.send_many([message(0), b"no headers\r\n", message(2)])]
        assert pool.stats.connections_opened == 0
    assert [type(o) for o in got] == [smtpx.SendResult, smtpx.InvalidEnvelope, smtpx.SendResult]
    assert len(sunk) == 2
    assert all(isinstance(o, smtpx.SendResult) and o.dry_run for o in (got[0], got[2]))
