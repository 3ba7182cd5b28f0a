"""The contracts of the public retry helpers, at their boundaries.

Predicate defaults, the deadline (a wait that ends exactly on it is still taken),
jitter's bounds and sign with the random draw injected, which of backoff, server hint
and reason wait decides, the durations ``wait_suggested`` returns, and hints with and
without a unit.  No real sleeping: tenacity and the policies get recording sleeps.
"""

from __future__ import annotations

import inspect
import random
import types
from typing import Any

import pytest
import tenacity

import smtpx
from smtpx import Command, Reply, VirtualClock, classify
from smtpx.retry import Backoff, ReasonWaits, RetryPolicy, server_hint, wait_suggested
from smtpx.testing import ScriptedServer


def refusal(code: int, text: str, command: Command = Command.RCPT) -> smtpx.SMTPError:
    error = classify(command, Reply.build(code, text))
    assert isinstance(error, smtpx.SMTPError)
    return error


UNKNOWN = smtpx.DeliveryUnknown("lost after the final dot")
TRANSIENT = refusal(451, "4.3.0 later")
PERMANENT = refusal(550, "5.7.1 no")


# -- the predicate ----------------------------------------------------------------------


def calls_under(retry: tenacity.retry_base, error: BaseException) -> int:
    calls = []

    def fail() -> None:
        calls.append(1)
        raise error

    retrying = tenacity.Retrying(
        retry=retry, stop=tenacity.stop_after_attempt(3), sleep=lambda _: None, reraise=True
    )
    with pytest.raises(type(error)):
        retrying(fail)
    return len(calls)


def test_retry_if_transient_never_resends_a_delivery_unknown_by_default() -> None:
    assert calls_under(smtpx.retry_if_transient(), UNKNOWN) == 1  # a retry could double-send
    assert calls_under(smtpx.retry_if_transient(delivery_unknown=True), UNKNOWN) == 3
    assert calls_under(smtpx.retry_if_transient(), TRANSIENT) == 3
    assert calls_under(smtpx.retry_if_transient(delivery_unknown=True), TRANSIENT) == 3
    assert calls_under(smtpx.retry_if_transient(), PERMANENT) == 1
    assert calls_under(smtpx.retry_if_transient(), ValueError("not SMTP")) == 1


@pytest.mark.parametrize("helper", [smtpx.retry_if_transient, smtpx.is_retryable])
def test_the_opt_in_defaults_to_false(helper: Any) -> None:
    assert inspect.signature(helper).parameters["delivery_unknown"].default is False


def test_a_policy_opts_in_only_when_told() -> None:
    assert RetryPolicy().retry_delivery_unknown is False
    assert not RetryPolicy().is_retryable(UNKNOWN)
    assert RetryPolicy(retry_delivery_unknown=True).is_retryable(UNKNOWN)
    assert RetryPolicy(retry_delivery_unknown=True).is_retryable(TRANSIENT)
    assert not RetryPolicy(retry_delivery_unknown=True).is_retryable(PERMANENT)


# -- backoff and jitter -----------------------------------------------------------------


