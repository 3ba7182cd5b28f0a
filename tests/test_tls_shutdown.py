"""ScriptedServer over TLS stops cleanly in every state a connection's TLS shutdown can be in.

On CPython 3.11.0 to 3.11.3 (Debian 12's ``python3`` is 3.11.2) a TLS transport that is
closed twice forgets its protocol, and ``abort()`` then raises ``AttributeError: 'NoneType'
object has no attribute '_abort'`` (python/cpython gh-98539, fixed in 3.11.4 by gh-104474).
aiosmtpd closes the transport twice after QUIT (once answering it, once when the session
task ends), so a server stopped while the client had not yet finished the TLS shutdown
crashed.  The client here is a blocking ``ssl`` socket in a thread: it never answers the
server's close_notify by itself, which holds the shutdown open for as long as the test needs.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import BinaryIO

import pytest
from tls_ca import LocalCA

from smtpx.testing import ScriptedServer

MODES = ("starttls", "implicit")
# What the client has done when the server stops:
STAGES = (
    "idle",  # a TLS session, waiting for the next command
    "quit-answered",  # QUIT answered, the server's close_notify unanswered (closed twice)
    "gone",  # QUIT answered, then the TCP connection dropped without a close_notify
)


def _reply(stream: BinaryIO) -> bytes:
    """The last line of one (possibly multi-line) reply."""
    while True:
        line = stream.readline()
        if len(line) < 4 or line[3:4] != b"-":
            return line


def _command(stream: BinaryIO, line: bytes) -> bytes:
    stream.write(line + b"\r\n")
    return _reply(stream)


def _session(port: int, context: ssl.SSLContext, mode: str, stage: str) -> socket.socket:
    """Run the client side up to *stage* and return its socket (blocking: call in a thread)."""
    sock: socket.socket = socket.create_connection(("127.0.0.1", port), timeout=10)
    if mode == "implicit":
        sock = context.wrap_socket(sock, server_hostname="localhost")
    # unbuffered: nothing past a reply is read, so no byte of the TLS handshake is lost
    stream: BinaryIO = sock.makefile("rwb", buffering=0)  # type: ignore[assignment]
    assert _reply(stream).startswith(b"220 ")
    assert _command(stream, b"EHLO client.example").startswith(b"250 ")
    if mode == "starttls":
        assert _command(stream, b"STARTTLS").startswith(b"220 ")
        sock = context.wrap_socket(sock, server_hostname="localhost")
        stream = sock.makefile("rwb", buffering=0)  # type: ignore[assignment]
        assert _command(stream, b"EHLO client.example").startswith(b"250 ")
    if stage != "idle":
        assert _command(stream, b"QUIT").startswith(b"221 ")
    if stage == "gone":
        sock.close()  # no unwrap(): the server sees the TCP connection end mid-shutdown
    return sock


async def _sessions_ended() -> None:
    """Until the server's session tasks (every task but this one) have finished."""
    current = asyncio.current_task()
    async with asyncio.timeout(10):  # a safety net against a hang, not a measurement
        while others := [task for task in asyncio.all_tasks() if task is not current]:
            await asyncio.wait(others)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("mode", MODES)
async def test_stop_ends_every_tls_connection_without_error(
    ca: LocalCA, mode: str, stage: str
) -> None:
    server = ScriptedServer(tls_context=ca.server_context(), implicit_tls=mode == "implicit")
    await server.start()
    try:
        sock = await asyncio.to_thread(_session, server.port, ca.client_context(), mode, stage)
        if stage != "idle":  # let aiosmtpd finish the session: its second close happens here
            await _sessions_ended()
    except BaseException:
        await server.stop()
        raise
    try:
        await server.stop()  # raised AttributeError on CPython < 3.11.4 before the fix
    finally:
        sock.close()
    verbs = [line.split(b" ")[0] for line in server.transcript]
    starttls = [b"STARTTLS", b"EHLO"] if mode == "starttls" else []
    quit_ = [] if stage == "idle" else [b"QUIT"]
    assert verbs == [b"EHLO", *starttls, *quit_]
    with pytest.raises(ConnectionRefusedError):  # and it no longer listens
        socket.create_connection(("127.0.0.1", server.port), timeout=10).close()
