"""Running a ScriptedServer beside synchronous code, on its own loop and thread."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from smtpx.loopthread import LoopThread
from smtpx.testing._server import ScriptedServer

__all__ = ["serve_in_thread"]


@contextlib.contextmanager
def serve_in_thread(
    server: ScriptedServer | None = None, /, **kwargs: Any
) -> Iterator[ScriptedServer]:
    """Run a :class:`ScriptedServer` on its own event loop in a background thread.

    For code under test that is synchronous (Django, Flask, a ``send_sync`` call) or that
    runs its own event loop (Starlette's ``TestClient``): the server keeps answering
    while the test thread blocks. *kwargs* are those of :class:`ScriptedServer`; or pass
    a server you made. Scripting (:meth:`ScriptedServer.on`) and reading ``messages``
    work from the test thread::

        with serve_in_thread(credentials={"user": "secret"}) as server:
            server.on("AUTH", reply="535 5.7.8 Authentication credentials invalid")
            ...
    """
    if server is None:
        server = ScriptedServer(**kwargs)
    elif kwargs:
        raise TypeError("give a server or ScriptedServer arguments, not both")
    runner = LoopThread("smtpx-scripted-server")
    try:
        runner.run(server.start(), timeout=10)
        yield server
    finally:
        try:
            runner.run(server.stop(), timeout=10)  # runner.stop() cancels what is left
        finally:
            runner.stop(timeout=10)
