"""Retry semantics against the scripted server; sleeps are virtual, so no wall time passes."""

from __future__ import annotations

import logging
import pickle
from collections.abc import AsyncIterator
from typing import Any

import pytest
import tenacity

import smtpx
from smtpx import RetryPolicy, VirtualClock
from smtpx.testing import ScriptedServer

MESSAGE = (
    b"From: app@example.com\r\nTo: alice@example.com, bob@example.com\r\n"
    b"Subject: retry\r\n\r\nHello.\r\n"
)
PLAIN: dict[str, Any] = {
    "tls": smtpx.TLSMode.NONE,
    "local_hostname": "client.test",
    "timeout": 2.0,
}


@pytest.fixture(params=[True, False], ids=["pipelined", "lock-step"])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[ScriptedServer]:
    async with ScriptedServer(pipelining=request.param) as scripted:
        yield scripted


def policy(clock: VirtualClock, **kwargs: object) -> RetryPolicy:
    return RetryPolicy.for_testing(clock, **kwargs)


async def send(server: ScriptedServer, retry: RetryPolicy) -> smtpx.SendResult:
    return await smtpx.send(MESSAGE, host=server.host, port=server.port, retry=retry, **PLAIN)


async def test_fails_twice_then_succeeds(server: ScriptedServer) -> None:
    server.on("DATA_END", reply="451 4.3.0 Local error, try again", times=2)
    clock = VirtualClock()
    result = await send(server, policy(clock))
    assert result.accepted == ("alice@example.com", "bob@example.com")
    assert not result.rejected
    assert len(clock.sleeps) == 2
    assert len(server.messages) == 1


async def test_421_mid_rcpt_reconnects_and_resends_to_everyone(server: ScriptedServer) -> None:
    server.on("RCPT", match="bob@", reply="421 4.3.2 Shutting down", close=True, times=1)
    clock = VirtualClock()
    result = await send(server, policy(clock))
    assert result.accepted == ("alice@example.com", "bob@example.com")
    assert server.connections == 2
    # the first transaction never reached DATA, so exactly one copy each
    assert len(server.received_by("alice@example.com")) == 1
    assert len(server.received_by("bob@example.com")) == 1


async def test_deferred_recipient_is_retried_alone(server: ScriptedServer) -> None:
    server.on("RCPT", match="bob@", reply="450 4.2.1 Greylisted", times=1)
    clock = VirtualClock()
    result = await send(server, policy(clock))
    assert set(result.accepted) == {"alice@example.com", "bob@example.com"}
    assert not result.rejected
    assert len(server.messages) == 2
    assert server.messages[0].rcpt_tos == ("alice@example.com",)
    assert server.messages[1].rcpt_tos == ("bob@example.com",)
    # alice accepted on the first attempt and never got a second copy
    assert len(server.received_by("alice@example.com")) == 1


async def test_permanent_refusal_is_never_retried(server: ScriptedServer) -> None:
    server.on("RCPT", match="bob@", reply="550 5.1.1 No such user")
    clock = VirtualClock()
    result = await send(server, policy(clock))
    assert result.accepted == ("alice@example.com",)
    assert isinstance(result.rejected["bob@example.com"], smtpx.NoSuchMailbox)
    assert clock.sleeps == []
    assert len(server.messages) == 1


async def test_permanent_failure_of_the_whole_transaction_raises_at_once(
    server: ScriptedServer,
) -> None:
    server.on("MAIL", reply="553 5.1.8 Sender address rejected")
    clock = VirtualClock()
    with pytest.raises(smtpx.MailboxNameInvalid) as info:
        await send(server, policy(clock))
    assert clock.sleeps == []
    assert len(info.value.attempts) == 1
    assert set(info.value.rejected) == {"alice@example.com", "bob@example.com"}


