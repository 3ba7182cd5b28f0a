"""The outbox handing its attempts to real task-queue workers: several Celery worker
processes (prefork) and several arq worker processes, each on a real Redis started here,
all sharing one SQLite outbox, sending to a scripted server in this process.

For every recipient the database and the server must agree: accepted -> exactly one
copy, refused -> none; nothing left pending or in flight; and more than one worker
process did send.  Redis comes from the Debian package ``redis-server``: without it
these tests skip, unless ``CI=true`` or ``SMTPX_REQUIRE_REAL_SERVERS=1``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celeryworker import celery_worker
from redisserver import running_redis

if os.environ.get("CI", "").lower() != "true":  # in CI a missing extra is an error
    pytest.importorskip("celery", reason="the Celery tasks need the celery extra")
    pytest.importorskip("arq", reason="the arq tasks need the arq extra")

from smtpx.contrib.celery import outbox_enqueuer as celery_enqueuer
from smtpx.outbox import Outbox, State
from smtpx.testing import ScriptedServer, serve_in_thread

pytestmark = pytest.mark.filterwarnings(
    "ignore:Call to 'get_connection':DeprecationWarning",
    "ignore:Call to deprecated close:DeprecationWarning",
)

MESSAGES = 40
WAIT = 60.0  # seconds the whole batch may take, at most (a bound, not a speed)
GREYLISTED = "450 4.2.0 Greylisted, try again later"
POLICY = "smtpx.RetryPolicy(attempts=3, backoff=smtpx.Backoff(initial=0.05, jitter=0))"


def recipients_of(n: int) -> list[str]:
    """Ordinary recipients, one greylisted once (450 then 250) and one that never exists."""
    found = [f"u{j}@m{n}.example.com" for j in range(1 + n % 3)]
    if n % 4 == 0:
        found.append(f"grey@m{n}.example.com")
    if n % 5 == 0:
        found.append(f"nobody@m{n}.example.com")
    return found


def script(server: ScriptedServer) -> None:
    server.on("RCPT", match="nobody@", reply="550 5.1.1 No such user")
    for n in range(MESSAGES):
        if n % 4 == 0:
            server.on("RCPT", match=f"grey@m{n}.", reply=GREYLISTED, times=1)


def put_batch(db: Path) -> None:
    async def put() -> None:
        with Outbox(db) as outbox:
            for n in range(MESSAGES):
                body = f"From: shop@example.com\r\nSubject: {n}\r\n\r\norder {n}\r\n"
                await outbox.put(body.encode(), recipients=recipients_of(n), key=f"m{n}")

    asyncio.run(put())


def settled(db: Path) -> bool:
    with Outbox(db) as outbox:
        stats = outbox.stats()
        return stats.in_flight == 0 and not any(
            stats.recipients.get(state, 0) for state in (State.PENDING, State.DEFERRED)
        )


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def check_batch(db: Path, server: ScriptedServer) -> None:
    """The outbox and the server agree on every recipient."""
    with Outbox(db) as outbox:
        assert outbox.check() == "ok"
        for message_id in range(1, MESSAGES + 1):
            status = outbox.status(message_id)
            assert status is not None
            for recipient in status.recipients:
                copies = len(server.received_by(recipient.address))
                where = f"{recipient.address}: {recipient.state.value}, {copies} copies"
                if recipient.address.startswith("nobody@"):
                    assert recipient.state is State.REFUSED and copies == 0, where
                else:
                    assert recipient.state is State.ACCEPTED and copies == 1, where
        assert outbox.stats().in_flight == 0
    # one connection per worker process: the work was shared
    assert server.connections >= 2


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_redis(tmp_path_factory.mktemp("redis")) as port:
        yield f"redis://127.0.0.1:{port}"


@pytest.fixture
def smtp() -> Iterator[ScriptedServer]:
    with serve_in_thread() as server:
        script(server)
        yield server


# -- Celery: a prefork worker, three processes ------------------------------------------

CELERY_APP = f"""
import os

from celery import Celery

import smtpx
from smtpx.contrib.celery import Mailer, register_outbox

