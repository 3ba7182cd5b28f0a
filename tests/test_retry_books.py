"""The retry engine's recipient bookkeeping, in memory: every sequence of attempt outcomes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import smtpx
from smtpx import Command, Reply, RetryPolicy, SendResult, classify
from smtpx._envelope import Envelope
from smtpx._retry_engine import Recipients, _report_deliverability, send_with_retry

RECIPIENTS = ("a@example.com", "b@example.com", "c@example.com", "d@example.com")
OK = Reply.build(250, "2.0.0 Ok")
# what a recipient's RCPT may come to in one attempt
OUTCOMES = {
    "defer": Reply.build(450, "4.2.0 Greylisted"),
    "refuse": Reply.build(550, "5.1.1 No such user"),
}
FATES = ["accept", *OUTCOMES]


def refusal(recipient: str, reply: Reply) -> smtpx.SMTPError:
    error = classify(Command.RCPT, reply, recipient=recipient)
    assert isinstance(error, smtpx.SMTPError)
    return error


def check(books: Recipients) -> None:
    accepted, final, deferred = set(books.accepted), set(books.final), set(books.deferred)
    assert len(books.accepted) == len(accepted)  # nobody accepted twice
    assert not accepted & final and not accepted & deferred and not final & deferred
    assert not set(books.pending) & (accepted | final)  # never sent to again
    assert set(books.refusals()) == final | deferred


@given(st.lists(st.lists(st.sampled_from(FATES), min_size=4, max_size=4), max_size=5))
def test_attempts_that_go_through(attempts: list[list[str]]) -> None:
    books = Recipients(RECIPIENTS, RetryPolicy())
    for outcomes in attempts:
        if not books.pending:
            break
        sent = list(books.pending)
        fates = dict(zip(sent, outcomes, strict=False))
        rejected = {r: refusal(r, OUTCOMES[f]) for r, f in fates.items() if f != "accept"}
        accepted = tuple(r for r, f in fates.items() if f == "accept")
        failures = len(books.history)
        books.succeeded(SendResult(accepted, rejected, OK))
        check(books)
        assert books.pending == [r for r in sent if fates[r] == "defer"]
        assert set(books.pending) <= set(books.deferred)  # each with its last error
        assert books.last_reply is OK
        assert len(books.history) == failures + bool(books.pending)
    assert set(books.accepted) | set(books.refusals()) <= set(RECIPIENTS)


@given(st.booleans(), st.lists(st.sampled_from(RECIPIENTS), unique=True))
def test_an_attempt_that_raised(transient: bool, undelivered: list[str]) -> None:
    books = Recipients(RECIPIENTS, RetryPolicy())
    reply = Reply.build(451 if transient else 554, "failed")
    error = classify(Command.DATA_END, reply)
    assert isinstance(error, smtpx.SMTPError)
    error.undelivered = tuple(undelivered)
    left_to_retry = books.failed(error)
    check(books)
    assert books.history == [error]
    hit = undelivered or list(RECIPIENTS)  # no one named: the whole attempt failed
    if transient:
        assert set(books.deferred) == set(hit) and books.pending == list(RECIPIENTS)
    else:
        assert set(books.final) == set(hit)
        assert books.pending == [r for r in RECIPIENTS if r not in hit]
    assert left_to_retry is False  # not a RecipientsRefused


def test_refused_for_good_by_some_and_for_now_by_others() -> None:
    # Every recipient refused, one for good: the attempt's error is final, but the
    # deferred ones are left to retry, each filed with its own refusal.
    books = Recipients(RECIPIENTS[:3], RetryPolicy())
    a, b, c = RECIPIENTS[:3]
    own = {
        a: refusal(a, OUTCOMES["refuse"]),
        b: refusal(b, OUTCOMES["defer"]),
        c: refusal(c, Reply.build(452, "4.2.2 Mailbox full")),
    }
    error = smtpx.errors.recipients_refused(own, command=Command.RCPT)
    assert isinstance(error, smtpx.AllRecipientsRejected)
    assert books.failed(error) is True
    check(books)
    assert books.final == {a: own[a]}
    assert books.deferred == {b: own[b], c: own[c]}
    assert books.pending == [b, c]
    assert books.history == [error]
    assert books.pending_errors() == [own[b], own[c]]
    assert books.refusals() == own


def test_refused_for_good_by_everyone_leaves_nothing_to_retry() -> None:
    books = Recipients(RECIPIENTS[:2], RetryPolicy())
    own = {r: refusal(r, OUTCOMES["refuse"]) for r in RECIPIENTS[:2]}
    error = smtpx.errors.recipients_refused(own, command=Command.RCPT)
    assert books.failed(error) is False
    assert books.final == own and not books.deferred and books.pending == []


@pytest.mark.parametrize("code", [451, 554])
def test_a_failed_data_keeps_each_recipients_own_refusal(code: int) -> None:
    # a was refused at RCPT; b and c were accepted and then the message was refused.
    a, b, c = RECIPIENTS[:3]
    books = Recipients((a, b, c), RetryPolicy())
    own = refusal(a, OUTCOMES["refuse"])
    error = classify(Command.DATA_END, Reply.build(code, "failed"))
    assert isinstance(error, smtpx.SMTPError)
    error.rejected = {a: own}
    error.undelivered = (b, c)  # as the client names them: those not refused before
    assert books.failed(error) is False  # not a RecipientsRefused
    check(books)
    assert books.final[a] is own
    if code == 451:
        assert books.deferred == {b: error, c: error} and books.pending == [b, c]
        assert books.pending_errors() == [error, error]
    else:
        assert books.final == {a: own, b: error, c: error} and books.pending == []
        assert books.pending_errors() == [error]  # none pending: the last error


def test_refused_without_naming_undelivered_files_only_the_refused() -> None:
    a, b = RECIPIENTS[:2]
    books = Recipients((a, b), RetryPolicy())
    error = classify(Command.DATA_END, Reply.build(451, "later"))
    assert isinstance(error, smtpx.SMTPError)
    error.rejected = {a: refusal(a, OUTCOMES["refuse"])}
    books.failed(error)
    assert set(books.final) == {a} and not books.deferred and books.pending == [b]
    assert books.pending_errors() == [error]  # b has no refusal of its own
    again = classify(Command.DATA_END, Reply.build(452, "later again"))
    assert isinstance(again, smtpx.SMTPError)
    again.rejected = dict(error.rejected)
    books.failed(again)
    assert books.history == [error, again] and books.pending == [b]
    assert books.pending_errors() == [again]  # only the latest


def test_a_whole_attempt_that_failed_for_now_defers_everyone() -> None:
    books = Recipients(RECIPIENTS[:3], RetryPolicy())
    error = classify(Command.MAIL, Reply.build(421, "4.3.2 closing"))
    assert isinstance(error, smtpx.SMTPError)
    assert books.failed(error) is False
    assert books.deferred == dict.fromkeys(RECIPIENTS[:3], error)
    assert books.pending == list(RECIPIENTS[:3])
    assert books.pending_errors() == [error, error, error]
    final = classify(Command.MAIL, Reply.build(554, "5.3.0 no"))
    assert isinstance(final, smtpx.SMTPError)
    assert books.failed(final) is False
    check(books)
    assert books.final == dict.fromkeys(RECIPIENTS[:3], final) and not books.deferred
    assert books.pending == [] and books.history == [error, final]


def test_a_later_success_files_what_it_accepted_and_deferred() -> None:
    a, b, c = RECIPIENTS[:3]
    books = Recipients((a, b, c), RetryPolicy())
    first = classify(Command.MAIL, Reply.build(421, "4.3.2 closing"))
    assert isinstance(first, smtpx.SMTPError)
    books.failed(first)
    later = refusal(c, OUTCOMES["defer"])
    gone = refusal(b, OUTCOMES["refuse"])
    books.succeeded(SendResult((a,), {b: gone, c: later}, OK, host="mx.test", port=2525))
    check(books)
    assert books.accepted == [a]
    assert books.final == {b: gone} and books.deferred == {c: later}
    assert books.pending == [c]
    assert books.history == [first, later]
    assert books.pending_errors() == [later]
    assert books.answered_by == ("mx.test", 2525)
    assert books.refusals() == {b: gone, c: later}
    books.succeeded(SendResult((c,), {}, OK, host="mx2.test", port=25))
    assert books.accepted == [a, c] and books.pending == [] and not books.deferred
    assert books.answered_by == ("mx2.test", 25)
    assert books.history == [first, later]


@pytest.mark.parametrize("seen", [smtpx.Reason.BLOCKLISTED, smtpx.Reason.BAD_REPUTATION])
def test_each_slow_reason_is_reported_once_per_host(
    seen: smtpx.Reason, caplog: pytest.LogCaptureFixture
) -> None:
    # One error standing for both slow reasons (its own, and a refusal it gathers), one
    # of them already reported at this host: the other is still reported, once.
    listed = refusal("b@example.com", OUTCOMES["defer"])
    listed.reason = smtpx.Reason.BLOCKLISTED
    error = classify(Command.DATA_END, Reply.build(451, "4.7.0 later"))
    assert isinstance(error, smtpx.SMTPError)
    error.reason = smtpx.Reason.BAD_REPUTATION
    error.rejected = {"b@example.com": listed}
    policy = RetryPolicy()
    policy.reported.add(("mx.test", seen))
    caplog.set_level("WARNING", logger="smtpx.retry")
    _report_deliverability(policy, "mx.test", [error])
    _report_deliverability(policy, "mx.test", [error])  # nothing new
    both = {smtpx.Reason.BLOCKLISTED, smtpx.Reason.BAD_REPUTATION}
    assert policy.reported == {("mx.test", reason) for reason in both}
    (other,) = both - {seen}
    said = [r.getMessage() for r in caplog.records if r.name == "smtpx.retry"]
    assert len(said) == 1 and said[0].startswith(f"deliverability problem at mx.test: {other} (")


class ScriptedSender:
    """A client in memory: each attempt raises or returns the next scripted outcome."""

    host = "mx.test"

    def __init__(self, *outcomes: smtpx.SMTPError | SendResult) -> None:
        self.outcomes = list(outcomes)
        self.sent: list[tuple[str, ...]] = []

    async def send_envelope(self, envelope: Envelope, /) -> SendResult:
        self.sent.append(envelope.recipients)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, SendResult):
            return outcome
        raise outcome


async def test_a_pending_recipient_without_its_own_refusal_is_judged_by_the_attempts_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # a refused for good, b named nowhere: b is retried, and the attempt's error (a
    # blocklisting) is what its wait and the deliverability report are read from.
    a, b = RECIPIENTS[:2]
    error = classify(Command.DATA_END, Reply.build(451, "4.7.1 later"))
    assert isinstance(error, smtpx.SMTPError)
    error.reason = smtpx.Reason.BLOCKLISTED
    error.rejected = {a: refusal(a, OUTCOMES["refuse"])}
    sender = ScriptedSender(error, SendResult((b,), {}, OK, host="mx.test", port=25))
    clock = smtpx.VirtualClock()
    policy = RetryPolicy.for_testing(clock, timeout=10_000, backoff=smtpx.Backoff(jitter=0.0))
    caplog.set_level("WARNING", logger="smtpx.retry")
    envelope = Envelope("app@example.com", (a, b), b"Subject: x\r\n\r\nHi\r\n", False, False)
    result = await send_with_retry(sender, envelope, policy)
    assert sender.sent == [(a, b), (b,)]
    assert result.accepted == (b,) and result.rejected == dict(error.rejected)
    assert clock.sleeps == [900.0]  # the blocklist's long wait
    said = [r.getMessage() for r in caplog.records if "deliverability problem" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("deliverability problem at mx.test: blocklisted")
