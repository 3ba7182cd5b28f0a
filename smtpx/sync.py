"""Blocking smtpx: ``SyncClient`` and ``send_sync`` for code that is not async.

Each ``SyncClient`` runs one event loop in a daemon thread of its own, for as long
as it is open, and hands every call to it with ``asyncio.run_coroutine_threadsafe``:
the connection is reused from call to call, and no event loop is created per
message.  Any number of threads may share one ``SyncClient``; their sends are
serialised by the client's own lock, so each is a whole transaction.

Results and errors are exactly those of :class:`smtpx.Client`: the same
``SendResult``, the same exception objects (never wrapped).  Calling from a thread
that is running an event loop raises :class:`smtpx.UsageError` rather than blocking
that loop: there, ``await`` the async client instead.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import functools
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterable, Mapping
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar, Unpack

from smtpx import errors as e
from smtpx._compose import Recipients, message_or_compose
from smtpx._dsn import DSN
from smtpx._envelope import Envelope
from smtpx._message import MessageInput, messages_of
from smtpx._oneshot import send
from smtpx._reply import Reply
from smtpx.client import Client
from smtpx.config import ClientConfig, ClientOptions, Configured, resolve_config
from smtpx.loopthread import LoopThread, result_of
from smtpx.results import SendResult
from smtpx.retry import RetryPolicy

__all__ = ["SyncClient", "send_sync"]

T = TypeVar("T")
P = ParamSpec("P")


def _refuse_in_event_loop(what: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise e.UsageError(
        f"{what} blocks, and this thread is running an event loop, which it would "
        "stall: use the async API here (await smtpx.Client(...).send(...) or "
        "await smtpx.send(...)), or call it from a worker thread (asyncio.to_thread)"
    )


class _Session:
    """One open period of a ``SyncClient``: its loop thread and its async ``Client``."""

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.runner = LoopThread(name)
        self.runner.start()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return self.runner.submit(coroutine)

    async def locked(self, step: Callable[[Client], Coroutine[Any, Any, T]]) -> T:
        # send() takes this lock itself; connect, quit and close take it here, so that
        # they wait for a send in progress in another thread instead of cutting it off.
        async with self.client.lock:
            return await step(self.client)

    def abandon(self) -> None:
        """Drop the connection and stop the thread without waiting (garbage collection)."""
        if self.runner.call_soon(self.client.close):
            self.runner.stop(wait=False)


def _forward(
    method: Callable[Concatenate[Client, P], Coroutine[Any, Any, T]],
    *,
    locks_itself: bool = False,
) -> Callable[Concatenate[SyncClient, P], T]:
    """``Client.<method>``, blocking: the same signature and docstring, run on the
    client's loop thread, under the client's lock unless *method* takes it itself."""
    name = method.__name__

    @functools.wraps(method)
    def blocking(self: SyncClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        def step(session: _Session) -> Coroutine[Any, Any, T]:
            if locks_itself:
                return method(session.client, *args, **kwargs)
            return session.locked(lambda client: method(client, *args, **kwargs))

        return self._call(name, step)

    return blocking


class SyncClient(Configured):
    """A blocking SMTP client: :class:`smtpx.Client`'s semantics, from any thread.

    The arguments are those of :class:`smtpx.Client`, and so are the methods: each of
    its commands (``ehlo``, ``mail``, ``rcpt``, ``data``, ``noop``, ``pipeline``...) is
    here with the same signature, blocking.  Use as a context manager
    (``with SyncClient(...) as client:``), or call :meth:`send` directly (it
    connects when needed) and :meth:`quit` at the end.  After :meth:`quit` or
    :meth:`close` the client may be used again: it then reconnects, on a new
    thread.
    """

    def __init__(
        self,
        host: str | ClientConfig | None = None,
        port: int | None = None,
        *,
        config: ClientConfig | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        self.config = resolve_config(host, port, config, options)
        self._session: _Session | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._guard = threading.Lock()  # guards _session

    def __repr__(self) -> str:
        if "config" not in self.__dict__:  # a traceback from inside __init__ shows it too
            return "<smtpx.SyncClient (not set up)>"
        credentials = self.config.credentials
        user = f" user={credentials.username!r}" if credentials else ""
        state = "open" if self._session is not None else "closed"
        return f"<smtpx.SyncClient {self.host}:{self.port} tls={self.tls.value}{user} {state}>"

    # -- running calls on the loop thread -------------------------------------------

    def _call(self, what: str, step: Callable[[_Session], Coroutine[Any, Any, T]]) -> T:
        _refuse_in_event_loop(f"SyncClient.{what}()")
        with self._guard:
            session = self._session
            if session is None:
                client = Client(config=self.config)
                session = self._session = _Session(client, f"smtpx-sync-{self.host}")
                # A client dropped without quit() must not leave its thread behind.
                self._finalizer = weakref.finalize(self, session.abandon)
            # Submitted under the guard, so that a concurrent quit() is queued after it.
            future = session.submit(step(session))
        return result_of(future)

    def _end(self, what: str, step: Callable[[Client], Coroutine[Any, Any, None]]) -> None:
        _refuse_in_event_loop(f"SyncClient.{what}()")
        with self._guard:
            session, self._session = self._session, None
            if session is None:
                return
            if self._finalizer is not None:
                self._finalizer.detach()
            future = session.submit(session.locked(step))
        try:
            result_of(future)
        finally:
            session.runner.stop()

    def _peek(self, read: Callable[[Client], T], default: T) -> T:
        """Read the client's state on its own thread (where it changes)."""

        async def on_loop(client: Client) -> T:
            return read(client)

        with self._guard:
            session = self._session
            if session is None:
                return default
            if session.runner.in_thread():
                return read(session.client)
            future = session.submit(on_loop(session.client))
        return future.result()

    # -- the API ------------------------------------------------------------------------

    # Client's command surface, blocking: each of Client's coroutine methods, with its
    # signature and docstring, run on the loop thread under the client's lock (send takes
    # the lock itself). quit() and close() below also stop the thread.
    connect = _forward(Client.connect)
    send = _forward(Client.send, locks_itself=True)
    send_envelope = _forward(Client.send_envelope)
    ehlo = _forward(Client.ehlo)
    helo = _forward(Client.helo)
    starttls = _forward(Client.starttls)
    login = _forward(Client.login)
    mail = _forward(Client.mail)
    rcpt = _forward(Client.rcpt)
    data = _forward(Client.data)
    bdat = _forward(Client.bdat)
    rset = _forward(Client.rset)
    noop = _forward(Client.noop)
    vrfy = _forward(Client.vrfy)
    expn = _forward(Client.expn)
    help = _forward(Client.help)
    pipeline = _forward(Client.pipeline)
    command = _forward(Client.command)

    def send_many(
        self, messages: Iterable[MessageInput | Envelope]
    ) -> list[SendResult | e.SMTPError]:
        """:meth:`smtpx.Client.send_many`, blocking: every message's outcome (its
        ``SendResult`` or its ``SMTPError``), in order, once the last one is decided."""
        given = messages_of(messages, "send_many()")  # a UsageError starts no thread

        async def collect(session: _Session) -> list[SendResult | e.SMTPError]:
            return [outcome async for outcome in session.client.send_many(given)]

        return self._call("send_many", collect)

    def quit(self) -> None:
        """Wait for sends in progress, say QUIT, close, and stop the background thread."""

        async def quit_(client: Client) -> None:
            await client.quit()

        self._end("quit", quit_)

    def close(self) -> None:
        """Wait for sends in progress, drop the connection without QUIT, stop the thread."""

        async def close(client: Client) -> None:
            client.close()

        self._end("close", close)

    def __enter__(self) -> SyncClient:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.quit()

    @property
    def connected(self) -> bool:
        return self._peek(lambda client: client.connected, False)

    @property
    def encrypted(self) -> bool:
        return self._peek(lambda client: client.encrypted, False)

    @property
    def greeting(self) -> Reply | None:
        """The server's 220 greeting on the current connection."""
        return self._peek(lambda client: client.greeting, None)

    @property
    def extensions(self) -> Mapping[str, str]:
        """The ESMTP extensions of the last EHLO (see ``Client.extensions``)."""
        return self._peek(lambda client: dict(client.extensions), {})  # a copy across threads

    @property
    def auth_mechanisms(self) -> tuple[str, ...]:
        return self._peek(lambda client: client.auth_mechanisms, ())


