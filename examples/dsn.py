"""Ask for delivery status notifications (RFC 3461), and what happens without DSN.

Run: ``.venv/bin/python examples/dsn.py``.  Two servers are embedded on 127.0.0.1: a
minimal one that offers DSN and prints the MAIL and RCPT lines it receives, and
``smtpx.testing.ScriptedServer``, which does not offer DSN.
"""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from typing import Any

import smtpx
from smtpx.testing import ScriptedServer


async def offers_dsn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Just enough SMTP to show the parameters: every command accepted, DATA taken."""
    writer.write(b"220 dsn.example ESMTP\r\n")
    while line := await reader.readline():
        verb = line[:4].upper()
        if verb == b"EHLO":
            writer.write(b"250-dsn.example\r\n250 DSN\r\n")
        elif verb in (b"MAIL", b"RCPT"):
            print(f"   server got: {line.decode().strip()}")
            writer.write(b"250 2.0.0 Ok\r\n")
        elif verb == b"DATA":
            writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            while await reader.readline() not in (b".\r\n", b""):
                pass
            writer.write(b"250 2.0.0 Ok: queued\r\n")
        elif verb == b"QUIT":
            writer.write(b"221 2.0.0 Bye\r\n")
            break
        else:
            writer.write(b"250 2.0.0 Ok\r\n")
    writer.close()


def build_message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "shop@example.com"
    message["To"] = "alice@example.com, bob@example.com"
    message["Subject"] = "Your order has shipped"
    message.set_content("It is on its way.\n")
    return message


DSN = smtpx.DSN(
    notify={"failure", "delay"},  # or "never"; "success" asks for a delivery receipt
    ret="headers",  # a bounce carries the headers only, not the whole message
    envid="order-42+shipped",  # returned in every notification ("+" goes as "+2B")
    orcpt={"bob@example.com": "rfc822;robert@example.org"},  # the address first given
)


async def main() -> None:
    options: dict[str, Any] = {"tls": "none", "local_hostname": "example.local", "timeout": 10}

    print("1. a server that offers DSN")
    listener = await asyncio.start_server(offers_dsn, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with listener:
        result = await smtpx.send(build_message(), host="127.0.0.1", port=port, dsn=DSN, **options)
    print(f"   accepted: {', '.join(result.accepted)}")

    async with ScriptedServer() as server:
        print("2. a server without DSN")
        try:
            await smtpx.send(
                build_message(), host=server.host, port=server.port, dsn=DSN, **options
            )
        except smtpx.ExtensionRequired as error:  # before MAIL FROM: nothing was sent
            print(f"   ExtensionRequired: {error.detail}")

        print("3. the same, with dsn_required=False")
        result = await smtpx.send(
            build_message(),
            host=server.host,
            port=server.port,
            dsn=DSN,
            dsn_required=False,
            **options,
        )
        print(f"   accepted: {', '.join(result.accepted)} (no notifications asked for)")

        print("4. REQUIRETLS on a plaintext session")
        try:
            await smtpx.send(
                build_message(), host=server.host, port=server.port, require_tls=True, **options
            )
        except smtpx.ExtensionRequired as error:
            print(f"   ExtensionRequired: {error.detail}")


if __name__ == "__main__":
    asyncio.run(main())
