"""Exhaustive fault injection: every shape, every step, every octet offset, every interruption.

For each shape (``protocol_harness.shapes``) a fault-free run gives the steps (client
writes, reads of server output, the TLS handshake).  Then, at every octet offset of
every step (large payloads sampled beyond the first and last 64 octets of each write),
the session is run again and interrupted there: the connection is cut (with and
without an unsent count from the edge), stalls until the read or the total time-out,
is cancelled, or fails in TLS (encrypted steps).  Each case is judged against an
oracle that knows only what the server received and which of its replies reached the
client, restating the truth table from that side:

- the outcome of every message equals the oracle's (type, command, recipient,
  refusals, undelivered);
- every recipient is accepted, refused with its error, or undelivered;
- the server received the end of the message -> the verdict never says "safe to
  retry"; the end never left the client (or, with an exact unsent count, never
  reached the server) -> the verdict never says "delivery unknown".
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
from memory_server import Sent
from protocol_harness import Fault, Outcome, Run, Step, run_shape, shapes

from smtpx import errors as e
from smtpx.protocol import Fate, Interruption
from smtpx.results import SendResult

SHAPES = {shape.name: shape for shape in shapes()}
EDGE = 64  # octets at each end of a large write that are all tried
SAMPLES = 24  # offsets tried in between


@functools.cache
def golden(name: str) -> Run:
    run = run_shape(SHAPES[name])
    assert run.pump.faulted is False
    return run


def offsets(step: Step) -> list[int]:
    if step.kind == "tls":
        return [0]
    if step.size <= 2 * EDGE + SAMPLES:
        return list(range(step.size + 1))
    inner = range(EDGE + 1, step.size - EDGE, max(1, (step.size - 2 * EDGE) // SAMPLES))
    return sorted({*range(EDGE + 1), *inner, *range(step.size - EDGE, step.size + 1)})


def events(step: Step) -> list[tuple[Interruption, bool]]:
    found = [
        (Interruption.CONNECTION_LOST, False),
        (Interruption.READ_TIMEOUT, True),
        (Interruption.TOTAL_TIMEOUT, True),
        (Interruption.CANCELLED, True),
    ]
    if step.kind == "send":  # an exact unsent count matters only for what the client wrote
        found.append((Interruption.CONNECTION_LOST, True))
    if step.encrypted or step.kind == "tls":
        found.append((Interruption.TLS_ERROR, True))
    return found


def faults(name: str) -> Iterator[Fault]:
    for index, step in enumerate(golden(name).pump.steps):
        for offset in offsets(step):
            for what, precise in events(step):
                yield Fault(index, offset, what, precise)


# -- the oracle: the truth table restated from the server's side ----------------------


@attrs.frozen
class Expected:
    kind: type
    command: str | None = None
    recipient: str | None = None
    rejected: frozenset[str] = frozenset()
    undelivered: tuple[str, ...] = ()
    fates: tuple[tuple[str, Fate], ...] = ()
    golden: Outcome = None


def plain_error(what: Interruption, phase: str) -> type[e.SMTPError]:
    if what is Interruption.TLS_ERROR and phase != "session":
        return e.TLSHandshakeFailed
    if phase == "greeting" and what is Interruption.CONNECTION_LOST:
        return e.ConnectError
    if phase == "greeting" and what is Interruption.READ_TIMEOUT:
        return e.ConnectTimeout
    if what in (Interruption.READ_TIMEOUT, Interruption.TOTAL_TIMEOUT):
        return e.ResponseTimeout
    return e.ConnectionLost


def expect(name: str, fault: Fault) -> list[Expected | None]:
    """What each message's outcome must be when ``fault`` fires (None: not attempted)."""
    run = golden(name)
    shape = run.shape
    steps = run.pump.steps
    step = steps[fault.step]
    handed = step.client + (step.size if step.kind == "send" else 0)
    reached = step.client + (fault.offset if step.kind == "send" else 0)
    seen = step.server + (fault.offset if step.kind == "receive" else 0)

    def received(reply: Sent) -> bool:
        return reply.end <= seen

    flows = [-1, *range(len(shape.messages) + 1)]
    decided = dict(zip(flows, run.pump.decided_at, strict=True))
    result: list[Expected | None] = [None] * len(shape.messages)
    for index in range(len(shape.messages)):
        if index < step.flow or (index == step.flow and seen >= decided[index]):
            result[index] = Expected(type(run.outcomes[index]), golden=run.outcomes[index])
    if step.flow >= len(shape.messages) or (step.flow >= 0 and result[step.flow] is not None):
        return result
    if step.flow == -1 and seen >= decided[-1]:
        # set up before the fault: the first message is tried and finds nothing to send on
        first = next(r for r in run.server.sent if _flow_of(steps, r) == 0)
        recipients = shape.messages[0].recipients
        result[0] = Expected(
            plain_error(fault.what, "session"), first.command, undelivered=recipients
        )
        return result
    replies = [r for r in run.server.sent if _flow_of(steps, r) == step.flow]
    missing = next((r for r in replies if not received(r)), None)
    if step.flow == -1:
        result[0] = _setup_failure(run, fault, replies, missing, received)
        return result
    recipients = shape.messages[step.flow].recipients
    mail = next(r for r in replies if r.command == "MAIL")
    rcpts = {r.recipient: r for r in replies if r.command == "RCPT" and r.recipient is not None}
    ends = [r for r in replies if r.command in ("DATA_END", "BDAT")]
    end_at = _end_offset(run, step.flow)
    mail_refused = received(mail) and mail.code >= 400
    refused = {r for r, reply in rcpts.items() if received(reply) and reply.code >= 400}
    if mail_refused:
        refused = set()  # after a refused MAIL, the RCPT replies mean nothing
    trusted = fault.precise and not step.encrypted and fault.what is not Interruption.TLS_ERROR
    fates = []
    for recipient in recipients:
        if mail_refused or recipient in refused or (ends and received(ends[-1])):
            fate = Fate.ANSWERED
        elif end_at is not None and handed >= end_at and (reached >= end_at or not trusted):
            fate = Fate.UNKNOWN
        else:
            fate = Fate.SAFE_TO_RETRY
        fates.append((recipient, fate))
    unknown = any(fate is Fate.UNKNOWN for _, fate in fates)
    command = missing.command if missing is not None else None
    who = missing.recipient if missing is not None else None
    kind: type[e.SMTPError]
    if unknown:
        kind = e.DeliveryUnknown
    elif mail_refused:
        kind, command, who = type(run.outcomes[step.flow]), "MAIL", None  # type: ignore[assignment]
    elif len(refused) == len(recipients):
        codes = [rcpts[r].code for r in refused]
        kind = e.AllRecipientsDeferred if max(codes) < 500 else e.AllRecipientsRejected
        command, who = "RCPT", None
    else:
        kind = plain_error(fault.what, "session")
    undelivered = tuple(r for r in recipients if r not in refused)
    result[step.flow] = Expected(kind, command, who, frozenset(refused), undelivered, tuple(fates))
    return result


