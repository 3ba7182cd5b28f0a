"""A raw SMTP responder that records every byte it receives: for wire-level tests.

It answers like a permissive server (it does not parse addresses) and can be
told to misbehave: trickle its replies one byte at a time, or send an endless
reply.  Unlike aiosmtpd it hides nothing, so tests see exactly what smtpx sent.
"""

from __future__ import annotations

import asyncio
from typing import Self

EHLO = b"250-raw.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 100000000\r\n"


class RawServer:
    def __init__(
        self,
        *,
        trickle: float | None = None,
        endless: bytes | None = None,
        pipelining: bool = False,
        rcpt_reply: bytes = b"250 ok\r\n",
        drop_after: int | None = None,
        chunking: bool = False,
        final_reply: bytes = b"250 2.0.0 queued\r\n",
    ) -> None:
        self.trickle = trickle  # seconds between bytes of each reply
        self.endless = endless  # sent forever instead of the greeting
        self.ehlo = EHLO
        if pipelining:
            self.ehlo = self.ehlo.replace(b"250 SIZE", b"250-PIPELINING\r\n250 SIZE")
        if chunking:
            self.ehlo = self.ehlo.replace(b"250 SIZE", b"250-CHUNKING\r\n250 SIZE")
        self.final_reply = final_reply  # to the final "." or BDAT LAST, with a recipient
        self.rcpt_reply = rcpt_reply
        self.drop_after = drop_after  # close after this many octets of message content
        self.received = bytearray()
        self.host = "127.0.0.1"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._session(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _reply(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if self.trickle is None:
            writer.write(data)
            await writer.drain()
            return
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(self.trickle)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.endless is not None:
            for _ in range(100_000):  # bounded: ~100k chunks at most
                writer.write(self.endless)
                await writer.drain()
            return
        await self._reply(writer, b"220 raw.test ESMTP\r\n")
        recipients = 0
        while True:
            line = await reader.readline()
            if not line:
                return
            self.received += line
            verb = line[:4].upper()
            if verb == b"EHLO":
                await self._reply(writer, self.ehlo)
            elif verb == b"MAIL":
                recipients = 0
                await self._reply(writer, b"250 ok\r\n")
            elif verb == b"RCPT":
                recipients += self.rcpt_reply.startswith(b"2")
                await self._reply(writer, self.rcpt_reply)
            elif verb == b"BDAT":
                # RFC 3030: the chunk is read whatever the answer, to stay in step
                size = int(line.split()[1])
                if self.drop_after is not None and size > self.drop_after:
                    self.received += await reader.readexactly(self.drop_after)
                    return  # closed mid-chunk
                self.received += await reader.readexactly(size)
                if not recipients:
                    await self._reply(writer, b"554 5.5.1 Error: no valid recipients\r\n")
                else:
                    await self._reply(writer, self.final_reply)
            elif verb == b"DATA":
                # like a careless server: 354 even when no recipient was accepted
                await self._reply(writer, b"354 go ahead\r\n")
                content = 0
                while (body_line := await reader.readline()) not in (b".\r\n", b""):
                    self.received += body_line
                    content += len(body_line)
                    if self.drop_after is not None and content >= self.drop_after:
                        return  # closed mid-message
                self.received += b".\r\n"
                await self._reply(writer, self.final_reply)
            elif verb == b"QUIT":
                await self._reply(writer, b"221 bye\r\n")
                return
            else:
                await self._reply(writer, b"250 ok\r\n")

    def commands(self) -> list[bytes]:
        """The command lines received, message content left out."""
        return [line for line, _ in self._split()]

    def chunks(self) -> list[bytes]:
        """The octets that followed each BDAT command."""
        return [content for line, content in self._split() if line.upper().startswith(b"BDAT")]

    def _split(self) -> list[tuple[bytes, bytes]]:
        """(command line, the content that followed it: DATA's or BDAT's, else b"")."""
        parts: list[tuple[bytes, bytes]] = []
        data = bytes(self.received)
        while data:
            line, _, data = data.partition(b"\r\n")
            content = b""
            if line.upper() == b"DATA":
                content, _, data = (b"\r\n" + data).partition(b"\r\n.\r\n")
            elif line.upper().startswith(b"BDAT"):
                size = int(line.split()[1])
                content, data = data[:size], data[size:]
            parts.append((line, content))
        return parts

    def message_bodies(self) -> list[bytes]:
        """Each DATA payload as sent, terminator included."""
        bodies = []
        data = bytes(self.received)
        while b"\r\nDATA\r\n" in data or data.startswith(b"DATA\r\n"):
            _, _, data = data.partition(b"DATA\r\n")
            body, _, data = (b"\r\n" + data).partition(b"\r\n.\r\n")
            bodies.append(body[2:] + b"\r\n.\r\n" if body else b".\r\n")
        return bodies
