"""``Outbox.dispatch`` / ``Outbox.deliver``: the outbox handing attempts to a task queue.

In one process, over the scripted server, with virtual time: an attempt is claimed once,
delivered once (a task run twice does nothing the second time), taken back when its
lease runs out, and never resent after its end may have left.  The real Celery and arq
workers on a real Redis are in tests/test_outbox_queues.py.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from outboxes import virtual_clock, virtual_outbox

import smtpx
from smtpx import VirtualClock
from smtpx.outbox import Outbox, State
from smtpx.testing import ScriptedServer

PLAIN: dict[str, Any] = {"tls": smtpx.TLSMode.NONE, "local_hostname": "client.test"}
LEASE = 600.0
ALICE, BOB = "alice@example.com", "bob@example.com"


def message(n: int) -> bytes:
    return f"From: shop@example.com\r\nSubject: {n}\r\n\r\nbody {n}\r\n".encode()


@pytest.fixture
def clock() -> VirtualClock:
    return virtual_clock()


@pytest.fixture
def outbox(tmp_path: Path, clock: VirtualClock) -> Iterator[Outbox]:
    with virtual_outbox(tmp_path, clock, lease=LEASE) as box:
        yield box


@pytest.fixture
async def client() -> AsyncIterator[tuple[ScriptedServer, smtpx.Client]]:
    async with (
        ScriptedServer() as server,
        smtpx.Client(server.host, server.port, **PLAIN) as connected,
    ):
        yield server, connected


class Queue:
    """A stand-in task queue: what dispatch enqueued, in order."""

    def __init__(self) -> None:
        self.attempts: list[int] = []

    def __call__(self, attempt: int) -> None:
        self.attempts.append(attempt)

    def take(self) -> list[int]:
        taken, self.attempts = self.attempts, []
        return taken


def copies(server: ScriptedServer, recipient: str) -> int:
    return len(server.received_by(recipient))


async def test_each_due_message_is_enqueued_once_and_delivered_once(
    outbox: Outbox, client: tuple[ScriptedServer, smtpx.Client]
) -> None:
    server, via = client
    ids = [await outbox.put(message(n), recipients=[ALICE, BOB]) for n in range(3)]
    queue = Queue()
    assert await outbox.dispatch(queue) == 3
    assert await outbox.dispatch(queue) == 0  # claimed: not handed out again
    attempts = queue.take()
    assert len(set(attempts)) == 3 and outbox.stats().in_flight == 6
    for attempt in attempts:
        assert await outbox.deliver(attempt, via) == {ALICE: State.ACCEPTED, BOB: State.ACCEPTED}
        assert await outbox.deliver(attempt, via) is None  # the task ran twice: harmless
    assert all(outbox.status(i).recipients[0].state is State.ACCEPTED for i in ids)  # type: ignore[union-attr]
    assert copies(server, ALICE) == copies(server, BOB) == 3
    assert outbox.stats().in_flight == 0 and await outbox.dispatch(queue) == 0


async def test_dispatch_respects_its_limit(outbox: Outbox) -> None:
    for n in range(5):
        await outbox.put(message(n), recipients=[ALICE])
    queue = Queue()
    assert await outbox.dispatch(queue, limit=2) == 2
    assert await outbox.dispatch(queue, limit=10) == 3
    assert len(set(queue.take())) == 5


async def test_a_deferred_recipient_is_dispatched_again_when_due_and_alone(
    outbox: Outbox, client: tuple[ScriptedServer, smtpx.Client], clock: VirtualClock
) -> None:
    server, via = client
    server.on("RCPT", match="bob@", reply="450 4.2.0 Greylisted", times=1)
    await outbox.put(message(0), recipients=[ALICE, BOB])
    queue = Queue()
    await outbox.dispatch(queue)
    [first] = queue.take()
    assert await outbox.deliver(first, via) == {ALICE: State.ACCEPTED, BOB: State.DEFERRED}
    assert await outbox.dispatch(queue) == 0  # not due yet
    clock.now += 10
    assert await outbox.dispatch(queue) == 1
    [second] = queue.take()
    assert await outbox.deliver(second, via) == {BOB: State.ACCEPTED}
    assert copies(server, ALICE) == copies(server, BOB) == 1


async def test_a_lost_task_is_taken_back_after_its_lease_and_sent_once(
    outbox: Outbox, client: tuple[ScriptedServer, smtpx.Client], clock: VirtualClock
) -> None:
    server, via = client
    await outbox.put(message(0), recipients=[ALICE])
    queue = Queue()
    await outbox.dispatch(queue)
    [lost] = queue.take()  # its worker died before it started
    clock.now += LEASE - 1
    assert await outbox.dispatch(queue) == 0  # still its worker's
    clock.now += 2
    assert await outbox.dispatch(queue) == 1  # taken back, handed out again
    [again] = queue.take()
    assert again != lost
    assert await outbox.deliver(lost, via) is None  # the lost task turns up: nothing
    assert await outbox.deliver(again, via) == {ALICE: State.ACCEPTED}
    assert copies(server, ALICE) == 1


async def test_a_task_that_cannot_be_queued_leaves_its_recipients_due(
    outbox: Outbox, client: tuple[ScriptedServer, smtpx.Client]
) -> None:
    server, via = client
    for n in range(3):
        await outbox.put(message(n), recipients=[ALICE])
    calls = 0

    def broken(attempt: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("the broker is down")

    with pytest.raises(ConnectionError):
        await outbox.dispatch(broken)
    assert outbox.stats().in_flight == 1  # the one queued before the broker failed
    queue = Queue()
    assert await outbox.dispatch(queue) == 2  # the other two, at once
    for attempt in queue.take():
        await outbox.deliver(attempt, via)
    assert copies(server, ALICE) == 2


async def test_dispatch_expires_what_is_past_max_age(outbox: Outbox, clock: VirtualClock) -> None:
    message_id = await outbox.put(message(0), recipients=[ALICE], max_age=60)
    clock.now += 61
    assert await outbox.dispatch(Queue()) == 0
    status = outbox.status(message_id)
    assert status is not None and status.recipients[0].state is State.EXPIRED


@pytest.mark.parametrize("limit", [0, -1, 1.5, "2", None])
async def test_dispatch_limit_is_checked(outbox: Outbox, limit: Any) -> None:
    with pytest.raises(smtpx.UsageError, match="limit"):
        await outbox.dispatch(Queue(), limit=limit)


async def test_deliver_needs_a_client_or_pool(outbox: Outbox) -> None:
    with pytest.raises(smtpx.UsageError, match="Client or a Pool"):
        await outbox.deliver(1, "smtp.example.com")  # type: ignore[arg-type]


@pytest.mark.parametrize("lease", [0, -1, float("nan"), "600"])
def test_lease_is_checked(tmp_path: Path, lease: Any) -> None:
    with pytest.raises(smtpx.UsageError, match="lease"):
        Outbox(tmp_path / "outbox.db", lease=lease)


# A worker process that delivers one attempt and is killed (SIGKILL, by itself) right
# after the outbox recorded that the end of the message may leave: the worst point.
KILLED_AFTER_END = """
import asyncio, logging, os, signal, sys
import smtpx
from smtpx.outbox import Outbox

