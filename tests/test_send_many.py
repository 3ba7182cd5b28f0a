"""``Client.send_many`` on loopback: aiosmtpd, Postfix and smtp-sink, messages back to back.

The pure core's batch is proven fault by fault in ``test_batch_faults``; here the
edge: outcomes in order, each message's own refusals, a message that cannot be
prepared, a connection closed under the batch, a server that is not there, leaving
the loop early, dry runs and the blocking client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest
from ports import find_free_ports
from realservers import PostfixServer, SmtpSinkFactory

import smtpx
from smtpx.protocol import prepare
from smtpx.testing import ScriptedServer

PLAIN: dict[str, Any] = {"tls": smtpx.TLSMode.NONE, "local_hostname": "client.test"}


def message(index: int, *to: str) -> bytes:
    to = to or (f"user{index}@example.test",)
    head = f"From: sender@example.test\r\nTo: {', '.join(to)}\r\nSubject: number {index}\r\n"
    return (head + f"\r\nBody of message {index}.\r\n.leading dot\r\n").encode()


async def outcomes(client: smtpx.Client, messages: list[Any]) -> list[Any]:
    return [outcome async for outcome in client.send_many(messages)]


def kinds(got: list[Any], *wanted: type) -> bool:
    """Whether each outcome is of its kind (a lone refusal is a subclass of its group)."""
    return len(got) == len(wanted) and all(map(isinstance, got, wanted))


@pytest.mark.parametrize("chunking", [False, True], ids=["DATA", "BDAT"])
@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "lock-step"])
async def test_each_message_has_its_own_outcome_in_order(pipelining: bool, chunking: bool) -> None:
    async with ScriptedServer(pipelining=pipelining, chunking=chunking) as server:
        server.on("RCPT", match="refused@", reply="550 5.1.1 No such user")
        server.on("RCPT", match="later@", reply="451 4.3.0 Try again later")
        messages: list[Any] = [
            message(0),
            message(1, "ok1@example.test", "refused@example.test"),
            message(2, "refused@example.test"),
            b"no headers, so no sender and no recipient\r\n",  # cannot be prepared
            message(4, "later@example.test"),
            message(5),
        ]
        async with smtpx.Client(server.host, server.port, **PLAIN) as client:
            got = await outcomes(client, messages)
            assert client.connected  # every failure left the session in step
        assert kinds(
            got,
            smtpx.SendResult,
            smtpx.SendResult,
            smtpx.AllRecipientsRejected,
            smtpx.InvalidEnvelope,
            smtpx.AllRecipientsDeferred,
            smtpx.SendResult,
        )
        assert got[0].accepted == ("user0@example.test",)
        assert got[1].accepted == ("ok1@example.test",)
        assert set(got[1].rejected) == {"refused@example.test"}
        assert got[2].undelivered == () and set(got[2].rejected) == {"refused@example.test"}
        assert set(got[4].rejected) == {"later@example.test"} and got[4].undelivered == ()
        assert all(o.host == server.host and o.port == server.port for o in got[:2])
        # what the server received, in order, each with its own envelope and content
        received = [(m.rcpt_tos, m.subject) for m in server.messages]
        assert received == [
            (("user0@example.test",), "number 0"),
            (("ok1@example.test",), "number 1"),
            (("user5@example.test",), "number 5"),
        ]
        assert all(b"\r\n.leading dot\r\n" in m.data for m in server.messages)


async def test_envelopes_and_messages_mix() -> None:
    async with ScriptedServer(pipelining=True) as server:
        explicit = prepare(message(1), sender="other@example.test", recipients=["x@example.test"])
        async with smtpx.Client(server.host, server.port, **PLAIN) as client:
            got = await outcomes(client, [message(0), explicit])
        assert [o.accepted for o in got] == [("user0@example.test",), ("x@example.test",)]
        assert [m.mail_from for m in server.messages] == [
            "sender@example.test",
            "other@example.test",
        ]


async def test_a_closed_connection_sends_the_rest_on_a_new_one() -> None:
    async with ScriptedServer(pipelining=True) as server:
        # the second message's RCPT: 421 and the connection is closed, once
        server.on("RCPT", match="user1@", reply="421 4.3.2 Shutting down", close=True, times=1)
        messages = [message(index) for index in range(5)]
        async with smtpx.Client(server.host, server.port, **PLAIN) as client:
            got = await outcomes(client, messages)
        assert isinstance(got[1], smtpx.ServiceUnavailable)
        assert got[1].undelivered == ("user1@example.test",)
        assert kinds(got[:1] + got[2:], *[smtpx.SendResult] * 4)
        subjects = [m.subject for m in server.messages]
        assert subjects == ["number 0", "number 2", "number 3", "number 4"]


async def test_no_server_every_message_yields_the_connect_error() -> None:
    (port,) = find_free_ports(1)  # nothing listens there
    client = smtpx.Client("127.0.0.1", port, timeout=5, **PLAIN)
    got = await outcomes(client, [message(0), message(1), b"no headers\r\n"])
    assert kinds(got, smtpx.ConnectError, smtpx.ConnectError, smtpx.InvalidEnvelope)
    assert [o.undelivered for o in got[:2]] == [("user0@example.test",), ("user1@example.test",)]
    assert got[0] is not got[1]


async def test_leaving_early_finishes_the_message_under_way(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with ScriptedServer(pipelining=True) as server:
        async with smtpx.Client(server.host, server.port, **PLAIN) as client:
            with caplog.at_level(logging.INFO, logger="smtpx.client"):
                many = client.send_many(message(i) for i in range(6))
                async with contextlib.aclosing(many) as it:
                    async for first in it:
                        assert isinstance(first, smtpx.SendResult)
                        break
            # the second was pipelined behind the first: finished, and nothing after it
            assert [m.subject for m in server.messages] == ["number 0", "number 1"]
            assert "left early" in caplog.text
            assert client.connected
            await client.send(message(9))  # in step, the lock released
        assert [m.subject for m in server.messages][-1] == "number 9"


async def test_dry_run_sends_nothing() -> None:
    sink: list[Any] = []
    client = smtpx.Client("mx.invalid", dry_run=True, sink=sink.append)
    got = await outcomes(client, [message(0), b"no headers\r\n", message(2)])
    assert kinds(got, smtpx.SendResult, smtpx.InvalidEnvelope, smtpx.SendResult)
    assert all(o.dry_run for o in (got[0], got[2])) and len(sink) == 2


async def test_the_blocking_client_returns_the_list() -> None:
    async with ScriptedServer(pipelining=True) as server:
        server.on("RCPT", match="refused@", reply="550 5.1.1 No such user")

        def blocking() -> list[Any]:
            with smtpx.SyncClient(server.host, server.port, **PLAIN) as client:
                return client.send_many([message(0), message(1, "refused@example.test")])

        got = await asyncio.to_thread(blocking)
    assert kinds(got, smtpx.SendResult, smtpx.AllRecipientsRejected)


async def test_postfix_each_message_judged_alone(postfix_server: PostfixServer) -> None:
    server = postfix_server
    messages = [
        message(0, server.recipient),
        message(1, server.hard550_rcpt),
        message(2, server.recipient, server.hard550_rcpt),
        message(3, server.recipient),
    ]
    async with smtpx.Client(
        server.host,
        server.submission_port,
        tls_context=server.ssl_context(),
        credentials=(server.username, server.password),
        local_hostname="client.test",
    ) as client:
        raw = [message_from(m, server.sender) for m in messages]
        got = await outcomes(client, raw)
    assert kinds(
        got, smtpx.SendResult, smtpx.AllRecipientsRejected, smtpx.SendResult, smtpx.SendResult
    )
    assert got[2].accepted == (server.recipient,)
    assert got[2].rejected[server.hard550_rcpt].code == 550


def message_from(data: bytes, sender: str) -> bytes:
    return data.replace(b"From: sender@example.test", f"From: {sender}".encode())


async def test_smtp_sink_takes_a_long_batch(smtp_sink: SmtpSinkFactory) -> None:
    sink = smtp_sink()
    async with smtpx.Client(sink.host, sink.port, **PLAIN) as client:
        assert "pipelining" in client.extensions
        got = await outcomes(client, [message(index) for index in range(200)])
    assert kinds(got, *[smtpx.SendResult] * 200)
    assert [o.accepted for o in got[:2]] == [("user0@example.test",), ("user1@example.test",)]


def tagged(index: int) -> bytes:
    """Message ``index`` from its own sender, to its own recipient, with its own body."""
    return (
        f"From: s{index}@example.test\r\nTo: r{index}@example.test\r\nSubject: {index}\r\n"
        f"\r\nbody-of-{index}\r\n"
    ).encode()


CLOSES = [
    ("MAIL", "s{}@", False),
    ("RCPT", "r{}@", False),
    ("DATA_END", "body-of-{}", False),  # closed before it takes the message
    ("DATA_END", "body-of-{}", True),  # took the message, the reply lost
]


@pytest.mark.parametrize("chunking", [False, True], ids=["DATA", "BDAT"])
@pytest.mark.parametrize(("command", "match", "record"), CLOSES)
@pytest.mark.parametrize("which", [0, 1, 2])
async def test_a_connection_closed_at_any_command_of_any_message(
    which: int, command: str, match: str, record: bool, chunking: bool
) -> None:
    # the server drops the connection at one command of one of three pipelined
    # messages: that message alone has the verdict of where it stopped, the ones
    # before it are sent, the ones after go on a new connection, nothing twice
    end = command == "DATA_END"
    if chunking and end:
        command = "BDAT"
    async with ScriptedServer(pipelining=True, chunking=chunking) as server:
        rule = match.format(which)
        if end:
            server.on(command, match=rule, close=True, times=1, record=record)
        else:
            server.on(command, match=rule, close=True, times=1)
        async with smtpx.Client(server.host, server.port, **PLAIN) as client:
            got = await outcomes(client, [tagged(n) for n in range(3)])
        for index, outcome in enumerate(got):
            if index != which:
                # before it: sent; behind it on the lost connection, its end not sent:
                # sent again on a new one, as one at a time
                assert isinstance(outcome, smtpx.SendResult), (index, outcome)
                assert outcome.accepted == (f"r{index}@example.test",)
            elif end or chunking:
                # its end was handed out (with BDAT, in the write with its MAIL): the
                # server may have it, so never "safe to retry"
                assert isinstance(outcome, smtpx.DeliveryUnknown), outcome
                assert outcome.undelivered == (f"r{index}@example.test",)
            else:
                assert isinstance(outcome, smtpx.ConnectionLost), outcome
                assert outcome.retryable and outcome.undelivered == (f"r{index}@example.test",)
        delivered = [m.subject or "" for m in server.messages]
        wanted = [str(n) for n in range(3) if n != which or record]
        assert sorted(delivered) == wanted  # each once


@pytest.mark.parametrize("close", [True, False], ids=["then closes", "stays open"])
async def test_a_421_to_an_end_sends_the_message_behind_it_on_a_new_connection(
    close: bool,
) -> None:
    async with ScriptedServer(pipelining=True) as server:
        server.on("DATA_END", match="body-of-0", reply="421 4.3.2 Shutting down", close=close)
        async with smtpx.Client(server.host, server.port, **PLAIN) as client:
            got = await outcomes(client, [tagged(n) for n in range(3)])
    assert isinstance(got[0], smtpx.ServiceUnavailable)
    assert got[0].undelivered == ("r0@example.test",)
    assert kinds(got[1:], smtpx.SendResult, smtpx.SendResult)
    assert sorted(m.subject or "" for m in server.messages) == ["1", "2"]


NOT_MANY: list[Any] = [
    message(0),  # one message: bytes
    message(0).decode(),  # str
    bytearray(message(0)),
    memoryview(message(0)),
    smtpx.compose("a@example.test", "b@example.test", "one", text="one"),  # EmailMessage
    prepare(message(0)),  # one Envelope
    None,
    5,
    3.5,
    object(),
]


@pytest.mark.parametrize("given", NOT_MANY, ids=lambda g: type(g).__name__)
@pytest.mark.parametrize("where", ["Client", "Pool", "SyncClient"])
async def test_anything_but_an_iterable_of_messages_is_a_usage_error(
    given: Any, where: str
) -> None:
    # nothing connects: the server address is not even looked at
    options: dict[str, Any] = {"port": 9, **PLAIN}
    with pytest.raises(smtpx.UsageError, match="iterable of messages"):
        if where == "Client":
            await outcomes(smtpx.Client("127.0.0.1", **options), given)
        elif where == "Pool":
            async with smtpx.Pool("127.0.0.1", **options) as pool:
                async for _ in pool.send_many(given):
                    pass
        else:

            def blocking() -> None:
                smtpx.SyncClient("127.0.0.1", **options).send_many(given)

            await asyncio.to_thread(blocking)
