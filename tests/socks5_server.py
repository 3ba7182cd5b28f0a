"""A small SOCKS5 proxy for tests: RFC 1928 CONNECT, with RFC 1929 user/password auth.

It relays octets both ways between the client and the target it asks for, and records
each CONNECT's target, so a test can tell that the connection really went through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import struct

from ports import HOST as LOOPBACK

_VERSION, _NO_AUTH, _USER_PASSWORD, _NO_METHOD = 5, 0x00, 0x02, 0xFF
_CONNECT = 1
_IPV4, _DOMAIN, _IPV6 = 1, 3, 4
_SUCCEEDED, _REFUSED, _UNSUPPORTED = 0x00, 0x05, 0x07


class Socks5Server:
    """``async with Socks5Server(username=..., password=...) as proxy``: ``proxy.url``."""

    def __init__(self, username: str | None = None, password: str | None = None) -> None:
        self.username = username
        self.password = password
        self.targets: list[tuple[str, int]] = []
        self.failed_logins = 0
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()
        self.port = 0

    def url(self, username: str | None = None, password: str | None = None) -> str:
        user = f"{username}:{password}@" if username is not None else ""
        return f"socks5://{user}{LOOPBACK}:{self.port}"

    async def __aenter__(self) -> Socks5Server:
        self._server = await asyncio.start_server(self._handle, LOOPBACK, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._relays:
            task.cancel()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._negotiate(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def _negotiate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        wanted = _USER_PASSWORD if self.username is not None else _NO_AUTH
        if version != _VERSION or wanted not in methods:
            writer.write(bytes([_VERSION, _NO_METHOD]))
            writer.close()
            return
        writer.write(bytes([_VERSION, wanted]))
        if wanted == _USER_PASSWORD:  # RFC 1929: VER=1, ULEN, UNAME, PLEN, PASSWD
            _, ulen = await reader.readexactly(2)
            user = (await reader.readexactly(ulen)).decode()
            (plen,) = await reader.readexactly(1)
            password = (await reader.readexactly(plen)).decode()
            good = (user, password) == (self.username, self.password)
            writer.write(bytes([1, 0 if good else 1]))
            if not good:
                self.failed_logins += 1
                writer.close()
                return
        _, command, _, kind = await reader.readexactly(4)
        if kind == _IPV4:
            host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
        elif kind == _IPV6:
            host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
        else:
            (length,) = await reader.readexactly(1)
            host = (await reader.readexactly(length)).decode()
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        if command != _CONNECT:
            writer.write(self._reply(_UNSUPPORTED))
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.write(self._reply(_REFUSED))
            writer.close()
            return
        self.targets.append((host, port))
        writer.write(self._reply(_SUCCEEDED))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(_pipe(source, sink))
            self._relays.add(task)
            task.add_done_callback(self._relays.discard)

    @staticmethod
    def _reply(status: int) -> bytes:
        return bytes([_VERSION, status, 0, _IPV4]) + bytes(4) + b"\0\0"


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            sink.close()