class Die(logging.Handler):
    def emit(self, record):
        if "may leave" in record.getMessage():
            os.kill(os.getpid(), signal.SIGKILL)

logger = logging.getLogger("smtpx.outbox")
logger.setLevel(logging.DEBUG)
logger.addHandler(Die())

async def main(db, port, attempt):
    with Outbox(db) as outbox:
        async with smtpx.Client("127.0.0.1", port, tls=smtpx.TLSMode.NONE) as client:
            await outbox.deliver(attempt, client)

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


async def test_a_worker_killed_after_the_end_marker_leaves_delivery_unknown(
    tmp_path: Path,
) -> None:
    db = tmp_path / "outbox.db"
    async with ScriptedServer() as server:
        with Outbox(db, lease=LEASE) as outbox:  # real time: the worker's clock
            await outbox.put(message(0), recipients=[ALICE, BOB])
            queue = Queue()
            await outbox.dispatch(queue)
            [attempt] = queue.take()
            script = tmp_path / "worker.py"
            script.write_text(textwrap.dedent(KILLED_AFTER_END))
            # asynchronously: the scripted server runs in this event loop
            worker = await asyncio.create_subprocess_exec(
                sys.executable,
                str(script),
                str(db),
                str(server.port),
                str(attempt),
                stderr=asyncio.subprocess.PIPE,
            )
            _, stderr = await asyncio.wait_for(worker.communicate(), 60)
            assert worker.returncode == -signal.SIGKILL, stderr.decode()
            assert outbox.stats().in_flight == 2  # the dead worker's attempt, for now
            # the queue delivers the task again (its worker died): it must not send
            async with smtpx.Client(server.host, server.port, **PLAIN) as again:
                assert await outbox.deliver(attempt, again) is None
            assert outbox.stats().in_flight == 2 and len(server.messages) == 0
        later = time.time() + LEASE + 1  # the lease has run out
        with Outbox(db, lease=LEASE, clock=lambda: later) as outbox:
            assert await outbox.dispatch(queue) == 0  # nothing to send again...
            assert {r.address: r.state for r in outbox.unknown()} == {
                ALICE: State.DELIVERY_UNKNOWN,  # ...and nobody resent: it may have arrived
                BOB: State.DELIVERY_UNKNOWN,
            }
            assert outbox.stats().in_flight == 0
    assert len(server.messages) == 0  # killed before the end was written
