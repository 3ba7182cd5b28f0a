"""The three ways the promise "never twice, never lost" used to depend on timing, at the core.

1. Pipelined MAIL, RCPT and ``BDAT n LAST`` in one write, the connection lost while the
   MAIL/RCPT replies are awaited: the whole message left, so delivery is unknown, not
   "lost at MAIL, retry".
2. 354, then the server stops reading during a large DATA: the final "." never left, so
   the message may be retried, not "delivery unknown".
3. An extra reply after a transaction's final reply: never paired with the next
   message's commands (which would report a valid recipient refused).
"""

from __future__ import annotations

import pytest
from memory_server import MemoryServer, Script
from protocol_harness import Pump, envelope

from smtpx import Command
from smtpx import errors as e
from smtpx.protocol import Action, Interruption, MailFlow, Session, SetupFlow, StartTLS
from smtpx.results import SendResult

GOOD1, BAD2, GOOD3 = "good1@example.com", "bad2@example.com", "good3@example.com"


def open_session(script: Script) -> tuple[Session, MemoryServer, Pump]:
    server = MemoryServer(script)
    session = Session("client.test")
    pump = Pump(session, server, None)
    assert pump.run(SetupFlow(session, starttls=StartTLS.NEVER)) is Action.DONE
    return session, server, pump


def write_all(session: Session, server: MemoryServer, *, reaching: bool = True) -> int:
    """Hand every queued octet to the transport; they reach the server if ``reaching``."""
    written = 0
    while data := bytes(session.data_to_send()):
        session.wrote(len(data))
        written += len(data)
        if reaching:
            server.receive(data)
    return written


# -- 1. the whole message left with the pipeline: delivery unknown ----------------------


@pytest.mark.parametrize("what", list(Interruption), ids=lambda w: w.name)
def test_a_loss_before_the_mail_reply_after_a_pipelined_bdat_is_delivery_unknown(
    what: Interruption,
) -> None:
    session, server, _ = open_session(Script(pipelining=True, chunking=True))
    flow = MailFlow(session, envelope([GOOD1, BAD2, GOOD3]))
    assert flow.next_action() is Action.SEND
    write_all(session, server)  # MAIL, 3 RCPT and BDAT LAST: one write
    assert server.ends  # the server has the whole message
    session.interrupt(what, unsent=0)  # before any reply was read
    assert flow.next_action() is Action.FAILED
    error = flow.error
    assert isinstance(error, e.DeliveryUnknown) and not error.retryable
    assert error.command is Command.MAIL  # the first reply that was missing
    assert error.undelivered == (GOOD1, BAD2, GOOD3) and error.rejected == {}
    assert session.verdict is not None and session.verdict.unknown == (GOOD1, BAD2, GOOD3)


def test_refusals_that_arrived_stand_and_the_rest_is_unknown() -> None:
    script = Script(pipelining=True, chunking=True, refuse={BAD2: "550 5.1.1 No such user"})
    session, server, _ = open_session(script)
    flow = MailFlow(session, envelope([GOOD1, BAD2, GOOD3]))
    flow.next_action()
    write_all(session, server)
    replies = server.take_output()
    third = replies.index(b"250 2.1.5", replies.index(b"550"))  # MAIL, GOOD1, BAD2 arrived
    session.receive_data(replies[:third])
    session.interrupt(Interruption.READ_TIMEOUT)
    assert flow.next_action() is Action.FAILED
    error = flow.error
    assert isinstance(error, e.DeliveryUnknown)
    assert error.command is Command.RCPT
    assert error.recipient == GOOD3  # the reply that was missing
    assert type(error.rejected[BAD2]) is e.NoSuchMailbox  # its refusal stands
    assert error.undelivered == (GOOD1, GOOD3)


