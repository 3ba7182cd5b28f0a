"""``Client.command()``, the escape hatch, obeys the session's state table like every
other method, and a reply that answers no command closes the connection, whatever
state it arrives in (docs/client.md)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import smtpx
from smtpx.protocol import Intent, SessionStateError, State
from smtpx.protocol.states import ISSUE
from smtpx.testing import ScriptedServer

PLAIN: dict[str, Any] = {"tls": smtpx.TLSMode.NONE, "local_hostname": "client.test"}

# one command line per command that command() sends (the names Intent and Command share)
LINES: dict[smtpx.Command, tuple[bytes, ...]] = {
    smtpx.Command.EHLO: (b"EHLO", b"client.test"),
    smtpx.Command.HELO: (b"HELO", b"client.test"),
    smtpx.Command.STARTTLS: (b"STARTTLS",),
    smtpx.Command.AUTH: (b"AUTH", b"PLAIN", b"AGEAZQ=="),
    smtpx.Command.MAIL: (b"MAIL", b"FROM:<a@example.com>"),
    smtpx.Command.RCPT: (b"RCPT", b"TO:<b@example.com>"),
    smtpx.Command.DATA: (b"DATA",),
    smtpx.Command.RSET: (b"RSET",),
    smtpx.Command.NOOP: (b"NOOP",),
    smtpx.Command.VRFY: (b"VRFY", b"b"),
    smtpx.Command.EXPN: (b"EXPN", b"list"),
    smtpx.Command.HELP: (b"HELP",),
    smtpx.Command.QUIT: (b"QUIT",),
}


def test_every_command_line_command_is_covered() -> None:
    sendable = {c for c in smtpx.Command if c.name in Intent.__members__}
    assert set(LINES) == sendable - {smtpx.Command.BDAT}  # BDAT carries a payload


# the states a client reaches with command() alone, and how
REACH: dict[State, list[smtpx.Command]] = {
    State.READY: [],
    State.MAIL_SENT: [smtpx.Command.MAIL],
    State.RCPT_SENT: [smtpx.Command.MAIL, smtpx.Command.RCPT],
}


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    async with ScriptedServer(credentials={"a": "b"}) as scripted:
        yield scripted


@pytest.mark.parametrize("state", list(REACH), ids=lambda s: s.name)
@pytest.mark.parametrize("command", list(LINES), ids=lambda c: c.name)
async def test_command_follows_the_state_table(
    server: ScriptedServer, state: State, command: smtpx.Command
) -> None:
    async with smtpx.Client(server.host, server.port, **PLAIN) as client:
        for step in REACH[state]:
            await client.command(step, *LINES[step], recipient="b@example.com")
        assert client.session is not None and client.session.state is state
        written = len(server.transcript)
        if Intent[command.name] in ISSUE[state]:
            try:
                await client.command(command, *LINES[command])
            except SessionStateError:  # pragma: no cover - the failure this test looks for
                pytest.fail(f"{command.name} is allowed in {state.name}")
            except smtpx.SMTPError:
                pass  # the server's answer, classified: not this test's concern
            assert len(server.transcript) == written + 1
            return
        with pytest.raises(SessionStateError, match=f"{command.name} is not allowed now"):
            await client.command(command, *LINES[command])
        # refused before a single octet: nothing written, the connection still usable
        assert server.transcript[written:] == [] and client.connected
        assert client.session.state is state
        await client.command(smtpx.Command.RSET, b"RSET")
        assert server.transcript[written:] == [b"RSET"]


Step = Callable[[smtpx.Client], Awaitable[object]]
STEPS: dict[str, tuple[bytes, list[Step]]] = {
    # the command after whose reply the server adds one nobody asked for
    "greeting": (b"", []),
    "EHLO": (b"EHLO", []),
    "NOOP": (b"NOOP", [lambda c: c.noop()]),
    "MAIL": (b"MAIL", [lambda c: c.command(smtpx.Command.MAIL, *LINES[smtpx.Command.MAIL])]),
    "RCPT": (
        b"RCPT",
        [
            lambda c: c.command(smtpx.Command.MAIL, *LINES[smtpx.Command.MAIL]),
            lambda c: c.command(smtpx.Command.RCPT, *LINES[smtpx.Command.RCPT]),
        ],
    ),
}


@pytest.mark.parametrize("after", list(STEPS))
async def test_a_reply_to_no_command_closes_the_connection(after: str) -> None:
    trigger, steps = STEPS[after]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 stray.test\r\n" + (b"250 stray\r\n" if not trigger else b""))
        while line := await reader.readline():
            writer.write(b"250 ok\r\n")
            if line.upper().startswith(trigger) and trigger:
                writer.write(b"250 stray\r\n")  # answers nothing
        writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with listener:
        client = smtpx.Client("127.0.0.1", port, **PLAIN)
        caught: list[smtpx.ProtocolError] = []
        try:
            await client.connect()
            for step in steps:
                await step(client)
        except smtpx.ProtocolError as error:  # the stray came with the reply it follows
            caught.append(error)
        async with asyncio.timeout(10):  # a bound, not a speed: the stray closes it
            while client.connected:
                await asyncio.sleep(0.005)
        if not caught:  # the stray is never paired with the next command
            with pytest.raises(smtpx.ProtocolError) as raised:
                await client.noop()
            caught.append(raised.value)
        assert "no command was waiting" in str(caught[0])
        assert caught[0].raw == b"250 stray\r\n"
        assert not client.connected
        client.close()
