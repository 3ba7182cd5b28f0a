"""``smtpx.Outbox`` in one process: put, run, every recipient state, storage, decisions.

The worker talks SMTP to the in-process ScriptedServer; time is virtual (the outbox's
clock and sleep come from one ``VirtualClock``), so retry waits cost nothing.  The
crash test (tests/test_outbox_crash.py) kills real worker processes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from outboxes import START, virtual_clock, virtual_outbox

import smtpx
from smtpx import VirtualClock
from smtpx.outbox import Outbox, State, StorageError
from smtpx.testing import ScriptedServer

PLAIN: dict[str, Any] = {"tls": smtpx.TLSMode.NONE, "local_hostname": "client.test"}
MESSAGE = b"From: shop@example.com\r\nTo: a@example.com\r\nSubject: s\r\n\r\nbody\r\n"


@pytest.fixture
def clock() -> VirtualClock:
    return virtual_clock()


@pytest.fixture
def outbox(tmp_path: Path, clock: VirtualClock) -> Iterator[Outbox]:
    with virtual_outbox(tmp_path, clock, poll_interval=3600) as box:
        yield box


@pytest.fixture(params=[(False, False), (True, False), (True, True)], ids=["lock", "pipe", "bdat"])
async def mx(request: pytest.FixtureRequest) -> AsyncIterator[ScriptedServer]:
    pipelining, chunking = request.param
    async with ScriptedServer(pipelining=pipelining, chunking=chunking) as server:
        yield server


async def deliver(outbox: Outbox, server: ScriptedServer) -> None:
    async with smtpx.Client(server.host, server.port, **PLAIN) as client:
        await outbox.run(client, until_idle=True)


def states(outbox: Outbox, message_id: int) -> dict[str, State]:
    status = outbox.status(message_id)
    assert status is not None
    return {r.address: r.state for r in status.recipients}


# -- put --------------------------------------------------------------------------------


async def test_put_stores_before_returning_and_a_key_makes_it_idempotent(
    outbox: Outbox, tmp_path: Path
) -> None:
    first = await outbox.put(MESSAGE, recipients=["a@example.com", "b@example.com"], key="k1")
    # another connection sees it at once: it is committed, not buffered
    with Outbox(tmp_path / "outbox.db") as other:
        assert states(other, first) == {
            "a@example.com": State.PENDING,
            "b@example.com": State.PENDING,
        }
    again = await outbox.put(
        b"From: x@example.com\r\n\r\nother\r\n", key="k1", recipients=["c@x.y"]
    )
    assert again == first
    assert outbox.stats().messages == 1
    assert (await outbox.put(MESSAGE, key="k2")) != first


async def test_put_takes_the_envelope_from_the_headers_like_send(outbox: Outbox) -> None:
    message = b"From: S <s@example.com>\r\nTo: a@example.com\r\nCc: b@example.com\r\n"
    message += b"Bcc: c@example.com\r\n\r\nhi\r\n"
    status = outbox.status(await outbox.put(message))
    assert status is not None
    assert status.sender == "s@example.com"
    assert [r.address for r in status.recipients] == [
        "a@example.com",
        "b@example.com",
        "c@example.com",
    ]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"recipients": ["bad\r\nRCPT TO:<x@y>"]}, smtpx.InvalidEnvelope),
        ({"recipients": []}, smtpx.InvalidEnvelope),
        ({"recipients": "a@example.com"}, smtpx.InvalidEnvelope),
        ({"sender": "evil\n@example.com"}, smtpx.InvalidEnvelope),
        ({"key": ""}, smtpx.UsageError),
        ({"key": "a\nb"}, smtpx.UsageError),
        ({"key": 7}, smtpx.UsageError),
        ({"max_age": 0}, smtpx.UsageError),
        ({"max_age": float("nan")}, smtpx.UsageError),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_stored(
    outbox: Outbox, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        await outbox.put(MESSAGE, **kwargs)
    assert outbox.stats().messages == 0


async def test_a_message_that_cannot_be_sent_safely_is_refused_at_put(outbox: Outbox) -> None:
    with pytest.raises(smtpx.InvalidMessage):
        await outbox.put(MESSAGE + b"nul\0byte\r\n")
    with pytest.raises(smtpx.InvalidEnvelope):
        await outbox.put(12345)  # type: ignore[arg-type]
    assert outbox.stats().messages == 0


# -- delivery ---------------------------------------------------------------------------


async def test_every_recipient_accepted_once_and_the_body_dropped(
    outbox: Outbox, mx: ScriptedServer
) -> None:
    ids = [await outbox.put(MESSAGE, recipients=[f"r{i}@example.com"]) for i in range(3)]
    await deliver(outbox, mx)
    assert [m.rcpt_tos for m in mx.messages] == [(f"r{i}@example.com",) for i in range(3)]
    for message_id in ids:
        assert set(states(outbox, message_id).values()) == {State.ACCEPTED}
    stats = outbox.stats()
    assert stats.count(State.ACCEPTED) == 3 and stats.in_flight == 0 and stats.next_due is None


async def test_refusals_are_recorded_per_recipient_with_class_code_and_text(
    outbox: Outbox, mx: ScriptedServer, clock: VirtualClock
) -> None:
    mx.on("RCPT", match="gone@", reply="550 5.1.1 No such user here")
    mx.on("RCPT", match="busy@", reply="450 4.2.1 Mailbox busy, try again in 60 seconds", times=1)
    recipients = ["ok@example.com", "gone@example.com", "busy@example.com"]
    message_id = await outbox.put(MESSAGE, recipients=recipients)
    await deliver(outbox, mx)
    status = outbox.status(message_id)
    assert status is not None and status.finished
    by_address = {r.address: r for r in status.recipients}
    gone, busy = by_address["gone@example.com"], by_address["busy@example.com"]
    assert gone.state is State.REFUSED and gone.attempts == 1
    assert gone.failure is not None
    assert (gone.failure.error, gone.failure.code, gone.failure.enhanced) == (
        "NoSuchMailbox",
        550,
        "5.1.1",
    )
    assert "No such user here" in gone.failure.text
    assert busy.state is State.ACCEPTED and busy.attempts == 2
    # the wait honoured the server's "try again in 60 seconds" over the 10 s backoff
    assert clock.sleeps == [60.0]
    assert [m.rcpt_tos for m in mx.messages] == [("ok@example.com",), ("busy@example.com",)]


async def test_deferred_until_its_time_then_expired_when_attempts_run_out(
    outbox: Outbox, server: ScriptedServer, clock: VirtualClock
) -> None:
    server.on("RCPT", reply="451 4.3.0 Local error in processing")
    message_id = await outbox.put(MESSAGE)
    events: list[smtpx.RetryEvent] = []
    outbox.retry = smtpx.RetryPolicy(
        attempts=3, backoff=smtpx.Backoff(initial=10, jitter=0), on_retry=events.append
    )
    await deliver(outbox, server)
    (recipient,) = outbox.status(message_id).recipients  # type: ignore[union-attr]
    assert recipient.state is State.EXPIRED and recipient.attempts == 3
    assert recipient.failure is not None and recipient.failure.code == 451
    assert clock.sleeps == [10.0, 20.0]
    assert [(e.attempt, e.wait, e.pending) for e in events] == [
        (1, 10.0, ("a@example.com",)),
        (2, 20.0, ("a@example.com",)),
    ]
    assert server.messages == []


async def test_max_age_expires_what_was_not_sent_in_time(
    outbox: Outbox, server: ScriptedServer, clock: VirtualClock
) -> None:
    server.on("RCPT", reply="450 4.2.1 Busy, try again in 2 hours")
    message_id = await outbox.put(MESSAGE, max_age=3600)
    await deliver(outbox, server)
    (recipient,) = outbox.status(message_id).recipients  # type: ignore[union-attr]
    assert recipient.state is State.EXPIRED and recipient.attempts == 1
    assert clock.now - START == pytest.approx(3600)  # expired at max_age, not at the hint


async def test_a_lost_reply_after_the_end_is_delivery_unknown_never_resent(
    outbox: Outbox, mx: ScriptedServer
) -> None:
    end = "BDAT" if mx.chunking else "DATA_END"
    mx.on(end, close=True, record=True, times=1)  # accepted, but the reply never arrives
    message_id = await outbox.put(MESSAGE, recipients=["a@example.com", "b@example.com"])
    await deliver(outbox, mx)
    assert set(states(outbox, message_id).values()) == {State.DELIVERY_UNKNOWN}
    assert len(mx.messages) == 1  # no second copy
    unknown = outbox.unknown()
    assert [(u.message_id, u.address) for u in unknown] == [
        (message_id, "a@example.com"),
        (message_id, "b@example.com"),
    ]
    assert unknown[0].failure is not None and unknown[0].failure.error == "DeliveryUnknown"
    # the caller decides: b did not get it after all
    assert outbox.release(message_id, ["b@example.com"]) == 1
    await deliver(outbox, mx)
    assert states(outbox, message_id) == {
        "a@example.com": State.DELIVERY_UNKNOWN,
        "b@example.com": State.ACCEPTED,
    }
    assert [m.rcpt_tos for m in mx.messages] == [
        ("a@example.com", "b@example.com"),
        ("b@example.com",),
    ]
    assert outbox.release(message_id) == 1 and outbox.release(message_id) == 0


async def test_a_loss_reading_replies_after_a_pipelined_chunk_is_unknown(outbox: Outbox) -> None:
    # MAIL, RCPT and the whole BDAT chunk leave in one write; the connection then drops
    # while the RCPT reply is awaited.  The client reports a loss at RCPT, but the end had
    # left: the outbox's own record makes it delivery_unknown, not "send again".
    async with ScriptedServer(pipelining=True, chunking=True) as server:
        server.on("RCPT", close=True, times=1)
        message_id = await outbox.put(MESSAGE)
        await deliver(outbox, server)
    assert states(outbox, message_id) == {"a@example.com": State.DELIVERY_UNKNOWN}


async def test_a_loss_before_the_end_sends_again(outbox: Outbox, mx: ScriptedServer) -> None:
    command = "RCPT" if not mx.chunking or not mx.pipelining else "MAIL"
    if mx.pipelining and mx.chunking:
        command = "EHLO"  # in one write, the end leaves with MAIL: lose it before MAIL
    mx.on(command, close=True, times=1)
    message_id = await outbox.put(MESSAGE)
    async with smtpx.Pool(mx.host, mx.port, size=1, **PLAIN) as pool:
        await outbox.run(pool, until_idle=True)
    assert states(outbox, message_id) == {"a@example.com": State.ACCEPTED}
    assert len(mx.messages) == 1
    (recipient,) = outbox.status(message_id).recipients  # type: ignore[union-attr]
    assert recipient.attempts == 2


async def test_a_pool_sends_several_messages_at_once(outbox: Outbox, mx: ScriptedServer) -> None:
    recipients = [f"r{i}@example.com" for i in range(12)]
    for recipient in recipients:
        await outbox.put(MESSAGE, recipients=[recipient])
    async with smtpx.Pool(mx.host, mx.port, size=4, **PLAIN) as pool:
        await outbox.run(pool, until_idle=True)
        assert pool.stats.connections_opened == 4
    assert sorted(r for m in mx.messages for r in m.rcpt_tos) == sorted(recipients)
    assert outbox.stats().count(State.ACCEPTED) == 12


async def test_a_permanent_session_failure_refuses_every_recipient(
    outbox: Outbox, server: ScriptedServer
) -> None:
    server.on("MAIL", reply="553 5.1.8 Sender address not allowed")
    message_id = await outbox.put(MESSAGE, recipients=["a@example.com", "b@example.com"])
    await deliver(outbox, server)
    status = outbox.status(message_id)
    assert status is not None
    assert {(r.state, r.failure.error if r.failure else None) for r in status.recipients} == {
        (State.REFUSED, "MailboxNameInvalid")
    }


async def test_a_failed_login_defers_the_queue_instead_of_refusing_it(
    outbox: Outbox, clock: VirtualClock
) -> None:
    # a 535 is permanent for one send, but says nothing about the recipients
    async with ScriptedServer(credentials={"app": "right"}) as server:
        server.on("AUTH", reply="535 5.7.8 Authentication credentials invalid", times=1)
        message_id = await outbox.put(MESSAGE)
        async with smtpx.Pool(
            server.host,
            server.port,
            credentials=("app", "right"),
            allow_plaintext_auth=True,
            **PLAIN,
        ) as pool:
            await outbox.run(pool, until_idle=True)
    (recipient,) = outbox.status(message_id).recipients  # type: ignore[union-attr]
    assert recipient.state is State.ACCEPTED and recipient.attempts == 2
    assert clock.sleeps == [10.0]
    assert len(server.messages) == 1


async def test_a_closed_pool_stops_the_run_and_refuses_nobody(
    outbox: Outbox, server: ScriptedServer
) -> None:
    message_id = await outbox.put(MESSAGE)
    pool = smtpx.Pool(server.host, server.port, **PLAIN)
    await pool.close()
    with pytest.raises(smtpx.UsageError, match="closed"):
        await outbox.run(pool, until_idle=True)
    assert states(outbox, message_id) == {"a@example.com": State.PENDING}
    assert server.messages == []


# -- running ----------------------------------------------------------------------------


async def running(outbox: Outbox, client: smtpx.Client) -> asyncio.Task[None]:
    """``outbox.run(client)`` started, once it has an attempt under way."""
    runner = asyncio.create_task(outbox.run(client))
    while not outbox.stats().in_flight:
        await asyncio.sleep(0.001)
    return runner


async def test_stop_lets_the_attempt_under_way_finish(
    outbox: Outbox, server: ScriptedServer
) -> None:
    message_id = await outbox.put(MESSAGE)
    async with smtpx.Client(server.host, server.port, **PLAIN) as client:
        runner = await running(outbox, client)
        outbox.stop()
        await asyncio.wait_for(runner, 10)
    assert states(outbox, message_id) == {"a@example.com": State.ACCEPTED}


async def test_a_put_wakes_a_waiting_worker(outbox: Outbox, server: ScriptedServer) -> None:
    async with smtpx.Client(server.host, server.port, **PLAIN) as client:
        runner = asyncio.create_task(outbox.run(client))
        await asyncio.sleep(0)
        message_id = await outbox.put(MESSAGE)
        while states(outbox, message_id) != {"a@example.com": State.ACCEPTED}:
            await asyncio.sleep(0.001)
        outbox.stop()
        await asyncio.wait_for(runner, 10)
    assert len(server.messages) == 1


async def test_cancelling_run_puts_unsent_recipients_back(
    outbox: Outbox, server: ScriptedServer
) -> None:
    server.on("RCPT", hang=True)
    message_id = await outbox.put(MESSAGE)
    async with smtpx.Client(server.host, server.port, **PLAIN) as client:
        runner = await running(outbox, client)
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
    status = outbox.status(message_id)
    assert status is not None
    (recipient,) = status.recipients
    assert recipient.state is State.PENDING and not recipient.in_flight


async def test_one_worker_per_database(
    outbox: Outbox, server: ScriptedServer, tmp_path: Path
) -> None:
    server.on("RCPT", hang=True)
    await outbox.put(MESSAGE)
    async with smtpx.Client(server.host, server.port, **PLAIN) as client:
        runner = await running(outbox, client)
        with (
            Outbox(tmp_path / "outbox.db") as second,
            pytest.raises(smtpx.UsageError, match="another worker"),
        ):
            await second.run(client)
        with pytest.raises(smtpx.UsageError, match="already running"):
            await outbox.run(client)
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner


@pytest.mark.parametrize(
    "kwargs", [{"concurrency": 0}, {"concurrency": 1.5}, {"grace": -1}], ids=str
)
async def test_run_checks_its_arguments(
    outbox: Outbox, server: ScriptedServer, kwargs: dict[str, Any]
) -> None:
    async with smtpx.Client(server.host, server.port, **PLAIN) as client:
        with pytest.raises(smtpx.UsageError):
            await outbox.run(client, until_idle=True, **kwargs)
    with pytest.raises(smtpx.UsageError, match="Client or a Pool"):
        await outbox.run("smtp.example.com", until_idle=True)  # type: ignore[arg-type]


# -- storage ----------------------------------------------------------------------------


async def test_a_large_message_is_a_file_beside_the_database_until_finished(
    tmp_path: Path, server: ScriptedServer
) -> None:
    big = MESSAGE + (b"y" * 500 + b"\r\n") * 40
    with Outbox(tmp_path / "box.db", inline_limit=len(big) - 1) as outbox:
        large = await outbox.put(big)
        small = await outbox.put(MESSAGE)
        files = list((tmp_path / "box.db-bodies").iterdir())
        assert len(files) == 1
        stored = files[0].read_bytes()  # the prepared bytes: Date and Message-ID added once
        assert stored.endswith(big) and b"\r\nMessage-ID: <" in stored[: -len(big)]
        with sqlite3.connect(tmp_path / "box.db") as db:
            rows = dict(db.execute("SELECT id, body IS NULL FROM message").fetchall())
        assert rows == {large: 1, small: 0}
        await deliver(outbox, server)
        assert list((tmp_path / "box.db-bodies").iterdir()) == []
        assert server.messages[0].data == stored
        assert outbox.check() == "ok"


def test_the_schema_is_versioned(tmp_path: Path) -> None:
    path = tmp_path / "box.db"
    Outbox(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(smtpx.UsageError, match="schema version 99"):
        Outbox(path)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(smtpx.UsageError, match="not an outbox"):
        Outbox(other)


def test_storage_failures_are_typed(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as info:
        Outbox(tmp_path / "missing" / "box.db")
    assert isinstance(info.value.__cause__, sqlite3.Error)
