"""The flows reach the outcomes the client's end-to-end tests define, in memory.

(The loopback tests in ``test_send.py``, ``test_pipelining.py``, ``test_chunking.py``
and ``test_auth.py`` define them for the asyncio client; these cases are the same
exchanges through ``smtpx.protocol`` alone.)
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from memory_server import MemoryServer, Script
from protocol_harness import Pump, Run, Shape, envelope, run_shape

from smtpx import errors as e
from smtpx._commands import Command
from smtpx._secret import Credentials
from smtpx.protocol import (
    Action,
    AuthFlow,
    MailFlow,
    Session,
    SetupFlow,
    StartTLS,
    mail_options,
    prepare,
)
from smtpx.results import SendResult

SIX = tuple(f"user{i}@example.com" for i in range(6))
THREE = ("bob@example.com", "carol@example.com", "dave@example.com")


def send(script: Script, *recipients: str, body: bytes = b"Hello.\r\n", **shape: Any) -> Run:
    return run_shape(Shape("case", script, (envelope(recipients, body),), **shape))


def commands(run: Run) -> list[str]:
    return [sent.command for sent in run.server.sent]


def result_of(run: Run) -> SendResult:
    (outcome,) = run.outcomes
    assert isinstance(outcome, SendResult), outcome
    return outcome


def error_of(run: Run) -> e.SMTPError:
    (outcome,) = run.outcomes
    assert isinstance(outcome, e.SMTPError), outcome
    return outcome


# -- the transaction --------------------------------------------------------------------


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("chunking", [True, False])
def test_partial_refusals_stay_exact_per_recipient(pipelining: bool, chunking: bool) -> None:
    refuse = {SIX[1]: "550 5.1.1 No such user", SIX[4]: "450 4.2.1 Busy"}
    script = Script(pipelining=pipelining, chunking=chunking, refuse=refuse)
    run = send(script, *SIX)
    result = result_of(run)
    assert result.accepted == tuple(r for r in SIX if r not in refuse)
    assert type(result.rejected[SIX[1]]) is e.NoSuchMailbox
    assert type(result.rejected[SIX[4]]) is e.MailboxBusy
    assert result.rejected[SIX[4]].recipient == SIX[4]
    (delivery,) = run.store.deliveries
    assert delivery.recipients == result.accepted
    steps = run.pump.steps
    writes = [s for s in steps if s.kind == "send" and s.flow == 0]
    # pipelined: one write (BDAT) or two (DATA, then the payload after its 354);
    # lock-step: MAIL, a RCPT each, then BDAT, or DATA and the payload
    expected = {(True, True): 1, (True, False): 2, (False, True): 8, (False, False): 9}
    assert len(writes) == expected[pipelining, chunking]


def test_a_refused_sender_is_the_error_not_the_following_503s() -> None:
    run = send(Script(mail_reply="553 5.1.8 Sender rejected"), *SIX)
    error = error_of(run)
    assert type(error) is e.MailboxNameInvalid and error.command is Command.MAIL
    assert error.undelivered == SIX and error.rejected == {}
    assert run.store.deliveries == [] and commands(run)[-2:] == ["RSET", "QUIT"]


def test_all_refused_but_data_accepted_ends_data_empty_and_needs_no_reset() -> None:
    refuse = {r: "550 5.1.1 No such user" for r in THREE[:2]}
    run = send(Script(refuse=refuse, careless_data=True), *THREE[:2])
    error = error_of(run)
    assert type(error) is e.AllRecipientsRejected and set(error.rejected) == set(THREE[:2])
    assert error.undelivered == ()
    # "." alone, in step; its reply ends the transaction (RFC 5321 §4.1.1.4): no RSET
    assert commands(run)[-3:] == ["DATA", "DATA_END", "QUIT"]
    assert run.server.ends and run.store.deliveries == []


def test_a_421_in_the_middle_raises_service_unavailable_and_closes() -> None:
    run = send(Script(refuse={SIX[2]: "421 4.3.2 Closing"}), *SIX)
    error = error_of(run)
    assert type(error) is e.ServiceUnavailable and error.recipient == SIX[2]
    assert set(error.undelivered) | set(error.rejected) == set(SIX)
    assert run.session.closed and run.store.deliveries == []


@pytest.mark.parametrize(
    ("replies", "expected"),
    [
        (
            ["450 4.2.1 Busy", "451 4.3.0 Local error", "452 4.5.3 Too many"],
            e.AllRecipientsDeferred,
        ),
        (["450 4.2.1 Busy", "550 5.1.1 No such user", "452 4.2.2 Full"], e.AllRecipientsRejected),
    ],
)
@pytest.mark.parametrize("pipelining", [True, False])
def test_every_recipient_refused(
    replies: list[str], expected: type[e.SMTPError], pipelining: bool
) -> None:
    script = Script(pipelining=pipelining, refuse=dict(zip(THREE, replies, strict=True)))
    run = run_shape(Shape("case", script, (envelope(THREE), envelope(THREE[:1]))))
    first, second = run.outcomes
    assert type(first) is expected and first.command is Command.RCPT
    assert list(first.rejected) == list(THREE) and first.undelivered == ()
    assert isinstance(second, e.AllRecipientsDeferred | e.AllRecipientsRejected)  # reset, in step
    assert "RSET" in commands(run)


@pytest.mark.parametrize("stage", ["DATA", "DATA_END"])
def test_a_refusal_of_the_message_keeps_earlier_refusals(stage: str) -> None:
    refusal = "554 5.6.0 Message rejected"
    script = Script(pipelining=False, refuse={THREE[1]: "550 5.1.1 No such user"})
    if stage == "DATA":
        script = attrs.evolve(script, data_reply=refusal)
    else:
        script = attrs.evolve(script, end_reply=refusal)
    error = error_of(send(script, *THREE))
    assert type(error) is e.TransactionFailed and error.command is Command[stage]
    assert set(error.rejected) == {THREE[1]} and type(error.rejected[THREE[1]]) is e.NoSuchMailbox
    assert error.undelivered == (THREE[0], THREE[2])


def test_a_bdat_refusal_is_typed_and_names_bdat() -> None:
    script = Script(chunking=True, end_reply="452 4.3.1 Insufficient system storage")
    error = error_of(send(script, *THREE))
    assert type(error) is e.InsufficientStorage and error.command is Command.BDAT
    assert error.retryable and error.undelivered == THREE


LARGE = b"0123456789abcdef\r\n" * 16_000  # over CHUNK_IN_PIPELINE


def test_a_large_message_waits_for_a_recipient_before_its_chunk() -> None:
    refusing = send(Script(chunking=True, refuse={THREE[0]: "550 5.1.1 no"}), THREE[0], body=LARGE)
    assert isinstance(error_of(refusing), e.AllRecipientsRejected)
    assert "BDAT" not in commands(refusing) and not refusing.server.ends  # nothing sent
    accepting = send(Script(chunking=True), THREE[0], body=LARGE)
    assert result_of(accepting).accepted == (THREE[0],)
    (delivery,) = accepting.store.deliveries
    assert delivery.data.endswith(LARGE)


def test_the_size_limit_is_checked_before_mail() -> None:
    session = Session("client.test")
    pump = Pump(session, MemoryServer(Script(size=200)), None)
    pump.run(SetupFlow(session, starttls=StartTLS.NEVER))
    big = MailFlow(session, envelope(THREE[:1], b"x" * 300 + b"\r\n"))
    assert pump.run(big) is Action.FAILED
    assert type(big.error) is e.MessageTooLarge and big.error.undelivered == THREE[:1]
    small = MailFlow(session, envelope(THREE[:1]))
    assert pump.run(small) is Action.DONE
    assert [sent.command for sent in pump.server.sent].count("MAIL") == 1  # not for the big one
    assert mail_options(session.extensions, small.envelope)[0].startswith("SIZE=")


def test_non_ascii_needs_smtputf8() -> None:
    envelope_utf8 = prepare(
        b"Subject: x\r\n\r\nx\r\n", sender="a@example.com", recipients=["zo\u00eb@example.com"]
    )
    with pytest.raises(e.ExtensionRequired, match="SMTPUTF8"):
        mail_options({}, envelope_utf8)


def test_dot_lines_arrive_intact_with_data() -> None:
    body = b"\r\n.\r\n..two\r\n.leading\r\n...\r\nend\r\n"
    run = send(Script(), THREE[0], body=body)
    (delivery,) = run.store.deliveries
    assert delivery.data.endswith(body)


# -- setting up ---------------------------------------------------------------------------


def setup(script: Script, **options: Any) -> tuple[SetupFlow, Pump]:
    session = Session("client.test")
    pump = Pump(session, MemoryServer(script), None)
    flow = SetupFlow(session, **{"starttls": StartTLS.NEVER, **options})
    pump.run(flow)
    return flow, pump


def test_ehlo_refused_falls_back_to_helo() -> None:
    flow, pump = setup(Script(ehlo_reply="502 5.5.2 Command not implemented"))
    assert flow.error is None and pump.session.extensions == {}
    assert [s.command for s in pump.server.sent] == ["CONNECT", "EHLO", "HELO"]


def test_a_greeting_that_refuses_service() -> None:
    flow, pump = setup(Script(greeting="554 5.3.2 No SMTP service here"))
    assert type(flow.error) is e.NoSMTPService and pump.session.closed


def test_starttls_required_but_not_offered() -> None:
    flow, pump = setup(Script(), starttls=StartTLS.REQUIRE)
    assert type(flow.error) is e.TLSNotOffered and pump.session.closed


def test_starttls_if_offered_goes_on_in_plaintext() -> None:
    flow, pump = setup(Script(), starttls=StartTLS.IF_OFFERED)
    assert flow.error is None and not pump.session.encrypted


TLS_AUTH = Script(starttls=True, auth=("PLAIN", "LOGIN", "CRAM-MD5"), credentials={"u": "pw"})


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_each_mechanism_authenticates(mechanism: str) -> None:
    script = attrs.evolve(TLS_AUTH, auth=(mechanism,))
    flow, pump = setup(script, starttls=StartTLS.REQUIRE, secret=Credentials("u", "pw"))
    assert flow.error is None, flow.error
    assert pump.session.encrypted and pump.session.authenticated


def test_a_wrong_password_is_auth_failed_and_closes() -> None:
    flow, pump = setup(TLS_AUTH, starttls=StartTLS.REQUIRE, secret=Credentials("u", "nope"))
    assert type(flow.error) is e.AuthFailed and pump.session.closed


def test_credentials_never_go_over_plaintext_without_opt_in() -> None:
    script = Script(auth=("PLAIN",), credentials={"u": "pw"})
    flow, pump = setup(script, secret=Credentials("u", "pw"))
    assert type(flow.error) is e.PlaintextAuthRefused
    assert "AUTH" not in [s.command for s in pump.server.sent]
    flow, pump = setup(script, secret=Credentials("u", "pw"), allow_plaintext_auth=True)
    assert flow.error is None and pump.session.authenticated


def test_mechanism_choice_failures() -> None:
    no_auth, _ = setup(Script(), secret=Credentials("u", "pw"), allow_plaintext_auth=True)
    assert type(no_auth.error) is e.AuthNotOffered
    weak, _ = setup(
        Script(auth=("XOAUTH2",)), secret=Credentials("u", "pw"), allow_plaintext_auth=True
    )
    assert type(weak.error) is e.AuthMechanismTooWeak


def test_a_cram_md5_challenge_that_is_not_base64() -> None:
    script = Script(auth=("CRAM-MD5",), credentials={"u": "pw"}, cram_challenge="not base64!")
    flow, pump = setup(script, secret=Credentials("u", "pw"), allow_plaintext_auth=True)
    assert type(flow.error) is e.ProtocolError and pump.session.closed


def test_auth_alone_on_a_ready_session() -> None:
    session = Session("client.test")
    pump = Pump(session, MemoryServer(Script(auth=("LOGIN",), credentials={"u": "pw"})), None)
    pump.run(SetupFlow(session, starttls=StartTLS.NEVER))
    flow = AuthFlow(session, Credentials("u", "pw"), allow_plaintext=True)
    assert pump.run(flow) is Action.DONE and session.authenticated
    missing = AuthFlow(session, None, allow_plaintext=True)
    assert pump.run(missing) is Action.FAILED and type(missing.error) is e.UsageError
