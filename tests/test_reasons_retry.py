"""Retry by reason: server hints on any line, greylisting minimum, slower backoff for rate
limits, a long schedule for blocklists (logged once), the Pool's shared rate slowed; and
the every-recipient-refused group (lone recipient, ``except*``, pickling).  No real sleep."""

from __future__ import annotations

import logging
import pickle
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import smtpx
from smtpx import Command, Reason, Reply, RetryPolicy, VirtualClock, classify, server_hint
from smtpx.retry import GREYLIST_MINIMUM, ReasonWaits
from smtpx.testing import ScriptedServer

PLAIN: dict[str, Any] = {
    "tls": smtpx.TLSMode.NONE,
    "local_hostname": "client.test",
    "timeout": 2.0,
}
TWO = b"From: a@example.com\r\nTo: alice@example.com, bob@example.com\r\nSubject: x\r\n\r\nHi\r\n"
ONE = b"From: a@example.com\r\nTo: alice@example.com\r\nSubject: x\r\n\r\nHi\r\n"


@pytest.fixture(params=[True, False], ids=["pipelined", "lock-step"])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[ScriptedServer]:
    async with ScriptedServer(pipelining=request.param) as scripted:
        yield scripted


def refusal(code: int, text: str) -> smtpx.SMTPError:
    error = classify(
        Command.RCPT,
        Reply.parse(text.encode() + b"\r\n") if "\n" in text else Reply.build(code, text),
    )
    assert isinstance(error, smtpx.SMTPError)
    return error


# -- server hints ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        (b"450 4.2.0 Greylisted, try again in 5 minutes\r\n", 300.0),
        (b"450 4.7.1 Please retry after 90 seconds\r\n", 90.0),
        (b"451 4.7.1 greylisted for 300s\r\n", 300.0),
        (b"421 4.7.0 Try again in 2 hours\r\n", 7200.0),
        (b"450 4.7.1 Please try again in 300\r\n", 300.0),  # no unit: seconds
        (b"451 4.7.1 Greylisting in action, please come back in 00:05:00\r\n", 300.0),
        (b"450-4.2.0 You are greylisted.\r\n450 4.2.0 Please retry in 10 min\r\n", 600.0),
        (b"450-4.2.0 Greylisted, please try again\r\n450 4.2.0 in 5 minutes\r\n", 300.0),
    ],
)
def test_hints_are_read_on_any_line_in_any_unit(raw: bytes, seconds: float) -> None:
    error = classify(Command.RCPT, Reply.parse(raw))
    assert isinstance(error, smtpx.SMTPError)
    assert server_hint(error) == seconds


@pytest.mark.parametrize(
    "raw",
    [
        b"450-4.7.1 Greylisted, please try again\r\n450 4.7.1 later\r\n",  # the 4 of 4.7.1
        b"451 4.7.500 Server busy. Please try again later from [192.0.2.9]. (S77714)\r\n",
        b"421 4.7.0 [TSS04] Messages deferred; retry [TSS04] 4.16.55.1\r\n",
        b"450 4.2.0 Greylisted by milter-greylist-4.6.2, try again later\r\n",
        b"450 4.2.0 try again later v2.0 (AS843)\r\n",
        b"450 4.2.0 Deferred, try again later\r\n",
    ],
)
def test_no_ip_ticket_id_version_or_enhanced_code_is_read_as_a_delay(raw: bytes) -> None:
    error = classify(Command.RCPT, Reply.parse(raw))
    assert isinstance(error, smtpx.SMTPError)
    assert server_hint(error) is None


@given(
    st.sampled_from(["try again in", "retry after", "wait", "greylisted, come back in"]),
    st.one_of(
        st.ip_addresses(v=4).map(str),
        st.from_regex(r"\A[A-Z]{1,4}\d{2,6}\Z"),
        st.from_regex(r"\A\[[A-Z]{2,4}\d{2}\]\Z"),
        st.from_regex(r"\A\d{1,3}\.\d{1,3}(\.\d{1,3}){0,2}\Z"),
    ),
)
def test_property_dotted_or_glued_numbers_are_never_delays(words: str, token: str) -> None:
    error = refusal(450, f"4.7.1 Busy, {words} {token} please")
    assert server_hint(error) is None


@given(st.integers(min_value=0, max_value=99999), st.sampled_from(["", "s", " seconds"]))
def test_property_a_standalone_number_is_seconds(number: int, unit: str) -> None:
    assert server_hint(refusal(450, f"4.2.0 try again in {number}{unit}.")) == float(number)


# -- waits by reason ---------------------------------------------------------------------


async def send(server: ScriptedServer, policy: RetryPolicy, message: bytes = TWO) -> Any:
    return await smtpx.send(message, host=server.host, port=server.port, retry=policy, **PLAIN)


