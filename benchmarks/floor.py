"""The raw-socket floor: the least work a Python SMTP client on asyncio can do per message.

It is the "how far from the limit" line of the benchmark, not a client anyone should
use.  Per connection: one EHLO (read once for PIPELINING), then for every message
``MAIL``, every ``RCPT`` and ``DATA`` in one write when the server pipelines (one at a
time when it does not), then the message and its end in one write.  It does only what
the protocol needs to be correct for the harness's messages:

- the wire form of the message is built once (the harness's messages have CRLF lines and
  no line starting with a dot, so nothing needs stuffing; a message that does not end in
  CRLF is refused up front);
- a reply is only counted and its first digit checked (2 for MAIL/RCPT/end of data, 3
  for DATA): no parsing, no classification, no address checks, no timers;
- it never reconnects.

Anything it does not expect (a refusal, a multi-line reply mid-transaction, a closed
connection) raises ``FloorError``: the run is then reported as failed, never as fast.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

Send = Callable[[], Awaitable[None]]


class FloorError(RuntimeError):
    """The server answered something the floor client does not expect."""


class _Connection(asyncio.Protocol):
    """One SMTP connection; ``replies(n)`` waits for ``n`` more reply lines."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.wanted = 0
        self.waiter: asyncio.Future[bytes] | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or FloorError("connection closed by the server")
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(self.lost)

    def _wake(self) -> None:
        if self.waiter is None or self.waiter.done():
            return
        if self.buffer.count(b"\r\n") >= self.wanted:
            end = 0
            for _ in range(self.wanted):
                end = self.buffer.index(b"\r\n", end) + 2
            self.waiter.set_result(bytes(self.buffer[:end]))
            del self.buffer[:end]

    def replies(self, count: int) -> asyncio.Future[bytes]:
        """The next ``count`` reply lines, as received (single-line replies expected)."""
        if self.lost is not None:
            raise FloorError(f"connection lost: {self.lost}")
        self.wanted = count
        self.waiter = asyncio.get_running_loop().create_future()
        self._wake()
        return self.waiter

    async def reply_block(self) -> bytes:
        """One whole reply, continuation lines included (greeting, EHLO)."""
        text = b""
        while True:
            line = await self.replies(1)
            text += line
            if line[3:4] != b"-":
                return text


def _check(replies: bytes, expected: bytes) -> None:
    """``replies`` holds one line per expected first digit; anything else raises."""
    lines = replies.split(b"\r\n")[:-1]
    if len(lines) != len(expected) or any(
        line[:1] != expected[i : i + 1] or line[3:4] != b" " for i, line in enumerate(lines)
    ):
        raise FloorError(f"unexpected replies {replies[:200]!r} (wanted {expected!r})")


class FloorClient:
    """One raw connection sending the same message to the same recipients, again and again."""

    def __init__(self, sender: str, recipients: Sequence[str], message: bytes) -> None:
        if not message.endswith(b"\r\n"):
            raise FloorError("the floor client sends messages that end in CRLF only")
        self.mail = b"MAIL FROM:<%s>\r\n" % sender.encode("ascii")
        self.rcpt_lines = [b"RCPT TO:<%s>\r\n" % r.encode("ascii") for r in recipients]
        self.rcpts = b"".join(self.rcpt_lines)
        self.count = len(recipients)
        self.payload = message + b".\r\n"  # no line starts with '.': nothing to stuff
        self.conn = _Connection()
        self.pipelining = False

    async def connect(self, host: str, port: int, local_hostname: str) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: self.conn, host, port)
        _check(await self.conn.reply_block(), b"2")
        assert self.conn.transport is not None
        self.conn.transport.write(b"EHLO %s\r\n" % local_hostname.encode("ascii"))
        ehlo = await self.conn.reply_block()
        if not ehlo.startswith(b"250"):
            raise FloorError(f"EHLO refused: {ehlo[:200]!r}")
        self.pipelining = b"PIPELINING" in ehlo.upper()

    async def send(self) -> None:
        conn, write = self.conn, self._write
        if self.pipelining:
            write(self.mail + self.rcpts + b"DATA\r\n")
            _check(await conn.replies(self.count + 2), b"2" * (self.count + 1) + b"3")
        else:
            write(self.mail)
            _check(await conn.replies(1), b"2")
            for line in self.rcpt_lines:
                write(line)
                _check(await conn.replies(1), b"2")
            write(b"DATA\r\n")
            _check(await conn.replies(1), b"3")
        write(self.payload)
        _check(await conn.replies(1), b"2")

    def _write(self, data: bytes) -> None:
        assert self.conn.transport is not None
        self.conn.transport.write(data)

    async def quit(self) -> None:
        if self.conn.transport is None or self.conn.lost is not None:
            return
        self._write(b"QUIT\r\n")
        try:
            await asyncio.wait_for(self.conn.replies(1), 5)
        finally:
            self.conn.transport.close()


async def open_floor(
    host: str,
    port: int,
    local_hostname: str,
    sender: str,
    recipients: Sequence[str],
    message: bytes,
    connections: int,
) -> tuple[Send, Callable[[], Any]]:
    """``connections`` raw connections; a send takes an idle one (the harness runs at most
    ``connections`` concurrent senders, so one is always idle)."""
    every = [FloorClient(sender, recipients, message) for _ in range(connections)]
    await asyncio.gather(*(c.connect(host, port, local_hostname) for c in every))
    idle = list(every)

    async def send() -> None:
        client = idle.pop()
        try:
            await client.send()
        finally:
            idle.append(client)

    async def close() -> None:
        await asyncio.gather(*(c.quit() for c in every), return_exceptions=True)

    return send, close
