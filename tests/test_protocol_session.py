"""``Session``: the state table enumerated, pairing, the ledger, the checks on what goes out."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpx import errors as e
from smtpx._commands import Command
from smtpx.protocol import (
    Entry,
    Intent,
    Interruption,
    Session,
    SessionStateError,
    State,
    WriteState,
    command_line,
)
from smtpx.protocol import session as session_module
from smtpx.protocol.limits import WRITE_SLICE
from smtpx.protocol.states import ISSUE, SessionClosed
from smtpx.results import Ok

EHLO = b"250-mx.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n"


def flush(session: Session) -> bytes:
    out = b""
    while data := session.data_to_send():
        out += bytes(data)
        session.wrote(len(data))
    return out


def answer(session: Session, *replies: bytes) -> None:
    flush(session)
    session.receive_data(b"".join(replies))


def ready(ehlo: bytes = EHLO) -> Session:
    session = Session("client.test")
    session.receive_data(b"220 mx.test\r\n")
    session.ehlo()
    answer(session, ehlo)
    assert session.state is State.READY
    return session


def in_transaction() -> Session:
    session = ready()
    session.mail("a@example.com")
    session.rcpt("b@example.com")
    return session


REACH: dict[State, Callable[[], Session]] = {
    State.CONNECTING: lambda: Session("client.test"),
    State.GREETED: lambda: _after(Session("client.test"), None, b"220 mx.test\r\n"),
    State.HELLO_SENT: lambda: _after(_reach(State.GREETED), Session.ehlo),
    State.READY: ready,
    State.STARTTLS_SENT: lambda: _after(ready(), Session.starttls),
    State.TLS_HANDSHAKE: lambda: _after(ready(), Session.starttls, b"220 go ahead\r\n"),
    State.AUTH_SENT: lambda: _after(ready(), lambda s: s.auth("LOGIN")),
    State.AUTH_CHALLENGED: lambda: _after(ready(), lambda s: s.auth("LOGIN"), b"334 VXNlcg==\r\n"),
    State.MAIL_SENT: lambda: _after(ready(), lambda s: s.mail("a@example.com")),
    State.RCPT_SENT: in_transaction,
    State.DATA_SENT: lambda: _after(in_transaction(), Session.data),
    State.DATA_OPEN: lambda: _after(
        in_transaction(), Session.data, b"250 ok\r\n250 ok\r\n354 go\r\n"
    ),
    State.BDAT_OPEN: lambda: _after(in_transaction(), lambda s: s.bdat(b"x\r\n", last=False)),
    State.END_SENT: lambda: _after(_reach(State.DATA_OPEN), lambda s: s.data_payload(b"x\r\n")),
    State.QUIT_SENT: lambda: _after(ready(), Session.quit),
    State.CLOSED: lambda: _after(ready(), Session.close),
}


def _reach(state: State) -> Session:
    return REACH[state]()


def _after(
    session: Session, intent: Callable[[Session], object] | None, reply: bytes = b""
) -> Session:
    if intent is not None:
        intent(session)
    if reply:
        answer(session, reply)
    return session


INTENTS: dict[Intent, Callable[[Session], Entry]] = {
    Intent.EHLO: Session.ehlo,
    Intent.HELO: Session.helo,
    Intent.STARTTLS: Session.starttls,
    Intent.AUTH: lambda s: s.auth("PLAIN", b"\0u\0p"),
    Intent.AUTH_RESPONSE: lambda s: s.auth_response(b"user"),
    Intent.MAIL: lambda s: s.mail("a@example.com"),
    Intent.RCPT: lambda s: s.rcpt("c@example.com"),
    Intent.DATA: Session.data,
    Intent.DATA_PAYLOAD: lambda s: s.data_payload(b"Subject: x\r\n\r\nbody\r\n"),
    Intent.BDAT: lambda s: s.bdat(b"chunk\r\n", last=False),
    Intent.BDAT_LAST: lambda s: s.bdat(b"chunk\r\n"),
    Intent.RSET: Session.rset,
    Intent.NOOP: Session.noop,
    Intent.VRFY: lambda s: s.vrfy("b@example.com"),
    Intent.EXPN: lambda s: s.expn("staff"),
    Intent.HELP: lambda s: s.help(),
    Intent.QUIT: Session.quit,
}


def test_every_state_is_reachable() -> None:
    for state, reach in REACH.items():
        assert reach().state is state


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.name)
@pytest.mark.parametrize("intent", list(Intent), ids=lambda i: i.name)
def test_every_intent_in_every_state(state: State, intent: Intent) -> None:
    session = REACH[state]()
    queued = session.ledger.queued
    moves = ISSUE.get(state, {})
    if intent in moves:
        entry = INTENTS[intent](session)
        assert entry.write_state is WriteState.NOT_WRITTEN and session.has_output
        following = moves[intent]
        assert session.state is (following if following is not None else state)
    else:
        expected = SessionClosed if state is State.CLOSED else SessionStateError
        with pytest.raises(expected) as caught:
            INTENTS[intent](session)
        assert isinstance(caught.value, e.UsageError)
        assert session.state is state and session.ledger.queued == queued  # nothing queued


def test_without_pipelining_each_command_waits_for_the_last_reply() -> None:
    session = ready(b"250-mx.test\r\n250 SIZE 100\r\n")
    session.mail("a@example.com")
    with pytest.raises(SessionStateError, match="PIPELINING"):
        session.rcpt("b@example.com")
    answer(session, b"250 ok\r\n")
    session.rcpt("b@example.com")


def test_with_pipelining_nothing_follows_a_barrier() -> None:
    session = ready()
    session.noop()
    with pytest.raises(SessionStateError, match="wait for the reply to NOOP"):
        session.mail("a@example.com")


def test_replies_pair_with_commands_in_order() -> None:
    session = ready()
    entries = [
        session.mail("a@example.com"),
        session.rcpt("b@example.com"),
        session.rcpt("c@example.com"),
        session.data(),
    ]
    answer(session, b"250 ok\r\n550 5.1.1 no\r\n250 ok\r\n354 go\r\n")
    assert [type(entry.result).__name__ for entry in entries] == [
        "Ok",
        "NoSuchMailbox",
        "Ok",
        "StartData",
    ]
    assert entries[1].refused and entries[1].result.recipient == "b@example.com"  # type: ignore[union-attr]
    assert session.state is State.DATA_OPEN


def test_a_reply_nobody_waits_for_closes_the_session() -> None:
    session = ready()
    session.receive_data(b"250 extra\r\n")
    assert session.closed and isinstance(session.error, e.ProtocolError)
    assert "no command was waiting" in str(session.error)
    with pytest.raises(SessionClosed):
        session.mail("a@example.com")


def test_a_reply_before_its_command_was_handed_out_answers_nothing() -> None:
    session = ready()
    session.mail("a@example.com")  # queued, not yet given to the edge
    session.receive_data(b"250 ok\r\n")
    assert session.closed and isinstance(session.error, e.ProtocolError)


def test_a_garbled_reply_answers_the_oldest_command_and_closes() -> None:
    session = ready()
    mail = session.mail("a@example.com")
    answer(session, b"25x what\r\n")
    assert isinstance(mail.result, e.ProtocolError) and mail.result.command is Command.MAIL
    assert session.closed


def test_a_421_closes_the_session() -> None:
    session = ready()
    mail, rcpt = session.mail("a@example.com"), session.rcpt("b@example.com")
    answer(session, b"421 4.3.2 closing\r\n250 too late\r\n")
    assert isinstance(mail.result, e.ServiceUnavailable) and rcpt.result is None
    assert session.closed


def test_an_acceptance_before_the_end_of_the_message_was_sent_is_out_of_step() -> None:
    session = REACH[State.DATA_OPEN]()
    end = session.data_payload(b"x\r\n" * (WRITE_SLICE // 3 + 1))  # over one slice
    session.wrote(len(session.data_to_send()))  # the first slice only
    assert session.has_output
    session.receive_data(b"250 2.0.0 queued\r\n")
    assert isinstance(end.result, e.UnexpectedReply) and session.closed


def test_a_refusal_before_the_end_of_the_message_was_sent_stands() -> None:
    session = REACH[State.DATA_OPEN]()
    end = session.data_payload(b"x\r\n" * (WRITE_SLICE // 3 + 1))
    session.wrote(len(session.data_to_send()))
    assert session.has_output
    session.receive_data(b"552 5.3.4 Message too big\r\n")
    assert type(end.result) is e.MessageTooLarge and not session.closed


def test_replies_after_the_starttls_220_are_discarded() -> None:
    session = ready()
    session.starttls()
    answer(session, b"220 go ahead\r\n250 injected\r\n")
    session.receive_data(b"250 more injected\r\n")
    assert session.state is State.TLS_HANDSHAKE and session.error is None
    session.tls_established()
    entry = session.ehlo()
    session.wrote(len(session.data_to_send()))
    session.receive_data(b"250 mx.test\r\n")
    assert entry.reply is not None and entry.reply.text == "mx.test"


def test_after_tls_the_extensions_are_forgotten_until_ehlo() -> None:
    session = REACH[State.TLS_HANDSHAKE]()
    session.tls_established()
    assert session.encrypted and session.state is State.GREETED and session.extensions == {}
    with pytest.raises(SessionStateError):
        session.tls_established()


def test_extensions_and_auth_mechanisms() -> None:
    session = ready(
        b"250-mx.test\r\n250-SIZE 1000\r\n250-AUTH=LOGIN plain\r\n250 AUTH CRAM-MD5\r\n"
    )
    assert session.extensions["size"] == "1000"
    assert session.auth_mechanisms == ("LOGIN", "PLAIN", "CRAM-MD5")
    assert not session.pipelining and not session.chunking
    session.helo()
    answer(session, b"250 mx.test\r\n")
    assert not session.extensions and not session.auth_mechanisms


@pytest.mark.parametrize("control", [chr(c) for c in [*range(32), 127]], ids=repr)
def test_no_command_line_carries_a_control_character(control: str) -> None:
    with pytest.raises(e.InvalidEnvelope):
        command_line([b"VRFY", f"a{control}b".encode()])
    session = ready()
    intents: list[Callable[[], Entry]] = [
        lambda: session.mail(f"a{control}@example.com"),
        lambda: session.vrfy(f"a{control}b"),
        lambda: session.help(f"a{control}b"),
    ]
    for intent in intents:
        with pytest.raises(e.InvalidEnvelope):
            intent()
    assert not session.has_output


@pytest.mark.parametrize("control", [chr(c) for c in [*range(32), 127]], ids=repr)
@pytest.mark.parametrize("address_checked", [True, False], ids=["checked", "unchecked"])
def test_no_rcpt_line_carries_a_control_character(
    control: str, address_checked: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The RCPT line is built from fixed parts and checked on its own: even with the
    # address check out of the way, no control character reaches the wire.
    if not address_checked:
        monkeypatch.setattr(session_module, "check_address", lambda address, **_: address)
    session = REACH[State.MAIL_SENT]()
    before = flush(session)
    for address in (f"a{control}@example.com", f"a@example.com{control}", control):
        with pytest.raises(e.InvalidEnvelope):
            session.rcpt(address)
    assert not session.has_output and before.startswith(b"MAIL FROM:")
    session.rcpt("b@example.com")
    assert flush(session) == b"RCPT TO:<b@example.com>\r\n"


def test_a_payload_that_would_end_data_early_is_refused() -> None:
    session = REACH[State.DATA_OPEN]()
    for payload in (b"a\r\n.\r\nMAIL FROM:<x@y>\r\n", b".\r\n", b"no final CRLF"):
        with pytest.raises(e.InvalidMessage):
            session.data_payload(payload, encoded=True)
    entry = session.data_payload(b"a\n.\nb\n")  # normalised and dot-stuffed here
    assert flush(session) == b"a\r\n..\r\nb\r\n.\r\n" and entry.size == 13


@given(st.lists(st.sampled_from([b"\r\n", b"\n", b"\r", b".", b"a"]), max_size=12))
def test_a_normalized_payload_is_dot_stuffed_and_never_ends_data_early(
    pieces: list[bytes],
) -> None:
    # normalized=True skips the CRLF check: whatever the line endings really are,
    # dot-stuffing alone keeps every end-of-data sequence out of the payload
    data = b"".join(pieces)
    session = REACH[State.DATA_OPEN]()
    if data[-2:] not in (b"\r\n", b""):
        with pytest.raises(e.InvalidMessage):
            session.data_payload(data, normalized=True)
        assert not session.has_output
        return
    session.data_payload(data, normalized=True)
    wire = flush(session)
    assert wire.endswith(b".\r\n")
    body = wire[: -len(b".\r\n")]
    assert body == (b"." + data if data.startswith(b".") else data).replace(b"\n.", b"\n..")
    for end in (b"\r\n.\r\n", b"\n.\n", b"\n.\r\n", b"\r\n.\n"):
        assert end not in body
    assert not body.startswith((b".\r\n", b".\n"))


def test_a_large_payload_goes_out_in_views_of_the_callers_buffer() -> None:
    payload = b"0123456789abcde\r\n" * 100_000
    session = REACH[State.DATA_OPEN]()
    entry = session.data_payload(payload, encoded=True)
    first = session.data_to_send()
    assert isinstance(first, memoryview) and first.obj is payload  # no copy
    session.wrote(len(first))
    assert entry.write_state is WriteState.PARTLY_WRITTEN
    rest = flush(session)
    assert bytes(first) + rest == payload + b".\r\n"
    assert entry.written == entry.size and entry.parts == ()  # the octets are let go


def test_wrote_cannot_claim_more_than_was_given() -> None:
    session = ready()
    session.noop()
    data = session.data_to_send()
    with pytest.raises(e.UsageError):
        session.wrote(len(data) + 1)


def test_the_ledger_follows_each_octet() -> None:
    session = ready()
    mail, rcpt = session.mail("a@example.com"), session.rcpt("b@example.com")
    data = session.data_to_send()
    assert bytes(data) == b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
    session.wrote(10)
    assert (mail.write_state, rcpt.write_state) == (
        WriteState.PARTLY_WRITTEN,
        WriteState.NOT_WRITTEN,
    )
    session.wrote(len(data) - 10)
    assert (mail.written, rcpt.written) == (mail.size, rcpt.size)
    session.receive_data(b"250 ok\r\n")
    assert isinstance(mail.result, Ok) and rcpt.result is None and session.outstanding == 1


def test_credentials_stay_out_of_reprs() -> None:
    session = ready()
    entry = session.auth("PLAIN", b"\0user\0s3cret")
    secret = base64.b64encode(b"\0user\0s3cret").decode()
    for text in (repr(entry), repr(session), repr(session.ledger.entries)):
        assert "s3cret" not in text and secret not in text


def test_interrupting_closes_and_is_judged_once() -> None:
    session = REACH[State.DATA_OPEN]()
    verdict = session.interrupt(Interruption.READ_TIMEOUT)
    assert session.closed and session.verdict is verdict
    assert session.interrupt(Interruption.CONNECTION_LOST) is verdict
    assert verdict.safe_to_retry == ("b@example.com",)
    transaction = session.ledger.transaction
    assert transaction is not None and isinstance(transaction.rcpts["b@example.com"].result, Ok)


def _bdat_ended(replies: bytes, ehlo: bytes = EHLO) -> Session:
    session = ready(ehlo)
    session.mail("a@example.com")
    session.rcpt("b@example.com")
    session.bdat(b"x\r\n")
    if replies:
        answer(session, replies)
    return session


def _data_ended(ehlo: bytes = EHLO) -> Session:
    session = ready(ehlo)
    if b"PIPELINING" in ehlo:
        session.mail("a@example.com")
        session.rcpt("b@example.com")
        session.data()
        answer(session, b"250 ok\r\n250 ok\r\n354 go\r\n")
    else:  # each command after the reply to the one before
        steps: list[tuple[Callable[[], Entry], bytes]] = [
            (lambda: session.mail("a@example.com"), b"250 ok\r\n"),
            (lambda: session.rcpt("b@example.com"), b"250 ok\r\n"),
            (session.data, b"354 go\r\n"),
        ]
        for intent, reply in steps:
            intent()
            answer(session, reply)
    session.data_payload(b"x\r\n")
    return session


LOCK_STEP = b"250-mx.test\r\n250-CHUNKING\r\n250 8BITMIME\r\n"

# Sessions at the end of a message, for the rule that lets the next MAIL follow it.
AT_THE_END: dict[str, Callable[[], Session]] = {
    "DATA's end, pipelined": _data_ended,
    "DATA's end, lock-step": lambda: _data_ended(LOCK_STEP),
    "BDAT LAST, nothing answered": lambda: _bdat_ended(b""),
    "BDAT LAST, MAIL and RCPT accepted": lambda: _bdat_ended(b"250 ok\r\n250 ok\r\n"),
    "BDAT LAST, the RCPT refused": lambda: _bdat_ended(b"250 ok\r\n550 no\r\n"),
    "BDAT LAST, MAIL refused": lambda: _bdat_ended(b"550 no\r\n503 no\r\n"),
    "BDAT LAST, only MAIL answered": lambda: _bdat_ended(b"250 ok\r\n"),
}
FOLLOWS = {
    "DATA's end, pipelined": True,
    "BDAT LAST, MAIL and RCPT accepted": True,
}


@pytest.mark.parametrize("name", list(AT_THE_END))
def test_mail_follows_the_end_of_a_message_only_when_its_reply_ends_the_transaction(
    name: str,
) -> None:
    session = AT_THE_END[name]()
    assert session.state.name == "END_SENT"
    assert session.may(Intent.MAIL) is FOLLOWS.get(name, False)
    if FOLLOWS.get(name, False):
        session.mail("next@example.com")  # queued behind the end, before its reply
        session.rcpt("d@example.com")
        assert session.state is State.RCPT_SENT and session.outstanding == 3
    else:
        with pytest.raises(SessionStateError, match="wait"):
            session.mail("next@example.com")


@pytest.mark.parametrize(
    "make",
    [*REACH.values(), *AT_THE_END.values()],
    ids=[*(s.name for s in REACH), *AT_THE_END],
)
@pytest.mark.parametrize("intent", list(Intent), ids=lambda i: i.name)
def test_may_says_what_queueing_does(make: Callable[[], Session], intent: Intent) -> None:
    # may() answers without building an error; queueing raises SessionStateError
    # exactly when it said no (any other error is about the arguments, not the state)
    said = make().may(intent)
    try:
        INTENTS[intent](make())
    except SessionStateError:
        allowed = False
    except e.SMTPError:
        allowed = True
    else:
        allowed = True
    assert said is allowed
