"""Messages back to back (``MailBatch``): every fault at every octet, each message judged alone.

The batch pipelines each transaction behind the end of the one before, so one write
carries the end of a message and the next message's MAIL, RCPTs and DATA, and one
read carries both their replies.  For every shape below, a fault-free run gives the
steps; then, at every octet offset of every step after the setup (large writes
sampled as in ``test_protocol_faults``), the session is interrupted in every way.
The oracle restates the truth table per message, from the server's side, using the
replies the in-memory server tagged with the transaction they belong to:

- a message whose replies all reached the client has its fault-free outcome, whatever
  happened to the messages after it;
- any other message has the outcome its own replies and its own end decide:
  ``DeliveryUnknown`` only if its end was handed out, never "safe to retry" if the
  server has its end, its command the first of its own commands left unanswered;
- a message not sent (left for a new session) had nothing of it handed out, or was
  queued behind the message the fault ended without its own end handed out;
- every recipient is accounted for, and every message the server delivered carries
  the envelope it was sent with (no command of one transaction lands in another).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from memory_server import Script, Sent
from protocol_harness import ONE, THREE, Fault, Run, Shape, envelope, run_batch
from protocol_harness import run_shape as run_one_by_one
from test_protocol_faults import (
    Expected,
    _accounted,
    _compare,
    _same,
    events,
    offsets,
    plain_error,
)

from smtpx import errors as e
from smtpx.protocol import Fate, Interruption
from smtpx.results import SendResult

TWO = ("carol@example.com", "erin@example.com")
NOBODY = {r: "550 5.1.1 No such user" for r in ("x1@example.com", "x2@example.com")}
DEFER = {"late@example.com": "451 4.3.0 Try again later"}
REFUSE = {"nobody@example.com": "550 5.1.1 No such user", **NOBODY, **DEFER}
BODY = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n" * 40
DOTS = b".leading dot\r\n..two\r\n.\r\nend\r\n"

piped = Script(pipelining=True, refuse=REFUSE)
bdat = Script(pipelining=True, chunking=True, refuse=REFUSE)
messages = (envelope(ONE), envelope(THREE, DOTS), envelope(TWO))
refused_middle = (envelope(ONE), envelope(("x1@example.com", "x2@example.com")), envelope(TWO))

SHAPES = {
    shape.name: shape
    for shape in (
        Shape("3 messages, pipelined DATA", piped, messages),
        Shape("3 messages, pipelined BDAT", bdat, messages),
        Shape("3 messages, lock-step DATA", attrs.evolve(piped, pipelining=False), messages),
        Shape(
            "3 messages, DATA, the first's end refused, the second's deferred",
            attrs.evolve(piped, end_replies=("554 5.7.1 Spam", "452 4.3.1 Full")),
            messages,
        ),
        Shape("every recipient of the middle one refused, DATA", piped, refused_middle),
        Shape(
            "every recipient of the middle one refused, BDAT that keeps the transaction",
            attrs.evolve(bdat, bdat_refusal_keeps_transaction=True),
            refused_middle,
        ),
        Shape(
            "one deferred recipient in each, DATA with a larger body",
            piped,
            (envelope(("late@example.com", *ONE), BODY), envelope(("late@example.com",), BODY)),
        ),
        Shape(
            "a 421 at the second's RCPT, DATA",
            attrs.evolve(piped, refuse={**REFUSE, "carol@example.com": "421 4.3.2 Closing"}),
            (envelope(ONE), envelope(TWO), envelope(THREE)),
        ),
        Shape(
            "a 421 at the first's end, DATA",
            attrs.evolve(piped, end_replies=("421 4.3.2 Shutting down",)),
            messages,
        ),
        Shape(
            "MAIL refused every time, DATA",
            attrs.evolve(piped, mail_reply="553 5.1.8 Bad sender", careless_data=True),
            (envelope(ONE), envelope(TWO)),
        ),
    )
}


@functools.cache
def golden(name: str) -> Run:
    run = run_batch(SHAPES[name])
    assert run.pump.faulted is False
    return run


def faults(name: str) -> Iterator[Fault]:
    for index, step in enumerate(golden(name).pump.steps):
        if step.flow < 0:
            continue  # the setup's faults: test_protocol_faults, for every shape of it
        for offset in offsets(step):
            for what, precise in events(step):
                yield Fault(index, offset, what, precise)


# -- the oracle ---------------------------------------------------------------------------


def _end_of(run: Run, index: int) -> int | None:
    """The client offset just past message ``index``'s end, if the server got one."""
    mails = run.server.mails
    low = mails[index]
    high = mails[index + 1] if index + 1 < len(mails) else run.pump.handed
    inside = [end for end in run.server.ends if low < end <= high]
    return inside[-1] if inside else None


