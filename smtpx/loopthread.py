"""One event loop in a daemon thread, for blocking code that drives async code.

``SyncClient``, ``send_sync``, the Django backend and ``smtpx.testing.serve_in_thread``
all run their coroutines this way: a thread started on first use runs one loop
forever; a call hands it a coroutine and (with :meth:`LoopThread.run`) blocks until it
is done, its result returned and its exception re-raised as is, never wrapped.
:meth:`LoopThread.stop` cancels what is still pending, shuts down the loop's executor
threads and ends the thread, so nothing outlives it; the next call starts a new thread.
In a child process made by ``fork()`` the parent's loop threads do not exist: there,
the first call starts a new one.

A public module of its own, on the standard library alone, so that every layer of
smtpx (and code around it) can share the one implementation.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread", "result_of"]

T = TypeVar("T")


class LoopThread:
    """An event loop running forever in a daemon thread named *name*, until ``stop()``.

    Thread-safe: any thread may submit, run or stop.  After :meth:`stop` the object
    may be used again: the next call starts a new loop on a new thread.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()  # guards _loop and _thread
        _instances.add(self)

    def __repr__(self) -> str:
        return f"<smtpx.LoopThread {self.name!r} {'running' if self.running else 'stopped'}>"

    @property
    def running(self) -> bool:
        """Whether the thread has been started and not stopped since."""
        return self._thread is not None

    @property
    def thread(self) -> threading.Thread | None:
        """The thread running the loop (None when stopped)."""
        return self._thread

    def in_thread(self) -> bool:
        """Whether the caller is the loop's own thread."""
        thread = self._thread
        return thread is not None and threading.current_thread() is thread

    def start(self) -> asyncio.AbstractEventLoop:
        """Start the thread unless it runs already; return its loop."""
        with self._guard:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=_main, args=(loop,), name=self.name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule *coroutine* on the loop (starting it if needed); its future."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.start())

    def run(self, coroutine: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        """Run *coroutine* on the loop and block until it is done: its result, or its
        exception re-raised as is.  Interrupted while waiting (Ctrl-C, *timeout*), the
        coroutine is cancelled and the interruption raised."""
        return result_of(self.submit(coroutine), timeout=timeout)

    def call_soon(self, callback: Callable[[], object]) -> bool:
        """Call *callback* on the loop's thread soon; False when the loop is not running."""
        loop = self._loop
        if loop is None:
            return False
        try:
            loop.call_soon_threadsafe(callback)
        except RuntimeError:  # closed meanwhile
            return False
        return True

    def stop(self, *, wait: bool = True, timeout: float | None = None) -> None:
        """Cancel what is pending, stop the loop and (unless *wait* is false or this is the
        loop's own thread) wait up to *timeout* seconds for the thread to end."""
        with self._guard:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:  # pragma: no cover - the thread closed it already
            return
        if wait and threading.current_thread() is not thread:
            thread.join(timeout)


def _forget_after_fork() -> None:
    # A forked child has none of its parent's threads: a loop started before the fork
    # runs nowhere, and a call handed to it would wait forever.  Forget it (the next
    # call starts a new thread); its lock may have been held by a parent thread.
    for runner in list(_instances):
        runner._guard = threading.Lock()
        runner._loop = runner._thread = None


_instances: weakref.WeakSet[LoopThread] = weakref.WeakSet()
if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_forget_after_fork)


def result_of(future: concurrent.futures.Future[T], *, timeout: float | None = None) -> T:
    """The future's result, or its exception, re-raised as is; interrupted while waiting
    (Ctrl-C, *timeout*), the call is cancelled and the interruption raised."""
    try:
        return future.result(timeout)
    except BaseException:
        future.cancel()
        raise


def _main(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        # Whatever is still pending (a call whose caller gave up) is cancelled, then the
        # loop's executor threads end too: nothing outlives stop().
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
