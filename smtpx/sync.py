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
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar, Unpack

from smtpx import errors as e
from smtpx._compose import Recipients, message_or_compose
from smtpx._message import MessageInput
from smtpx._reply import Reply
from smtpx.client import Client, send
from smtpx.config import ClientConfig, ClientOptions, Configured, resolve_config
from smtpx.results import Ready, SendResult
from smtpx.retry import RetryPolicy

__all__ = ["SyncClient", "send_sync"]

T = TypeVar("T")


class _LoopThread:
    """An event loop running forever in a daemon thread, until ``stop()``."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            # Whatever is still pending (a send whose caller gave up) is cancelled,
            # then the loop's executor threads end too: nothing outlives stop().
            try:
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def stop(self, *, wait: bool = True) -> None:
        """Stop the loop and (unless called from the loop's own thread) wait for the
        thread to end."""
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:  # already closed
            return
        if wait and threading.current_thread() is not self.thread:
            self.thread.join()


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


def _wait(future: concurrent.futures.Future[T]) -> T:
    """The future's result, or its exception, re-raised as is (smtpx errors unwrapped)."""
    try:
        return future.result()
    except BaseException:
        # Interrupted while waiting (Ctrl-C): cancel the call, which drops the connection.
        future.cancel()
        raise


class _Session:
    """One open period of a ``SyncClient``: its loop thread and its async ``Client``."""

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.runner = _LoopThread(name)

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return self.runner.submit(coroutine)

    async def locked(self, step: Callable[[Client], Coroutine[Any, Any, T]]) -> T:
        # send() takes this lock itself; connect, quit and close take it here, so that
        # they wait for a send in progress in another thread instead of cutting it off.
        async with self.client.lock:
            return await step(self.client)

    def abandon(self) -> None:
        """Drop the connection and stop the thread without waiting (garbage collection)."""
        loop = self.runner.loop
        try:
            loop.call_soon_threadsafe(self.client.close)
        except RuntimeError:  # pragma: no cover - already stopped
            return
        self.runner.stop(wait=False)


class SyncClient(Configured):
    """A blocking SMTP client: :class:`smtpx.Client`'s semantics, from any thread.

    The arguments are those of :class:`smtpx.Client`.  Use as a context manager
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
        return _wait(future)

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
            _wait(future)
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
            if threading.current_thread() is session.runner.thread:
                return read(session.client)
            future = session.submit(on_loop(session.client))
        return future.result()

    # -- the API ------------------------------------------------------------------------

    def connect(self) -> Ready:
        """Connect (again), EHLO, secure the session per ``tls`` and authenticate.

        Not needed before :meth:`send`, which connects when it must.
        """

        async def connect(client: Client) -> Ready:
            return await client.connect()

        return self._call("connect", lambda session: session.locked(connect))

    def send(
        self,
        message: MessageInput,
        *,
        sender: str | None = None,
        recipients: Iterable[str] | None = None,
        retry: RetryPolicy | None = None,
    ) -> SendResult:
        """Send ``message`` and report each recipient, exactly as ``Client.send`` does.

        Blocks until done; raises the same typed errors.  Sends from several threads
        run one after the other on the shared connection.
        """
        return self._call(
            "send",
            lambda session: session.client.send(
                message, sender=sender, recipients=recipients, retry=retry
            ),
        )

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

_shared: _LoopThread | None = None
_shared_guard = threading.Lock()


def _shared_loop() -> _LoopThread:
    global _shared
    with _shared_guard:
        if _shared is None:
            _shared = _LoopThread("smtpx-send-sync")
            atexit.register(_shared.stop)
        return _shared


def send_sync(
    message: MessageInput | None = None,
    *,
    host: str,
    port: int | None = None,
    sender: str | None = None,
    recipients: Iterable[str] | None = None,
    retry: RetryPolicy | None = None,
    to: Recipients | None = None,
    subject: str | None = None,
    text: str | None = None,
    html: str | None = None,
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
        **client_options,
    )
    return _wait(_shared_loop().submit(coroutine))
