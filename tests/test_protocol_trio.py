"""The same session and flows under trio: the protocol core owns no I/O.

A trio pump (``drive``) moves octets between ``trio.open_tcp_stream`` and the session;
the server is the scripted aiosmtpd server, on its own loop in a thread.
"""

from __future__ import annotations

from typing import TypeVar

import trio

import smtpx
from smtpx.protocol import (
    Action,
    Flow,
    Interruption,
    MailFlow,
    ReplyFlow,
    Session,
    SetupFlow,
    StartTLS,
    prepare,
)
from smtpx.results import SendResult
from smtpx.testing import serve_in_thread

T = TypeVar("T")
MESSAGE = (
    b"From: shop@example.com\r\nTo: alice@example.com, nobody@example.com\r\n"
    b"Subject: trio\r\n\r\nHello.\r\n"
)


async def drive(flow: Flow[T], stream: trio.SocketStream) -> T:
    session = flow.session
    while True:
        action = flow.next_action()
        try:
            if action is Action.SEND:
                data = bytes(session.data_to_send())
                # send_all takes all of it or fails without saying how much went:
                # report it handed first, so that the ledger never under-counts
                session.wrote(len(data))
                with trio.fail_after(10):
                    await stream.send_all(data)
            elif action is Action.RECEIVE:
                with trio.fail_after(10):
                    data = await stream.receive_some(65536)
                if data:
                    session.receive_data(data)
                else:
                    session.interrupt(Interruption.CONNECTION_LOST)
            elif action is Action.DONE:
                assert flow.result is not None
                return flow.result
            else:
                assert flow.error is not None
                raise flow.error
        except trio.TooSlowError:
            session.interrupt(Interruption.READ_TIMEOUT)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            session.interrupt(Interruption.CONNECTION_LOST)


async def send_one(host: str, port: int) -> SendResult:
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        session = Session("client.test")
        await drive(SetupFlow(session, starttls=StartTLS.NEVER), stream)
        result = await drive(MailFlow(session, prepare(MESSAGE)), stream)
        if not session.closed:
            await drive(ReplyFlow(session, session.quit()), stream)
        return result


def test_a_message_goes_through_trio() -> None:
    with serve_in_thread(pipelining=True, chunking=True) as server:
        server.on("RCPT", match="nobody@", reply="550 5.1.1 No such user")
        result = trio.run(send_one, server.host, server.port)
        (received,) = server.messages
    assert result.accepted == ("alice@example.com",)
    assert type(result.rejected["nobody@example.com"]) is smtpx.NoSuchMailbox
    assert received.rcpt_tos == ("alice@example.com",)
    assert result.reply.code == 250


def test_a_loss_after_the_end_is_delivery_unknown_under_trio_too() -> None:
    with serve_in_thread(pipelining=True, chunking=True) as server:
        server.on("RCPT", match="nobody@", reply="550 5.1.1 No such user")
        server.on("BDAT", close=True, record=True)  # accepted, then the reply was lost
        try:
            trio.run(send_one, server.host, server.port)
        except smtpx.DeliveryUnknown as error:
            caught = error
        received = len(server.messages)
    assert caught.command is smtpx.Command.BDAT
    assert set(caught.rejected) == {"nobody@example.com"}  # its refusal stands
    assert caught.undelivered == ("alice@example.com",)
    assert received == 1  # which is why it must never be resent blindly
