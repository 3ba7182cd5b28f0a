"""The asyncio edge: moves octets between a ``smtpx.protocol.Session`` and a socket.

Everything below smtpx is met here and nowhere else: the event loop, ``ssl``,
``OSError`` and asyncio's exceptions are translated into smtpx errors in this module
(the original kept as ``__cause__``).  The edge decides nothing about SMTP: it writes
what the session gives, feeds it what the server sends, and reports what happened to
the connection (``Session.interrupt``); flows and the session's ledger decide.

aiosmtplib names used that are not public API: none.  The connection is opened with
``loop.create_connection`` itself: aiosmtplib's ``SMTP.connect()`` reads the greeting
with its own (lenient) parser and its protocol is not a buffered one, so taking the
connection through it would add a parser to work around and private names to track,
and nothing the session needs.  aiosmtplib's exceptions can therefore not arise.

Opening the connection (``Network``) and translating its failures live in
``smtpx._network``; this module runs the session over the connection once open.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
from collections.abc import Callable
from typing import Any, TypeVar

from smtpx import errors as e
from smtpx._commands import Command
from smtpx._end_of_message import current_hook
from smtpx._network import DEFAULT_NETWORK, NETWORK, Network, Origin, connect_error, tls_error
from smtpx._transcript import Transcript
from smtpx.protocol.flow import Action, Flow
from smtpx.protocol.interruptions import Interruption
from smtpx.protocol.limits import WRITE_BUFFER_HIGH, WRITE_BUFFER_LOW, WRITE_SLICE
from smtpx.protocol.session import Session

__all__ = ["Connection", "Network", "open_connection"]

T = TypeVar("T")

#: Non-public aiosmtplib names this module relies on (tested against every allowed
#: aiosmtplib version): none.
AIOSMTPLIB_PRIVATE_NAMES: tuple[str, ...] = ()

_READ_SIZE = 64 * 1024  # octets per read from the socket
_SEND, _RECEIVE, _START_TLS = Action.SEND, Action.RECEIVE, Action.START_TLS

# With no greeting after this long, check whether the port expects TLS from its
# first byte (as port 465 does): it then waits for our ClientHello and never greets.
GREETING_PROBE_AFTER = 2.0


_CAUSES: dict[Interruption, Callable[[str], BaseException]] = {
    Interruption.CONNECTION_LOST: ConnectionResetError,
    Interruption.READ_TIMEOUT: TimeoutError,
    Interruption.TOTAL_TIMEOUT: TimeoutError,
    Interruption.CANCELLED: asyncio.CancelledError,
    Interruption.TLS_ERROR: ssl.SSLError,
}


class Connection(asyncio.BufferedProtocol):
    """One SMTP connection: the asyncio protocol that drives a session's flows.

    A flow runs in the protocol's callbacks: each write the session gives is handed to
    the transport at once (and reported with ``wrote`` before anything else happens),
    each read goes to ``receive_data``, and the flow's next step follows without a
    task switch; the caller awaits one future per exchange.  The read time-out is one
    deadline per exchange, moved on whenever octets move.  A buffered protocol: the
    transport reads into one buffer we own (with ``data_received`` asyncio allocates
    256 KiB per read).
    """

    def __init__(self, session: Session, *, timeout: float, transcript: bool = False) -> None:
        self.session = session
        self.timeout = timeout
        self.transcript = transcript
        self.transport: asyncio.Transport | None = None
        self.lost = False
        #: What ended the connection below SMTP (the ``__cause__`` of the flow's error).
        self.cause: BaseException | None = None
        self._loop = asyncio.get_running_loop()
        self._read_into = memoryview(bytearray(_READ_SIZE))
        self._flow: Flow[Any] | None = None
        self._done: asyncio.Future[Action] | None = None
        self._raised: BaseException | None = None
        self._paused = False
        self._deadline = 0.0
        self._total_at = math.inf  # the send's "no later than" (loop time)
        self._total_detail = ""
        self._timer: asyncio.TimerHandle | None = None
        self._hook: Callable[[tuple[str, ...]], None] | None = None
        self._greeted: asyncio.Future[None] | None = None
        self._log = Transcript(session.greeting)

    # -- asyncio callbacks --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport
        _keep_the_socket_full(self.transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_into

    def buffer_updated(self, nbytes: int) -> None:
        session = self.session
        session.receive_data(self._read_into[:nbytes])
        if self.transcript:
            self._log.replies()
        if self._flow is not None:
            self._deadline = self._loop.time() + self.timeout
            self._advance()
        elif session.closed:
            self.abort()  # closed while idle (a 421, a reply that answers nothing)
        if self._greeted is not None and (session.greeting.answered or session.closed):
            self._wake_greeted()

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._drop_timer()
        if self.cause is None:
            self.cause = exc or ConnectionResetError("the server closed the connection")
        if not self.session.closed:
            detail = f"the connection was lost: {exc}" if exc else None
            self.session.interrupt(Interruption.CONNECTION_LOST, unsent=None, detail=detail)
        self._advance()
        self._wake_greeted()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._flow is not None:
            self._deadline = self._loop.time() + self.timeout
            self._advance()

    # -- the connection -----------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return not self.lost and not self.session.closed

    def abort(self) -> None:
        """Drop the connection at once (never a graceful close: nothing more may leave)."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.abort()

    def unsent(self) -> int | None:
        """Octets handed to the transport and still in its buffer (None once it is gone)."""
        transport = self.transport
        if transport is None or self.lost or transport.is_closing():
            return None
        return transport.get_write_buffer_size()

    def interrupt(self, what: Interruption, detail: str | None = None) -> None:
        """Judge the ledger for ``what``, then drop the connection."""
        if not self.session.closed:
            self.session.interrupt(what, unsent=self.unsent(), detail=detail)
            if self.cause is None:
                self.cause = _CAUSES[what](detail or what.value)
        self.abort()
        self._advance()

    async def greeting(self, host: str, port: int, network: Network, probe: bool) -> None:
        """Wait for the greeting; meanwhile, after ``GREETING_PROBE_AFTER`` of silence,
        ask the port whether it expects TLS from its first byte (``TLSModeMismatch``).
        No greeting within the time-out interrupts the session (``ConnectTimeout``)."""
        session = self.session
        if session.greeting.answered or session.closed:
            return
        waiter = self._greeted = self._loop.create_future()
        probing: asyncio.Task[bool] | None = None
        try:
            if probe and self.timeout > GREETING_PROBE_AFTER:
                done, _ = await asyncio.wait((waiter,), timeout=GREETING_PROBE_AFTER)
                if done:
                    return
                remaining = self.timeout - GREETING_PROBE_AFTER
                probing = asyncio.ensure_future(network.speaks_tls(host, port, remaining))
                await asyncio.wait((waiter, probing), return_when=asyncio.FIRST_COMPLETED)
                if not waiter.done() and await probing:
                    session.close()
                    self.abort()
                    raise e.TLSModeMismatch(
                        f"{host}:{port} sent no greeting and speaks TLS from the first byte "
                        "(implicit TLS, as port 465 does); use TLSMode.IMPLICIT",
                        command=Command.CONNECT,
                    )
                remaining = self.timeout - GREETING_PROBE_AFTER
            else:
                remaining = self.timeout
            done, _ = await asyncio.wait((waiter,), timeout=remaining)
            if not done:
                self.interrupt(Interruption.READ_TIMEOUT)
        except asyncio.CancelledError:
            self.interrupt(Interruption.CANCELLED)
            raise
        finally:
            self._greeted = None
            if probing is not None:
                probing.cancel()

    def _wake_greeted(self) -> None:
        if self._greeted is not None and not self._greeted.done():
            self._greeted.set_result(None)

    # -- running a flow -----------------------------------------------------------------

    async def run(
        self,
        flow: Flow[T],
        *,
        network: Network,
        host: str,
        context: Callable[[], ssl.SSLContext],
        total: asyncio.Timeout | None = None,
        total_at: float | None = None,
        total_detail: str = "",
    ) -> T:
        """Run ``flow`` to its end: its result, or its error raised.

        The send's total time-out is ``total_at`` (a loop time, watched by the read
        timer) or ``total`` (an ``asyncio.Timeout``): past either, the flow's error is
        judged as ``TOTAL_TIMEOUT``.  A cancellation is re-raised (the verdict stays on
        ``session.verdict``)."""
        self._total_at = math.inf if total_at is None else total_at
        self._total_detail = total_detail
        while True:
            action = await self._run_until_over(flow, total, total_detail)
            if action is not _START_TLS:
                break
            await self._start_tls(network, host, context())
        if self.session.closed:
            self.abort()
        error = flow.error
        if error is not None:
            if error.__cause__ is None and self.cause is not None and self.session.verdict:
                raise error from self.cause
            raise error
        return flow.result  # type: ignore[return-value]  # DONE: the flow's result

    async def _run_until_over(
        self, flow: Flow[T], total: asyncio.Timeout | None, total_detail: str
    ) -> Action:
        self._flow = flow
        self._hook = current_hook()  # the caller's task's hook, not the callbacks' context
        self._raised = None
        loop = self._loop
        self._deadline = loop.time() + self.timeout
        done: asyncio.Future[Action] = loop.create_future()
        self._done = done
        self._advance()
        if not done.done():
            due, timer = min(self._deadline, self._total_at), self._timer
            if timer is not None and timer.when() > due:  # the total deadline comes first
                timer.cancel()
                timer = None
            if timer is None:  # else the armed timer finds the new deadline
                self._timer = loop.call_at(due, self._expire)
            try:
                await done
            except asyncio.CancelledError as cancel:
                if total is not None and total.expired():
                    self.interrupt(Interruption.TOTAL_TIMEOUT, total_detail)
                    if flow.error is not None:
                        raise flow.error from cancel
                else:
                    self.interrupt(Interruption.CANCELLED)
                raise
            finally:
                self._finish()
        self._finish()
        if self._raised is not None:
            raised, self._raised = self._raised, None
            raise raised
        return done.result()

    def _finish(self) -> None:
        # The read timer stays armed: the next exchange moves the deadline instead of
        # making and cancelling a timer of its own (back-to-back sends on a busy
        # connection would otherwise cost a timer each).  A timer that fires between
        # exchanges lets itself go.
        self._flow = None
        self._hook = None
        if self.lost:
            self._drop_timer()

    def _drop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self._flow is None or self.lost:
            return  # between exchanges: the next one arms a timer again
        now = self._loop.time()
        if now >= self._total_at:
            self.interrupt(Interruption.TOTAL_TIMEOUT, self._total_detail)
            return
        if now < self._deadline:  # octets moved since (or the total is not due): wait on
            self._timer = self._loop.call_at(min(self._deadline, self._total_at), self._expire)
            return
        self.interrupt(Interruption.READ_TIMEOUT, f"no reply within timeout={self.timeout}s")

    def _advance(self) -> None:
        """Take the flow's steps until it waits for the server, the transport, a
        handshake, or is over."""
        flow = self._flow
        if flow is None:
            return
        session = self.session
        try:
            while True:
                action = flow.next_action()
                if action is _SEND:
                    if self._paused:
                        return  # resume_writing() goes on
                    transport = self.transport
                    assert transport is not None
                    if self.transcript:
                        self._log.sent(session.ledger.entries)
                    if self._hook is not None:
                        self._before_end(WRITE_SLICE)
                    data = session.data_to_send()
                    transport.write(data)
                    session.wrote(len(data))  # nothing awaits between these two
                    continue
                if action is _RECEIVE:
                    return
                break
        except BaseException as exc:  # a hook's own failure, or a bug: the caller gets it
            session.close()
            self.abort()
            self._raised = exc
            action = Action.FAILED
        done = self._done
        self._flow = None
        if done is not None and not done.done():
            done.set_result(action)

    def _before_end(self, size: int) -> None:
        """Run the task's ``before_end_of_message`` hook right before the write that
        hands out the end of the message; if it raises, that write never happens."""
        if self._hook is None:
            return
        ledger = self.session.ledger
        handed = ledger.handed
        reach = handed + min(size, self.session_pending())
        for transaction in ledger.transactions:  # two when one is pipelined behind an end
            end = transaction.end
            if end is None or not handed < end.start + end.size <= reach:
                continue
            to = tuple(r for r, entry in transaction.rcpts.items() if not entry.refused)
            if to:  # no recipient: an empty DATA that ends nothing deliverable
                self._hook(to)

    def session_pending(self) -> int:
        ledger = self.session.ledger
        return ledger.queued - ledger.handed

    async def _start_tls(self, network: Network, host: str, context: ssl.SSLContext) -> None:
        transport = self.transport
        assert transport is not None
        try:
            self.transport = await network.start_tls(transport, self, context, host, self.timeout)
        except asyncio.CancelledError:
            self.interrupt(Interruption.CANCELLED)
            raise
        except (OSError, TimeoutError, ConnectionError, EOFError) as exc:
            self.interrupt(Interruption.TLS_ERROR, str(exc) or type(exc).__name__)
            raise tls_error(exc) from exc
        _keep_the_socket_full(self.transport)
        self.session.tls_established()


def _keep_the_socket_full(transport: asyncio.Transport | None) -> None:
    if transport is None:
        return
    with contextlib.suppress(NotImplementedError):  # a transport without flow control
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH, low=WRITE_BUFFER_LOW)


async def open_connection(
    session: Session,
    host: str,
    port: int,
    *,
    context: ssl.SSLContext | None,
    timeout: float,
    transcript: bool,
    probe: bool,
    origin: Origin,
) -> tuple[Connection, Network]:
    """Connect and wait for the greeting (the session then holds it, or is interrupted)."""
    network = NETWORK.get(DEFAULT_NETWORK)
    connection = Connection(session, timeout=timeout, transcript=transcript)
    try:
        await network.connect(connection, host, port, context, timeout, origin)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        session.interrupt(Interruption.CONNECTION_LOST)
        if isinstance(exc, e.SMTPError):  # already translated: a proxy's failure
            raise
        raise connect_error(exc, host, port) from exc
    await connection.greeting(host, port, network, probe)
    return connection, network