# -- send_sync: one message, one connection, on a loop shared by every call -------------

#: Shared by every call; stopped at exit (a daemon thread started on first use).
_SHARED = LoopThread("smtpx-send-sync")
atexit.register(_SHARED.stop)


def send_sync(
    message: MessageInput | None = None,
    *,
    host: str | None = None,  # or hosts= in client_options
    port: int | None = None,
    sender: str | None = None,
    recipients: Iterable[str] | None = None,
    retry: RetryPolicy | None = None,
    to: Recipients | None = None,
    subject: str | None = None,
    text: str | None = None,
    html: str | None = None,
    dsn: DSN | None = None,
    dsn_required: bool = True,
    require_tls: bool = False,
    **client_options: Unpack[ClientOptions],
) -> SendResult:
    """Send one message on a new connection, then quit: the blocking ``smtpx.send``.

    ``client_options`` are those of :class:`smtpx.Client`; ``to``, ``subject``,
    ``text`` and ``html`` compose the message instead, as for ``smtpx.send``.  Every
    call runs on one event loop shared by the process (a daemon thread started on
    first use), so calls from several threads proceed concurrently, each on its own
    connection.  To send several messages over one connection, use :class:`SyncClient`.
    """
    _refuse_in_event_loop("send_sync()")
    ClientConfig.from_options(host, port, client_options)  # a wrong option fails here, at once
    message = message_or_compose(message, sender, to=to, subject=subject, text=text, html=html)
    coroutine = send(
        message,
        host=host,
        port=port,
        sender=sender,
        recipients=recipients,
        retry=retry,
        dsn=dsn,
        dsn_required=dsn_required,
        require_tls=require_tls,
        **client_options,
    )
    return _SHARED.run(coroutine)