async def test_greylisted_waits_at_least_the_greylisting_minimum(server: ScriptedServer) -> None:
    server.on("RCPT", match="bob@", reply="450 4.2.0 Greylisted, try again later", times=1)
    clock, events = VirtualClock(), list[smtpx.RetryEvent]()
    policy = RetryPolicy.for_testing(clock, on_retry=events.append)
    result = await send(server, policy)
    assert set(result.accepted) == {"alice@example.com", "bob@example.com"}
    assert clock.sleeps[0] >= GREYLIST_MINIMUM == 300.0
    assert events[0].reason is Reason.GREYLISTED and events[0].wait == clock.sleeps[0]


async def test_a_longer_server_hint_still_wins_over_the_minimum(server: ScriptedServer) -> None:
    server.on("RCPT", match="bob@", reply="450 4.2.0 Greylisted, try again in 7 minutes", times=1)
    clock = VirtualClock()
    await send(server, RetryPolicy.for_testing(clock))
    assert clock.sleeps[0] >= 420.0


async def test_a_greylisting_server_that_names_its_delay_is_taken_at_its_word(
    server: ScriptedServer,
) -> None:
    # The server's own delay replaces the default minimum, shorter or longer.
    server.on("RCPT", match="bob@", reply="450 4.2.0 Greylisted, try again in 60 seconds", times=1)
    clock = VirtualClock()
    backoff = smtpx.Backoff(initial=1.0, jitter=0.0)
    await send(server, RetryPolicy.for_testing(clock, backoff=backoff))
    assert clock.sleeps == [60.0]


@pytest.mark.parametrize("hint", [1, 59, 299, 301, 1200])
def test_the_greylisting_wait_is_the_servers_hint_when_it_gives_one(hint: int) -> None:
    greylisted = refusal(450, f"4.2.0 Greylisted, try again in {hint} seconds")
    backoff = smtpx.Backoff(initial=0.5, jitter=0.0)
    assert smtpx.suggested_delay(greylisted, 1, backoff, ReasonWaits()) == float(hint)
    assert ReasonWaits().least(1, Reason.GREYLISTED, float(hint)) == float(hint)
    assert ReasonWaits(maximum=100.0).least(1, Reason.GREYLISTED, float(hint)) == min(hint, 100)


async def test_rate_limited_backs_off_longer(server: ScriptedServer) -> None:
    server.on("RCPT", match="bob@", reply="451 4.7.1 Rate limit exceeded, slow down", times=2)
    clock, events = VirtualClock(), list[smtpx.RetryEvent]()
    await send(server, RetryPolicy.for_testing(clock, on_retry=events.append, timeout=3600))
    assert clock.sleeps[0] >= 60.0 and clock.sleeps[1] >= 120.0
    assert [event.reason for event in events] == [Reason.RATE_LIMITED] * 2
    plain = VirtualClock()
    server.on("RCPT", match="bob@", reply="451 4.3.0 Local error", times=2)
    await send(server, RetryPolicy.for_testing(plain, timeout=3600))
    assert plain.sleeps[0] < 10.0  # an ordinary 4xx keeps the ordinary backoff


