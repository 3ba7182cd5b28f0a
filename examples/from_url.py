"""Configure a client from a URL in the environment, and see a bad URL refused safely.

Run: ``.venv/bin/python examples/from_url.py``.  The SMTP server is embedded
(``smtpx.testing.ScriptedServer`` on 127.0.0.1), so the example needs no network.
"""

from __future__ import annotations

import asyncio
import os

import smtpx
from smtpx.testing import ScriptedServer

PASSWORD = "p@ss/word"  # noqa: S105  # the embedded server's, for this example
MESSAGE = b"From: app@example.com\r\nTo: alice@example.com\r\nSubject: Hi\r\n\r\nHello.\r\n"


async def main() -> None:
    async with ScriptedServer(credentials={"app": PASSWORD}) as server:
        # What a deployment sets; smtp:// is plaintext, for this loopback server only.
        os.environ["SMTPX_URL"] = (
            f"smtp://app@{server.host}:{server.port}"
            "?local_hostname=client.example.com&timeout=10&allow_plaintext_auth=true"
        )
        os.environ["SMTPX_PASSWORD"] = PASSWORD  # or in the URL, as p%40ss%2Fword

        config = smtpx.ClientConfig.from_env()
        print(f"config: {config.host}:{config.port} tls={config.tls.value}")
        print(f"credentials: {config.credentials}")
        async with smtpx.Client(config) as client:
            result = await client.send(MESSAGE)
        print(f"accepted: {', '.join(result.accepted)}")

    # A password with an unencoded "/" cuts the URL short; the error does not repeat it.
    try:
        smtpx.ClientConfig.from_url("smtps://app:p@ss/word@smtp.example.com")
    except smtpx.UsageError as error:
        print(f"refused: {error.detail}")
        print(f"password shown: {'p@ss' in str(error) or 'ss/word' in str(error)}")


if __name__ == "__main__":
    asyncio.run(main())
