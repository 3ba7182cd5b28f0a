"""``before_end_of_message``: called once per attempt, before the end of the message leaves.

Every shape the client writes a message end in: DATA lock-step and pipelined, BDAT
lock-step, BDAT inside the pipelined write, and a large BDAT after the pipelined replies.
"""

from __future__ import annotations

from typing import Any

import pytest
from rawserver import RawServer

import smtpx
from smtpx import RetryPolicy, VirtualClock
from smtpx.testing import ScriptedServer

PLAIN: dict[str, Any] = {"tls": smtpx.TLSMode.NONE, "local_hostname": "client.test"}
MARK = b"unmistakable-body-line"
SMALL = b"From: a@example.com\r\nTo: b@example.com\r\n\r\n" + MARK + b"\r\n"
# Over the size that goes inside the pipelined write: sent once a recipient accepted.
LARGE = SMALL + (b"x" * 900 + b"\r\n") * 300
RECIPIENTS = ("b@example.com", "c@example.com", "d@example.com")

# (pipelining, chunking, message): each way the end of a message is written
SHAPES = {
    "data-lock-step": (False, False, SMALL),
    "data-pipelined": (True, False, SMALL),
    "bdat-lock-step": (False, True, SMALL),
    "bdat-in-pipeline": (True, True, SMALL),
    "bdat-large-after-pipeline": (True, True, LARGE),
}
# Only there does the end leave with MAIL and RCPT, before any reply is read.
IN_ONE_WRITE = {"bdat-in-pipeline"}


