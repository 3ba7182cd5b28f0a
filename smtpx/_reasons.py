"""Why a server refused, in one word of a fixed vocabulary: ``Reason`` and the rule type.

Real servers answer 550 or 554 for almost everything and say the cause in their
text, so the reason comes from the whole reply: the text of every line
(case-insensitive), the enhanced status code (on any line), the basic code and
the command.  The rules are data (``smtpx._reason_rules``), each naming where it
comes from (an RFC, a provider's published reply texts, a server's documented
replies); ``smtpx._explain`` applies them.
"""

from __future__ import annotations

import enum
import re
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from smtpx._commands import Command


class Reason(enum.StrEnum):
    """Why a server refused: the cause a sender acts on (drop the address, slow down...)."""

    USER_UNKNOWN = "user_unknown"
    MAILBOX_FULL = "mailbox_full"
    MAILBOX_DISABLED = "mailbox_disabled"
    HAS_MOVED = "has_moved"
    MESSAGE_TOO_LARGE = "message_too_large"
    TOO_MANY_RECIPIENTS = "too_many_recipients"
    SPAM_CONTENT = "spam_content"
    VIRUS = "virus"
    BLOCKLISTED = "blocklisted"
    BAD_REPUTATION = "bad_reputation"
    RATE_LIMITED = "rate_limited"
    GREYLISTED = "greylisted"
    AUTH_REQUIRED = "auth_required"
    AUTH_FAILED = "auth_failed"
    RELAY_DENIED = "relay_denied"
    SENDER_REJECTED = "sender_rejected"
    SENDER_AUTH_FAILED = "sender_auth_failed"
    REVERSE_DNS = "reverse_dns"
    POLICY = "policy"
    NOT_RFC_COMPLIANT = "not_rfc_compliant"
    TLS_REQUIRED = "tls_required"
    HOST_UNKNOWN = "host_unknown"
    NOT_ACCEPTING = "not_accepting"
    SERVER_BUSY = "server_busy"
    SYSTEM_ERROR = "system_error"
    SYNTAX_ERROR = "syntax_error"
    OTHER = "other"


@attrs.frozen
class ReasonRule:
    """A reply that matches every given condition has ``reason``.

    ``text`` is a regular expression searched in the reply's text (all lines,
    lower case); ``enhanced`` a ``(subject, first, last)`` range of enhanced
    codes ``X.subject.detail``; ``codes`` the basic codes it applies to;
    ``commands`` the commands (None: any, and also a reply whose command is
    unknown), ``unless`` commands it never applies to.  ``refines`` is False
    for rules that guess from the context (the command, the bare code) rather
    than from what the reply says: those set ``reason`` but never change the
    exception class.
    """

    reason: Reason
    source: str
    text: re.Pattern[str] | None = None
    enhanced: tuple[int, int, int] | None = None
    codes: range = range(400, 600)
    commands: frozenset[Command] | None = None
    refines: bool = True
    unless: frozenset[Command] = frozenset()

    def matches(
        self, command: Command | None, code: int, text: str, subject_detail: tuple[int, int] | None
    ) -> bool:
        if code not in self.codes:
            return False
        if self.commands is not None and command not in self.commands:
            return False
        if command in self.unless:
            return False
        if self.enhanced is not None:
            if subject_detail is None:
                return False
            subject, first, last = self.enhanced
            if subject_detail[0] != subject or not first <= subject_detail[1] <= last:
                return False
        return self.text is None or self.text.search(text) is not None
