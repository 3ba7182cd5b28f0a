"""Every classification rule pinned, and the enhanced-code parser at its edges.

The expected classes below are written out by hand from the RFCs and the command
table, not read from ``RULES``: deleting, reordering or loosening a rule fails here.
A second, generated test proves that no row of ``RULES`` is dead (shadowed by an
earlier row or contradicting its code's severity), and a third that each cites its
source.
"""

from __future__ import annotations

import re

import pytest

import smtpx
from smtpx import Command, Reply, classify
from smtpx import errors as e
from smtpx._classify import RULES, SEVERITY_OVERRIDES, Rule, error_class
from smtpx._codes import CATALOGUE
from smtpx._enhanced import EnhancedStatus

# (command, code, first line) -> class, for the rules that depend on the command or on
# the enhanced code.  Sources: RFC 5321 §3.1 and §4.5.3.1.10, RFC 3207 §4, RFC 4954 §6,
# RFC 3463 (X.1.1 bad mailbox, X.2.2 mailbox full, X.2.3 message too long for the
# mailbox, X.3.4 message too big for the system, X.5.3 too many recipients).
SPECIFIC: list[tuple[Command, int, str, type[e.SMTPError]]] = [
    (Command.CONNECT, 554, "no service", e.NoSMTPService),
    (Command.STARTTLS, 454, "later", e.TLSUnavailable),
    (Command.AUTH, 454, "4.7.0 later", e.AuthUnavailable),
    (Command.RCPT, 552, "5.5.3 too many", e.TooManyRecipients),
    (Command.RCPT, 552, "full", e.MailboxFullTemporary),
    (Command.RCPT, 552, "5.3.4 big", e.MailboxFullTemporary),  # RCPT's 552 rule is first
    (Command.RCPT, 452, "4.5.3 too many", e.TooManyRecipients),
    (Command.MAIL, 452, "4.5.3 too many", e.TooManyRecipients),
    (Command.RCPT, 452, "4.2.2 full", e.MailboxFullTemporary),
    (Command.RCPT, 450, "4.2.2 full", e.MailboxFullTemporary),
    (Command.DATA_END, 450, "4.2.2 full", e.MailboxFullTemporary),
    (Command.RCPT, 451, "4.2.2 full", e.MailboxFullTemporary),
    (Command.MAIL, 451, "4.2.2 full", e.MailboxFullTemporary),
    (Command.RCPT, 550, "5.1.1 unknown", e.NoSuchMailbox),
    (Command.DATA_END, 552, "5.2.3 too long", e.MessageTooLarge),
    (Command.MAIL, 552, "5.2.3 too long", e.MessageTooLarge),
    (Command.DATA_END, 552, "5.3.4 too big", e.MessageTooLarge),
    (Command.DATA_END, 554, "5.3.4 too big", e.MessageTooLarge),
    (Command.BDAT, 554, "5.3.4 too big", e.MessageTooLarge),
    (Command.AUTH, 554, "5.7.8 bad", e.AuthFailed),
]
# ...and where they do not apply: another command, another enhanced code (the reason
# may still refine the class afterwards: only the rules' verdict is pinned here).
NOT_APPLYING: list[tuple[Command, int, str, type[e.SMTPError]]] = [
    (Command.MAIL, 554, "no service", e.TransactionFailed),
    (Command.DATA_END, 554, "5.7.8 bad", e.TransactionFailed),
    (Command.MAIL, 454, "later", e.TLSUnavailable),
    (Command.DATA_END, 552, "5.5.3 too many", e.MailboxFullPermanent),
    (Command.MAIL, 452, "4.2.1 busy", e.InsufficientStorage),
    (Command.RCPT, 450, "4.2.1 busy", e.MailboxBusy),
    (Command.RCPT, 450, "4.2.3 x", e.MailboxBusy),
    (Command.RCPT, 451, "4.3.2 x", e.LocalError),
    (Command.RCPT, 550, "5.1.2 x", e.MailboxUnavailable),
    (Command.RCPT, 550, "5.2.1 x", e.MailboxUnavailable),
    (Command.DATA_END, 552, "5.2.2 full", e.MailboxFullPermanent),
    (Command.DATA_END, 552, "5.3.5 x", e.MailboxFullPermanent),
    (Command.DATA_END, 554, "5.3.3 x", e.TransactionFailed),
    (Command.DATA_END, 554, "5.4.4 x", e.TransactionFailed),
]

