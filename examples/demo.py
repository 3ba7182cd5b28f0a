"""The smtpx demo: real mail through an embedded SMTP server, and the typed outcome of each send.

Run it with ``scripts/demo``.  The server is smtpx.testing.ScriptedServer on
127.0.0.1, scripted to fail the way real servers do.
"""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from typing import Any

import smtpx
from smtpx.testing import ScriptedServer


def message(*recipients: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "app@example.com"
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = "Your password reset link"
    msg.set_content("Click the link to reset your password.\n")
    return msg


async def main() -> None:
    async with ScriptedServer(credentials={"app": "s3cret"}) as server:
        options: dict[str, Any] = {
            "host": server.host,
            "port": server.port,
            "tls": smtpx.TLSMode.NONE,  # loopback only; the default requires STARTTLS
            "allow_plaintext_auth": True,
            "credentials": ("app", "s3cret"),
            "local_hostname": "demo.local",
        }

        print("1. A message to two recipients, one of whom does not exist:")
        server.on("RCPT", match="nobody@", reply="550 5.1.1 <nobody@example.com>: no such user")
        result = await smtpx.send(message("alice@example.com", "nobody@example.com"), **options)
        print(f"   accepted: {', '.join(result.accepted)}")
        for recipient, error in result.rejected.items():
            print(f"   rejected: {recipient} -> {type(error).__name__}: {error}")

        print("\n2. Wrong password:")
        try:
            await smtpx.send(
                message("alice@example.com"), **{**options, "credentials": ("app", "x")}
            )
        except smtpx.AuthFailed as error:
            print(f"   except smtpx.AuthFailed -> {error}")

        print("\n3. A greylisting server (450 twice), retried without sleeping for real:")
        server.on(
            "RCPT", match="bob@", reply="450 4.2.0 Greylisted, try again in 60 seconds", times=2
        )
        clock = smtpx.VirtualClock()
        policy = smtpx.RetryPolicy.for_testing(
            clock, on_retry=lambda ev: print(f"   attempt {ev.attempt}: {ev.error}")
        )
        result = await smtpx.send(
            message("carol@example.com", "bob@example.com"), retry=policy, **options
        )
        print(f"   accepted: {', '.join(result.accepted)} after waits of {clock.sleeps} s")
        copies = {r: len(server.received_by(r)) for r in ("carol@example.com", "bob@example.com")}
        print(f"   copies received per recipient: {copies}  (never twice)")

        print(f"\nThe server received {len(server.messages)} messages.")


if __name__ == "__main__":
    asyncio.run(main())
