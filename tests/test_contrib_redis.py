"""smtpx.contrib.redis: a rate and a concurrency cap shared through a real Redis.

In one process first (reservations, bursts, leases, Redis down); then several sending
processes against smtp-sink, whose counters say nothing was lost or doubled, while the
end of every message is timed and the holders of the shared slots counted from inside
them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from realservers import SmtpSinkFactory
from redisserver import running_redis

if os.environ.get("CI", "").lower() != "true":  # in CI a missing extra is an error
    pytest.importorskip("redis", reason="the shared limits need the redis extra")

from redis.asyncio import Redis

import smtpx
from smtpx.contrib.redis import (
    LimitUnavailable,
    SharedConcurrency,
    SharedLimitPool,
    SharedRateLimit,
)
from smtpx.outbox import Outbox, State
from smtpx.testing import ScriptedServer

WORKER = Path(__file__).with_name("redis_limit_worker.py")
PLAIN: dict[str, Any] = {"tls": smtpx.TLSMode.NONE, "local_hostname": "client.test"}
MESSAGE = b"From: app@example.com\r\nTo: a@example.com\r\n\r\nhi\r\n"


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with running_redis(tmp_path_factory.mktemp("redis")) as port:
        yield port


@pytest.fixture
async def redis(redis_port: int) -> AsyncIterator[Redis]:
    client = Redis(host="127.0.0.1", port=redis_port)
    await client.flushdb()
    yield client
    await client.aclose()


async def test_each_send_gets_the_next_instant_one_interval_on(redis: Redis) -> None:
    limit = SharedRateLimit(redis, "acct", rate=50)
    reservations = [await limit.reserve() for _ in range(20)]
    gaps = [b.at - a.at for a, b in itertools.pairwise(reservations)]
    assert gaps == [pytest.approx(0.02, abs=1e-6)] * 19
    assert reservations[0].wait == 0
    assert all(r.wait > 0 for r in reservations[1:])  # reserved faster than the pace


async def test_a_burst_goes_at_once_then_the_pace_holds(redis: Redis) -> None:
    limit = SharedRateLimit(redis, "acct", rate=10, burst=3)
    waits = [(await limit.reserve()).wait for _ in range(5)]
    assert waits[:3] == [0, 0, 0]
    assert 0 < waits[3] <= 0.1 < waits[4] <= 0.2


async def test_every_limiter_with_the_key_shares_one_pace(redis: Redis, redis_port: int) -> None:
    other_process = Redis(host="127.0.0.1", port=redis_port)  # another connection
    a = SharedRateLimit(redis, "acct", rate=100)
    b = SharedRateLimit(other_process, "acct", rate=100)
    unrelated = SharedRateLimit(redis, "other-acct", rate=100)
    instants = [(await limiter.reserve()).at for limiter in (a, b, a, b)]
    assert [y - x for x, y in itertools.pairwise(instants)] == [pytest.approx(0.01, abs=1e-6)] * 3
    assert (await unrelated.reserve()).wait == 0
    await other_process.aclose()


async def test_acquire_sleeps_until_its_instant(redis: Redis) -> None:
    clock = smtpx.VirtualClock()
    limit = SharedRateLimit(redis, "acct", rate=20, sleep=clock.sleep)
    for _ in range(3):
        await limit.acquire()
    assert len(clock.sleeps) == 2 and all(0 < s <= 0.1 for s in clock.sleeps)


async def test_a_slot_is_waited_for_and_a_dead_holders_lease_runs_out(redis: Redis) -> None:
    waited: list[float] = []

    async def dead_holders_lease_runs_out(seconds: float) -> None:  # time passing, for test
        waited.append(seconds)
        await redis.zadd("slots", {b"dead": 0}, xx=True)  # score 0: expired long ago

    slots = SharedConcurrency(redis, "slots", 1, poll=0.5, sleep=dead_holders_lease_runs_out)
    # a process that died holding the only slot (its lease is an hour away)
    far = (await redis.time())[0] + 3600
    await redis.zadd("slots", {b"dead": far * 1_000_000})
    async with slots.slot():
        assert await redis.zcard("slots") == 1
    assert waited == [0.5]  # refused once, then granted once the lease ran out
    assert await redis.zcard("slots") == 0  # released on exit


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"limit": 0}, "limit"), ({"limit": 2, "lease": 0}, "lease"), ({"limit": 1.5}, "limit")],
)
async def test_slots_check_their_arguments(
    redis: Redis, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(smtpx.UsageError, match=match):
        SharedConcurrency(redis, "slots", **kwargs)


async def test_redis_down_is_a_transient_error_and_nothing_is_sent() -> None:
    gone = Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    async with ScriptedServer() as server:
        pool = SharedLimitPool(server.host, server.port, redis=gone, key="acct", rate=5, **PLAIN)
        with pytest.raises(LimitUnavailable) as info:
            await pool.send(MESSAGE)
        await pool.close()
    assert info.value.retryable and info.value.__cause__ is not None
    assert server.messages == []
    await gone.aclose()


async def test_through_the_outbox_redis_down_defers(tmp_path: Path) -> None:
    gone = Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    clock = smtpx.VirtualClock()
    async with ScriptedServer() as server:
        with Outbox(tmp_path / "o.db", clock=clock.monotonic, sleep=clock.sleep) as outbox:
            message_id = await outbox.put(MESSAGE)
            async with SharedLimitPool(
                server.host, server.port, redis=gone, key="acct", max_concurrent=2, **PLAIN
            ) as pool:
                task = asyncio.create_task(outbox.run(pool))
                while outbox.stats().count(State.DEFERRED) == 0:
                    await asyncio.sleep(0.001)
                outbox.stop()
                await task
            status = outbox.status(message_id)
    assert status is not None
    (recipient,) = status.recipients
    assert recipient.failure is not None and recipient.failure.error == "LimitUnavailable"
    assert server.messages == []
    await gone.aclose()


def test_several_processes_share_the_rate_and_the_slots(
    redis_port: int, smtp_sink: SmtpSinkFactory
) -> None:
    sink = smtp_sink("-c")
    processes, messages, rate, slots = 3, 24, 40.0, 2
    spec = {"redis": redis_port, "host": sink.host, "port": sink.port, "messages": messages}
    spec |= {"rate": rate, "slots": slots}
    started = time.time()
    workers = [
        subprocess.Popen([sys.executable, str(WORKER), json.dumps(spec)], stdout=subprocess.PIPE)
        for _ in range(processes)
    ]
    reports = []
    for worker in workers:
        out, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0
        reports.append(json.loads(out))
    # The k-th message end (over every process) cannot come before k - 1 intervals after
    # the start: each send waited for its reserved instant, and instants are one apart.
    ends = sorted(end for report in reports for end in report["ends"])
    assert len(ends) == processes * messages
    assert all(end >= started + k / rate for k, end in enumerate(ends))
    # Never more holders than slots, and the cap was reached: it did the limiting.
    assert max(report["most_holders"] for report in reports) == slots
    # Every message arrived once: smtp-sink's counter, and every recipient accepted.
    total = 2 * processes * messages
    assert sum(report["accepted"] for report in reports) == total
    counted = re.findall(r"mesg=(\d+)", sink.log())
    assert counted and int(counted[-1]) == total
