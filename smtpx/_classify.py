"""``classify(command, reply)``: the pure, table-driven heart of smtpx.

A reply becomes a typed success result or an exception *instance*; nothing
here raises and nothing does I/O.  The rules are data, read top to bottom:
the code (and command, and enhanced code) give a class; the reason the reply
states (``smtpx.explain``) may then refine it, never changing its severity.
"""

from __future__ import annotations

import attrs

from smtpx import errors as e
from smtpx._commands import Command
from smtpx._explain import judge
from smtpx._reasons import Reason
from smtpx._reply import Reply
from smtpx._severity import Severity
from smtpx._table import TABLE, is_expected
from smtpx.results import SUCCESS_TYPES, Success

__all__ = ["classify", "error_class", "severity"]


@attrs.frozen
class Rule:
    """Reply ``code`` (to ``command``, with enhanced ``subject.detail``) means ``error``.

    A field left None matches anything.  The first matching rule wins, so the
    more specific rules stand first.
    """

    code: int
    error: type[e.SMTPError]
    command: Command | None = None
    enhanced: tuple[int, int] | None = None
    source: str = ""


# Exceptions to "severity follows the first digit", each citing its source.
SEVERITY_OVERRIDES: dict[tuple[Command, int], tuple[Severity, str]] = {
    (Command.RCPT, 552): (
        Severity.TRANSIENT,
        "RFC 5321 §4.5.3.1.10: clients SHOULD treat 552 to RCPT as temporary",
    ),
}

_LISTED = "command table"  # the Response Codes list of smtpx/data/command-table.txt

RULES: tuple[Rule, ...] = (
    # command-specific meanings
    Rule(554, e.NoSMTPService, command=Command.CONNECT, source="RFC 5321 §3.1"),
    Rule(454, e.TLSUnavailable, command=Command.STARTTLS, source="RFC 3207 §4"),
    Rule(454, e.AuthUnavailable, command=Command.AUTH, source="RFC 4954 §6"),
    Rule(
        552,
        e.TooManyRecipients,
        command=Command.RCPT,
        enhanced=(5, 3),
        source="RFC 5321 §4.5.3.1.10, RFC 3463 X.5.3",
    ),
    Rule(552, e.MailboxFullTemporary, command=Command.RCPT, source="RFC 5321 §4.5.3.1.10"),
    # enhanced status refines the basic code (RFC 3463)
    Rule(452, e.TooManyRecipients, enhanced=(5, 3), source="RFC 5321 §4.5.3.1.10"),
    Rule(452, e.MailboxFullTemporary, enhanced=(2, 2), source="RFC 3463 X.2.2"),
    Rule(450, e.MailboxFullTemporary, enhanced=(2, 2), source="RFC 3463 X.2.2"),
    Rule(451, e.MailboxFullTemporary, enhanced=(2, 2), source="RFC 3463 X.2.2"),
    Rule(550, e.NoSuchMailbox, enhanced=(1, 1), source="RFC 3463 X.1.1"),
    Rule(552, e.MessageTooLarge, enhanced=(2, 3), source="RFC 3463 X.2.3"),
    Rule(552, e.MessageTooLarge, enhanced=(3, 4), source="RFC 3463 X.3.4"),
    Rule(554, e.MessageTooLarge, enhanced=(3, 4), source="RFC 3463 X.3.4"),
    Rule(554, e.AuthFailed, command=Command.AUTH, enhanced=(7, 8), source="RFC 4954 §6"),
    # the catalogue: one meaning per code
    Rule(421, e.ServiceUnavailable, source=_LISTED),
    Rule(422, e.MailboxFullTemporary, source=_LISTED),
    Rule(431, e.DomainOverloaded, source=_LISTED),
    Rule(432, e.PasswordTransitionNeeded, source="RFC 4954 §4.7"),
    Rule(441, e.NoAnswerFromHost, source=_LISTED),
    Rule(442, e.ConnectionDropped, source=_LISTED),
    Rule(446, e.RoutingLoop, source=_LISTED),
    Rule(450, e.MailboxBusy, source=_LISTED),
    Rule(451, e.LocalError, source=_LISTED),
    Rule(452, e.InsufficientStorage, source=_LISTED),
    Rule(453, e.NotAcceptingMessages, source="RFC 3463 X.3.2"),
    Rule(454, e.TLSUnavailable, source=_LISTED),
    Rule(455, e.ParametersNotAccommodated, source=_LISTED),
    Rule(458, e.NotAcceptingMessages, source="RFC 1985"),
    Rule(459, e.NotAcceptingMessages, source="RFC 1985"),
    Rule(471, e.SpamFilterDeferred, source=_LISTED),
    Rule(500, e.CommandUnrecognized, source=_LISTED),
    Rule(501, e.InvalidArguments, source=_LISTED),
    Rule(502, e.CommandNotImplemented, source=_LISTED),
    Rule(503, e.BadCommandSequence, source=_LISTED),
    Rule(504, e.ParameterNotImplemented, source=_LISTED),
    Rule(510, e.InvalidAddress, source=_LISTED),
    Rule(512, e.DomainNotFound, source=_LISTED),
    Rule(521, e.HostDoesNotAcceptMail, source="RFC 7504"),
    Rule(523, e.MessageTooLarge, source=_LISTED),
    Rule(530, e.AuthRequired, source=_LISTED),
    Rule(534, e.AuthMechanismTooWeak, source="RFC 4954 §6"),
    Rule(535, e.AuthFailed, source=_LISTED),
    Rule(538, e.EncryptionRequired, source=_LISTED),
    Rule(541, e.SpamRejected, source=_LISTED),
    Rule(550, e.MailboxUnavailable, source=_LISTED),
    Rule(551, e.UserNotLocal, source=_LISTED),
    Rule(552, e.MailboxFullPermanent, source=_LISTED),
    Rule(553, e.MailboxNameInvalid, source=_LISTED),
    Rule(554, e.TransactionFailed, source=_LISTED),
    Rule(555, e.ParametersNotRecognized, source=_LISTED),
    Rule(556, e.DomainDoesNotAcceptMail, source="RFC 7504"),
)

