"""``smtpx.Reason`` and ``explain``: the vocabulary, providers' documented replies, the
class a reason refines to (never its severity), and errors that came from no reply."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

import smtpx
from smtpx import Command, Reason, Reply, classify, explain
from smtpx._classify import KEEPS_CLASS, REASON_CLASSES, error_class
from smtpx._reason_rules import RULES
from smtpx._reasons import ABOUT

R = Reason

VOCABULARY = [
    "user_unknown",
    "mailbox_full",
    "mailbox_disabled",
    "has_moved",
    "message_too_large",
    "too_many_recipients",
    "spam_content",
    "virus",
    "blocklisted",
    "bad_reputation",
    "rate_limited",
    "greylisted",
    "auth_required",
    "auth_failed",
    "relay_denied",
    "sender_rejected",
    "sender_auth_failed",
    "reverse_dns",
    "policy",
    "not_rfc_compliant",
    "tls_required",
    "host_unknown",
    "not_accepting",
    "server_busy",
    "system_error",
    "syntax_error",
    "other",
]


def test_the_vocabulary_is_exactly_the_documented_one() -> None:
    assert [reason.value for reason in Reason] == VOCABULARY
    assert all(isinstance(reason, str) for reason in Reason)
    assert set(ABOUT) == set(Reason)


def test_every_rule_names_its_source_and_every_reason_has_a_rule() -> None:
    for rule in RULES:
        assert len(rule.source) > 10, rule
    assert {rule.reason for rule in RULES} == set(Reason) - {R.OTHER}


# Replies as providers and servers document them (not the scored corpus): one per line.
DOCUMENTED = [
    # Gmail (support.google.com/a/answer/3726730)
    (
        Command.RCPT,
        "550-5.1.1 The email account that you tried to reach does not exist.\n"
        "550 5.1.1 Please try double-checking the recipient's email address",
        R.USER_UNKNOWN,
    ),
    (
        Command.RCPT,
        "452-4.2.2 The email account that you tried to reach is over quota.",
        R.MAILBOX_FULL,
    ),
    (
        Command.RCPT,
        "450-4.2.1 The user you are trying to contact is receiving mail too "
        "quickly. Please resend your message at a later time.",
        R.RATE_LIMITED,
    ),
    (
        Command.DATA_END,
        "550-5.7.26 This mail has been blocked because the sender is\n"
        "550 5.7.26 unauthenticated. Gmail requires all senders to authenticate",
        R.SENDER_AUTH_FAILED,
    ),
    (
        Command.DATA_END,
        "550-5.7.25 The IP address sending this message does not have a\n"
        "550 5.7.25 PTR record setup",
        R.REVERSE_DNS,
    ),
    (
        Command.DATA_END,
        "421-4.7.28 Gmail has detected an unusual rate of unsolicited mail\n"
        "421 4.7.28 from your IP. It has been temporarily rate limited.",
        R.RATE_LIMITED,
    ),
    (
        Command.DATA_END,
        "552-5.2.3 Your message exceeded Google's message size limits.",
        R.MESSAGE_TOO_LARGE,
    ),
    (Command.RCPT, "421-4.7.0 TLS required for RCPT domain, closing connection.", R.TLS_REQUIRED),
    (Command.MAIL, "530 5.7.0 Must issue a STARTTLS command first.", R.TLS_REQUIRED),
    (Command.AUTH, "535-5.7.8 Username and Password not accepted.", R.AUTH_FAILED),
    (Command.RCPT, "550 5.7.0 Mail relay denied", R.RELAY_DENIED),
    (
        Command.DATA_END,
        "550-5.7.1 Our system has detected that this message is likely unsolicited mail.",
        R.SPAM_CONTENT,
    ),
    (
        Command.RCPT,
        "550-5.2.1 The email account that you tried to reach is disabled.",
        R.MAILBOX_DISABLED,
    ),
    # Outlook / Exchange Online
    (
        Command.RCPT,
        "550 5.7.606 Access denied, banned sending IP [192.0.2.9]. To request "
        "removal from this list please visit https://sender.office.com/",
        R.BLOCKLISTED,
    ),
    (
        Command.RCPT,
        "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)",
        R.USER_UNKNOWN,
    ),
    (
        Command.DATA_END,
        "550 5.7.509 Access denied, sending domain EXAMPLE.COM does not pass "
        "DMARC verification and has a DMARC policy of reject.",
        R.SENDER_AUTH_FAILED,
    ),
    (
        Command.MAIL,
        "451 4.7.650 The mail server [192.0.2.9] has been temporarily rate limited "
        "due to IP reputation.",
        R.BAD_REPUTATION,
    ),
    (
        Command.MAIL,
        "530 5.7.57 Client was not authenticated to send anonymous mail during MAIL FROM",
        R.AUTH_REQUIRED,
    ),
    (
        Command.RCPT,
        "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
        R.USER_UNKNOWN,
    ),
    (
        Command.MAIL,
        "550 SC-001 (BAY004-MC1F1) Unfortunately, messages from 192.0.2.9 weren't "
        "sent. Please contact your Internet service provider",
        R.BLOCKLISTED,
    ),
    # Yahoo / AOL
    (
        Command.MAIL,
        "421 4.7.0 [TSS04] Messages from 192.0.2.9 temporarily deferred due to "
        "unexpected volume or user complaints - 4.16.55.1",
        R.BAD_REPUTATION,
    ),
    (
        Command.CONNECT,
        "553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.9, "
        "because the ip is in Spamhaus's list",
        R.BLOCKLISTED,
    ),
    (Command.DATA_END, "554 5.7.9 Message not accepted for policy reasons.", R.POLICY),
    (
        Command.RCPT,
        "554 delivery error: dd This user doesn't have a yahoo.com account",
        R.USER_UNKNOWN,
    ),
    (
        Command.RCPT,
        "554 delivery error: dd Sorry your message to x@yahoo.com cannot be "
        "delivered. This account has been disabled or discontinued",
        R.MAILBOX_DISABLED,
    ),
    # Apple iCloud
    (Command.RCPT, "552 5.2.2 <x@icloud.com>: user is over quota", R.MAILBOX_FULL),
    (
        Command.DATA_END,
        "554 5.7.1 Your message was rejected due to example.com's DMARC policy",
        R.SENDER_AUTH_FAILED,
    ),
    (
        Command.RCPT,
        "421 4.7.1 Messages to x@icloud.com deferred due to excessive volume.",
        R.RATE_LIMITED,
    ),
    # Proofpoint, Mimecast, Barracuda, Cisco, Spamhaus and other DNSBLs
    (
        Command.CONNECT,
        "554 Blocked - see https://ipcheck.proofpoint.com/?ip=192.0.2.9",
        R.BLOCKLISTED,
    ),
    (
        Command.RCPT,
        "451 Internal resource temporarily unavailable - https://community."
        "mimecast.com/docs/DOC-1369#451",
        R.GREYLISTED,
    ),
    (Command.RCPT, "550 Rejected by header based Anti-Spoofing policy", R.SENDER_AUTH_FAILED),
    (
        Command.RCPT,
        "554 Service unavailable; Client host [192.0.2.9] blocked using Barracuda "
        "Reputation; http://www.barracudanetworks.com/reputation/?ip=192.0.2.9",
        R.BLOCKLISTED,
    ),
    (
        Command.RCPT,
        "550 5.7.1 Mail from 192.0.2.9 refused, listed at bl.spamcop.net",
        R.BLOCKLISTED,
    ),
    (Command.RCPT, "550 #5.1.0 Address rejected x@example.com", R.USER_UNKNOWN),
    # Postfix
    (
        Command.RCPT,
        "550 5.1.1 <x@example.com>: Recipient address rejected: User unknown in "
        "virtual mailbox table",
        R.USER_UNKNOWN,
    ),
    (Command.RCPT, "554 5.7.1 <x@example.org>: Relay access denied", R.RELAY_DENIED),
    (
        Command.RCPT,
        "450 4.7.1 Client host rejected: cannot find your hostname, [192.0.2.9]",
        R.REVERSE_DNS,
    ),
    (
        Command.RCPT,
        "450 4.2.0 <x@example.com>: Recipient address rejected: Greylisted, see "
        "http://postgrey.schweikert.ch/help/example.com.html",
        R.GREYLISTED,
    ),
    (
        Command.MAIL,
        "553 5.1.8 <x@nowhere.invalid>: Sender address rejected: Domain not found",
        R.SENDER_REJECTED,
    ),
    (
        Command.RCPT,
        "450 4.1.2 <x@nowhere.invalid>: Recipient address rejected: Domain not found",
        R.HOST_UNKNOWN,
    ),
    (Command.MAIL, "552 5.3.4 Message size exceeds fixed limit", R.MESSAGE_TOO_LARGE),
    (Command.RCPT, "452 4.5.3 Error: too many recipients", R.TOO_MANY_RECIPIENTS),
    (
        Command.CONNECT,
        "421 4.7.0 mx.example.com Error: too many connections from 192.0.2.9",
        R.RATE_LIMITED,
    ),
    (Command.DATA_END, "451 4.3.0 Error: queue file write error", R.SYSTEM_ERROR),
    # Exim
    (Command.RCPT, "550 Unrouteable address", R.USER_UNKNOWN),
    (Command.RCPT, "550 relay not permitted", R.RELAY_DENIED),
    (
        Command.MAIL,
        "550-Verification failed for <x@example.com>\n550 Sender verify failed",
        R.SENDER_REJECTED,
    ),
    (Command.RCPT, "451 Temporary local problem - please try later", R.SYSTEM_ERROR),
    # Dovecot / LMTP quotas
    (
        Command.RCPT,
        "552 5.2.2 <x@example.com> Quota exceeded (mailbox for user is full)",
        R.MAILBOX_FULL,
    ),
    # Amazon SES, SendGrid
    (Command.DATA_END, "554 Message rejected: Email address is not verified.", R.RELAY_DENIED),
    (Command.MAIL, "454 Throttling failure: Maximum sending rate exceeded.", R.RATE_LIMITED),
    (Command.MAIL, "550 Unauthenticated senders not allowed", R.AUTH_REQUIRED),
    # content
    (Command.DATA_END, "550 5.7.1 Message content rejected, UBE, id=00000-00-000", R.SPAM_CONTENT),
    (Command.DATA_END, "554 5.7.0 Virus found: Eicar-Test-Signature", R.VIRUS),
    (
        Command.DATA_END,
        "550 5.7.1 This message is not RFC 5322 compliant. There are multiple Subject headers.",
        R.NOT_RFC_COMPLIANT,
    ),
    # the code alone
    (Command.RCPT, "503 5.5.1 Error: need MAIL command", R.SYNTAX_ERROR),
    (Command.CONNECT, "421 Too busy, try later", R.SERVER_BUSY),
    (Command.RCPT, "556 5.1.10 Recipient address has null MX", R.NOT_ACCEPTING),
]


@pytest.mark.parametrize(("command", "raw", "reason"), DOCUMENTED)
def test_documented_replies_get_their_reason(command: Command, raw: str, reason: Reason) -> None:
    reply = Reply.parse("\r\n".join(_lines(raw)) + "\r\n")
    error = classify(command, reply)
    assert isinstance(error, smtpx.SMTPError)
    assert error.reason is reason, (error.reason, raw)
    assert explain(command, reply) is reason


def _lines(raw: str) -> list[str]:
    # the documented texts give every line its own "NNN-" prefix; the last one "NNN "
    lines = raw.split("\n")
    code = raw[:3]
    body = [line[4:] if line[:3] == code else line for line in lines]
    return [f"{code}-{text}" for text in body[:-1]] + [f"{code} {body[-1]}"]


def test_a_reason_refines_the_class_without_an_enhanced_code() -> None:
    with pytest.raises(smtpx.NoSuchMailbox):
        raise classify(Command.RCPT, Reply.parse(b"550 User unknown\r\n"))  # type: ignore[misc]
    blocked = classify(
        Command.RCPT, Reply.build(554, "Client host blocked using zen.spamhaus.org")
    )
    assert isinstance(blocked, smtpx.Blocklisted) and isinstance(blocked, smtpx.PermanentError)
    deferred = classify(Command.RCPT, Reply.build(450, "4.7.1 Client blocked using zen.spamhaus"))
    assert isinstance(deferred, smtpx.Blocklisted) and deferred.retryable


def test_a_421_stays_service_unavailable_whatever_it_says() -> None:
    error = classify(Command.MAIL, Reply.build(421, "4.7.0 [TSS04] user complaints"))
    assert type(error) is smtpx.ServiceUnavailable
    assert error.reason is R.BAD_REPUTATION


def test_a_guess_from_the_command_sets_the_reason_but_not_the_class() -> None:
    error = classify(Command.MAIL, Reply.build(550, "nope"))
    assert type(error) is smtpx.MailboxUnavailable and error.reason is R.SENDER_REJECTED
    helo = classify(Command.EHLO, Reply.build(550, "go away"))
    assert type(helo) is smtpx.MailboxUnavailable and helo.reason is R.BLOCKLISTED


PHRASES = [text for _, text, _ in DOCUMENTED] + ["", "scripted", "5.7.1", "try again in 5"]


@given(
    st.sampled_from(list(Command)),
    st.integers(min_value=400, max_value=599),
    st.sampled_from(PHRASES),
)
def test_the_reason_never_changes_severity(command: Command, code: int, text: str) -> None:
    reply = Reply.build(code, text.split(" ", 1)[-1] if text[:3].isdigit() else text)
    error = classify(command, reply)
    assert isinstance(error, smtpx.SMTPError)
    code_class = error_class(command, reply)
    assert error.retryable is code_class.retryable  # severity from the code, overrides kept
    assert isinstance(error.reason, Reason)
    if code_class in KEEPS_CLASS:
        assert type(error) is code_class


@given(st.integers(min_value=400, max_value=599), st.text(max_size=120))
def test_every_refusal_has_a_reason(code: int, text: str) -> None:
    for command in (Command.RCPT, Command.DATA_END, Command.MAIL):
        error = classify(command, Reply.build(code, text))
        assert isinstance(error, smtpx.SMTPError) and isinstance(error.reason, Reason)


def test_every_refined_class_keeps_one_severity() -> None:
    for reason, (transient, permanent) in REASON_CLASSES.items():
        assert transient is None or issubclass(transient, smtpx.TransientError), reason
        assert permanent is None or issubclass(permanent, smtpx.PermanentError), reason


def test_errors_not_from_a_reply_have_a_sensible_reason() -> None:
    assert smtpx.MessageTooLarge("SIZE says no").reason is R.MESSAGE_TOO_LARGE
    assert smtpx.TLSNotOffered().reason is R.TLS_REQUIRED
    assert smtpx.ConnectError("refused").reason is R.OTHER
    assert smtpx.DeliveryUnknown().reason is R.OTHER
    assert smtpx.MailboxFullPermanent().reason is R.MAILBOX_FULL


def test_a_reason_survives_pickling() -> None:
    error = classify(Command.RCPT, Reply.build(550, "5.7.1 blocked using zen.spamhaus.org"))
    assert isinstance(error, smtpx.SMTPError)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and copy.reason is R.BLOCKLISTED


def test_enhanced_codes_on_continuation_lines_and_in_the_text_are_read() -> None:
    # the phrase spans two lines, each carrying the enhanced code
    reply = Reply.parse(b"550-5.7.1 Messages with multiple\r\n550 5.7.1 addresses in From\r\n")
    assert explain(Command.DATA_END, reply) is R.NOT_RFC_COMPLIANT
    # no enhanced code at the start, one inside the text
    assert explain(Command.RCPT, Reply.build(550, "sorry (#5.1.1 - chkusr)")) is R.USER_UNKNOWN
    # a dotted number is not an enhanced code
    assert explain(Command.RCPT, Reply.build(550, "from 5.1.1.9 go")) is R.OTHER


def test_the_reasons_page_covers_every_reason_and_is_in_the_site() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    page = (root / "docs" / "reasons.md").read_text("utf-8")
    for reason in Reason:
        assert f"| `{reason.value}` |" in page, reason
    assert "reasons.md" in (root / "mkdocs.yml").read_text("utf-8")
    assert "docs/reasons.md" in (root / "README.md").read_text("utf-8")