def expect(name: str, fault: Fault, actual: Run) -> list[Expected | None]:
    """Each message's outcome when ``fault`` fires (None: never started)."""
    run = golden(name)
    step = run.pump.steps[fault.step]
    seen, handed = actual.pump.received, actual.pump.handed
    trusted = fault.precise and not step.encrypted and fault.what is not Interruption.TLS_ERROR
    result: list[Expected | None] = []
    for index, outcome in enumerate(run.outcomes):
        if index >= len(run.server.mails) or handed <= run.server.mails[index]:
            result.append(None)  # nothing of it left the client: it may wait for a new session
            continue
        own = [r for r in run.server.sent if r.message == index and r.command != "QUIT"]

        def received(reply: Sent) -> bool:
            return reply.end <= seen

        end_at = _end_of(run, index)
        earlier = [r for r in run.server.sent if 0 <= r.message < index and r.command != "QUIT"]
        closed_before = any(not received(r) or r.code == 421 for r in earlier)
        if closed_before and (end_at is None or handed < end_at):
            result.append(None)  # behind a message the fault ended, its end not sent: resent
            continue
        closing = any(received(r) and r.code == 421 for r in own)  # it closed the session
        if closing or all(received(r) for r in own if r.command != "RSET"):
            result.append(Expected(type(outcome), golden=outcome))
            continue
        recipients = SHAPES[name].messages[index].recipients
        mail = next(r for r in own if r.command == "MAIL")
        rcpts = {r.recipient: r for r in own if r.command == "RCPT" and r.recipient is not None}
        ends = [r for r in own if r.command in ("DATA_END", "BDAT")]
        mail_refused = received(mail) and mail.code >= 400
        refused = (
            set()
            if mail_refused
            else {r for r, s in rcpts.items() if received(s) and s.code >= 400}
        )
        fates = []
        for recipient in recipients:
            if mail_refused or recipient in refused or (ends and received(ends[-1])):
                fate = Fate.ANSWERED
            elif (
                end_at is not None
                and handed >= end_at
                and (actual.pump.delivered >= end_at or not trusted)
            ):
                fate = Fate.UNKNOWN
            else:
                fate = Fate.SAFE_TO_RETRY
            fates.append((recipient, fate))
        missing = next((r for r in own if not received(r)), None)
        command = missing.command if missing is not None else None
        who = missing.recipient if missing is not None else None
        kind: type[e.SMTPError]
        if any(fate is Fate.UNKNOWN for _, fate in fates):
            kind = e.DeliveryUnknown
        elif mail_refused:
            kind, command, who = type(outcome), "MAIL", None  # type: ignore[assignment]
        elif len(refused) == len(recipients):
            codes = [rcpts[r].code for r in refused]
            kind = e.AllRecipientsDeferred if max(codes) < 500 else e.AllRecipientsRejected
            command, who = "RCPT", None
        else:
            kind = plain_error(fault.what, "session")
        undelivered = tuple(r for r in recipients if r not in refused)
        result.append(Expected(kind, command, who, frozenset(refused), undelivered, tuple(fates)))
    return result


def check(name: str, fault: Fault) -> list[str]:
    actual = run_batch(SHAPES[name], fault)
    run = golden(name)
    problems: list[str] = []
    wanted = expect(name, fault, actual)
    for index, (outcome, want) in enumerate(zip(actual.outcomes, wanted, strict=True)):
        problems += [f"message {index}: {p}" for p in _compare(outcome, want)]
        if outcome is not None:
            problems += [
                f"message {index}: {p}"
                for p in _accounted(SHAPES[name].messages[index].recipients, outcome)
            ]
        if outcome is None and not actual.session.closed:
            problems.append(f"message {index}: not sent on a session still open")
        if want is not None and want.fates and index < len(actual.transactions):
            problems += [f"message {index}: {p}" for p in _fates(actual, index, want, run)]
    started = sum(o is not None for o in actual.outcomes)
    if actual.left != len(actual.outcomes) - started:
        problems.append(f"{actual.left} left, {started} of {len(actual.outcomes)} started")
    first = {d.end: (d.recipients, d.data) for d in run.store.deliveries}
    for delivery in actual.store.deliveries:
        if first.get(delivery.end) != (delivery.recipients, delivery.data):
            problems.append(f"delivered what the fault-free run never did: {delivery}")
    return problems


