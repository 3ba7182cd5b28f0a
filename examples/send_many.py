"""Send many messages on one connection, each transaction pipelined behind the one before.

Run: ``.venv/bin/python examples/send_many.py``.  The SMTP server is embedded
(``smtpx.testing.ScriptedServer`` on 127.0.0.1, offering PIPELINING) and scripted to
refuse one recipient; one message has no recipient at all.  Each message gets its own
outcome, in order: a ``SendResult``, or the error it failed with.
"""

from __future__ import annotations

import asyncio

import smtpx
from smtpx.testing import ScriptedServer


def invoice(number: int, to: str) -> bytes:
    return (
        f"From: billing@example.com\r\nTo: {to}\r\nSubject: Invoice {number}\r\n\r\n"
        f"Your invoice number {number} is attached.\r\n"
    ).encode()


async def main() -> None:
    async with ScriptedServer(pipelining=True) as server:
        server.on("RCPT", match="gone@", reply="550 5.1.1 <gone@example.com>: No such user")
        messages = [
            invoice(1, "alice@example.com"),
            invoice(2, "gone@example.com"),
            b"Subject: no From, no To\r\n\r\nnobody to send this to\r\n",
            invoice(4, "carol@example.com"),
        ]
        async with smtpx.Client(
            server.host,
            server.port,
            tls=smtpx.TLSMode.NONE,  # loopback only; real servers: keep the default
            local_hostname="example.local",
        ) as client:
            async for outcome in client.send_many(messages):
                if isinstance(outcome, smtpx.SendResult):
                    print(f"sent to {', '.join(outcome.accepted)}")
                else:
                    print(f"failed: {type(outcome).__name__}: {outcome}")
        print(f"the server received {len(server.messages)} messages")


if __name__ == "__main__":
    asyncio.run(main())
