"""The opt-in SMTP transcript: one structured DEBUG record per command and reply.

AUTH arguments never appear: only the verb and the mechanism name are logged.
"""

from __future__ import annotations

import logging

from smtpx import errors as e
from smtpx._commands import Command
from smtpx._reply import Reply
from smtpx.protocol.ledger import Entry
from smtpx.results import Success

__all__ = ["log_entry", "log_reply"]

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


def log_entry(entry: Entry) -> None:
    """Log a ledger entry about to be written: its command line (an AUTH line shows only
    the verb and mechanism), and the size of a message."""
    command, parts = entry.command, entry.parts
    if command is Command.DATA_END:
        _log_message(command, entry.size)
        return
    line = parts[0]
    if command is Command.AUTH:
        # Slices of the Secret only, never the line itself split into plain bytes: the
        # initial response and every later AUTH line carry credentials.
        if line[:5].upper() == b"AUTH ":
            cut = line.find(b" ", 5)
            shown = line[:cut] + b" [redacted]" if cut > 0 else line[:-2]
        else:
            shown = b"[redacted]"
    else:
        shown = line[:-2]
    text = shown.decode("utf-8", "replace")
    transcript.debug(">>> %s", text, extra=record(">>>", command, line=text))
    if command is Command.BDAT:
        _log_message(command, entry.size - len(line))


def _log_message(command: Command, size: int) -> None:
    transcript.debug(">>> [message: %d octets]", size, extra=record(">>>", command))


class Transcript:
    """What one connection has logged: each entry once as it leaves, each reply in order."""

    def __init__(self, greeting: Entry) -> None:
        self._logged: dict[int, Entry] = {}  # kept alive: their ids stay theirs
        self._unanswered: list[Entry] = [greeting]

    def sent(self, entries: list[Entry]) -> None:
        logged = self._logged
        for entry in entries:
            if entry.parts and id(entry) not in logged:
                logged[id(entry)] = entry
                log_entry(entry)
                self._unanswered.append(entry)
        if len(logged) > 1000:
            self._logged = {id(entry): entry for entry in entries}

    def replies(self) -> None:
        unanswered = self._unanswered
        while unanswered and unanswered[0].reply is not None:
            entry = unanswered.pop(0)
            assert entry.reply is not None and entry.result is not None
            log_reply(entry.command, entry.reply, entry.result)
