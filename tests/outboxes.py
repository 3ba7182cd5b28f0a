"""An outbox on virtual time, for the in-process outbox tests: its clock and sleep come
from one ``VirtualClock``, so retry waits and leases cost nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import smtpx
from smtpx import VirtualClock
from smtpx.outbox import Outbox

START = 1_000_000.0  # the virtual wall clock's "now" when a test starts


def virtual_clock() -> VirtualClock:
    clock = VirtualClock()
    clock.now = START
    return clock


def virtual_outbox(directory: Path, clock: VirtualClock, **options: Any) -> Outbox:
    """``outbox.db`` in ``directory``: 3 attempts 10 s apart, max_age 10,000 s."""
    policy = smtpx.RetryPolicy(attempts=3, backoff=smtpx.Backoff(initial=10, jitter=0))
    settings: dict[str, Any] = {"retry": policy, "max_age": 10_000, **options}
    return Outbox(directory / "outbox.db", clock=clock.monotonic, sleep=clock.sleep, **settings)
