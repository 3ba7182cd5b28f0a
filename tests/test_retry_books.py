"""The retry engine's recipient bookkeeping, in memory: every sequence of attempt outcomes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

import smtpx
from smtpx import Command, Reply, RetryPolicy, SendResult, classify
from smtpx._retry_engine import Recipients

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
