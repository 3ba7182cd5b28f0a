"""Common set-up mistakes are explained, quickly, as permanent errors: the wrong TLS mode
for a port, a host name that does not exist; and a Reply made by hand is what it says."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from click.testing import CliRunner
from tls_ca import LocalCA

import smtpx
from smtpx import _edge
from smtpx.cli.app import cli
from smtpx.testing import ScriptedServer

HOST: dict[str, Any] = {"local_hostname": "client.test"}
MESSAGE = b"From: alice@example.com\r\nTo: bob@example.com\r\n\r\nHello.\r\n"


@pytest.fixture
def quick_probe(monkeypatch: pytest.MonkeyPatch) -> float:
    """Probe the port's TLS mode after 0.2 s of silence instead of 2 s."""
    monkeypatch.setattr(_edge, "GREETING_PROBE_AFTER", 0.2)
    return 0.2


@pytest.mark.parametrize(
    "mode", [smtpx.TLSMode.STARTTLS, smtpx.TLSMode.OPPORTUNISTIC, smtpx.TLSMode.NONE]
)
async def test_plaintext_modes_against_an_implicit_tls_port_fail_fast(
    ca: LocalCA, quick_probe: float, mode: smtpx.TLSMode
) -> None:
    async with ScriptedServer(tls_context=ca.server_context(), implicit_tls=True) as server:
        client = smtpx.Client(server.host, server.port, tls=mode, timeout=20, **HOST)
        started = time.monotonic()
        with pytest.raises(smtpx.TLSModeMismatch) as info:
            await client.send(MESSAGE)
        elapsed = time.monotonic() - started
    error = info.value
    assert elapsed < 10  # not the 20 s time-out: the probe answered
    assert not error.retryable and isinstance(error, smtpx.PermanentError | smtpx.TLSError)
    assert "TLSMode.IMPLICIT" in str(error) and "465" in str(error)
    assert error.command is smtpx.Command.CONNECT
    assert error.undelivered == ("bob@example.com",)
    assert server.messages == []


async def test_implicit_tls_against_a_plaintext_port_says_use_starttls(ca: LocalCA) -> None:
    async with ScriptedServer() as server:  # plaintext SMTP, greets at once
        client = smtpx.Client(
            server.host,
            server.port,
            tls=smtpx.TLSMode.IMPLICIT,
            tls_context=ca.client_context(),
            timeout=20,
            **HOST,
        )
        with pytest.raises(smtpx.TLSModeMismatch) as info:
            await client.connect()
    error = info.value
    assert not error.retryable
    assert "TLSMode.STARTTLS" in str(error) and "plaintext" in str(error)
    assert "WRONG_VERSION_NUMBER" in str(error.__cause__)


class SlowGreeter:
    """A plaintext SMTP server that greets only after ``delay`` seconds (a tarpit)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.port = 0
        self.connections = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await asyncio.sleep(self.delay)
        writer.write(b"220 slow.example ESMTP\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            writer.write(b"221 bye\r\n" if verb == b"QUIT" else b"250 slow.example\r\n")
            await writer.drain()
            if verb == b"QUIT":
                break
        writer.close()

    async def __aenter__(self) -> SlowGreeter:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()


@pytest.fixture
async def slow() -> AsyncIterator[SlowGreeter]:
    async with SlowGreeter(delay=0.6) as server:
        yield server


async def test_a_slow_plaintext_greeting_is_still_waited_for(
    slow: SlowGreeter, quick_probe: float
) -> None:
    client = smtpx.Client("127.0.0.1", slow.port, tls=smtpx.TLSMode.NONE, timeout=5, **HOST)
    ready = await client.connect()
    assert ready.reply.code == 220
    assert slow.connections == 2  # the probe looked, found plaintext, and went away
    await client.quit()


async def test_no_greeting_at_all_is_still_a_transient_timeout(quick_probe: float) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # neither greets nor speaks TLS

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = smtpx.Client("127.0.0.1", port, tls=smtpx.TLSMode.NONE, timeout=0.6, **HOST)
        with pytest.raises(smtpx.ConnectTimeout) as info:
            await client.connect()
        assert info.value.retryable
    finally:
        server.close()


# -- DNS ---------------------------------------------------------------------------------
# RFC 6761 §6.4: names under .invalid never resolve, on any resolver.


async def test_a_host_that_does_not_exist_is_permanent() -> None:
    client = smtpx.Client("no-such-host.invalid", 25, tls="none", timeout=10, **HOST)
    with pytest.raises(smtpx.HostNotFound) as info:
        await client.send(MESSAGE)
    error = info.value
    assert not error.retryable and isinstance(error, smtpx.NetworkError)
    assert error.command is smtpx.Command.CONNECT
    assert error.undelivered == ("bob@example.com",)
    assert not smtpx.is_retryable(error)


def test_a_resolver_that_cannot_answer_stays_transient() -> None:
    import socket

    from smtpx._network import connect_error

    for code, expected in [
        (socket.EAI_AGAIN, smtpx.ConnectError),
        (socket.EAI_FAIL, smtpx.ConnectError),
        (socket.EAI_NONAME, smtpx.HostNotFound),
    ]:
        error = connect_error(socket.gaierror(code, "resolver said no"), "mx.test", 25)
        assert type(error) is expected
        assert error.retryable is (expected is smtpx.ConnectError)


def test_cli_exit_code_for_a_host_that_does_not_exist() -> None:
    result = CliRunner().invoke(
        cli,
        [
            "send",
            "--host",
            "no-such-host.invalid",
            "--tls",
            "none",
            "--local-hostname",
            "c.test",
            "--from",
            "a@example.com",
            "--to",
            "b@example.com",
        ],
        input="hi\n",
    )
    assert result.exit_code == 3, result.output  # a permanent failure (see EXIT_CODES_HELP)
    assert "HostNotFound" in result.output or "does not exist" in result.output


@pytest.mark.parametrize("host", ["a..b", "x" * 64 + ".example.com", "-" * 300])
def test_a_host_name_that_cannot_be_looked_up_is_a_usage_error(host: str) -> None:
    with pytest.raises(smtpx.UsageError, match="host"):
        smtpx.Client(host)


# -- Reply made by hand ---------------------------------------------------------------------


def test_a_reply_built_from_a_str_has_lines_and_its_enhanced_code() -> None:
    reply = smtpx.Reply(550, "5.1.1 No such user")
    assert reply.lines == ("5.1.1 No such user",)
    assert reply.text == "5.1.1 No such user"
    assert str(reply.enhanced) == "5.1.1"
    assert reply == smtpx.Reply.build(550, "5.1.1 No such user")
    multi = smtpx.Reply(250, "mx.example\nPIPELINING")
    assert multi.lines == ("mx.example", "PIPELINING")
    assert smtpx.Reply(250, ["a", "b"]).lines == ("a", "b")


@pytest.mark.parametrize(
    "args",
    [(550, b"5.1.1 text"), (550, ("ok", 5)), ("550", ("x",)), (True, ()), (550.0, ())],
    ids=repr,
)
def test_a_reply_that_cannot_be_one_is_refused(args: tuple[Any, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        smtpx.Reply(*args)
