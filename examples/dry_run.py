"""A dry run: every message checked and prepared as for sending, then printed or
recorded, and nothing connects.

Run: ``.venv/bin/python examples/dry_run.py``.  The host below does not exist: a dry
run never looks it up.
"""

from __future__ import annotations

import asyncio

import smtpx


async def main() -> None:
    sent: list[smtpx.Envelope] = []
    client = smtpx.Client("smtp.invalid", dry_run=True, sink=sent.append)
    message = smtpx.compose(
        "shop@example.com", "alice@example.com", "Hi", text="Hello.", bcc="archive@example.com"
    )
    result = await client.send(message)
    print(f"dry run: {result.dry_run}; accepted: {', '.join(result.accepted)}")
    print(f"recorded: {len(sent)} message(s), Bcc in the bytes: {b'archive' in sent[0].data}")

    # The same checks as a real send: a NUL byte in the message is refused.
    try:
        await client.send(b"From: shop@example.com\r\nTo: bob@example.com\r\n\r\nx\0\r\n")
    except smtpx.InvalidMessage as error:
        print(f"refused: {type(error).__name__}")

    # The default sink prints the envelope and the message.
    await smtpx.send(
        host="smtp.invalid",
        dry_run=True,
        sender="shop@example.com",
        to="carol@example.com",
        subject="Printed",
        text="On standard output.",
    )


if __name__ == "__main__":
    asyncio.run(main())
