"""A TCP proxy on loopback in front of a real server, for faults no server makes by itself.

``FaultProxy((host, port))`` listens on ``listen_host`` (any 127.x.y.z address works on
Linux, so a proxy on ``127.0.0.2`` reaches a server whose certificate names only
``127.0.0.1`` and ``localhost``) and forwards each connection to the target:

- ``split=True``: every byte from the server goes to the client in its own write (its own
  TCP segment: ``TCP_NODELAY``), ``gap`` seconds apart, so each reply arrives in pieces;
- ``tls=context``: the proxy terminates TLS with that server context (implicit TLS, as on
  port 465) and talks plaintext to the target, so a plain server can present any
  certificate (an expired one, say).

The client's bytes always go through unchanged; a close on either side closes the other
once everything before it has been forwarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from typing import Self


class FaultProxy:
    def __init__(
        self,
        target: tuple[str, int],
        *,
        listen_host: str = "127.0.0.1",
        split: bool = False,
        gap: float = 0.0005,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.target = target
        self.host = listen_host
        self.port = 0
        self.split = split
        self.gap = gap
        self.tls = tls
        self.server_writes = 0  # writes towards the client (one per byte when split)
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, self.host, 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        sock = client_writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        try:
            upstream = asyncio.ensure_future(self._pump(client_reader, server_writer, False))
            downstream = asyncio.ensure_future(self._pump(server_reader, client_writer, True))
            # Either side closing ends the session (after its bytes were forwarded).
            await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
            for pump in (upstream, downstream):
                pump.cancel()
            await asyncio.gather(upstream, downstream, return_exceptions=True)
        finally:
            for writer in (server_writer, client_writer):
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 1)
            self._tasks.discard(task)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, to_client: bool
    ) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while data := await reader.read(65536):
                if to_client and self.split:
                    for byte in data:
                        writer.write(bytes([byte]))
                        self.server_writes += 1
                        await writer.drain()
                        await asyncio.sleep(self.gap)
                else:
                    if to_client:
                        self.server_writes += 1
                    writer.write(data)
                    await writer.drain()