def _fates(actual: Run, index: int, want: Expected, run: Run) -> list[str]:
    transaction = actual.transactions[index]
    verdict = actual.session.verdict_for(transaction) if transaction is not None else None
    if verdict is None:
        return []
    problems = []
    fates = tuple((r, verdict.fate(r)) for r, _ in want.fates)
    if fates != want.fates:
        problems.append(f"fates {fates}, wanted {want.fates}")
    end_at = _end_of(run, index)
    got_end = end_at is not None and end_at in actual.server.ends
    outcome = actual.outcomes[index]
    delivered = {r for d in actual.store.deliveries if d.end == end_at for r in d.recipients}
    for recipient, fate in fates:
        if got_end and fate is Fate.SAFE_TO_RETRY:
            problems.append(f"{recipient}: the server has the message's end, verdict says safe")
        if recipient in delivered:
            ok = isinstance(outcome, SendResult) and recipient in outcome.accepted
            unknown = isinstance(outcome, e.DeliveryUnknown) and recipient in outcome.undelivered
            if not (ok or unknown):
                problems.append(f"{recipient} was delivered, yet the outcome is {outcome!r}")
    return problems


@pytest.mark.parametrize("name", list(SHAPES))
def test_every_fault_everywhere(name: str) -> None:
    failures: list[str] = []
    count = 0
    for fault in faults(name):
        count += 1
        failures += [f"{fault}: {problem}" for problem in check(name, fault)]
    assert count > 100
    assert not failures, f"{len(failures)} of {count} cases:\n" + "\n".join(failures[:20])


@pytest.mark.parametrize("name", list(SHAPES))
def test_without_faults_every_message_has_its_one_by_one_outcome(name: str) -> None:
    batch, alone = golden(name), run_one_by_one(SHAPES[name])
    for together, apart in zip(batch.outcomes, alone.outcomes, strict=True):
        if together is None or apart is None:  # not sent after a 421: both or neither
            assert together is apart is None
            continue
        assert not _same(together, apart), (together, apart)
    assert [(d.recipients, d.data) for d in batch.store.deliveries] == [
        (d.recipients, d.data) for d in alone.store.deliveries
    ]


def _round_trips(run: Run) -> int:
    """Reads of server output for the messages (the setup and QUIT left out)."""
    messages = range(len(run.outcomes))
    return sum(s.kind == "receive" and s.flow in messages for s in run.pump.steps)


@pytest.mark.parametrize(
    ("name", "trips", "one_by_one"),
    [
        # DATA: MAIL+RCPT+DATA, then each end with the next MAIL+RCPT+DATA, then the last end
        ("3 messages, pipelined DATA", 4, 6),
        # without PIPELINING one reply a read, as one by one: MAIL, each RCPT, DATA, the end
        ("3 messages, lock-step DATA", 4 + 6 + 5, 4 + 6 + 5),
    ],
)
def test_one_round_trip_per_message(name: str, trips: int, one_by_one: int) -> None:
    assert _round_trips(golden(name)) == trips
    assert _round_trips(run_one_by_one(SHAPES[name])) == one_by_one


def test_the_bdat_end_after_refusals_is_not_followed() -> None:
    # every recipient of the middle message refused: its BDAT LAST may leave the server's
    # transaction open, so the next MAIL waits for its reply and the RSET
    run = golden("every recipient of the middle one refused, BDAT that keeps the transaction")
    commands = [r.command for r in run.server.sent if r.message == 1]
    assert commands[-1] == "RSET"
    assert isinstance(run.outcomes[1], e.AllRecipientsRejected)
    assert isinstance(run.outcomes[2], SendResult) and run.outcomes[2].accepted == TWO


def test_the_case_count_is_the_documented_one() -> None:
    total = sum(1 for name in SHAPES for _ in faults(name))
    page = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()
    assert f"**{total:,} cases**" in page
    assert "Ten shapes" in page and len(SHAPES) == 10
