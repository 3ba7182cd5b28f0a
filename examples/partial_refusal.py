"""Handle a message that some recipients refuse: who got it, and why each refusal happened.

Run: ``.venv/bin/python examples/partial_refusal.py``.  The SMTP server is embedded
(``smtpx.testing.ScriptedServer`` on 127.0.0.1) and scripted to refuse two recipients.
"""

from __future__ import annotations

import asyncio

import smtpx
from smtpx.testing import ScriptedServer

MESSAGE = b"""\
From: newsletter@example.com
To: alice@example.com, nobody@example.com
Cc: busy@example.com
Subject: This week's news

Hello!
"""


def describe(error: smtpx.SMTPError) -> str:
    kind = "transient, retry later" if error.retryable else "permanent"
    return f"{type(error).__name__} ({error.code} {error.enhanced}, {kind})"


async def main() -> None:
    async with ScriptedServer() as server:
        server.on("RCPT", match="nobody@", reply="550 5.1.1 <nobody@example.com>: No such user")
        server.on("RCPT", match="busy@", reply="450 4.2.1 Mailbox busy, try again later")
        async with smtpx.Client(
            server.host,
            server.port,
            tls=smtpx.TLSMode.NONE,  # loopback only; real servers: keep the default
            local_hostname="example.local",
            timeout=10,
        ) as client:
            print("1. some recipients refused: the message still goes to the others")
            result = await client.send(MESSAGE)
            print(f"   accepted: {', '.join(result.accepted)}")
            for recipient, error in result.rejected.items():
                print(f"   refused:  {recipient}: {describe(error)}")
            retry_later = [r for r, err in result.rejected.items() if err.retryable]
            print(f"   worth retrying later: {', '.join(retry_later)}")

            print("2. every recipient refused: send() raises, with every refusal")
            try:
                await client.send(MESSAGE, recipients=["nobody@example.com", "busy@example.com"])
            except smtpx.RecipientsRefused as error:
                print(f"   {type(error).__name__} (retryable={error.retryable})")
                for recipient, refusal in error.rejected.items():
                    print(f"   refused:  {recipient}: {describe(refusal)}")

        print(
            f"the server received {len(server.messages)} message(s), "
            f"for {', '.join(server.messages[0].rcpt_tos)}"
        )


if __name__ == "__main__":
    asyncio.run(main())
