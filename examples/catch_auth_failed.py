"""Catch authentication failures by type: wrong password, and a temporary AUTH outage.

Run: ``.venv/bin/python examples/catch_auth_failed.py``.  The SMTP server is embedded
(``smtpx.testing.ScriptedServer`` on 127.0.0.1) and accepts user "app", password "s3cret".
"""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from typing import Any

import smtpx
from smtpx.testing import ScriptedServer


def build_message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "app@example.com"
    message["To"] = "alice@example.com"
    message["Subject"] = "Your sign-in code"
    message.set_content("123456\n")
    return message


async def attempt(password: str, options: dict[str, Any]) -> None:
    try:
        result = await smtpx.send(build_message(), credentials=("app", password), **options)
    except smtpx.AuthFailed as error:  # 535: wrong user name or password; do not retry
        print(
            f"AuthFailed: code={error.code} enhanced={error.enhanced} retryable={error.retryable}"
        )
        print(f"  {error}")
    except smtpx.AuthError as error:  # any other AUTH trouble, transient or permanent
        print(f"{type(error).__name__}: code={error.code} retryable={error.retryable}")
        print(f"  {error}")
    else:
        print(f"sent: accepted {', '.join(result.accepted)}")


async def main() -> None:
    async with ScriptedServer(credentials={"app": "s3cret"}) as server:
        options: dict[str, Any] = {
            "host": server.host,
            "port": server.port,
            # Loopback only.  Real servers: keep the default TLS and never opt in to
            # sending credentials over plaintext.
            "tls": smtpx.TLSMode.NONE,
            "allow_plaintext_auth": True,
            "local_hostname": "example.local",
            "timeout": 10,
        }
        print("1. wrong password")
        await attempt("wrong", options)

        print("2. the server cannot check passwords right now")
        server.on("AUTH", reply="454 4.7.0 Temporary authentication failure", times=1)
        await attempt("s3cret", options)

        print("3. right password")
        await attempt("s3cret", options)


if __name__ == "__main__":
    asyncio.run(main())
