"""Send through a list of servers: the next one takes over when one is down or busy.

Run: ``.venv/bin/python examples/failover.py``.  Three embedded servers
(``smtpx.testing.ScriptedServer`` on 127.0.0.1) stand in for a provider's hosts: the
first one is down (nothing listens on its port), the second is too busy to greet
(``421``), the third accepts.  Then round-robin spreads connections over two good ones.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import smtpx
from smtpx.testing import ScriptedServer

MESSAGE = b"""\
From: app@example.com
To: alice@example.com
Subject: Your receipt

Thank you!
"""
# plaintext on loopback, for this demonstration only: real servers keep the default TLS
LOOPBACK: dict[str, Any] = {"tls": "none", "local_hostname": "example.local", "timeout": 10}


def a_port_nobody_listens_on() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def main() -> None:
    async with ScriptedServer() as busy, ScriptedServer() as good, ScriptedServer() as spare:
        busy.on("CONNECT", reply="421 4.3.2 Too busy, try another server")
        down = f"127.0.0.1:{a_port_nobody_listens_on()}"
        hosts = [down, f"127.0.0.1:{busy.port}", f"127.0.0.1:{good.port}"]

        print("1. failover: down, busy, good")
        result = await smtpx.send(MESSAGE, hosts=hosts, strategy="failover", **LOOPBACK)
        which = {busy.port: "busy", good.port: "good"}.get(result.port or 0, "?")
        print(f"   accepted by the {which} server: {', '.join(result.accepted)}")

        print("2. round-robin over two good servers, four connections")
        client = smtpx.Client(
            hosts=[f"127.0.0.1:{good.port}", f"127.0.0.1:{spare.port}"],
            strategy="round-robin",
            **LOOPBACK,
        )
        for _ in range(4):
            await client.send(MESSAGE)
            await client.quit()  # the next send opens a new connection
        print(
            f"   good got {len(good.received_by('alice@example.com')) - 1}, "
            f"spare got {len(spare.received_by('alice@example.com'))}"
        )


if __name__ == "__main__":
    asyncio.run(main())
