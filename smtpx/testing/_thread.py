"""Running a ScriptedServer beside synchronous code, on its own loop and thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

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
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="smtpx-scripted-server", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=10)
        yield server
    finally:
        try:
            asyncio.run_coroutine_threadsafe(_shutdown(server), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            if not thread.is_alive():
                loop.close()


async def _shutdown(server: ScriptedServer) -> None:
    await server.stop()
    current = asyncio.current_task()
    rest = [task for task in asyncio.all_tasks() if task is not current]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)
