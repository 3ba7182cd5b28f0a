"""``before_end_of_message``: a callback run right before a message's end is written.

Once the end of a message (the final ``.`` after DATA, or the last octet of
``BDAT ... LAST``) has been handed to the socket, the server may deliver it even
if no reply ever comes back.  A caller that must survive its own crash (a
durable outbox) records "the end may have left" *before* that moment: this
callback is where.  It runs synchronously, with nothing written between its
return and the write of the end; if it raises, the end is not written, the
connection is closed and its exception propagates unchanged.

The callback is scoped to the calling task (a ``ContextVar``), so it reaches
through ``Pool.send``, ``Client.send`` and retries without being passed along.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from smtpx.errors import UsageError

__all__ = ["EndOfMessageHook", "before_end_of_message"]

EndOfMessageHook = Callable[[tuple[str, ...]], None]
"""Called with the recipients who get the message if its end arrives: those whose RCPT
was accepted, or, when the whole message goes in one pipelined write with MAIL and RCPT
(``BDAT ... LAST``), every recipient of the transaction, none of whose replies is read yet."""

_hook: ContextVar[EndOfMessageHook | None] = ContextVar("smtpx_end_of_message", default=None)


@contextlib.contextmanager
def before_end_of_message(hook: EndOfMessageHook) -> Iterator[None]:
    """Run ``hook(recipients)`` before each message end this task writes, in this block.

    ``with smtpx.before_end_of_message(record): await pool.send(...)``.  Not called
    when a transaction fails before its end (a refused MAIL, every RCPT refused, no
    354 to DATA, a lost connection): only an end that is about to be written counts.
    """
    if not callable(hook):
        raise UsageError(f"before_end_of_message takes a callable, not {hook!r}")
    token = _hook.set(hook)
    try:
        yield
    finally:
        _hook.reset(token)


def current_hook() -> EndOfMessageHook | None:
    """The hook in force for the running task, if any (read by the client's writes)."""
    return _hook.get()
