"""One sending process for the shared-limit test: its pool obeys limits kept in Redis.

``python redis_limit_worker.py '{"redis": PORT, "host": ..., "port": ..., "messages": N,
"rate": R, "slots": S}'`` sends N messages through a ``SharedLimitPool`` (key "acct",
``rate`` R/s), recording when each message's end is about to be written; then N more
through a plain pool, each inside a ``SharedConcurrency`` slot (limit S), counting the
holders in Redis from inside the slot.  Prints one JSON line: the end times, the largest
number of holders seen, and how many recipients accepted.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from redis.asyncio import Redis

import smtpx
from smtpx.contrib.redis import SharedConcurrency, SharedLimitPool

MESSAGE = b"From: app@example.com\r\nTo: user@example.com\r\nSubject: s\r\n\r\nhi\r\n"
PLAIN: dict[str, Any] = {"tls": smtpx.TLSMode.NONE, "local_hostname": "limits.test"}


async def main(spec: dict[str, Any]) -> None:
    redis = Redis(host="127.0.0.1", port=spec["redis"])
    ends: list[float] = []
    accepted = 0
    async with SharedLimitPool(
        spec["host"], spec["port"], redis=redis, key="acct", rate=spec["rate"], size=3, **PLAIN
    ) as pool:
        with smtpx.before_end_of_message(lambda _: ends.append(time.time())):
            results = await asyncio.gather(*(pool.send(MESSAGE) for _ in range(spec["messages"])))
        accepted += sum(len(r.accepted) for r in results)

    slots = SharedConcurrency(redis, "host-slots", spec["slots"], poll=0.002)
    most = 0

    async def send_in_slot(pool: smtpx.Pool) -> smtpx.SendResult:
        nonlocal most
        async with slots.slot():
            most = max(most, await redis.incr("holders"))
            try:
                return await pool.send(MESSAGE)
            finally:
                await redis.decr("holders")

    async with smtpx.Pool(spec["host"], spec["port"], size=3, **PLAIN) as pool:
        results = await asyncio.gather(*(send_in_slot(pool) for _ in range(spec["messages"])))
        accepted += sum(len(r.accepted) for r in results)
    await redis.aclose()
    print(json.dumps({"ends": ends, "most_holders": most, "accepted": accepted}))


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
