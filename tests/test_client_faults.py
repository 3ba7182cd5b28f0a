"""Exhaustive fault injection through the real asyncio client, with RetryPolicy and Pool.

The shapes of ``protocol_harness.shapes()`` run through ``smtpx.Client`` (retried by a
``RetryPolicy``) and through ``smtpx.Pool``, over ``memory_network``: the edge, the
flows and the session are the real ones; only the socket is in memory.  At every
octet offset of the first connection's client writes and server replies (large
payloads sampled beyond their first and last 64 octets), the connection is lost,
stalls until a time-out, or the caller is cancelled.  For every case, per recipient
of every message, what the server delivered is checked against what the caller was
told: delivered at most once; accepted means delivered once; refused, or
undelivered without ``DeliveryUnknown``, means not delivered.  ``DeliveryUnknown`` is
never resent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest
from memory_network import Cut, MemoryNetwork, VirtualLoop
from protocol_harness import Shape, shapes

import smtpx
from smtpx import RetryPolicy, VirtualClock
from smtpx import errors as e
from smtpx._envelope import Envelope
from smtpx._network import NETWORK
from smtpx._retry_engine import send_with_retry
from smtpx.protocol import StartTLS
from smtpx.results import SendResult

SHAPES = {shape.name: shape for shape in shapes()}
EDGE = 24
SAMPLES = 8
WHATS = ("lost", "stall", "cancel")
MODES = ("retry", "pool")

Outcome = SendResult | e.SMTPError | asyncio.CancelledError


def options(shape: Shape) -> dict[str, object]:
    return {
        "tls": "none" if shape.starttls is StartTLS.NEVER else "starttls",
        "credentials": shape.secret,
        "allow_plaintext_auth": True,
        "local_hostname": "client.test",
        "chunking": shape.chunking,
        "add_missing_headers": False,
        "timeout": 1.0,
        "total_timeout": 5.0,
    }


async def _one(network: MemoryNetwork, coroutine: Coroutine[Any, Any, SendResult]) -> Outcome:
    task = asyncio.ensure_future(coroutine)
    network.task = task
    try:
        return await task
    except e.SMTPError as error:
        return error
    except asyncio.CancelledError as cancelled:
        return cancelled
    finally:
        network.task = None


async def _run(shape: Shape, mode: str, network: MemoryNetwork) -> list[Outcome]:
    NETWORK.set(network)
    outcomes: list[Outcome] = []
    if mode == "retry":
        client = smtpx.Client("mx.test", 25, **options(shape))  # type: ignore[arg-type]
        policy = RetryPolicy.for_testing(VirtualClock(), attempts=3)

        async def attempt(envelope: Envelope) -> SendResult:
            async with client.lock:
                return await send_with_retry(client, envelope, policy)

        for envelope in shape.messages:
            outcomes.append(await _one(network, attempt(envelope)))
        client.close()
    else:
        pool = smtpx.Pool("mx.test", 25, size=1, **options(shape))  # type: ignore[arg-type]
        for envelope in shape.messages:
            sending = pool.send(
                envelope.data, sender=envelope.sender, recipients=envelope.recipients
            )
            outcomes.append(await _one(network, sending))
        await pool.close()
    return outcomes


def run(shape: Shape, mode: str, cut: Cut | None) -> tuple[list[Outcome], MemoryNetwork]:
    network = MemoryNetwork(shape.script, cut)
    loop = VirtualLoop()
    try:
        outcomes = loop.run_until_complete(_run(shape, mode, network))
    finally:
        loop.close()
    return outcomes, network


@functools.cache
def golden_sizes(name: str) -> tuple[int, int]:
    """Client octets written and server octets delivered on a fault-free connection."""
    probe = Cut("client", 10**9, "lost")  # never fires: only measures
    network = MemoryNetwork(SHAPES[name].script, probe)
    loop = VirtualLoop()
    sizes: list[int] = []

    async def measure() -> None:
        NETWORK.set(network)
        client = smtpx.Client("mx.test", 25, **options(SHAPES[name]))  # type: ignore[arg-type]
        for envelope in SHAPES[name].messages:
            # a shape whose messages are refused: the octets still count
            async with client.lock:
                with contextlib.suppress(e.SMTPError):
                    await client.send_envelope(envelope)
        first = network.transports[0]
        sizes.extend((first.written, first.delivered))
        client.close()

    try:
        loop.run_until_complete(measure())
    finally:
        loop.close()
    return sizes[0], sizes[1]


def offsets(size: int) -> list[int]:
    if size <= 2 * EDGE + SAMPLES:
        return list(range(size + 1))
    inner = range(EDGE + 1, size - EDGE, max(1, (size - 2 * EDGE) // SAMPLES))
    return sorted({*range(EDGE + 1), *inner, *range(size - EDGE, size + 1)})


def cuts(name: str) -> Iterator[Cut]:
    written, delivered = golden_sizes(name)
    for side, size in (("client", written), ("server", delivered)):
        for offset in offsets(size):
            for what in WHATS:
                yield Cut(side, offset, what)


def judge(shape: Shape, outcomes: list[Outcome], network: MemoryNetwork) -> list[str]:
    problems: list[str] = []
    for envelope, outcome in zip(shape.messages, outcomes, strict=True):
        for recipient in envelope.recipients:
            count = sum(
                recipient in d.recipients and d.data == envelope.data
                for d in network.store.deliveries
            )
            where = f"{recipient} ({outcome!r})"
            if count > 1:
                problems.append(f"{where}: delivered {count} times")
            if isinstance(outcome, asyncio.CancelledError):
                continue
            refusal = outcome.rejected.get(recipient)
            if isinstance(refusal, e.DeliveryUnknown):
                continue  # at most once (checked above), and never resent
            if isinstance(outcome, SendResult):
                if recipient in outcome.accepted and count != 1:
                    problems.append(f"{where}: accepted, delivered {count}")
                elif refusal is not None and count:
                    problems.append(f"{where}: refused, yet delivered")
                elif recipient not in outcome.accepted and refusal is None:
                    problems.append(f"{where}: neither accepted nor refused")
                continue
            if refusal is not None:
                if count:
                    problems.append(f"{where}: refused, yet delivered")
            elif recipient in outcome.undelivered:
                if count and not isinstance(outcome, e.DeliveryUnknown):
                    problems.append(f"{where}: said undelivered (retry-safe), yet delivered")
            else:
                problems.append(f"{where}: not accounted for")
    return problems


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_fault_through_the_client(name: str, mode: str) -> None:
    shape = SHAPES[name]
    clean, _ = run(shape, mode, None)
    assert all(isinstance(outcome, SendResult | e.SMTPError) for outcome in clean)
    failures: list[str] = []
    cases = 0
    for cut in cuts(name):
        outcomes, network = run(shape, mode, cut)
        cases += 1
        for problem in judge(shape, outcomes, network):
            failures.append(f"{cut}: {problem}")
    assert cases > 0
    assert failures == [], "\n".join(failures[:20])


def test_the_case_count_is_documented() -> None:
    from pathlib import Path

    total = sum(len(list(cuts(name))) * len(MODES) for name in SHAPES)
    page = (Path(__file__).parent.parent / "docs" / "security.md").read_text()
    assert f"{total:,} cases" in page, total
