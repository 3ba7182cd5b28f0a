"""An outbox worker that kills itself (SIGKILL) at a chosen point: for the crash test.

``python outbox_crash_worker.py '{"db": ..., "host": ..., "port": ..., "kill": [KIND, N],
"chunking": true}'`` runs ``Outbox.run(pool, until_idle=True)`` and, at the N-th event
of KIND, sends itself SIGKILL -- no cleanup, no flush, exactly like ``kill -9``:

``end``    right after the outbox recorded "the end of the message may leave" (the hook
           returned; the end is written next): the worst point
``sql``    as SQLite is about to run the N-th statement (inside a transaction, often)
``rcpt``   as the N-th RCPT reply is read (between the RCPTs of one transaction)
``wait``   as the worker starts its N-th wait for a deferred recipient
``none``   never: run until nothing is left to send, exit 0
``report`` never by itself: print a line per ``end``, ``rcpt`` and ``wait`` event to
           stdout (flushed) and carry on, for the test to kill it from outside when the
           event it chose has happened
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from typing import Any

import smtpx
from smtpx.outbox import Outbox


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillAt(logging.Handler):
    """Counts matching log records and dies at the chosen one."""

    def __init__(self, kind: str, n: int) -> None:
        super().__init__(logging.DEBUG)
        self.kind, self.n, self.seen = kind, n, 0

    @staticmethod
    def event(record: logging.LogRecord) -> str | None:
        """The kind of event a log record shows, if any."""
        message = record.getMessage()
        if "may leave" in message:
            return "end"
        if message.startswith("waiting") and not message.startswith("waiting 0.000"):
            return "wait"
        fields = getattr(record, "smtpx", None) or {}
        if fields.get("direction") == "<<<" and fields.get("command") == "RCPT":
            return "rcpt"
        return None

    def emit(self, record: logging.LogRecord) -> None:
        kind = self.event(record)
        if kind is None:
            return
        if self.kind == "report":
            # written before the worker goes on: the test kills it after this point
            sys.stdout.write(kind + "\n")
            sys.stdout.flush()
        elif kind == self.kind:
            self.seen += 1
            if self.seen == self.n:
                die()


async def main(spec: dict[str, Any]) -> None:
    kind, n = spec["kill"]
    statements = 0

    def trace(statement: str) -> None:
        nonlocal statements
        statements += 1
        if kind == "sql" and statements == n:
            die()

    handler = KillAt(kind, n)
    for name in ("smtpx.outbox", "smtpx.transcript"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    policy = smtpx.RetryPolicy(
        attempts=spec["attempts"], backoff=smtpx.Backoff(initial=0.02, maximum=0.05, jitter=0)
    )
    with Outbox(spec["db"], retry=policy, poll_interval=0.05, trace=trace) as outbox:
        async with smtpx.Pool(
            spec["host"],
            spec["port"],
            size=2,
            tls=smtpx.TLSMode.NONE,
            local_hostname="crash.test",
            timeout=10,
            chunking=spec["chunking"],
            transcript=kind in ("rcpt", "report"),
        ) as pool:
            await outbox.run(pool, until_idle=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
