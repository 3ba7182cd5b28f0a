"""aiosmtpd on 127.0.0.1 discarding every message: a pure-Python peer server for the
benchmark (it does not advertise PIPELINING).  Prints ``PORT <n>`` once listening and
exits when stdin closes, so it cannot outlive the harness that started it.

With ``--chunking`` it is ``smtpx.testing.ScriptedServer`` instead: aiosmtpd with
PIPELINING and CHUNKING (BDAT, which plain aiosmtpd lacks), no rules, for the
chunking mode (smtp-sink does not offer CHUNKING).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

from aiosmtpd.smtp import SMTP

HOST = "127.0.0.1"


class Discard:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 2.0.0 Ok"


async def serve_chunking() -> None:
    from smtpx.testing import ScriptedServer

    loop = asyncio.get_running_loop()
    async with ScriptedServer(hostname="aiosmtpd-chunking", chunking=True) as server:
        print(f"PORT {server.port}", flush=True)
        await loop.run_in_executor(None, sys.stdin.read)


async def serve() -> None:
    loop = asyncio.get_running_loop()
    handler = Discard()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="aiosmtpd-sink", ident="aiosmtpd-sink"),
        HOST,
        0,
        backlog=1000,
    )
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    # Ctrl-C reaches the whole process group: the harness stops us by PID (see proxy.py)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(serve_chunking() if "--chunking" in sys.argv[1:] else serve())