async def test_mixed_deferred_and_rejected_keeps_retrying_the_deferred(
    server: ScriptedServer,
) -> None:
    server.on("RCPT", match="alice@", reply="550 5.1.1 No such user")
    server.on("RCPT", match="bob@", reply="452 4.2.2 Mailbox full", times=2)
    clock = VirtualClock()
    result = await send(server, policy(clock))
    assert result.accepted == ("bob@example.com",)
    assert isinstance(result.rejected["alice@example.com"], smtpx.NoSuchMailbox)
    assert len(clock.sleeps) == 2


async def test_exhausted_retries_raise_the_last_typed_error_with_history(
    server: ScriptedServer,
) -> None:
    server.on("RCPT", reply="450 4.2.1 Mailbox busy")
    clock = VirtualClock()
    with pytest.raises(smtpx.AllRecipientsDeferred) as info:
        await send(server, policy(clock, attempts=3))
    error = info.value
    assert not isinstance(error, tenacity.RetryError)
    assert len(error.attempts) == 3
    assert all(isinstance(a, smtpx.AllRecipientsDeferred) for a in error.attempts)
    assert set(error.rejected) == {"alice@example.com", "bob@example.com"}
    assert all(isinstance(r, smtpx.MailboxBusy) for r in error.rejected.values())
    assert len(clock.sleeps) == 2
    assert server.messages == []


async def test_exhausted_with_some_accepted_returns_a_result_naming_the_rest(
    server: ScriptedServer,
) -> None:
    server.on("RCPT", match="bob@", reply="450 4.2.1 Mailbox busy")
    clock = VirtualClock()
    result = await send(server, policy(clock, attempts=3))
    assert result.accepted == ("alice@example.com",)
    assert isinstance(result.rejected["bob@example.com"], smtpx.MailboxBusy)
    assert len(server.received_by("alice@example.com")) == 1


async def test_total_time_budget_stops_before_the_deadline(server: ScriptedServer) -> None:
    server.on("RCPT", reply="451 4.3.0 Try later")
    clock = VirtualClock()
    backoff = smtpx.Backoff(initial=10.0, jitter=0.0, honour_hint=False)
    with pytest.raises(smtpx.AllRecipientsDeferred):
        await send(server, policy(clock, attempts=100, timeout=65.0, backoff=backoff))
    # 10 + 20 = 30 s slept; the next wait (40 s) would cross 65 s, so it stops
    assert clock.sleeps == [10.0, 20.0]
    assert clock.now <= 65.0


async def test_server_hint_is_honoured(server: ScriptedServer) -> None:
    server.on("RCPT", match="bob@", reply="450 4.2.0 Greylisted, try again in 5 minutes", times=1)
    clock = VirtualClock()
    await send(server, policy(clock))
    assert clock.sleeps[0] >= 300.0


async def test_delivery_unknown_is_not_retried_by_default(server: ScriptedServer) -> None:
    server.on("DATA_END", close=True, record=True, times=1)
    clock = VirtualClock()
    with pytest.raises(smtpx.DeliveryUnknown):
        await send(server, policy(clock))
    assert clock.sleeps == []
    assert len(server.messages) == 1  # the server had it: a retry would have duplicated it


async def test_delivery_unknown_can_be_retried_by_explicit_choice(server: ScriptedServer) -> None:
    server.on("DATA_END", close=True, record=True, times=1)
    clock = VirtualClock()
    result = await send(server, policy(clock, retry_delivery_unknown=True))
    assert len(result.accepted) == 2
    assert len(server.messages) == 2  # the duplicate the user chose over a loss


async def test_connection_refused_is_retried(server: ScriptedServer) -> None:
    port = server.port
    await server.stop()
    clock = VirtualClock()
    with pytest.raises(smtpx.ConnectError) as info:
        await smtpx.send(
            MESSAGE, host="127.0.0.1", port=port, retry=policy(clock, attempts=2), **PLAIN
        )
    assert len(info.value.attempts) == 2
    assert isinstance(info.value.__cause__, Exception)


