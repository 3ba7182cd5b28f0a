"""Timers per message: a send on an open connection arms none of its own.

The total time-out (``total_timeout``) is watched by the connection's read timer, which
stays armed across exchanges; these tests count ``loop.call_at`` around sends over a
real loopback socket, and check that the total deadline still ends a stalled send
when it falls before the read deadline.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import smtpx

HEAD = b"From: a@example.com\r\nTo: b@example.com\r\n\r\n"
PLAIN = {"tls": "none", "local_hostname": "client.test", "add_missing_headers": False}


def sink(*, chunking: bool, stall_at: bytes | None = None) -> Any:
    """A PIPELINING server that accepts everything (with CHUNKING if asked), or
    stops answering after the command that starts with ``stall_at``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 sink.test ESMTP\r\n")
        in_data = False
        while line := await reader.readline():
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    writer.write(b"250 queued\r\n")
                continue
            if stall_at is not None and line.startswith(stall_at):
                await reader.read()  # answers nothing more; ends when the client drops
                return
            if line.startswith(b"EHLO"):
                extra = b"250-CHUNKING\r\n" if chunking else b""
                writer.write(b"250-sink.test\r\n" + extra + b"250 PIPELINING\r\n")
            elif line.startswith(b"DATA"):
                in_data = True
                writer.write(b"354 go ahead\r\n")
            elif line.startswith(b"BDAT"):
                await reader.readexactly(int(line.split()[1]))
                writer.write(b"250 queued\r\n")
            elif line.startswith(b"QUIT"):
                writer.write(b"221 bye\r\n")
            else:
                writer.write(b"250 ok\r\n")

    return serve


@pytest.fixture
async def listen() -> AsyncIterator[Callable[[Any], Any]]:
    started: list[asyncio.Server] = []

    async def start(serve: Any) -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        server = await asyncio.start_server(serve, sock=sock)
        started.append(server)
        return int(sock.getsockname()[1])

    yield start
    for server in started:
        server.close()


def count_call_at(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record every ``call_at`` on the running loop (``call_later`` goes through it)."""
    loop = asyncio.get_running_loop()
    calls: list[float] = []
    real = loop.call_at

    def counting(when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        calls.append(when)
        return real(when, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_at", counting)
    return calls


@pytest.mark.parametrize("chunking", [False, True], ids=["DATA", "BDAT"])
@pytest.mark.parametrize("total_timeout", [600.0, None], ids=["total", "no-total"])
async def test_a_pipelined_send_on_an_open_connection_arms_no_timer(
    listen: Callable[[Any], Any],
    monkeypatch: pytest.MonkeyPatch,
    chunking: bool,
    total_timeout: float | None,
) -> None:
    port = await listen(sink(chunking=chunking))
    client = smtpx.Client(
        "127.0.0.1",
        port,
        timeout=30.0,
        total_timeout=total_timeout,
        **PLAIN,  # type: ignore[arg-type]
    )
    await client.connect()
    await client.send(HEAD + b"warm-up\r\n")  # the read timer is armed from here on
    calls = count_call_at(monkeypatch)
    for n in range(20):
        result = await client.send(HEAD + b"message %d\r\n" % n)
        assert result.accepted == ("b@example.com",)
    assert calls == []  # before: one asyncio.timeout timer per message
    await client.quit()


@pytest.mark.parametrize(
    ("stall_at", "unknown"),
    [(b"MAIL", False), (b"DATA", False), (b"BDAT", True)],  # BDAT LAST: the end has left
)
async def test_the_total_deadline_ends_a_stalled_send_on_an_open_connection(
    listen: Callable[[Any], Any], stall_at: bytes, unknown: bool
) -> None:
    # The read timer is armed at a read deadline 30 s away; the total deadline, 0.2 s
    # away, comes first and must end the send as the total time-out, not the read one.
    port = await listen(sink(chunking=stall_at == b"BDAT", stall_at=stall_at))
    client = smtpx.Client(
        "127.0.0.1",
        port,
        timeout=30.0,
        total_timeout=0.2,
        **PLAIN,  # type: ignore[arg-type]
    )
    await client.connect()
    with pytest.raises((smtpx.ResponseTimeout, smtpx.DeliveryUnknown)) as info:
        await client.send(HEAD + b"hello\r\n")
    error = info.value
    assert "total_timeout=0.2" in str(error)
    assert isinstance(error, smtpx.DeliveryUnknown) is unknown
    assert error.retryable is not unknown
    assert isinstance(error.__cause__, TimeoutError)
    assert not client.connected
