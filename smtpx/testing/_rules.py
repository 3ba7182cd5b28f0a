"""What a ScriptedServer is told (``Rule``) and what it records (``ReceivedMessage``)."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Final

import attrs

__all__ = ["COMMANDS", "ReceivedMessage", "Rule"]

COMMANDS: Final = frozenset(
    {"CONNECT", "EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "DATA_END"}
    | {"BDAT", "RSET", "VRFY", "EXPN", "HELP", "NOOP", "QUIT"}
)
"""The names :meth:`ScriptedServer.on` accepts. ``CONNECT`` is the greeting, ``DATA`` the
reply to the DATA verb (normally 354), ``DATA_END`` the reply after the final dot and
``BDAT`` the reply to a ``BDAT ... LAST`` chunk (with ``chunking=True``)."""


@attrs.frozen
class ReceivedMessage:
    """A message the server accepted (a 2xx reply after the final "." or BDAT LAST).

    ``data`` is the message content as received, dot-unstuffed, with CRLF line endings.
    Options are the ESMTP parameters of MAIL and RCPT, upper-cased by aiosmtpd.
    """

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    mail_options: tuple[str, ...] = ()
    rcpt_options: tuple[str, ...] = ()

    @property
    def message(self) -> EmailMessage:
        """The content parsed as an ``EmailMessage`` (headers decoded, parts walkable)."""
        return BytesParser(policy=email.policy.default).parsebytes(self.data)

    @property
    def subject(self) -> str | None:
        """The decoded Subject header, or None when there is none."""
        subject = self.message["Subject"]
        return None if subject is None else str(subject)

    @property
    def text(self) -> str:
        """Every ``text/*`` part of the content, decoded and joined by newlines."""
        parts = []
        for part in self.message.walk():
            if part.get_content_maintype() == "text" and not part.is_multipart():
                content = part.get_content()
                parts.append(content if isinstance(content, str) else str(content))
        return "\n".join(parts)

    def describe(self) -> str:
        """One line for failure messages: sender, recipients and subject."""
        to = ", ".join(f"<{r}>" for r in self.rcpt_tos)
        return f"from <{self.mail_from}> to {to} subject {self.subject!r}"


@attrs.define(eq=False)
class Rule:
    """A scripted reaction to one command, as returned by :meth:`ScriptedServer.on`.

    ``hits`` counts how many times the rule has been applied.
    """

    command: str
    reply: str | None = None
    close: bool = False
    hang: bool = False
    raw: bytes | None = None
    match: str | None = None
    times: int | None = None
    record: bool | None = None
    hits: int = 0

    def matches(self, command: str, argument: str) -> bool:
        """Whether this rule applies to *command* with this argument line now."""
        if self.command != command or (self.times is not None and self.hits >= self.times):
            return False
        return self.match is None or self.match.casefold() in argument.casefold()

    @property
    def substitutes(self) -> bool:
        """True for a positive (1xx-3xx) reply without close/hang: the server's normal
        handling runs (so session state advances) but this text is sent instead."""
        return (
            self.reply is not None
            and not (self.close or self.hang)
            and self.reply[:1] in ("1", "2", "3")
        )

    @property
    def records(self) -> bool:
        """For DATA_END and BDAT: whether the message counts as received."""
        if self.record is not None:
            return self.record
        sent = self.reply.encode() if self.reply is not None else (self.raw or b"")
        return sent[:1] == b"2"
