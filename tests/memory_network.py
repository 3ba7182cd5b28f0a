"""The real asyncio ``Client`` over an in-memory connection to ``MemoryServer``.

``MemoryNetwork`` is a ``smtpx._network.Network``: each connection is a fake transport
joined to a fresh ``MemoryServer`` (all sharing one ``Mailstore``).  One ``Cut`` may
fire on the first connection, after ``offset`` octets of the client's writes or of the
server's replies went through: the connection is lost, stalls (the edge's read or
total time-out fires), or the caller's task is cancelled.  ``VirtualLoop`` runs it all
on a clock that jumps ahead when nothing is ready, so a stall costs no real time.
"""

from __future__ import annotations

import asyncio
import selectors
import ssl
from typing import Any

import attrs
from memory_server import Mailstore, MemoryServer, Script

from smtpx._network import Network


class _NoIOSelector(selectors.BaseSelector):
    """A selector that never waits: select(timeout) moves the loop's clock instead."""

    def __init__(self) -> None:
        self._map: dict[Any, selectors.SelectorKey] = {}
        self.loop: VirtualLoop | None = None

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = selectors.SelectorKey(fileobj, fileobj, events, data)
        self._map[fileobj] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._map.pop(fileobj)

    def select(self, timeout: float | None = None) -> list[Any]:
        assert self.loop is not None
        if timeout is None:
            raise AssertionError("deadlock: nothing scheduled and nothing ready")
        self.loop.now += max(timeout, 0.0)
        return []

    def get_map(self) -> Any:
        return self._map

    def close(self) -> None:
        self._map.clear()


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        selector = _NoIOSelector()
        super().__init__(selector)
        selector.loop = self
        self.now = 0.0

    def time(self) -> float:
        return self.now


@attrs.frozen
class Cut:
    side: str  # "client" (its writes) or "server" (its replies)
    offset: int
    what: str  # "lost", "stall" or "cancel"


class MemoryTransport(asyncio.Transport):
    def __init__(self, network: MemoryNetwork, protocol: Any, server: MemoryServer) -> None:
        super().__init__()
        self.network, self.protocol, self.server = network, protocol, server
        self.loop = asyncio.get_running_loop()
        self.closing = False
        self.stalled = False
        self.cut = network.take_cut()
        self.written = 0
        self.delivered = 0
        self.loop.call_soon(self._deliver)

    # -- the fault ----------------------------------------------------------------------

    def _room(self, side: str, done: int, size: int) -> int:
        cut = self.cut
        if cut is None or cut.side != side or done + size <= cut.offset:
            return size
        return max(cut.offset - done, 0)

    def _fire(self) -> None:
        cut = self.cut
        assert cut is not None
        self.cut = None
        self.network.fired = True
        if cut.what == "lost":
            self._lose()
        elif cut.what == "stall":
            self.stalled = True
        else:
            self.stalled = True
            if self.network.task is not None:  # else: QUIT on closing, nobody to cancel
                self.network.task.cancel()

    def _lose(self) -> None:
        if not self.closing:
            self.closing = True
            self.loop.call_soon(self.protocol.connection_lost, None)

    # -- asyncio.Transport --------------------------------------------------------------

    def write(self, data: Any) -> None:
        if self.closing or self.stalled:
            return
        data = bytes(data)
        room = self._room("client", self.written, len(data))
        self.written += room
        self.server.receive(data[:room])
        if room < len(data):
            self._fire()
            return
        self.loop.call_soon(self._deliver)

    def _deliver(self) -> None:
        if self.closing or self.stalled:
            return
        out = self.server.take_output()
        room = self._room("server", self.delivered, len(out))
        for start in range(0, room, 65536):
            piece = out[start : min(room, start + 65536)]
            buffer = self.protocol.get_buffer(len(piece))
            buffer[: len(piece)] = piece
            self.protocol.buffer_updated(len(piece))
            if self.closing:
                return
        self.delivered += room
        if room < len(out):
            self._fire()
        elif self.server.closed:
            self._lose()

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self._lose()

    def close(self) -> None:
        self._lose()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class MemoryNetwork(Network):
    """Connections to ``MemoryServer``s scripted by ``script``; ``cut`` on the first."""

    def __init__(self, script: Script, cut: Cut | None = None) -> None:
        self.script = script
        self.store = Mailstore()
        self.cut = cut
        self.fired = False
        self.connections = 0
        self.task: asyncio.Task[Any] | None = None
        self.transports: list[MemoryTransport] = []

    def take_cut(self) -> Cut | None:
        cut, self.cut = self.cut, None
        return cut

    async def connect(
        self,
        protocol: asyncio.BaseProtocol,
        host: str,
        port: int,
        context: ssl.SSLContext | None,
        timeout: float,
    ) -> asyncio.Transport:
        self.connections += 1
        server = MemoryServer(self.script, self.store)
        transport = MemoryTransport(self, protocol, server)
        self.transports.append(transport)
        protocol.connection_made(transport)
        return transport

    async def start_tls(
        self,
        transport: asyncio.Transport,
        protocol: asyncio.BaseProtocol,
        context: ssl.SSLContext,
        host: str,
        timeout: float,
    ) -> asyncio.Transport:
        assert isinstance(transport, MemoryTransport)
        transport.server.start_tls()
        return transport

    async def speaks_tls(self, host: str, port: int, timeout: float) -> bool:
        return False