app = Celery("smtpx_outbox_app", broker=os.environ["BROKER_URL"], backend=os.environ["BROKER_URL"])
app.conf.broker_connection_retry_on_startup = True
app.conf.worker_prefetch_multiplier = 1
mailer = Mailer(
    "127.0.0.1",
    int(os.environ["SMTP_PORT"]),
    tls=smtpx.TLSMode.NONE,
    local_hostname="worker.test",
    timeout=5,
)
deliver, dispatch = register_outbox(app, os.environ["OUTBOX_DB"], mailer, retry={POLICY})
"""


CELERY_FLAGS = (
    "--pool=prefork",
    "--concurrency=3",
    "--without-gossip",
    "--without-mingle",
    "--loglevel=INFO",
)


def test_celery_workers_share_the_outbox_and_send_each_recipient_once(
    redis_url: str, smtp: ScriptedServer, tmp_path: Path
) -> None:
    db = tmp_path / "outbox.db"
    put_batch(db)
    env = {"BROKER_URL": f"{redis_url}/1", "SMTP_PORT": str(smtp.port), "OUTBOX_DB": str(db)}
    with celery_worker(tmp_path, "smtpx_outbox_app", CELERY_APP, env, CELERY_FLAGS) as app:
        with Outbox(db) as outbox:  # the application hands out what it put
            handed = asyncio.run(outbox.dispatch(celery_enqueuer(app.deliver)))
        assert handed == MESSAGES

        def done() -> bool:
            # the beat's job, done by hand: retries and lost attempts, in a worker
            app.dispatch.delay().get(timeout=WAIT)
            return settled(db)

        wait_for(done, "the batch to settle")
    check_batch(db, smtp)


# -- arq: worker processes in burst mode ----------------------------------------------

ARQ_SETTINGS = f"""
import os

from arq.connections import RedisSettings

import smtpx
from smtpx.contrib.arq import CONTEXT_KEY, OUTBOX_KEY, Mailer, deliver_from_outbox
from smtpx.outbox import Outbox


async def startup(ctx):
    ctx[CONTEXT_KEY] = Mailer(
        "127.0.0.1",
        int(os.environ["SMTP_PORT"]),
        tls=smtpx.TLSMode.NONE,
        local_hostname="worker.test",
        timeout=5,
    )
    ctx[OUTBOX_KEY] = Outbox(os.environ["OUTBOX_DB"], retry={POLICY})


async def shutdown(ctx):
    await ctx[CONTEXT_KEY].close()
    ctx[OUTBOX_KEY].close()


class WorkerSettings:
    functions = [deliver_from_outbox]
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = RedisSettings.from_dsn(os.environ["REDIS_URL"])
    poll_delay = 0.01
    max_jobs = 4
"""


def test_arq_workers_share_the_outbox_and_send_each_recipient_once(
    redis_url: str, smtp: ScriptedServer, tmp_path: Path
) -> None:
    from arq import create_pool
    from arq.connections import RedisSettings

    from smtpx.contrib.arq import OUTBOX_KEY, dispatch_outbox, outbox_enqueuer

    db = tmp_path / "outbox.db"
    put_batch(db)
    (tmp_path / "smtpx_outbox_arq.py").write_text(textwrap.dedent(ARQ_SETTINGS))
    env = {
        **os.environ,
        "REDIS_URL": f"{redis_url}/2",
        "SMTP_PORT": str(smtp.port),
        "OUTBOX_DB": str(db),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
    }

    async def dispatch(first: bool) -> int:
        redis = await create_pool(RedisSettings.from_dsn(env["REDIS_URL"]))
        try:
            with Outbox(db) as outbox:
                if first:  # the application, after its puts
                    return await outbox.dispatch(outbox_enqueuer(redis))
                # then the cron job, with the ctx a worker gives it
                return await dispatch_outbox({"redis": redis, OUTBOX_KEY: outbox})
        finally:
            await redis.aclose()

    rounds, handed = 0, []
    while not settled(db):
        rounds += 1
        assert rounds <= 10, "the batch did not settle in 10 rounds"
        handed.append(asyncio.run(dispatch(first=rounds == 1)))
        if handed[-1] == 0:
            time.sleep(0.05)  # a deferred recipient is not due yet
            continue
        # two worker processes, until the queue is empty
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "arq", "smtpx_outbox_arq.WorkerSettings", "--burst"],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for _ in range(2)
        ]
        for worker in workers:
            output, _ = worker.communicate(timeout=WAIT)
            assert worker.returncode == 0, output.decode()
    assert handed[0] == MESSAGES and sum(handed[1:]) > 0  # the cron job handed out retries
    check_batch(db, smtp)
