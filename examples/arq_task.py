"""Sending mail from an arq worker: transient failures are rescheduled for the recipients
still pending, after the delay smtpx suggests; permanent ones are not retried.

The worker, for real (Redis and SMTP settings from the environment)::

    arq examples.arq_task.WorkerSettings

The application enqueues with ``await smtpx.contrib.arq.enqueue_mail(redis, message)``.

The demo: ``.venv/bin/python examples/arq_task.py`` (needs ``pip install 'smtpx[arq]'``
and the Debian package ``redis-server``, or a Redis at ``$REDIS_PORT``). It starts a
throwaway Redis and an embedded SMTP server that greylists bob once, enqueues one
message to alice and bob, and runs a worker until the queue is empty.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from typing import Any, ClassVar

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker

import smtpx
from smtpx.contrib.arq import CONTEXT_KEY, Mailer, enqueue_mail, send_mail
from smtpx.testing import ScriptedServer


async def startup(ctx: dict[str, Any]) -> None:
    user = os.environ.get("SMTP_USER")
    ctx[CONTEXT_KEY] = Mailer(
        os.environ.get("SMTP_HOST", "localhost"),
        int(os.environ.get("SMTP_PORT", "587")),
        credentials=(user, os.environ.get("SMTP_PASSWORD", "")) if user else None,
        max_attempts=8,  # per recipient, over hours: Backoff caps each wait at 5 minutes
    )


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx[CONTEXT_KEY].close()


class WorkerSettings:
    functions: ClassVar = [send_mail]
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = RedisSettings(
        host=os.environ.get("REDIS_HOST", "localhost"),
        port=int(os.environ.get("REDIS_PORT", "6379")),
    )


# -- the demo ------------------------------------------------------------------------------

MESSAGE = b"""\
From: shop@example.com
To: alice@example.com, bob@example.com
Subject: Your order has shipped

It is on its way.
"""


async def demo(redis_port: int) -> None:
    redis_settings = RedisSettings(host="127.0.0.1", port=redis_port)
    async with ScriptedServer() as server:
        server.on("RCPT", match="bob@", reply="450 4.2.0 Greylisted, try again later", times=1)
        mailer = Mailer(
            server.host,
            server.port,
            tls=smtpx.TLSMode.NONE,  # the embedded server; real servers: keep the default
            backoff=smtpx.Backoff(initial=0.5, jitter=0),  # short waits for the demo
        )

        async def demo_startup(ctx: dict[str, Any]) -> None:
            ctx[CONTEXT_KEY] = mailer

        redis = await create_pool(redis_settings)
        try:
            await enqueue_mail(redis, MESSAGE)
            worker = Worker(
                functions=[send_mail],
                redis_settings=redis_settings,
                burst=True,  # stop once the queue, deferred jobs included, is empty
                poll_delay=0.05,
                handle_signals=False,
                on_startup=demo_startup,
                on_shutdown=shutdown,
            )
            try:
                await worker.async_run()
            finally:
                await worker.close()
        finally:
            await redis.aclose()
        for number, message in enumerate(server.messages, 1):
            print(f"delivery {number}: {', '.join(message.rcpt_tos)}")


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    if "REDIS_PORT" in os.environ:
        asyncio.run(demo(int(os.environ["REDIS_PORT"])))
        return 0
    binary = shutil.which("redis-server")
    if binary is None:
        print("install redis-server (apt-get install redis-server) or set REDIS_PORT")
        return 1
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    redis = subprocess.Popen(  # noqa: S603 - a fixed command line, no user input
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        asyncio.run(demo(port))
    finally:
        redis.terminate()
        redis.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