async def test_a_blocklist_deferral_is_slow_and_logged_once(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    reply = "450 4.7.1 Client host [192.0.2.9] blocked using zen.spamhaus.org"
    clock = VirtualClock()
    policy = RetryPolicy.for_testing(clock, timeout=10_000, attempts=3)
    caplog.set_level(logging.WARNING, logger="smtpx.retry")
    for _ in range(2):
        server.on("RCPT", match="bob@", reply=reply, times=2)
        await send(server, policy)
    assert clock.sleeps[0] >= 900.0 and clock.sleeps[1] >= 1800.0
    problems = [r for r in caplog.records if "deliverability problem" in r.getMessage()]
    assert len(problems) == 1 and "blocklisted" in problems[0].getMessage()
    said = problems[0].getMessage()
    assert said.startswith(f"deliverability problem at {server.host}: blocklisted (")
    assert said.endswith("); retrying on a long schedule")
    assert "BlocklistedTemporary" in said  # the error itself, for the log reader


async def test_honour_hint_off_ignores_reason_waits_too(server: ScriptedServer) -> None:
    server.on("RCPT", match="bob@", reply="450 4.2.0 Greylisted", times=1)
    clock = VirtualClock()
    backoff = smtpx.Backoff(initial=1.0, jitter=0.0, honour_hint=False)
    await send(server, RetryPolicy.for_testing(clock, backoff=backoff))
    assert clock.sleeps == [1.0]


def test_suggested_delay_applies_reason_waits_when_asked() -> None:
    greylisted = refusal(450, "4.2.0 Greylisted")
    backoff = smtpx.Backoff(initial=2.0, jitter=0.0)
    assert smtpx.suggested_delay(greylisted, 1, backoff) == 2.0
    assert smtpx.suggested_delay(greylisted, 1, backoff, ReasonWaits()) == 300.0
    with pytest.raises(smtpx.UsageError):
        ReasonWaits(greylisted=-1)


# -- the pool's shared rate --------------------------------------------------------------


async def test_rate_limiter_slows_down_and_recovers() -> None:
    clock = VirtualClock()
    limiter = smtpx.RateLimiter(10, sleep=clock.sleep, clock=clock.monotonic, max_slowdown=8)
    assert limiter.rate == 10.0
    limiter.slow_down(hold=60.0)
    assert limiter.rate == 5.0 and limiter.slowdown == 2.0
    for _ in range(5):
        limiter.slow_down(hold=60.0)
    assert limiter.slowdown == 8.0  # compounded, capped
    for _ in range(3):
        await limiter.acquire()
    assert clock.sleeps == pytest.approx([0.8, 0.8])  # 8 x slower than 0.1 s
    clock.now += 61.0
    assert limiter.rate == 10.0  # the hold is over
    with pytest.raises(smtpx.UsageError):
        limiter.slow_down(factor=0.5)


async def test_a_rate_limited_refusal_slows_the_pool(server: ScriptedServer) -> None:
    server.on("RCPT", match="bob@", reply="450 4.7.1 Too many messages, rate limited")
    clock = VirtualClock()
    limiter = smtpx.RateLimiter(50, sleep=clock.sleep, clock=clock.monotonic)
    async with smtpx.Pool(server.host, server.port, rate_limit=limiter, **PLAIN) as pool:
        result = await pool.send(TWO)
        assert result.accepted == ("alice@example.com",)
        assert limiter.slowdown == 2.0 and pool.stats.slowdowns == 1
        retry = RetryPolicy.for_testing(VirtualClock(), attempts=2)
        await pool.send(TWO, retry=retry)  # refused during the retries too
        assert limiter.slowdown >= 4.0


# -- every recipient refused -------------------------------------------------------------


async def test_a_lone_recipient_is_caught_by_its_own_class(server: ScriptedServer) -> None:
    server.on("RCPT", reply="452 4.2.2 Mailbox full")
    async with smtpx.Client(server.host, server.port, **PLAIN) as client:
        with pytest.raises(smtpx.MailboxFull) as info:
            await client.send(ONE)
    error = info.value
    assert isinstance(error, smtpx.AllRecipientsDeferred) and isinstance(
        error, smtpx.TransientError
    )
    assert type(error).__name__ == "AllRecipientsDeferred"
    assert error.retryable and error.reason is Reason.MAILBOX_FULL
    assert error.refusal is error.rejected["alice@example.com"]
    assert error.undelivered == ()
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and isinstance(copy, smtpx.MailboxFull)
    assert list(copy.rejected) == ["alice@example.com"] and str(copy) == str(error)


async def test_several_recipients_come_apart_with_except_star(server: ScriptedServer) -> None:
    server.on("RCPT", match="alice@", reply="550 5.1.1 User unknown")
    server.on("RCPT", match="bob@", reply="450 4.2.0 Greylisted")
    async with smtpx.Client(server.host, server.port, **PLAIN) as client:
        with pytest.raises(smtpx.AllRecipientsRejected) as info:
            await client.send(TWO)
    error = info.value
    assert isinstance(error, ExceptionGroup) and not isinstance(error, smtpx.MailboxFull)
    assert error.refusal is None and error.reason is Reason.OTHER
    assert list(error.exceptions) == list(error.rejected.values())
    unknown: list[str | None] = []
    greylisted: list[str | None] = []
    try:
        raise error
    except* smtpx.NoSuchMailbox as group:
        unknown = [getattr(e, "recipient", None) for e in group.exceptions]
    except* smtpx.Greylisted as group:
        greylisted = [getattr(e, "recipient", None) for e in group.exceptions]
    assert (unknown, greylisted) == (["alice@example.com"], ["bob@example.com"])
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is smtpx.AllRecipientsRejected
    recipients = [getattr(e, "recipient", None) for e in copy.exceptions]
    assert recipients == ["alice@example.com", "bob@example.com"]


async def test_all_deferred_is_still_a_transient_error(server: ScriptedServer) -> None:
    server.on("RCPT", reply="450 4.2.1 Mailbox busy")
    async with smtpx.Client(server.host, server.port, **PLAIN) as client:
        with pytest.raises(smtpx.TransientError) as info:
            await client.send(TWO)
    assert isinstance(info.value, smtpx.AllRecipientsDeferred) and info.value.retryable
    assert smtpx.is_retryable(info.value)