def test_the_chunk_still_in_the_transport_buffer_is_safe_to_retry() -> None:
    session, server, _ = open_session(Script(pipelining=True, chunking=True))
    flow = MailFlow(session, envelope([GOOD1]))
    flow.next_action()
    data = bytes(session.data_to_send())
    session.wrote(len(data))
    chunk_start = data.index(b"BDAT")
    server.receive(data[:chunk_start])  # the rest sat in the buffer when the line dropped
    session.interrupt(Interruption.CONNECTION_LOST, unsent=len(data) - chunk_start)
    flow.next_action()
    assert type(flow.error) is e.ConnectionLost and flow.error.retryable
    assert flow.error.undelivered == (GOOD1,) and not server.ends


# -- 2. the "." never left: safe to retry -----------------------------------------------


@pytest.mark.parametrize("unsent_known", [True, False])
def test_a_server_that_stops_reading_mid_data_leaves_the_message_retryable(
    unsent_known: bool,
) -> None:
    session, server, _ = open_session(Script(pipelining=False))
    body = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n" * 160_000
    flow = MailFlow(session, envelope([GOOD1], body))  # 10 MiB
    pump_until_data_opens(flow, session, server)
    # the edge hands slices while its buffer has room; the server reads 1 MiB, then stops
    buffered, high_water, read = 0, 256 * 1024, 0
    while buffered < high_water and (data := bytes(session.data_to_send())):
        session.wrote(len(data))
        take = max(0, min(len(data), 1024 * 1024 - read))
        server.receive(data[:take])
        read += take
        buffered += len(data) - take
    session.interrupt(Interruption.TOTAL_TIMEOUT, unsent=buffered if unsent_known else None)
    assert flow.next_action() is Action.FAILED
    error = flow.error
    assert type(error) is e.ResponseTimeout and error.retryable  # never DeliveryUnknown
    assert error.command is Command.DATA_END
    assert "its end was never sent" in str(error)
    assert error.undelivered == (GOOD1,) and not server.ends


def pump_until_data_opens(flow: MailFlow, session: Session, server: MemoryServer) -> None:
    while True:
        action = flow.next_action()
        if action is Action.SEND:
            if session.state.name == "END_SENT":
                return  # the payload is queued: the test writes it itself
            write_all(session, server)
        else:
            assert action is Action.RECEIVE
            session.receive_data(server.take_output())


# -- 3. an extra reply is never paired with the next message ----------------------------


def test_an_extra_reply_after_a_transaction_closes_the_session_instead_of_shifting_replies() -> (
    None
):
    script = Script(
        pipelining=False,
        refuse={BAD2: "550 5.1.1 No such user"},
        extra_after_end=b"250 2.0.0 Ok: one more\r\n",
    )
    session, _server, pump = open_session(script)
    first = MailFlow(session, envelope([GOOD1]))
    assert pump.run(first) is Action.DONE  # the final 250 answers the first message
    assert session.closed and isinstance(session.error, e.ProtocolError)
    # the next message goes on a new connection, so every reply answers its own command
    session2, _, pump2 = open_session(script)
    second = MailFlow(session2, envelope([GOOD1, BAD2, GOOD3]))
    assert pump2.run(second) is Action.DONE
    result = second.result
    assert isinstance(result, SendResult)
    assert result.accepted == (GOOD1, GOOD3)
    assert set(result.rejected) == {BAD2} and type(result.rejected[BAD2]) is e.NoSuchMailbox


def test_an_extra_reply_arriving_while_idle_closes_the_session() -> None:
    session, _server, pump = open_session(Script(pipelining=False))
    assert pump.run(MailFlow(session, envelope([GOOD1]))) is Action.DONE
    assert not session.closed
    session.receive_data(b"250 2.0.0 Ok\r\n")  # nothing is waiting for it
    assert session.closed and isinstance(session.error, e.ProtocolError)
    flow = MailFlow(session, envelope([GOOD1, BAD2, GOOD3]))
    assert flow.next_action() is Action.FAILED  # not a shifted RCPT reply
    assert isinstance(flow.error, e.ProtocolError)
    assert flow.error.undelivered == (GOOD1, BAD2, GOOD3)
