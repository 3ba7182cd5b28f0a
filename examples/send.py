"""Send one message and print the typed outcome.

Run: ``.venv/bin/python examples/send.py``.  The SMTP server is embedded
(``smtpx.testing.ScriptedServer`` on 127.0.0.1), so the example needs no network.
"""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import smtpx
from smtpx.testing import ScriptedServer


def build_message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Shop <shop@example.com>"
    message["To"] = "alice@example.com"
    message["Bcc"] = "archive@example.com"  # a recipient, never transmitted
    message["Subject"] = "Your order has shipped"
    message.set_content("It is on its way.\n")
    return message


async def main() -> None:
    async with ScriptedServer() as server:
        async with smtpx.Client(
            server.host,
            server.port,
            # Loopback only: against a real server keep the default, TLSMode.STARTTLS,
            # which verifies the certificate and never falls back to plaintext.
            tls=smtpx.TLSMode.NONE,
            local_hostname="example.local",
            timeout=10,
        ) as client:
            result = await client.send(build_message())

        print(f"accepted: {', '.join(result.accepted)}")
        print(f"all accepted: {result.all_accepted}")
        print(f"server said: {result.reply.code} {result.reply.message}")
        (received,) = server.messages
        print(f"the server got {received.subject!r} for {', '.join(received.rcpt_tos)}")
        print(f"Bcc header transmitted: {b'Bcc:' in received.data}")


if __name__ == "__main__":
    asyncio.run(main())