async def test_hooks_and_logging(server: ScriptedServer, caplog: pytest.LogCaptureFixture) -> None:
    server.on("RCPT", match="bob@", reply="450 4.2.1 Busy", times=1)
    events: list[smtpx.RetryEvent] = []
    clock = VirtualClock()
    with caplog.at_level(logging.WARNING, logger="smtpx.retry"):
        await send(server, policy(clock, on_retry=events.append))
    assert len(events) == 1
    assert events[0].attempt == 1 and events[0].pending == ("bob@example.com",)
    assert isinstance(events[0].error, smtpx.MailboxBusy)
    assert events[0].wait == clock.sleeps[0]
    assert any("MailboxBusy" in record.getMessage() for record in caplog.records)


def test_public_predicate_matches_the_policy() -> None:
    reply = smtpx.Reply.build(450, "4.2.1 busy")
    transient = smtpx.classify(smtpx.Command.RCPT, reply)
    permanent = smtpx.classify(smtpx.Command.RCPT, smtpx.Reply.build(550, "no"))
    unknown = smtpx.DeliveryUnknown("lost")
    assert smtpx.is_retryable(transient)  # type: ignore[arg-type]
    assert not smtpx.is_retryable(permanent)  # type: ignore[arg-type]
    assert not smtpx.is_retryable(unknown)
    assert smtpx.is_retryable(unknown, delivery_unknown=True)
    assert not smtpx.is_retryable(ValueError("x"))


async def test_plain_tenacity_decorator_with_smtpx_objects(server: ScriptedServer) -> None:
    server.on("RCPT", reply="451 4.3.0 Later", times=2)
    clock = VirtualClock()

    @tenacity.retry(
        retry=smtpx.retry_if_transient(),
        wait=smtpx.wait_suggested(smtpx.Backoff(initial=1.0)),
        stop=tenacity.stop_after_attempt(5),
        sleep=clock.sleep,
        reraise=True,
    )
    async def deliver() -> smtpx.SendResult:
        return await smtpx.send(MESSAGE, host=server.host, port=server.port, **PLAIN)

    result = await deliver()
    assert len(result.accepted) == 2
    assert len(clock.sleeps) == 1  # both 451s fell in the first attempt


def test_server_hint_parsing() -> None:
    def hint(text: str) -> float | None:
        error = smtpx.classify(smtpx.Command.RCPT, smtpx.Reply.build(450, text))
        return smtpx.server_hint(error)  # type: ignore[arg-type]

    assert hint("4.2.0 Greylisted, try again in 300 seconds") == 300.0
    assert hint("Please retry after 2 minutes") == 120.0
    assert hint("greylisted for 60s") == 60.0
    assert hint("Mailbox busy") is None


def test_suggested_delay_for_task_queues_grows_and_honours_hints() -> None:
    error = smtpx.classify(smtpx.Command.RCPT, smtpx.Reply.build(451, "later"))
    backoff = smtpx.Backoff(initial=2.0, jitter=0.0)
    assert smtpx.suggested_delay(error, 1, backoff) == 2.0  # type: ignore[arg-type]
    assert smtpx.suggested_delay(error, 3, backoff) == 8.0  # type: ignore[arg-type]
    hinted = smtpx.classify(smtpx.Command.RCPT, smtpx.Reply.build(450, "try again in 90 seconds"))
    assert smtpx.suggested_delay(hinted, 1, backoff) == 90.0  # type: ignore[arg-type]
    assert pickle.loads(pickle.dumps(error)).retryable  # hand it to a task queue


def test_server_hint_of_an_all_deferred_error_comes_from_its_refusals() -> None:
    refusals: dict[str, smtpx.SMTPError] = {}
    for name, text in (("a", "try again in 30 seconds"), ("b", "retry in 2 minutes")):
        refusal = smtpx.classify(smtpx.Command.RCPT, smtpx.Reply.build(450, text))
        assert isinstance(refusal, smtpx.MailboxBusy)
        refusals[f"{name}@example.com"] = refusal
    error = smtpx.AllRecipientsDeferred()
    error.rejected = refusals
    assert smtpx.server_hint(error) == 120.0