def _flow_of(steps: list[Step], reply: Sent) -> int:
    for step in steps:
        if step.kind == "receive" and step.server <= reply.start < step.server + step.size:
            return step.flow
    raise AssertionError(f"no step read {reply}")


def _end_offset(run: Run, flow: int) -> int | None:
    """The client offset just past the message end of ``flow`` (None if never sent)."""
    sends = [s for s in run.pump.steps if s.kind == "send" and s.flow == flow]
    low, high = sends[0].client, sends[-1].client + sends[-1].size
    inside = [end for end in run.server.ends if low < end <= high]
    return inside[-1] if inside else None


def _setup_failure(
    run: Run,
    fault: Fault,
    replies: list[Sent],
    missing: Sent | None,
    received: Callable[[Sent], bool],
) -> Expected:
    steps = run.pump.steps
    step = steps[fault.step]
    tls_at = next((i for i, s in enumerate(steps) if s.kind == "tls"), None)
    starttls = next((r for r in replies if r.command == "STARTTLS"), None)
    command: str | None
    if step.kind == "tls" or (
        starttls is not None and received(starttls) and tls_at is not None and fault.step < tls_at
    ):
        phase, command = "handshake", "STARTTLS"
    else:
        phase = "greeting" if missing is not None and missing.command == "CONNECT" else "session"
        command = missing.command if missing is not None else None
    recipients = run.shape.messages[0].recipients
    return Expected(plain_error(fault.what, phase), command, undelivered=recipients)


# -- the check ------------------------------------------------------------------------


def check(name: str, fault: Fault) -> list[str]:
    """Run one case; the ways it differs from the oracle (empty: none)."""
    run = run_shape(SHAPES[name], fault)
    problems: list[str] = []
    for index, (actual, wanted) in enumerate(zip(run.outcomes, expect(name, fault), strict=True)):
        problems += [f"message {index}: {p}" for p in _compare(actual, wanted)]
        envelope = run.shape.messages[index]
        if actual is not None:
            problems += _accounted(envelope.recipients, actual)
    verdict = run.session.verdict
    flow = run.pump.steps[fault.step].flow
    if verdict is not None and 0 <= flow < len(run.shape.messages):
        problems += _consistent(run, fault, flow, expect(name, fault)[flow])
    return problems


