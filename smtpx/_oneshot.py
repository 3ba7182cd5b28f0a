"""``smtpx.send``: one message on a new connection, then QUIT."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Unpack

from smtpx._compose import Recipients, message_or_compose
from smtpx._dsn import DSN
from smtpx._message import MessageInput
from smtpx.client import Client
from smtpx.config import ClientOptions
from smtpx.results import SendResult
from smtpx.retry import RetryPolicy

__all__ = ["send"]


async def send(
    message: MessageInput | None = None,
    *,
    host: str | None = None,
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
    **options: Unpack[ClientOptions],
) -> SendResult:
    """Send one message on a new connection, then quit.  ``options`` are those of ``Client``;
    ``dsn``, ``dsn_required`` and ``require_tls`` those of ``Client.send``.

    Instead of a message, ``sender``, ``to``, ``subject`` and ``text`` and/or ``html``
    compose one (``smtpx.compose``); giving a message and these is a ``UsageError``.
    The connection is made by ``send`` itself, so with ``retry`` a failure to
    connect is retried too.
    """
    message = message_or_compose(message, sender, to=to, subject=subject, text=text, html=html)
    client = Client(host, port, **options)
    try:
        return await client.send(
            message,
            sender=sender,
            recipients=recipients,
            retry=retry,
            dsn=dsn,
            dsn_required=dsn_required,
            require_tls=require_tls,
        )
    finally:
        await client.quit()
