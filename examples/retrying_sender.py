"""Retrying a transient failure: one recipient is greylisted, the other accepts at once.

Run: ``.venv/bin/python examples/retrying_sender.py``.  The server is embedded; waits are
shortened so the example finishes in a second.
"""

from __future__ import annotations

import asyncio
import logging

import smtpx
from smtpx.testing import ScriptedServer

MESSAGE = b"""\
From: shop@example.com
To: alice@example.com, bob@example.com
Subject: Your order has shipped

It is on its way.
"""


async def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    async with ScriptedServer() as server:
        server.on("RCPT", match="bob@", reply="450 4.2.0 Greylisted, try again later", times=2)
        policy = smtpx.RetryPolicy(
            attempts=5, timeout=30, backoff=smtpx.Backoff(initial=0.1, honour_hint=False)
        )
        result = await smtpx.send(
            MESSAGE,
            host=server.host,
            port=server.port,
            tls=smtpx.TLSMode.NONE,  # loopback demo server; real servers: keep the default
            retry=policy,
        )
        print("accepted:", result.accepted)
        print("copies:", {r: len(server.received_by(r)) for r in result.accepted})


if __name__ == "__main__":
    asyncio.run(main())
