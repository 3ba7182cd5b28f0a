"""``explain(command, reply)``: the ``Reason`` for a refusal, from the rules in order.

Pure and table-driven: the first rule of ``smtpx._reason_rules.RULES`` that
matches decides; nothing here raises or does I/O.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

import attrs

from smtpx._reason_rules import RULES
from smtpx._reasons import Reason, ReasonRule

if TYPE_CHECKING:
    from smtpx._commands import Command
    from smtpx._enhanced import EnhancedStatus
    from smtpx._reply import Reply

__all__ = ["explain"]


@attrs.frozen
class Verdict:
    """What ``judge`` found: the reason and the rule that decided it (None: no rule did)."""

    reason: Reason
    rule: ReasonRule | None


# An enhanced code anywhere in the text ("#5.1.1", "RCPT TO not accepted: 5.7.1 ..."),
# but not inside a longer dotted number (an IP address, a version, "4.16.55.1").
_ENHANCED_ANYWHERE = re.compile(r"(?<![\d.])[245]\.(\d{1,3})\.(\d{1,3})(?![\d]|\.\d)")


_LINE_CODE = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}(?=\s|$)", re.MULTILINE)


def judge(command: Command | None, reply: Reply) -> Verdict:
    """The reason for a negative ``reply`` to ``command`` and the rule that gave it.

    ``command`` may be None when it is not known; rules tied to a command then
    do not apply.
    """
    if not 400 <= reply.code <= 599:
        return Verdict(Reason.OTHER, None)
    return _judge(command, reply.code, reply.text, reply.enhanced)


def explain(command: Command | None, reply: Reply) -> Reason:
    """Why ``reply`` (a 4xx or 5xx) to ``command`` refused; ``Reason.OTHER`` when nothing
    specific is known (and for a reply that is not a refusal)."""
    return judge(command, reply).reason


# Cached on the reply's parts: a campaign meets the same few refusals again and again.
@functools.lru_cache(maxsize=2048)
def _judge(
    command: Command | None, code: int, raw_text: str, enhanced: EnhancedStatus | None
) -> Verdict:
    # Continuation lines repeat the enhanced code ("550-5.7.26 ..."): drop it from each
    # line, so a phrase broken across lines still reads as one.
    text = " ".join(_LINE_CODE.sub("", raw_text.lower()).split())
    subject_detail: tuple[int, int] | None = None
    if enhanced is not None:
        subject_detail = (enhanced.subject, enhanced.detail)
    else:
        found = _ENHANCED_ANYWHERE.search(raw_text)
        if found is not None:
            subject_detail = (int(found[1]), int(found[2]))
    for rule in RULES:
        if rule.matches(command, code, text, subject_detail):
            return Verdict(rule.reason, rule)
    return Verdict(Reason.OTHER, None)
