"""Score ``SMTPError.reason`` against real providers' replies.

The corpus is ``shared/reference/real-replies.jsonl`` beside the repository: 331
real SMTP replies recovered from the public bounce samples of the Sisimai project
(set-of-emails, BSD-2-Clause, (c) azumakuniyuki and the Sisimai contributors), each
labelled with a reason.  The 24 ``lab`` samples (texts written to exercise a
parser) are left out of the score.

    .venv/bin/python benchmarks/reasons.py            # agreement, recall, confusion, misses
    .venv/bin/python benchmarks/reasons.py --json     # the figures only, as JSON

Each reply is classified exactly as smtpx classifies a live one
(``smtpx.classify``); the reply's command is unknown for about a third of the
samples, which then go through ``smtpx.explain`` with no command.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attrs

import smtpx
from smtpx import Command, EnhancedStatus, Reason, Reply

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "reference" / "real-replies.jsonl"

# The corpus names the SMTP verb; a failure "in reply to DATA" in a bounce is the reply
# after the message (the DATA verb itself is rarely refused).
_COMMANDS = {"DATA": Command.DATA_END, **{c.name: c for c in Command}}


@attrs.frozen
class Case:
    reply: Reply
    command: Command | None
    expected: Reason
    sample: str


def cases(path: Path = CORPUS, *, lab: bool = False) -> Iterator[Case]:
    """The corpus's replies (without the lab samples unless asked)."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            if row["lab"] and not lab:
                continue
            reply = Reply.build(row["code"], row["text"])
            if reply.enhanced is None and row["enhanced"]:
                reply = attrs.evolve(reply, enhanced=EnhancedStatus.parse(row["enhanced"]))
            command = _COMMANDS[row["command"]] if row["command"] else None
            yield Case(reply, command, Reason(row["reason"]), row["sample"])


def reason_of(case: Case) -> Reason:
    if case.command is None:
        return smtpx.explain(None, case.reply)
    outcome = smtpx.classify(case.command, case.reply)
    assert isinstance(outcome, smtpx.SMTPError), outcome
    return outcome.reason


@attrs.frozen
class Score:
    total: int
    agreed: int
    recall: dict[str, tuple[int, int]]  # reason -> (found, cases)
    confusion: dict[str, dict[str, int]]  # expected -> got -> count
    misses: list[tuple[str, str, str, str]]  # sample, expected, got, reply

    @property
    def agreement(self) -> float:
        return self.agreed / self.total if self.total else 0.0


def score(path: Path = CORPUS) -> Score:
    total = agreed = 0
    found: collections.Counter[str] = collections.Counter()
    seen: collections.Counter[str] = collections.Counter()
    confusion: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    misses = []
    for case in cases(path):
        got = reason_of(case)
        total += 1
        seen[case.expected] += 1
        confusion[case.expected][got] += 1
        if got is case.expected:
            agreed += 1
            found[case.expected] += 1
        else:
            misses.append((case.sample, case.expected.value, got.value, str(case.reply)[:160]))
    recall = {reason: (found[reason], n) for reason, n in seen.most_common()}
    return Score(total, agreed, recall, {k: dict(v) for k, v in confusion.items()}, misses)


def cost(path: Path = CORPUS, rounds: int = 20) -> tuple[float, float]:
    """Microseconds per classify+explain of a refusal: first sight, and cached."""
    from smtpx._explain import _judge

    every = list(cases(path, lab=True))
    _judge.cache_clear()
    started = time.perf_counter()
    for case in every:
        smtpx.classify(case.command or Command.RCPT, case.reply)
    cold = (time.perf_counter() - started) / len(every) * 1e6
    started = time.perf_counter()
    for _ in range(rounds):
        for case in every:
            smtpx.classify(case.command or Command.RCPT, case.reply)
    warm = (time.perf_counter() - started) / (rounds * len(every)) * 1e6
    return cold, warm


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    result = score()
    cold, warm = cost()
    if args.json:
        figures = {
            "cases": result.total,
            "agreement": round(result.agreement, 4),
            "recall": {k: [f, n] for k, (f, n) in result.recall.items()},
            "us_per_refusal": {"first": round(cold, 1), "repeated": round(warm, 1)},
        }
        print(json.dumps(figures, indent=2))
        return 0
    print(f"agreement: {result.agreed}/{result.total} = {result.agreement:.1%}")
    print(f"cost: {cold:.0f} µs per refusal seen first, {warm:.1f} µs repeated (cached)")
    print("\nrecall by reason (cases):")
    for reason, (hit, n) in result.recall.items():
        print(f"  {reason:<20} {hit:>3}/{n:<3} {hit / n:6.1%}")
    print("\nconfusion of the top reasons (expected -> got):")
    for reason in list(result.recall)[:8]:
        wrong = {g: c for g, c in result.confusion[reason].items() if g != reason}
        if wrong:
            listed = ", ".join(f"{g} {c}" for g, c in sorted(wrong.items(), key=lambda x: -x[1]))
            print(f"  {reason:<20} {listed}")
    print(f"\nmisses ({len(result.misses)}):")
    for sample, expected, got, text in result.misses:
        print(f"  {sample:<34} {expected:>18} -> {got:<18} {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
