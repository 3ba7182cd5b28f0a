"""Work spread over concurrent lanes, its outcomes handed back in the order of the input.

``in_order(items, lanes, lane, window)`` runs ``lanes`` tasks; each calls
``lane(feed)`` with a feed of its own that takes the next item from the one shared
iterator when the lane is ready for it, so a fast lane takes more items and nothing
is taken twice.  Each lane yields one outcome per item it took, in the order it took
them; the outcomes come back in the input's order.  At most ``window`` outcomes wait
for the caller: a lane that is that far ahead pauses.  When the caller stops early,
the lanes take no further item, finish what they have under way, and are awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator
from typing import TypeVar

__all__ = ["in_order"]

logger = logging.getLogger("smtpx.pool")

T = TypeVar("T")
R = TypeVar("R")


async def in_order(
    items: Iterable[T],
    lanes: int,
    lane: Callable[[Iterator[T]], AsyncIterator[R]],
    window: int,
) -> AsyncGenerator[R, None]:
    source = enumerate(items)
    done: dict[int, R] = {}
    changed = asyncio.Event()
    space = asyncio.Semaphore(window)
    stopping = False

    def feed(taken: deque[int]) -> Iterator[T]:
        while not stopping:
            step = next(source, None)
            if step is None:
                return
            taken.append(step[0])
            yield step[1]

    async def run(taken: deque[int]) -> None:
        try:
            outcomes = lane(feed(taken))
            async with contextlib.aclosing(outcomes):  # type: ignore[type-var]
                async for outcome in outcomes:
                    done[taken.popleft()] = outcome
                    changed.set()
                    await space.acquire()
        finally:
            changed.set()

    tasks = [asyncio.create_task(run(deque())) for _ in range(lanes)]
    following = 0
    try:
        while True:
            while following in done:
                outcome = done.pop(following)
                following += 1
                space.release()
                yield outcome
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            if all(task.done() for task in tasks):
                return
            changed.clear()
            await changed.wait()
    except (asyncio.CancelledError, Exception):
        for task in tasks:  # cancelled, or a lane failed: stop the others now
            task.cancel()
        raise
    finally:
        stopping = True
        for _ in tasks:
            space.release()  # a lane waiting for room goes on to its end
        await asyncio.gather(*tasks, return_exceptions=True)
        for index in sorted(done):  # finished after the caller stopped listening
            left_behind(done[index])


def left_behind(outcome: object) -> None:
    """An outcome that arrived after the caller stopped reading: logged, never lost."""
    logger.info("an outcome arrived after the caller stopped reading: %s", outcome)
