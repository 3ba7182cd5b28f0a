"""Compose a message with text, HTML, an attachment and a Bcc, and send it.

Run: ``.venv/bin/python examples/compose.py``.  The SMTP server is embedded
(``smtpx.testing.ScriptedServer`` on 127.0.0.1), so the example needs no network.
"""

from __future__ import annotations

import asyncio
from typing import Any

import smtpx
from smtpx.testing import ScriptedServer


async def main() -> None:
    message = smtpx.compose(
        "Café Shop <shop@example.com>",
        "Zoë <zoe@example.com>",
        "Your order — Grüße",
        text="It is on its way.\n",
        html="<p>It is on its <b>way</b>.</p>\n",
        attachments=[("facture-été.pdf", b"%PDF-1.7 ...")],
        bcc="archive@example.com",
    )
    async with ScriptedServer() as server:
        # Loopback only: against a real server keep the default, TLSMode.STARTTLS.
        options: dict[str, Any] = {"tls": smtpx.TLSMode.NONE, "local_hostname": "example.local"}
        async with smtpx.Client(server.host, server.port, **options) as client:
            result = await client.send(message)
        # The one-liner: the message composed from keywords.
        await smtpx.send(
            host=server.host,
            port=server.port,
            sender="shop@example.com",
            to="zoe@example.com",
            subject="Hello",
            text="Hi Zoë",
            **options,
        )
        received, one_liner = server.messages

    print(f"accepted: {', '.join(result.accepted)}")
    print(f"structure: {received.message.get_content_type()}")
    print(f"parts: {', '.join(p.get_content_type() for p in received.message.walk())}")
    print(f"subject: {received.subject}")
    print(f"Bcc header transmitted: {b'archive' in received.data}")
    head = received.data.split(b"\r\n\r\n")[0]
    print(f"headers ASCII: {head.isascii()}")
    print(f"one-liner: {one_liner.subject!r} to {', '.join(one_liner.rcpt_tos)}")


if __name__ == "__main__":
    asyncio.run(main())