# The class a reason refines a refusal to: (for a 4xx, for a 5xx); None keeps the code's
# class.  Severity always stays the code's (with SEVERITY_OVERRIDES).
REASON_CLASSES: dict[
    Reason, tuple[type[e.TransientError] | None, type[e.PermanentError] | None]
] = {
    Reason.USER_UNKNOWN: (None, e.NoSuchMailbox),
    Reason.MAILBOX_FULL: (e.MailboxFullTemporary, e.MailboxFullPermanent),
    Reason.MAILBOX_DISABLED: (e.MailboxDisabledTemporary, e.MailboxDisabledPermanent),
    Reason.HAS_MOVED: (None, e.UserNotLocal),
    Reason.MESSAGE_TOO_LARGE: (None, e.MessageTooLarge),
    Reason.TOO_MANY_RECIPIENTS: (e.TooManyRecipients, None),
    Reason.SPAM_CONTENT: (e.SpamFilterDeferred, e.SpamRejected),
    Reason.BLOCKLISTED: (e.BlocklistedTemporary, e.BlocklistedPermanent),
    Reason.BAD_REPUTATION: (e.BadReputationTemporary, e.BadReputationPermanent),
    Reason.RATE_LIMITED: (e.RateLimitedTemporary, e.RateLimitedPermanent),
    Reason.GREYLISTED: (e.Greylisted, None),
    Reason.SENDER_AUTH_FAILED: (e.SenderAuthFailedTemporary, e.SenderAuthFailedPermanent),
    Reason.RELAY_DENIED: (e.RelayDeniedTemporary, e.RelayDeniedPermanent),
    Reason.POLICY: (e.PolicyRejectedTemporary, e.PolicyRejectedPermanent),
    Reason.AUTH_REQUIRED: (None, e.AuthRequired),
    Reason.HOST_UNKNOWN: (None, e.DomainNotFound),
    Reason.NOT_ACCEPTING: (None, e.HostDoesNotAcceptMail),
}

