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

__all__ = ["Reason"]


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


@attrs.frozen
class About:
    """What a reason means for the sender, and what to do about it."""

    meaning: str
    action: str


ABOUT: dict[Reason, About] = {
    Reason.USER_UNKNOWN: About(
        "the address does not exist at the receiving site",
        "remove it from your list; check it for typos first",
    ),
    Reason.MAILBOX_FULL: About(
        "the recipient's mailbox is over quota",
        "retry later (4xx) or try again in a few days; drop the address if it stays full",
    ),
    Reason.MAILBOX_DISABLED: About(
        "the recipient's account is disabled, suspended or inactive",
        "stop sending to it; the address may come back, so do not treat it as unknown",
    ),
    Reason.HAS_MOVED: About(
        "the mailbox has moved and the server gives no forwarding address",
        "ask the recipient for the new address; remove the old one",
    ),
    Reason.MESSAGE_TOO_LARGE: About(
        "the message exceeds a size limit of the receiving site",
        "send a smaller message: link to large files instead of attaching them",
    ),
    Reason.TOO_MANY_RECIPIENTS: About(
        "too many recipients in one transaction",
        "send to the rest in another transaction (smtpx retries them)",
    ),
    Reason.SPAM_CONTENT: About(
        "the receiving site's filter judged the content to be spam",
        "review the content, links and attachments; do not resend it unchanged",
    ),
    Reason.VIRUS: About(
        "a virus or malware was found in the message",
        "scan the attachments; do not resend it",
    ),
    Reason.BLOCKLISTED: About(
        "the sending IP address or domain is on a blocklist",
        "look the address up on the named list, fix the cause, request removal; pause "
        "sending to this site meanwhile",
    ),
    Reason.BAD_REPUTATION: About(
        "the receiving site distrusts the sender (complaints, volume, poor IP reputation)",
        "slow down, send only to engaged recipients, check the provider's postmaster tools",
    ),
    Reason.RATE_LIMITED: About(
        "too many connections, messages or recipients in too short a time",
        "slow down: fewer connections and messages per minute to this site",
    ),
    Reason.GREYLISTED: About(
        "the first attempt was deferred on purpose (greylisting)",
        "retry after a few minutes from the same IP address (smtpx waits at least 5)",
    ),
    Reason.AUTH_REQUIRED: About(
        "the server wants the client to authenticate first",
        "log in (credentials) before sending, or use the server meant for your account",
    ),
    Reason.AUTH_FAILED: About(
        "the credentials were refused",
        "check the user name and password (or app password / token)",
    ),
    Reason.RELAY_DENIED: About(
        "the server will not relay this mail for this client or sender",
        "send through your own provider's server, authenticated, or to the recipient's MX",
    ),
    Reason.SENDER_REJECTED: About(
        "the envelope sender (MAIL FROM) address or its domain was refused",
        "use a sender address whose domain exists and accepts mail",
    ),
    Reason.SENDER_AUTH_FAILED: About(
        "the sender's domain failed SPF, DKIM or DMARC",
        "publish SPF for the sending IP, sign with DKIM, align both with the From domain",
    ),
    Reason.REVERSE_DNS: About(
        "the sending IP address has no valid reverse DNS (PTR) name",
        "give the sending IP a PTR record whose name resolves back to it",
    ),
    Reason.POLICY: About(
        "refused by the receiving site's policy, with no more specific reason",
        "read the server's text and its help link; contact the site's postmaster",
    ),
    Reason.NOT_RFC_COMPLIANT: About(
        "the message breaks the message format rules (RFC 5322)",
        "fix the headers: one From, one Subject, valid dates and addresses",
    ),
    Reason.TLS_REQUIRED: About(
        "the server requires an encrypted connection",
        "use STARTTLS or implicit TLS",
    ),
    Reason.HOST_UNKNOWN: About(
        "the recipient's domain does not exist or has no mail server",
        "check the domain for typos; remove the address",
    ),
    Reason.NOT_ACCEPTING: About(
        "the host or domain does not accept mail at all",
        "remove the address",
    ),
    Reason.SERVER_BUSY: About(
        "the server is busy or shutting down",
        "retry later",
    ),
    Reason.SYSTEM_ERROR: About(
        "the receiving system failed (disk, configuration, internal error)",
        "retry later; tell the site's postmaster if it persists",
    ),
    Reason.SYNTAX_ERROR: About(
        "the server did not accept a command or its arguments",
        "a client or configuration problem: check the options sent (report it to smtpx)",
    ),
    Reason.OTHER: About(
        "the reply does not say why",
        "read the server's text; a 4xx may be retried, a 5xx should not be resent unchanged",
    ),
}
