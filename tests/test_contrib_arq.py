"""smtpx.contrib.arq end to end: a real Redis (started here), a real arq worker in-process
(burst mode), and a scripted SMTP server.

Redis comes from the Debian package ``redis-server``. Without it these tests skip, unless
``CI=true`` or ``SMTPX_REQUIRE_REAL_SERVERS=1``: then they fail.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redisserver import answers_ping, running_redis

if os.environ.get("CI", "").lower() != "true":  # in CI a missing extra is an error
    pytest.importorskip("arq", reason="the arq task needs the arq extra")

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.jobs import Job
from arq.worker import Worker

import smtpx
from smtpx.contrib.arq import CONTEXT_KEY, Mailer, MailOutcome, enqueue_mail, send_mail
from smtpx.testing import ScriptedServer, assert_not_sent, assert_sent

MESSAGE = (
    b"From: shop@example.com\r\nTo: alice@example.com, bob@example.com\r\n"
    b"Subject: Your order\r\n\r\nIt has shipped.\r\n"
)
# arq's Worker.close() calls redis-py's deprecated close()
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")

ALICE, BOB = "alice@example.com", "bob@example.com"
DELAY = 0.2  # the injected backoff: the first retry waits exactly this long
GREYLISTED = "450 4.2.0 Greylisted, try again later"


@pytest.fixture(scope="session")
def redis_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSettings]:
    with running_redis(tmp_path_factory.mktemp("redis")) as port:
        yield RedisSettings(host="127.0.0.1", port=port)


@pytest.fixture
async def redis(redis_settings: RedisSettings) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(redis_settings)
    await pool.flushdb()
    yield pool
    await pool.aclose()


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    async with ScriptedServer() as scripted:
        yield scripted


def mailer_for(server: ScriptedServer, **options: Any) -> Mailer:
    return Mailer(
        server.host,
        server.port,
        tls=smtpx.TLSMode.NONE,
        local_hostname="client.test",
        timeout=2,
        backoff=smtpx.Backoff(initial=DELAY, jitter=0),
        **options,
    )


async def run_worker(redis_settings: RedisSettings, mailer: Mailer) -> Worker:
    """Run a worker until the queue is empty, deferred jobs included (burst mode)."""

    async def startup(ctx: dict[str, object]) -> None:
        ctx[CONTEXT_KEY] = mailer

    async def shutdown(ctx: dict[str, object]) -> None:
        await mailer.close()

    worker = Worker(
        functions=[send_mail],
        redis_settings=redis_settings,
        burst=True,
        poll_delay=0.01,
        handle_signals=False,
        on_startup=startup,
        on_shutdown=shutdown,
    )
    try:
        async with asyncio.timeout(10):
            await worker.async_run()
    finally:
        await worker.close()
    return worker


async def outcome(redis: ArqRedis, job_id: str | None) -> MailOutcome:
    assert job_id is not None
    result: MailOutcome = await Job(job_id, redis).result(timeout=1)
    return result


# -- the tests ---------------------------------------------------------------------------


async def test_greylisted_recipient_is_retried_alone_after_the_suggested_delay(
    redis_settings: RedisSettings, redis: ArqRedis, server: ScriptedServer
) -> None:
    server.on("RCPT", match="bob@", reply=GREYLISTED, times=1)
    mailer = mailer_for(server)
    first_id = await enqueue_mail(redis, MESSAGE)

    worker = await run_worker(redis_settings, mailer)

    assert (worker.jobs_complete, worker.jobs_failed) == (2, 0)
    # once per recipient: bob's retry did not go to alice again
    assert_sent(server, to=ALICE, count=1)
    assert_sent(server, to=BOB, count=1)
    assert [m.rcpt_tos for m in server.messages] == [(ALICE,), (BOB,)]

    first = await outcome(redis, first_id)
    expected = smtpx.suggested_delay(smtpx.MailboxBusy(), 1, mailer.backoff)
    assert expected == DELAY
    assert first["accepted"] == [ALICE]
    assert first["retrying"] == [BOB]
    assert first["defer"] == expected
    assert first["rejected"] == {}

    retry = await Job(first["retry_job"] or "", redis).result_info()
    assert retry is not None
    assert retry.kwargs == {"sender": "shop@example.com", "recipients": [BOB], "attempt": 2}
    waited = (retry.start_time - retry.enqueue_time).total_seconds()
    assert DELAY <= waited < DELAY + 1.0
    second: MailOutcome = retry.result
    assert second["accepted"] == [BOB]
    assert second["retrying"] == []


async def test_421_before_any_recipient_retries_everyone(
    redis_settings: RedisSettings, redis: ArqRedis, server: ScriptedServer
) -> None:
    server.on("MAIL", reply="421 4.3.2 Shutting down", close=True, times=1)
    first_id = await enqueue_mail(redis, MESSAGE)
    worker = await run_worker(redis_settings, mailer_for(server))
    assert (worker.jobs_complete, worker.jobs_failed) == (2, 0)
    assert (await outcome(redis, first_id))["retrying"] == [ALICE, BOB]
    assert_sent(server, to=[ALICE, BOB], count=1)


async def test_server_hint_sets_the_delay(redis: ArqRedis, server: ScriptedServer) -> None:
    # Every recipient deferred: the hints are in the per-recipient refusals.
    server.on("RCPT", reply="450 4.2.0 Greylisted, try again in 5 minutes")
    mailer = mailer_for(server)
    try:
        result = await send_mail({CONTEXT_KEY: mailer, "redis": redis, "job_id": "j1"}, MESSAGE)
    finally:
        await mailer.close()
    assert result["defer"] == 300.0
    assert result["retrying"] == [ALICE, BOB]
    assert result["retry_job"] == "j1:retry"
    deferred_until = await redis.zscore("arq:queue", "j1:retry")
    assert deferred_until is not None
    assert deferred_until / 1000 - time.time() == pytest.approx(300, abs=5)


async def test_permanent_refusal_is_not_retried(
    redis_settings: RedisSettings, redis: ArqRedis, server: ScriptedServer
) -> None:
    server.on("RCPT", reply="550 5.1.1 No such user")
    first_id = await enqueue_mail(redis, MESSAGE)
    worker = await run_worker(redis_settings, mailer_for(server))
    assert (worker.jobs_complete, worker.jobs_failed) == (0, 1)
    with pytest.raises(smtpx.AllRecipientsRejected) as info:
        await outcome(redis, first_id)
    assert set(info.value.rejected) == {ALICE, BOB}  # the typed error survived pickling
    assert_not_sent(server)


async def test_mixed_refusals_retry_only_the_transient_one(
    redis_settings: RedisSettings, redis: ArqRedis, server: ScriptedServer
) -> None:
    server.on("RCPT", match="alice@", reply=GREYLISTED, times=1)
    server.on("RCPT", match="bob@", reply="550 5.1.1 No such user")
    first_id = await enqueue_mail(redis, MESSAGE)
    worker = await run_worker(redis_settings, mailer_for(server))
    assert (worker.jobs_complete, worker.jobs_failed) == (2, 0)
    first = await outcome(redis, first_id)
    assert first["retrying"] == [ALICE]
    assert "550 5.1.1" in first["rejected"][BOB]
    assert_sent(server, to=ALICE, count=1)
    assert_not_sent(server, to=BOB)


async def test_gives_up_after_max_attempts(
    redis_settings: RedisSettings, redis: ArqRedis, server: ScriptedServer
) -> None:
    server.on("RCPT", match="bob@", reply=GREYLISTED)
    first_id = await enqueue_mail(redis, MESSAGE)
    worker = await run_worker(redis_settings, mailer_for(server, max_attempts=1))
    assert (worker.jobs_complete, worker.jobs_failed) == (1, 0)
    first = await outcome(redis, first_id)
    assert first["accepted"] == [ALICE]
    assert list(first["gave_up"]) == [BOB]
    assert first["retry_job"] is None


async def test_fails_with_the_typed_error_when_nobody_ever_accepted(
    redis_settings: RedisSettings, redis: ArqRedis, server: ScriptedServer
) -> None:
    server.on("RCPT", reply=GREYLISTED)
    first_id = await enqueue_mail(redis, MESSAGE)
    worker = await run_worker(redis_settings, mailer_for(server, max_attempts=2))
    assert (worker.jobs_complete, worker.jobs_failed) == (1, 1)
    with pytest.raises(smtpx.AllRecipientsDeferred):
        await outcome(redis, (await outcome(redis, first_id))["retry_job"])
    assert_not_sent(server)


async def test_enqueue_mail_sends_bcc_without_the_header(
    redis_settings: RedisSettings, redis: ArqRedis, server: ScriptedServer
) -> None:
    message = MESSAGE.replace(b"Subject:", b"Bcc: carol@example.com\r\nSubject:")
    await enqueue_mail(redis, message)
    with pytest.raises(smtpx.InvalidEnvelope):
        await enqueue_mail(redis, MESSAGE, recipients=["not an address"])
    await run_worker(redis_settings, mailer_for(server))
    [received] = assert_sent(server, to=[ALICE, BOB, "carol@example.com"])
    assert b"carol" not in received.data


def test_redis_is_stopped_by_pid(tmp_path: Path) -> None:
    with running_redis(tmp_path) as port:
        assert answers_ping(port)
    assert not answers_ping(port)