# Classes a reason never replaces: they carry what the session must do next (421
# closes the connection, 554 as the greeting refuses it, the AUTH and STARTTLS
# answers), or they already say the same thing in other words.
KEEPS_CLASS: frozenset[type[e.SMTPError]] = frozenset(
    {
        e.ServiceUnavailable,
        e.NoSMTPService,
        e.TLSUnavailable,
        e.AuthUnavailable,
        e.PasswordTransitionNeeded,
        e.AuthRequired,
        e.AuthMechanismTooWeak,
        e.AuthFailed,
        e.EncryptionRequired,
        e.CommandNotImplemented,
        e.BadCommandSequence,
        e.ParameterNotImplemented,
        e.ParametersNotRecognized,
        e.ParametersNotAccommodated,
    }
)
# A reason whose meaning these classes already carry keeps them.
_SAYS_ALREADY: dict[Reason, frozenset[type[e.SMTPError]]] = {
    Reason.USER_UNKNOWN: frozenset({e.MailboxNameInvalid, e.InvalidAddress}),
    Reason.NOT_ACCEPTING: frozenset({e.DomainDoesNotAcceptMail, e.NotAcceptingMessages}),
}

_BY_SEVERITY: dict[Severity, type[e.SMTPError]] = {
    Severity.TRANSIENT: e.TransientError,
    Severity.PERMANENT: e.PermanentError,
}


def severity(command: Command, code: int) -> Severity:
    """The severity of ``code`` in reply to ``command``, overrides included."""
    override = SEVERITY_OVERRIDES.get((command, code))
    return override[0] if override is not None else Severity.of_code(code)


def error_class(command: Command, reply: Reply) -> type[e.SMTPError]:
    """The exception class for a negative ``reply`` to ``command``."""
    wanted = _BY_SEVERITY[severity(command, reply.code)]
    enhanced = reply.enhanced
    for rule in RULES:
        if rule.code != reply.code:
            continue
        if rule.command is not None and rule.command is not command:
            continue
        if rule.enhanced is not None and (
            enhanced is None or (enhanced.subject, enhanced.detail) != rule.enhanced
        ):
            continue
        if issubclass(rule.error, wanted):
            return rule.error
    return wanted


def refined_class(cls: type[e.SMTPError], reason: Reason) -> type[e.SMTPError]:
    """The class a refusal of class ``cls`` (from its code) gets once its reason is known."""
    if cls in KEEPS_CLASS or cls in _SAYS_ALREADY.get(reason, ()):
        return cls
    transient, permanent = REASON_CLASSES.get(reason, (None, None))
    better = transient if issubclass(cls, e.TransientError) else permanent
    return better if better is not None and not issubclass(cls, better) else cls


def classify(
    command: Command, reply: Reply, *, recipient: str | None = None
) -> Success | e.SMTPError:
    """Turn ``reply`` to ``command`` into a success result or an exception instance.

    Total: every reply gets an answer, and nothing is raised.
    """
    code = reply.code
    row = TABLE[command]
    if not 200 <= code <= 599:
        return e.ProtocolError(
            f"reply code {code} is outside 200-599", command=command, reply=reply, raw=reply.raw
        )
    if code in row.positive:
        return SUCCESS_TYPES[code](command, reply)
    if code < 400:
        return e.UnexpectedReply(
            f"{code} is not a positive reply to {command.label}; the session is out of step",
            command=command,
            reply=reply,
            recipient=recipient,
            raw=reply.raw,
        )
    cls = error_class(command, reply)
    verdict = judge(command, reply)
    if verdict.rule is not None and verdict.rule.refines:
        cls = refined_class(cls, verdict.reason)
    return cls(
        command=command,
        reply=reply,
        recipient=recipient,
        unexpected=not is_expected(command, code),
        reason=verdict.reason,
    )