# Code -> class with no command or enhanced code to refine it (the command table's
# Response Codes list, RFC 4954, RFC 7504, RFC 1985), asked of MAIL FROM.
CATALOGUE_CLASSES: dict[int, type[e.SMTPError]] = {
    421: e.ServiceUnavailable,
    422: e.MailboxFullTemporary,
    431: e.DomainOverloaded,
    432: e.PasswordTransitionNeeded,
    441: e.NoAnswerFromHost,
    442: e.ConnectionDropped,
    446: e.RoutingLoop,
    450: e.MailboxBusy,
    451: e.LocalError,
    452: e.InsufficientStorage,
    453: e.NotAcceptingMessages,
    454: e.TLSUnavailable,
    455: e.ParametersNotAccommodated,
    458: e.NotAcceptingMessages,
    459: e.NotAcceptingMessages,
    471: e.SpamFilterDeferred,
    500: e.CommandUnrecognized,
    501: e.InvalidArguments,
    502: e.CommandNotImplemented,
    503: e.BadCommandSequence,
    504: e.ParameterNotImplemented,
    510: e.InvalidAddress,
    512: e.DomainNotFound,
    521: e.HostDoesNotAcceptMail,
    523: e.MessageTooLarge,
    530: e.AuthRequired,
    534: e.AuthMechanismTooWeak,
    535: e.AuthFailed,
    538: e.EncryptionRequired,
    541: e.SpamRejected,
    550: e.MailboxUnavailable,
    551: e.UserNotLocal,
    552: e.MailboxFullPermanent,
    553: e.MailboxNameInvalid,
    554: e.TransactionFailed,
    555: e.ParametersNotRecognized,
    556: e.DomainDoesNotAcceptMail,
}


@pytest.mark.parametrize(
    ("command", "code", "line", "expected"),
    SPECIFIC,
    ids=[f"{c.name}-{code}-{line.split()[0]}" for c, code, line, _ in SPECIFIC],
)
def test_command_and_enhanced_rules(
    command: Command, code: int, line: str, expected: type[e.SMTPError]
) -> None:
    reply = Reply.build(code, line)
    assert error_class(command, reply) is expected  # the rule itself, before any reason
    assert type(classify(command, reply)) is expected


@pytest.mark.parametrize(
    ("command", "code", "line", "expected"),
    NOT_APPLYING,
    ids=[f"{c.name}-{code}-{line.split()[0]}" for c, code, line, _ in NOT_APPLYING],
)
def test_rules_do_not_reach_past_their_command_and_code(
    command: Command, code: int, line: str, expected: type[e.SMTPError]
) -> None:
    assert error_class(command, Reply.build(code, line)) is expected


@pytest.mark.parametrize(("code", "expected"), sorted(CATALOGUE_CLASSES.items()))
def test_one_meaning_per_code(code: int, expected: type[e.SMTPError]) -> None:
    reply = Reply.build(code, "x")
    assert error_class(Command.MAIL, reply) is expected
    assert type(classify(Command.MAIL, reply)) is expected


def test_every_rule_is_pinned_above() -> None:
    pinned = set()
    for command, code, line, _ in SPECIFIC:
        status = Reply.build(code, line).enhanced
        pinned.add((command, code, status and (status.subject, status.detail)))
    for rule in RULES:
        if rule.command is None and rule.enhanced is None:
            assert rule.code in CATALOGUE_CLASSES, rule
            continue
        assert any(
            code == rule.code
            and rule.command in (None, command)
            and rule.enhanced in (None, enhanced)
            for command, code, enhanced in pinned
        ), rule


def reply_for(rule: Rule) -> Reply:
    if rule.enhanced is None:
        return Reply.build(rule.code, "x")
    subject, detail = rule.enhanced
    return Reply.build(rule.code, f"{rule.code // 100}.{subject}.{detail} x")


@pytest.mark.parametrize("index", range(len(RULES)), ids=lambda i: repr(RULES[i])[:60])
def test_no_rule_is_dead(index: int) -> None:
    # For some command, this row is the one that decides: nothing earlier shadows it and
    # its class has the severity its code has at that command.
    rule = RULES[index]
    commands = [rule.command] if rule.command is not None else list(Command)
    reply = reply_for(rule)
    assert any(error_class(command, reply) is rule.error for command in commands), rule


_CITATION = re.compile(r"command table|RFC \d{3,4}(?: §\d+(?:\.\d+)*| X\.(\d+)\.(\d+))?")


@pytest.mark.parametrize("index", range(len(RULES)), ids=lambda i: repr(RULES[i])[:60])
def test_every_rule_cites_its_source(index: int) -> None:
    rule = RULES[index]
    parts = rule.source.split(", ")
    assert rule.source and all(_CITATION.fullmatch(part) for part in parts), rule
    for part in parts:
        match = _CITATION.fullmatch(part)
        assert match is not None
        if match[1] is not None and rule.enhanced is not None:  # the code it matches
            assert rule.enhanced == (int(match[1]), int(match[2])), rule
        if part == "command table":
            assert CATALOGUE[rule.code].source == "command table", rule
    for _key, (_severity, source) in SEVERITY_OVERRIDES.items():
        assert re.match(r"RFC \d+ §[\d.]+: ", source)


