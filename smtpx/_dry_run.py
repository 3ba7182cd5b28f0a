"""Dry runs: a client that prepares and checks every message as for sending, then hands
it to a sink (by default, standard output) instead of a server.

For development and tests, as Django's console backend is for Django: everything that
can fail before a server is involved fails the same way (``prepare()``: addresses,
headers, bytes), and nothing connects.  The ``SendResult`` says ``dry_run=True``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from smtpx._commands import Command
from smtpx._envelope import Envelope
from smtpx._reply import Reply
from smtpx.results import Ready, SendResult

__all__ = ["print_envelope"]

Sink = Callable[[Envelope], object]
"""What a dry run hands each prepared message to: ``sink=sent.append``, a logger..."""

# Stand-ins where a reply is required: no server said them (SendResult.dry_run says so).
NOT_CONNECTED = Ready(Command.CONNECT, Reply(220, ("dry run: not connected",)))
NOT_SENT = Reply(250, ("dry run: not sent",))

_RULE = "-" * 79
_printing = threading.Lock()  # one message at a time, from any thread or task


def print_envelope(envelope: Envelope) -> None:
    """The default sink: the envelope and the message, as sent, on ``sys.stdout``."""
    lines = [f"{_RULE}\nsmtpx dry run (not sent)", f"MAIL FROM:<{envelope.sender}>"]
    lines += [f"RCPT TO:<{recipient}>" for recipient in envelope.recipients]
    text = envelope.data.decode("utf-8", "replace").replace("\r\n", "\n")
    with _printing:
        sys.stdout.write("\n".join(lines) + "\n\n" + text + _RULE + "\n")
        sys.stdout.flush()


def deliver_nowhere(envelope: Envelope, sink: Sink | None) -> SendResult:
    """What a dry-run send does with a prepared message: the sink gets it, every
    recipient counts as accepted, and the result says it was not sent."""
    (sink or print_envelope)(envelope)
    return SendResult(accepted=envelope.recipients, rejected={}, reply=NOT_SENT, dry_run=True)