def _compare(actual: Outcome, wanted: Expected | None) -> list[str]:
    if wanted is None:
        return [] if actual is None else [f"attempted although the session was closed: {actual!r}"]
    if wanted.golden is not None:
        return _same(actual, wanted.golden)
    groups = (e.AllRecipientsRejected, e.AllRecipientsDeferred)
    lone = wanted.kind in groups and isinstance(actual, wanted.kind)  # a lone refusal's class
    if type(actual) is not wanted.kind and not lone:
        return [f"{actual!r}, wanted {wanted.kind.__name__}"]
    assert isinstance(actual, e.SMTPError)
    problems = []
    command = actual.command.name if actual.command is not None else None
    if command != wanted.command:
        problems.append(f"{actual!r}: command {command}, wanted {wanted.command}")
    if wanted.kind not in (e.AllRecipientsRejected, e.AllRecipientsDeferred) and (
        actual.recipient != wanted.recipient
    ):
        problems.append(f"{actual!r}: recipient {actual.recipient}, wanted {wanted.recipient}")
    if set(actual.rejected) != wanted.rejected:
        problems.append(f"{actual!r}: rejected {set(actual.rejected)}, wanted {wanted.rejected}")
    if actual.undelivered != wanted.undelivered:
        problems.append(f"{actual!r}: undelivered {actual.undelivered}, want {wanted.undelivered}")
    return problems


def _same(actual: Outcome, golden_outcome: Outcome) -> list[str]:
    if type(actual) is not type(golden_outcome):
        return [f"{actual!r}, wanted the fault-free {golden_outcome!r}"]
    if isinstance(actual, SendResult):
        assert isinstance(golden_outcome, SendResult)
        same = actual.accepted == golden_outcome.accepted and {
            r: type(err) for r, err in actual.rejected.items()
        } == {r: type(err) for r, err in golden_outcome.rejected.items()}
        return [] if same else [f"{actual}, wanted the fault-free {golden_outcome}"]
    assert isinstance(actual, e.SMTPError) and isinstance(golden_outcome, e.SMTPError)
    if (actual.command, set(actual.rejected), actual.undelivered) != (
        golden_outcome.command,
        set(golden_outcome.rejected),
        golden_outcome.undelivered,
    ):
        return [f"{actual!r} {actual.undelivered}, wanted the fault-free {golden_outcome!r}"]
    return []


def _accounted(recipients: tuple[str, ...], outcome: Outcome) -> list[str]:
    if isinstance(outcome, SendResult):
        seen = [*outcome.accepted, *outcome.rejected]
    else:
        assert isinstance(outcome, e.SMTPError)
        seen = [*outcome.rejected, *outcome.undelivered]
    return [] if sorted(seen) == sorted(recipients) else [f"recipients vanished: {seen}"]


def _consistent(run: Run, fault: Fault, flow: int, wanted: Expected | None) -> list[str]:
    """The verdict against what the server actually received and delivered."""
    verdict = run.session.verdict
    assert verdict is not None
    problems = []
    if wanted is not None and wanted.fates:
        actual = tuple((r, verdict.fate(r)) for r, _ in wanted.fates)
        if actual != wanted.fates:
            problems.append(f"fates {actual}, wanted {wanted.fates}")
    step = run.pump.steps[fault.step]
    end_at = _end_offset(golden(run.shape.name), flow)
    got_end = end_at is not None and end_at in run.server.ends
    handed_end = end_at is not None and run.pump.handed >= end_at
    trusted = fault.precise and not step.encrypted and fault.what is not Interruption.TLS_ERROR
    outcome = run.outcomes[flow]
    delivered = {r for d in run.store.deliveries if d.end == end_at for r in d.recipients}
    for recipient in run.shape.messages[flow].recipients:
        fate = verdict.fate(recipient)
        if got_end and fate is Fate.SAFE_TO_RETRY:
            problems.append(f"{recipient}: the server has the message's end, verdict says safe")
        if not handed_end and fate is Fate.UNKNOWN:
            problems.append(f"{recipient}: the end never left, verdict says unknown")
        if trusted and not got_end and fate is Fate.UNKNOWN:
            problems.append(f"{recipient}: exact unsent count, end not received, yet unknown")
        if recipient in delivered:
            ok_result = isinstance(outcome, SendResult) and recipient in outcome.accepted
            unknown = isinstance(outcome, e.DeliveryUnknown) and recipient in outcome.undelivered
            if not (ok_result or unknown):
                problems.append(f"{recipient} was delivered, yet the outcome is {outcome!r}")
    return problems


COUNTED: dict[str, int] = {}


@pytest.mark.parametrize("name", list(SHAPES))
def test_every_fault_everywhere(name: str) -> None:
    failures: list[str] = []
    count = 0
    for fault in faults(name):
        count += 1
        for problem in check(name, fault):
            failures.append(f"{fault}: {problem}")
    COUNTED[name] = count
    assert count > 100
    assert not failures, f"{len(failures)} of {count} cases:\n" + "\n".join(failures[:20])


def test_the_case_count_is_the_documented_one() -> None:
    total = sum(1 for name in SHAPES for _ in faults(name))
    print(f"\nexhaustive fault injection: {total} cases over {len(SHAPES)} shapes")
    page = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()
    assert f"**{total:,} cases**" in page and f"each of {len(SHAPES)}" in page