def expected_transient(command: Command, code: int) -> bool:
    # 4xx is transient; 552 to RCPT too (RFC 5321 §4.5.3.1.10).
    return code < 500 or (command is Command.RCPT and code == 552)


@pytest.mark.parametrize("command", list(Command))
@pytest.mark.parametrize("code", sorted(c for c in CATALOGUE if c >= 400))
def test_severity_of_every_code_at_every_command(command: Command, code: int) -> None:
    transient = expected_transient(command, code)
    assert smtpx.severity(command, code) is (
        smtpx.Severity.TRANSIENT if transient else smtpx.Severity.PERMANENT
    )
    result = classify(command, Reply.build(code, "x"))
    assert isinstance(result, e.SMTPError)
    assert isinstance(result, e.TransientError) is transient
    assert isinstance(result, e.PermanentError) is not transient
    assert result.retryable is transient


# -- enhanced status codes (RFC 3463 §2) -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2.0.0 ok", (2, 0, 0)),
        ("4.7.1 later", (4, 7, 1)),
        ("5.1.1", (5, 1, 1)),  # the whole text
        ("5.1.1\tx", (5, 1, 1)),
        ("5.999.999 x", (5, 999, 999)),  # 1*3digit each
        ("5.100.100 x", (5, 100, 100)),
        ("5.01.1 x", (5, 1, 1)),  # a leading zero, read leniently
    ],
)
def test_enhanced_codes_read(text: str, expected: tuple[int, int, int]) -> None:
    status = EnhancedStatus.parse(text)
    assert status is not None
    assert (status.klass, status.subject, status.detail) == expected
    assert str(status) == ".".join(map(str, expected))


@pytest.mark.parametrize(
    "text",
    [
        "1.0.0 x",
        "3.0.0 x",
        "6.0.0 x",
        "0.0.0 x",
        "5.1000.0 x",
        "5.1.1000 x",
        "5.1.1x",
        "5.1.1.",
        "5.1.1-x",
        "5.1.",
        "5.1",
        "5..1 x",
        ".5.1.1 x",
        " 5.1.1 x",
        "x 5.1.1",
        "55.1.1 x",
        "5.1.1a",
        "",
    ],
)
def test_malformed_enhanced_codes_are_none(text: str) -> None:
    assert EnhancedStatus.parse(text) is None
    assert Reply.build(550, text).enhanced is None if text else True


@pytest.mark.parametrize(
    ("code", "title"),
    [
        ("5.1.1", "Bad destination mailbox address"),
        ("4.2.2", "Mailbox full"),
        ("5.9.9", "unregistered code in the unknown subject"),
        ("5.7.99", "unregistered code in the security or policy subject"),
        ("5.0.99", "unregistered code in the other or undefined subject"),
    ],
)
def test_enhanced_titles(code: str, title: str) -> None:
    status = EnhancedStatus.parse(code)
    assert status is not None and status.title == title


@pytest.mark.parametrize(
    ("cls", "reason", "expected"),
    [
        (e.MailboxNameInvalid, smtpx.Reason.USER_UNKNOWN, e.MailboxNameInvalid),  # says it
        (e.InvalidAddress, smtpx.Reason.USER_UNKNOWN, e.InvalidAddress),
        (e.MailboxUnavailable, smtpx.Reason.USER_UNKNOWN, e.NoSuchMailbox),
        (e.DomainDoesNotAcceptMail, smtpx.Reason.NOT_ACCEPTING, e.DomainDoesNotAcceptMail),
        (e.NotAcceptingMessages, smtpx.Reason.NOT_ACCEPTING, e.NotAcceptingMessages),
        (e.TransactionFailed, smtpx.Reason.NOT_ACCEPTING, e.HostDoesNotAcceptMail),
        (e.MailboxNameInvalid, smtpx.Reason.NOT_ACCEPTING, e.HostDoesNotAcceptMail),
        (e.AuthFailed, smtpx.Reason.POLICY, e.AuthFailed),  # keeps what the session needs
        (e.MailboxBusy, smtpx.Reason.USER_UNKNOWN, e.MailboxBusy),  # no 4xx class for it
        (e.MailboxBusy, smtpx.Reason.GREYLISTED, e.Greylisted),
    ],
)
def test_refined_class(
    cls: type[e.SMTPError], reason: smtpx.Reason, expected: type[e.SMTPError]
) -> None:
    from smtpx._classify import refined_class

    assert refined_class(cls, reason) is expected