@pytest.fixture(params=sorted(SHAPES))
def shape(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Recorder:
    """A hook that records its calls and what the server had received at that moment."""

    def __init__(self, server: ScriptedServer | None = None, *, fail: bool = False) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.server_had: list[int] = []
        self.server = server
        self.fail = fail

    def __call__(self, recipients: tuple[str, ...]) -> None:
        self.calls.append(recipients)
        if self.server is not None:
            self.server_had.append(len(self.server.messages))
        if self.fail:
            raise KeyboardInterrupt("the hook's own failure")  # not an Exception on purpose


async def test_called_once_before_the_end_with_the_accepting_recipients(shape: str) -> None:
    pipelining, chunking, message = SHAPES[shape]
    async with ScriptedServer(pipelining=pipelining, chunking=chunking) as server:
        server.on("RCPT", match="c@", reply="550 5.1.1 No such user")
        hook = Recorder(server)
        async with smtpx.Client(server.host, server.port, **PLAIN) as client:
            with smtpx.before_end_of_message(hook):
                result = await client.send(message, recipients=RECIPIENTS)
            assert client.uses_chunking is chunking
    assert result.accepted == ("b@example.com", "d@example.com")
    assert len(server.messages) == 1
    assert hook.server_had == [0]  # the server had not got it when the hook ran
    # RCPT replies are not read yet when the end goes with them: every recipient may get it
    expected = RECIPIENTS if shape in IN_ONE_WRITE else result.accepted
    assert hook.calls == [expected]


async def test_a_hook_that_raises_stops_the_end_from_leaving(shape: str) -> None:
    pipelining, chunking, message = SHAPES[shape]
    async with RawServer(pipelining=pipelining, chunking=chunking) as server:
        hook = Recorder(fail=True)
        client = smtpx.Client(server.host, server.port, **PLAIN)
        await client.connect()
        with smtpx.before_end_of_message(hook), pytest.raises(KeyboardInterrupt) as info:
            await client.send(message, recipients=RECIPIENTS)
        assert str(info.value) == "the hook's own failure"  # unchanged, not wrapped
        assert not client.connected  # a half-done transaction is never reused
        await client.quit()
    assert len(hook.calls) == 1
    assert MARK not in server.received  # not one octet of the message went out
    assert server.chunks() == []
    assert b"\r\n.\r\n" not in server.received


# (command, rule) failures that end the transaction before any end is written; in the
# one-write shape, only those before the write (none of the reply-based ones) apply.
BEFORE_THE_END: dict[str, tuple[str, dict[str, Any]]] = {
    "mail-refused": ("MAIL", {"reply": "553 5.1.8 Sender not allowed"}),
    "every-rcpt-refused": ("RCPT", {"reply": "450 4.2.1 Busy"}),
    "connection-dropped-at-rcpt": ("RCPT", {"close": True}),
    "data-refused": ("DATA", {"reply": "451 4.3.0 Try later"}),
}


@pytest.mark.parametrize(
    ("shape", "failure"),
    [
        (shape, failure)
        for shape, (_, chunking, _) in sorted(SHAPES.items())
        for failure, (command, _) in sorted(BEFORE_THE_END.items())
        if not (chunking and command == "DATA")  # BDAT has no DATA command
    ],
)
async def test_not_called_when_the_transaction_fails_before_its_end(
    shape: str, failure: str
) -> None:
    pipelining, chunking, message = SHAPES[shape]
    command, rule = BEFORE_THE_END[failure]
    async with ScriptedServer(pipelining=pipelining, chunking=chunking) as server:
        server.on(command, **rule)
        hook = Recorder()
        with smtpx.before_end_of_message(hook), pytest.raises(smtpx.SMTPError):
            await smtpx.send(
                message, host=server.host, port=server.port, recipients=RECIPIENTS, **PLAIN
            )
    assert server.messages == []
    # In one write, MAIL, RCPT and the whole chunk leave together: the hook ran first.
    assert hook.calls == ([RECIPIENTS] if shape in IN_ONE_WRITE else [])


async def test_not_called_for_a_message_too_large_for_the_server(shape: str) -> None:
    pipelining, chunking, message = SHAPES[shape]
    async with ScriptedServer(
        pipelining=pipelining, chunking=chunking, size_limit=len(message) - 1
    ) as server:
        hook = Recorder()
        with smtpx.before_end_of_message(hook), pytest.raises(smtpx.MessageTooLarge):
            await smtpx.send(message, host=server.host, port=server.port, **PLAIN)
    assert hook.calls == []


async def test_not_called_when_nobody_could_receive_the_empty_end() -> None:
    # A careless server answers 354 to a pipelined DATA although every RCPT was refused:
    # the client ends DATA empty; no recipient can get that, so it is no message end.
    async with RawServer(pipelining=True, rcpt_reply=b"550 5.1.1 No such user\r\n") as server:
        hook = Recorder()
        with smtpx.before_end_of_message(hook), pytest.raises(smtpx.AllRecipientsRejected):
            await smtpx.send(SMALL, host=server.host, port=server.port, **PLAIN)
    assert b"\r\n.\r\n" in b"\r\n" + bytes(server.received)  # the empty end was written
    assert hook.calls == []


async def test_once_per_attempt_through_a_pool_with_retries() -> None:
    async with ScriptedServer() as server:
        server.on("DATA_END", reply="451 4.3.0 Try again later", times=2)
        hook = Recorder(server)
        policy = RetryPolicy.for_testing(VirtualClock(), attempts=3)
        async with smtpx.Pool(server.host, server.port, size=1, **PLAIN) as pool:
            with smtpx.before_end_of_message(hook):
                result = await pool.send(SMALL, retry=policy)
    assert result.accepted == ("b@example.com",)
    assert hook.calls == [("b@example.com",)] * 3
    assert hook.server_had == [0, 0, 0]


async def test_only_inside_the_block_and_the_innermost_wins(server: ScriptedServer) -> None:
    outer, inner = Recorder(), Recorder()
    async with smtpx.Client(server.host, server.port, **PLAIN) as client:
        await client.send(SMALL)
        with smtpx.before_end_of_message(outer):
            with smtpx.before_end_of_message(inner):
                await client.send(SMALL)
            await client.send(SMALL)
        await client.send(SMALL)
    assert inner.calls == [("b@example.com",)]
    assert outer.calls == [("b@example.com",)]
    assert len(server.messages) == 4


@pytest.mark.parametrize("value", [None, "hook", 3])
def test_a_hook_must_be_callable(value: object) -> None:
    with (
        pytest.raises(smtpx.UsageError, match="callable"),
        smtpx.before_end_of_message(value),  # type: ignore[arg-type]
    ):
        pass
