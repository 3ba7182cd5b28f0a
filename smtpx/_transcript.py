"""The opt-in SMTP transcript: one structured DEBUG record per command and reply.

AUTH arguments never appear: only the verb and the mechanism name are logged.
"""

from __future__ import annotations

import logging

from smtpx import errors as e
from smtpx._commands import Command
from smtpx._reply import Reply
from smtpx.results import Success

transcript = logging.getLogger("smtpx.transcript")


def record(direction: str, command: Command, **fields: object) -> dict[str, object]:
    return {"smtpx": {"direction": direction, "command": command.name, **fields}}


def log_sent(command: Command, args: tuple[bytes, ...]) -> None:
    if command is Command.AUTH:
        # Only the verb and mechanism name are shown: initial responses and every
        # later AUTH line carry credentials.
        if args[0] != b"AUTH":
            shown = b"[redacted]"
        else:
            shown = b" ".join(args[:2]) + (b" [redacted]" if len(args) > 2 else b"")
    else:
        shown = b" ".join(args)
    line = shown.decode("utf-8", "replace")
    transcript.debug(">>> %s", line, extra=record(">>>", command, line=line))


def log_reply(command: Command, reply: Reply, result: Success | e.SMTPError) -> None:
    kind = type(result).__name__
    transcript.debug(
        "<<< %s  [%s]",
        reply,
        kind,
        extra=record("<<<", command, code=reply.code, classification=kind),
    )