@pytest.fixture
def draw(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The random draws Backoff will get, in order (one per delay)."""
    draws: list[float] = []
    monkeypatch.setattr(random, "random", lambda: draws.pop(0))
    return draws


@pytest.mark.parametrize(
    ("attempt", "expected"), [(1, 2.0), (2, 4.0), (3, 8.0), (8, 256.0), (9, 300.0), (30, 300.0)]
)
def test_backoff_grows_exponentially_up_to_its_cap(attempt: int, expected: float) -> None:
    assert Backoff(jitter=0.0).delay(attempt, None) == expected


@pytest.mark.parametrize(
    ("initial", "base", "attempt", "expected"),
    [(3.0, 3.0, 1, 3.0), (3.0, 3.0, 2, 9.0), (3.0, 3.0, 3, 27.0), (0.5, 1.0, 5, 0.5)],
)
def test_backoff_uses_its_initial_and_base(
    initial: float, base: float, attempt: int, expected: float
) -> None:
    assert Backoff(initial=initial, base=base, jitter=0.0).delay(attempt, None) == expected


@pytest.mark.parametrize(
    ("jitter", "random_value", "expected"),
    [
        (1.0, 0.0, 8.0),  # jitter only ever adds: never below the backoff
        (1.0, 0.5, 12.0),
        (1.0, 0.999, 15.992),  # below twice the backoff
        (0.25, 0.5, 9.0),  # up to a quarter more
        (0.0, 0.999, 8.0),
    ],
)
def test_jitter_adds_up_to_its_fraction(
    draw: list[float], jitter: float, random_value: float, expected: float
) -> None:
    draw.append(random_value)
    assert Backoff(jitter=jitter).delay(3, None) == pytest.approx(expected)


def test_jitter_never_pushes_past_the_cap(draw: list[float]) -> None:
    draw.append(0.999)
    assert Backoff(maximum=10.0).delay(3, None) == 10.0  # 8 + 7.99 capped at 10
    draw.append(0.1)
    assert Backoff(maximum=10.0).delay(3, None) == pytest.approx(8.8)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"jitter": -0.5},
        {"initial": -1.0},
        {"maximum": -1.0},
        {"max_hint": -1.0},
        {"base": 0.5},
    ],
)
def test_a_wrong_backoff_is_a_usage_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(smtpx.UsageError):
        Backoff(**kwargs)


# -- the server's hint ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("4.7.1 try again in 300", 300.0),  # no unit: seconds
        ("try again in 300", 300.0),
        ("retry in 45.", 45.0),
        ("try again in 300 seconds", 300.0),
        ("try again in 5 minutes", 300.0),
        ("try again in 5 mins", 300.0),
        ("try again in 2 hours", 7200.0),
        ("try again in 2 hrs", 7200.0),
        ("retry after 5m", 300.0),
        ("retry after 90s", 90.0),
        ("retry after 1h", 3600.0),
        ("try again in 1 day", 86400.0),
        ("try again in 2d", 172800.0),
        ("wait 500 ms", 0.5),
        ("wait 250 milliseconds", 0.25),
        ("come back in 00:05:00", 300.0),
        ("come back in 01:00:30", 3630.0),
    ],
)
def test_hints_in_every_unit(text: str, seconds: float) -> None:
    assert server_hint(refusal(450, text)) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("lines", "seconds"),
    [
        (("greylisted, try again in", "300 seconds"), 300.0),  # the lines read as one text
        (("retry later, our systems are busy right now;", "wait 120 seconds"), 120.0),
        (("try again, ticket S77714; retry in 60 seconds",), 60.0),  # the next words count
    ],
)
def test_a_hint_is_read_across_lines_and_past_words_without_one(
    lines: tuple[str, ...], seconds: float
) -> None:
    error = classify(Command.RCPT, Reply(450, lines))
    assert isinstance(error, smtpx.SMTPError)
    assert server_hint(error) == seconds


def test_a_virtual_clock_starts_at_zero() -> None:
    clock = VirtualClock()
    assert clock.now == 0.0 and clock.monotonic() == 0.0 and clock.sleeps == []


@pytest.mark.parametrize(
    "text",
    [
        "mailbox busy",
        "try again later",
        "try again at 192.0.2.1",  # an address, not a delay
        "try again, ticket S77714",
        "try again (4.7.1)",
        "try again in v2",
    ],
)
def test_no_hint_where_none_is_given(text: str) -> None:
    assert server_hint(refusal(450, text)) is None


def test_hint_wins_over_a_shorter_backoff_and_is_capped() -> None:
    backoff = Backoff(jitter=0.0, max_hint=600.0)
    assert backoff.delay(1, refusal(450, "try again in 100 seconds")) == 100.0  # not 2
    assert backoff.delay(1, refusal(450, "try again in 2 hours")) == 600.0  # max_hint
    assert backoff.delay(9, refusal(450, "try again in 10 seconds")) == 300.0  # backoff wins
    assert Backoff(jitter=0.0, honour_hint=False).delay(1, refusal(450, "retry in 99")) == 2.0
    # a hint may exceed the backoff's own cap, up to max_hint
    assert Backoff(jitter=0.0, maximum=5.0).delay(1, refusal(450, "retry in 60")) == 60.0


def test_policy_wait_takes_the_longest_of_backoff_hint_and_reason_wait() -> None:
    policy = RetryPolicy(backoff=Backoff(jitter=0.0), waits=ReasonWaits(greylisted=300.0))
    grey = refusal(450, "4.7.1 greylisted, try again in 60 seconds")
    assert grey.reason is smtpx.Reason.GREYLISTED
    # a greylisting server that names its delay is taken at its word, shorter or longer
    assert policy.wait(1, [grey]) == (60.0, smtpx.Reason.GREYLISTED)
    silent = refusal(450, "4.7.1 greylisted")
    assert policy.wait(1, [silent]) == (300.0, smtpx.Reason.GREYLISTED)  # the default
    long_grey = refusal(450, "4.7.1 greylisted, try again in 900 seconds")
    assert policy.wait(1, [long_grey]) == (900.0, smtpx.Reason.GREYLISTED)  # hint beats it
    busy = refusal(450, "4.2.1 busy")
    assert policy.wait(1, [busy]) == (2.0, busy.reason)
    assert policy.wait(1, [busy, long_grey])[0] == 900.0  # the longest pending refusal
    assert policy.wait(1, []) == (0.0, smtpx.Reason.OTHER)
    no_hints = RetryPolicy(backoff=Backoff(jitter=0.0, honour_hint=False))
    assert no_hints.wait(1, [long_grey])[0] == 2.0  # reason waits go with the hints


def test_suggested_delay_adds_reason_waits_only_when_asked() -> None:
    grey = refusal(450, "4.7.1 greylisted")
    backoff = Backoff(jitter=0.0)
    assert smtpx.suggested_delay(grey, 1, backoff) == 2.0
    assert smtpx.suggested_delay(grey, 1, backoff, ReasonWaits()) == 300.0


# -- wait_suggested in plain tenacity ---------------------------------------------------


def test_wait_suggested_returns_the_backoff_then_the_hint() -> None:
    errors = [refusal(451, "later"), refusal(451, "later"), refusal(450, "try again in 42")]
    sleeps: list[float] = []

    def fail() -> None:
        raise errors.pop(0)

    retrying = tenacity.Retrying(
        wait=wait_suggested(Backoff(initial=3.0, jitter=0.0)),
        stop=tenacity.stop_after_attempt(4),
        sleep=sleeps.append,
        reraise=True,
    )
    with pytest.raises(IndexError):  # a fourth attempt ran: the three errors were retried
        retrying(fail)
    assert sleeps == [3.0, 6.0, 42.0]
    assert isinstance(wait_suggested().backoff, Backoff)


def test_wait_suggested_without_an_error_is_the_plain_backoff() -> None:
    state = tenacity.RetryCallState(retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = 2
    assert wait_suggested(Backoff(jitter=0.0))(state) == 4.0
    state.set_result("fine")
    assert wait_suggested(Backoff(jitter=0.0))(state) == 4.0


# -- the deadline -----------------------------------------------------------------------

MESSAGE = b"From: app@example.com\r\nTo: alice@example.com\r\nSubject: x\r\n\r\nHi.\r\n"
PLAIN: dict[str, Any] = {"tls": smtpx.TLSMode.NONE, "local_hostname": "client.test"}


@pytest.mark.parametrize(("timeout", "sleeps"), [(199.0, [100.0]), (200.0, [100.0, 100.0])])
async def test_a_wait_ending_exactly_on_the_deadline_is_taken(
    timeout: float, sleeps: list[float]
) -> None:
    # Each wait is the server's 100 s; the second ends at 200 s: taken with a 200 s
    # budget (it does not cross the deadline), not with 199 s.
    clock = VirtualClock()
    policy = RetryPolicy.for_testing(
        clock, attempts=10, timeout=timeout, backoff=Backoff(jitter=0.0)
    )
    async with ScriptedServer() as server:
        server.on("RCPT", reply="451 4.3.0 try again in 100 seconds")
        with pytest.raises(smtpx.TransientError) as raised:
            await smtpx.send(MESSAGE, host=server.host, port=server.port, retry=policy, **PLAIN)
    assert clock.sleeps == sleeps
    assert len(raised.value.attempts) == len(sleeps) + 1


# -- reason waits -----------------------------------------------------------------------

R = smtpx.Reason


@pytest.mark.parametrize(
    ("reason", "waits"),
    [
        (R.GREYLISTED, [300.0, 300.0, 300.0, 300.0]),  # the greylisting delay, not growing
        (R.RATE_LIMITED, [60.0, 60.0, 120.0, 240.0]),  # doubling from the first failure
        (R.BLOCKLISTED, [900.0, 900.0, 1800.0, 3600.0]),
        (R.BAD_REPUTATION, [900.0, 900.0, 1800.0, 3600.0]),
        (R.OTHER, [0.0, 0.0, 0.0, 0.0]),
        (R.USER_UNKNOWN, [0.0, 0.0, 0.0, 0.0]),
    ],
)
def test_reason_waits_at_attempts_0_to_3(reason: smtpx.Reason, waits: list[float]) -> None:
    assert [ReasonWaits().least(attempt, reason) for attempt in range(4)] == waits


def test_reason_waits_are_capped() -> None:
    waits = ReasonWaits(rate_limited=50.0, reputation=100.0, greylisted=700.0, maximum=500.0)
    assert waits.least(5, R.RATE_LIMITED) == 500.0  # 50 * 16 = 800, capped
    assert waits.least(3, R.RATE_LIMITED) == 200.0
    assert waits.least(3, R.BLOCKLISTED) == 400.0
    assert waits.least(4, R.BLOCKLISTED) == 500.0
    assert waits.least(1, R.GREYLISTED) == 500.0


@pytest.mark.parametrize("field", ["greylisted", "rate_limited", "reputation", "maximum"])
def test_a_negative_reason_wait_is_a_usage_error(field: str) -> None:
    with pytest.raises(smtpx.UsageError, match="waits must not be negative"):
        ReasonWaits(**{field: -1.0})
    assert getattr(ReasonWaits(**{field: 0.0}), field) == 0.0


def test_a_wrong_backoff_says_what_is_wrong() -> None:
    with pytest.raises(smtpx.UsageError, match="must not be negative, nor base below 1"):
        Backoff(jitter=-1.0)
    assert Backoff(base=1.0, initial=0.0, maximum=0.0, jitter=0.0, max_hint=0.0).base == 1.0


def test_reasons_of_an_error_and_the_refusals_it_gathers() -> None:
    grey = refusal(450, "4.7.1 greylisted")
    limited = refusal(450, "4.7.0 rate limit exceeded")
    gone = refusal(550, "5.1.1 no such user")
    gathered = smtpx.AllRecipientsDeferred()
    gathered.rejected = {"a@x": grey, "b@x": limited, "c@x": gone}
    assert smtpx.retry.reasons_of(gathered) == {R.OTHER, R.GREYLISTED, R.RATE_LIMITED}
    assert smtpx.retry.reasons_of(grey) == {R.GREYLISTED}
    assert smtpx.retry.reasons_of(ValueError("x")) == set()
    # something that does not say it is retryable is not walked
    gathered.rejected = {"d@x": types.SimpleNamespace(reason=R.BLOCKLISTED)}  # type: ignore[dict-item]
    assert smtpx.retry.reasons_of(gathered) == {R.OTHER}
    # a refusal that names itself among its refusals is not walked twice
    grey.rejected = {"a@x": grey}
    assert smtpx.retry.reasons_of(grey) == {R.GREYLISTED}


def test_suggested_delay_defaults_to_the_first_attempt() -> None:
    assert smtpx.suggested_delay(TRANSIENT, backoff=Backoff(jitter=0.0)) == 2.0


def test_policy_wait_keeps_the_first_of_equal_waits() -> None:
    policy = RetryPolicy(backoff=Backoff(jitter=0.0))
    busy, later = refusal(450, "4.2.1 busy"), refusal(452, "4.3.1 full")
    later.reason = R.MAILBOX_FULL
    assert policy.wait(1, [busy, later]) == (2.0, busy.reason)
    assert policy.wait(1, [later, busy]) == (2.0, R.MAILBOX_FULL)


async def test_a_retried_send_reports_its_last_reply_and_logs_each_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = VirtualClock()
    policy = RetryPolicy.for_testing(clock, backoff=Backoff(jitter=0.0))
    caplog.set_level("WARNING", logger="smtpx.retry")
    async with ScriptedServer() as server:
        server.on("RCPT", reply="450 4.2.1 busy", times=1)
        result = await smtpx.send(
            MESSAGE, host=server.host, port=server.port, retry=policy, **PLAIN
        )
    assert result.accepted == ("alice@example.com",)
    assert result.reply is not None and result.reply.code == 250
    said = [r.getMessage() for r in caplog.records if r.name == "smtpx.retry"]
    assert len(said) == 1
    assert said[0].startswith("attempt 1 failed (")
    assert said[0].endswith("); retrying 1 recipient(s) in 2.0s (other)")


async def test_each_deferred_recipients_own_refusal_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # bob is blocklisted and carol refused for a bad reputation, in the same attempt:
    # both problems are reported, each read from that recipient's own refusal.
    clock = VirtualClock()
    policy = RetryPolicy.for_testing(clock, timeout=10_000)
    caplog.set_level("WARNING", logger="smtpx.retry")
    three = MESSAGE.replace(b"To: alice@", b"To: bob@example.com, carol@example.com, alice@")
    async with ScriptedServer() as server:
        listed = "450 4.7.1 Client host [192.0.2.9] blocked using zen.spamhaus.org"
        server.on("RCPT", match="bob@", reply=listed, times=1)
        server.on("RCPT", match="carol@", reply="450 4.7.0 IP has poor reputation", times=1)
        result = await smtpx.send(three, host=server.host, port=server.port, retry=policy, **PLAIN)
    assert sorted(result.accepted) == ["alice@example.com", "bob@example.com", "carol@example.com"]
    assert result.rejected == {}
    assert (result.host, result.port) == (server.host, server.port)  # who answered last
    assert len(clock.sleeps) == 1
    said = [r.getMessage() for r in caplog.records if "deliverability problem" in r.getMessage()]
    reported = sorted(text.split(": ")[1].split(" (")[0] for text in said)
    assert reported == ["bad_reputation", "blocklisted"]


@pytest.mark.parametrize(("pad", "seconds"), [("x" * 35, 300.0), ("x" * 38, None)])
def test_the_enhanced_code_of_a_continued_line_takes_no_room_in_the_window(
    pad: str, seconds: float | None
) -> None:
    # The digit stands 3 + len(pad) characters after "try again", across the line break:
    # inside the 40-character window only because the "4.2.0 " of the line is dropped.
    raw = f"450-4.2.0 Please try again\r\n450 4.2.0 {pad} 5 minutes\r\n".encode()
    error = classify(Command.RCPT, Reply.parse(raw))
    assert isinstance(error, smtpx.TransientError)
    assert server_hint(error) == seconds
