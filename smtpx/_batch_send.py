"""The loop behind ``Client.send_many``: messages in batches, one connection after another.

Each batch (``smtpx.protocol.batch.MailBatch``) sends on one session; when the session
closes under it, the messages it never started go in a batch on the next connection.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from itertools import chain

from smtpx import errors as e
from smtpx._envelope import Envelope
from smtpx.protocol.batch import Item, Leading, MailBatch
from smtpx.protocol.session import Session
from smtpx.results import SendResult

__all__ = ["send_batches"]

logger = logging.getLogger("smtpx.client")

Outcome = SendResult | e.SMTPError


async def send_batches(
    items: Iterator[Item],
    *,
    session: Callable[[Envelope], Awaitable[Session]],
    run: Callable[[Leading], Awaitable[Outcome]],
    chunking: bool,
) -> AsyncGenerator[Outcome, None]:
    """Each item's outcome, in order.  ``session`` gives a connected session for the
    envelope about to go (connecting if needed); ``run`` runs one message's flow to its
    outcome.  A failure to connect is the outcome of every message left."""
    while (first := next(items, None)) is not None:
        if isinstance(first, e.SMTPError):  # it could not be prepared
            yield first
            continue
        try:
            current = await session(first)
        except e.SMTPError as failure:
            yield failure
            for item in items:
                yield _failed_too(item, failure)
            return
        batch = MailBatch(current, chain((first,), items), chunking=chunking)
        while (flow := batch.next_flow()) is not None:
            outcome = await run(flow)
            try:
                yield outcome
            except GeneratorExit:
                await _finish_started(batch, run)
                raise
        items = batch.left()


def _failed_too(item: Item, failure: e.SMTPError) -> e.SMTPError:
    """``failure`` (connecting) for another message it stopped: nobody got that one."""
    if isinstance(item, e.SMTPError):
        return item
    return e.enrich(copy.copy(failure), undelivered=item.recipients)


async def _finish_started(batch: MailBatch, run: Callable[[Leading], Awaitable[Outcome]]) -> None:
    """The caller left the loop: finish the message already under way (its commands are
    out; leaving it would leave the server mid-transaction) and start no other."""
    batch.stop()
    while (flow := batch.next_flow()) is not None:
        outcome = await run(flow)
        if isinstance(outcome, e.SMTPError):
            logger.warning("send_many was left early; a message under way failed: %s", outcome)
        else:
            logger.info("send_many was left early; a message under way was sent: %s", outcome)
