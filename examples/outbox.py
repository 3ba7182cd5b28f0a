"""A durable outbox: store first, deliver after, and know each recipient's fate.

Run: ``.venv/bin/python examples/outbox.py``.  The SMTP server is embedded
(``smtpx.testing.ScriptedServer``) and the retry waits are shortened, so the example
needs no network and ends in a second.  The outbox file lives in a temporary folder.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import smtpx
from smtpx.outbox import Outbox, State
from smtpx.testing import ScriptedServer

ORDER = b"""\
From: shop@example.com
To: alice@example.com, bob@example.com, nobody@example.com
Subject: Your order has shipped

It is on its way.
"""
RECEIPT = b"""\
From: shop@example.com
To: carol@example.com
Subject: Your receipt

Thank you.
"""


async def main() -> None:
    async with ScriptedServer() as server:
        server.on("RCPT", match="bob@", reply="450 4.2.0 Greylisted, try again later", times=1)
        server.on("RCPT", match="nobody@", reply="550 5.1.1 No such user here")
        # carol's server takes the message but the reply is lost: nobody can say whether
        # she has it, so the outbox will not send it again on its own.
        server.on("DATA_END", match="receipt", close=True, record=True, times=1)

        folder = Path(tempfile.mkdtemp())
        retry = smtpx.RetryPolicy(attempts=3, backoff=smtpx.Backoff(initial=0.05))
        with Outbox(folder / "outbox.db", retry=retry, poll_interval=0.05) as outbox:
            # put() returns once the message is on disk; the key makes a retry of the
            # web request that put it harmless.
            order = await outbox.put(ORDER, key="order-1042")
            assert await outbox.put(ORDER, key="order-1042") == order
            receipt = await outbox.put(RECEIPT, key="receipt-1042")

            async with smtpx.Client(
                server.host, server.port, tls=smtpx.TLSMode.NONE, local_hostname="shop.local"
            ) as client:
                await outbox.run(client, until_idle=True)

            for message_id in (order, receipt):
                status = outbox.status(message_id)
                assert status is not None
                for recipient in status.recipients:
                    why = f"  ({recipient.failure.error})" if recipient.failure else ""
                    line = f"{recipient.address}: {recipient.state.value}"
                    print(f"{line}, {recipient.attempts} attempt(s){why}")

            print("unknown:", [r.address for r in outbox.unknown()])
            # Say carol's mailbox shows nothing: send it to her again.
            outbox.release(receipt)
            async with smtpx.Client(
                server.host, server.port, tls=smtpx.TLSMode.NONE, local_hostname="shop.local"
            ) as client:
                await outbox.run(client, until_idle=True)
            stats = outbox.stats()
            print("accepted:", stats.count(State.ACCEPTED), "refused:", stats.count(State.REFUSED))
            print(
                "copies on the server:",
                {
                    r: len(server.received_by(r))
                    for r in ("alice@example.com", "bob@example.com", "carol@example.com")
                },
            )


if __name__ == "__main__":
    asyncio.run(main())
