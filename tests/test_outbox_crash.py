"""Kill -9 the outbox worker at random points, many times, against Postfix: nothing lost,
nothing twice.

A real worker process (tests/outbox_crash_worker.py) delivers a stored batch to the
throwaway Postfix and is killed, again and again: at the worst point (right after it
recorded that the end of a message may leave), while SQLite runs a statement, between
RCPT replies, while it waits to retry a deferred recipient, and from outside (``kill -9``
by PID) after an event the worker reported on a pipe.  Every kill point is an event the
worker reached, never a moment on a clock.  Then one last worker finishes the batch.
Postfix's log says how many copies
each recipient got (its ``discard`` agent logs one ``status=sent`` line per recipient of
each message it accepted); the outbox must agree, for every recipient:

- accepted          -> exactly one copy
- refused, expired  -> none
- delivery_unknown  -> none or one (the worker died after the end may have left)

and nothing is left pending; the database passes ``PRAGMA integrity_check`` after every
kill.  Seeds are fixed; the kill points come from a seeded RNG.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from realservers import PostfixServer

import smtpx
from smtpx.outbox import Outbox, State

WORKER = Path(__file__).with_name("outbox_crash_worker.py")
SEED = 19
ROUNDS = 48
PER_ROUND = 6  # messages the application puts before each worker starts
ATTEMPTS = 3
# (kind, lowest, highest): the N-th event of that kind kills the worker
KILLS = [("end", 1, 3), ("end", 1, 6), ("sql", 1, 150), ("rcpt", 1, 8), ("wait", 1, 2)]


def put_batch(db: Path, rng: random.Random, domain: str, first: int) -> None:
    """Store PER_ROUND messages, numbered from ``first``: ordinary recipients, and
    Postfix's special addresses that refuse (hard550) or defer (soft450) at RCPT."""

    async def put() -> None:
        with Outbox(db) as outbox:
            for i in range(first, first + PER_ROUND):
                local = [f"u{j}" for j in range(rng.randint(1, 3))]
                local += rng.choice([[], [], ["soft450"], ["hard550"], ["soft450", "hard550"]])
                rng.shuffle(local)
                body = f"From: app@{domain}\r\nSubject: {i}\r\n\r\nmessage {i}\r\n"
                recipients = [f"{name}@m{i}.{domain}" for name in local]
                await outbox.put(body.encode(), recipients=recipients, key=f"m{i}")

    asyncio.run(put())


def run_worker(db: Path, postfix: PostfixServer, kill: tuple[str, int], chunking: bool) -> int:
    spec = {
        "db": str(db),
        "host": postfix.host,
        "port": postfix.submission_port,
        "kill": list(kill),
        "chunking": chunking,
        "attempts": ATTEMPTS,
    }
    result = subprocess.run(
        [sys.executable, str(WORKER), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode in (0, -signal.SIGKILL), result.stderr
    return result.returncode


def run_worker_killed_from_outside(
    db: Path, postfix: PostfixServer, event: tuple[str, int], tmp_path: Path
) -> int:
    """Kill -9 the worker, by PID from outside, once it has reported the N-th event of
    a kind (it prints each as it happens and goes on): a point chosen by what the worker
    did, not by how long it ran.  A worker that finishes first exits 0."""
    kind, n = event
    spec = {
        "db": str(db),
        "host": postfix.host,
        "port": postfix.submission_port,
        "kill": ["report", 0],
        "chunking": True,
        "attempts": ATTEMPTS,
    }
    errors = tmp_path / "worker-stderr.txt"
    with errors.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(spec)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        assert process.stdout is not None
        seen = 0
        for line in process.stdout:
            seen += line.strip() == kind
            if seen == n:
                process.send_signal(signal.SIGKILL)  # kill -9, by PID, from outside
                break
        process.stdout.close()
        process.wait(timeout=60)
    assert process.returncode in (0, -signal.SIGKILL), errors.read_text()
    return process.returncode


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as connection:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])


def queue_empty(postfix: PostfixServer) -> bool:
    result = subprocess.run(
        ["/usr/sbin/postqueue", "-c", str(postfix.config_dir), "-p"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return "Mail queue is empty" in result.stdout


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def deliveries(postfix: PostfixServer, domain: str) -> Counter[str]:
    """Copies Postfix delivered per recipient of ``domain`` (its discard agent's log)."""
    pattern = re.compile(rf"to=<([^>]+@[^>]*\.{re.escape(domain)})>.*status=sent")
    return Counter(pattern.findall(postfix.log_file.read_text(errors="replace")))


def test_kill_9_at_any_point_loses_nothing_and_sends_nothing_twice(
    postfix_server: PostfixServer, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    domain = f"r{SEED}-{int(time.time() * 1000)}.example.test"  # ours alone in the log
    db = tmp_path / "outbox.db"
    killed: Counter[str] = Counter()
    for round_ in range(ROUNDS):
        put_batch(db, rng, domain, round_ * PER_ROUND)
        if round_ % 6 == 5:  # from outside, after an event the worker reported
            kind = "external"
            event = rng.choice([("end", 1, 4), ("rcpt", 1, 10), ("wait", 1, 2)])
            chosen = (event[0], rng.randint(event[1], event[2]))
            code = run_worker_killed_from_outside(db, postfix_server, chosen, tmp_path)
        else:
            kind, low, high = KILLS[round_ % len(KILLS)]  # every kind, as often
            code = run_worker(db, postfix_server, (kind, rng.randint(low, high)), round_ % 2 == 0)
        killed[kind] += code == -signal.SIGKILL
        assert integrity(db) == "ok"
    assert run_worker(db, postfix_server, ("none", 0), chunking=True) == 0
    assert integrity(db) == "ok"

    # Everything Postfix accepted has been delivered (and logged) once a sentinel sent
    # after the queue emptied shows up in the log.
    wait_until(lambda: queue_empty(postfix_server), "Postfix's queue to empty")
    sentinel = f"sentinel@last.{domain}"
    smtpx.send_sync(
        b"Subject: sentinel\r\n\r\nlast\r\n",
        host=postfix_server.host,
        port=postfix_server.submission_port,
        sender=f"app@{domain}",
        recipients=[sentinel],
        tls=smtpx.TLSMode.NONE,
        local_hostname="crash.test",
    )
    wait_until(lambda: deliveries(postfix_server, domain)[sentinel] == 1, "the sentinel")
    copies = deliveries(postfix_server, domain)

    final: Counter[State] = Counter()
    unknown_delivered = 0
    with Outbox(db) as outbox:
        for message_id in range(1, ROUNDS * PER_ROUND + 1):
            status = outbox.status(message_id)
            assert status is not None
            for recipient in status.recipients:
                got = copies[recipient.address]
                final[recipient.state] += 1
                where = f"{recipient.address}: {recipient.state.value}, {got} copies"
                if recipient.state is State.ACCEPTED:
                    assert got == 1, where
                elif recipient.state is State.DELIVERY_UNKNOWN:
                    assert got <= 1, where
                    unknown_delivered += got
                else:
                    assert recipient.state in (State.REFUSED, State.EXPIRED), where
                    assert got == 0, where
                local = recipient.address.split("@")[0]
                if local == "hard550":
                    assert recipient.state in (State.REFUSED, State.DELIVERY_UNKNOWN), where
                if local == "soft450":
                    assert recipient.state in (State.EXPIRED, State.DELIVERY_UNKNOWN), where
        assert outbox.stats().in_flight == 0
        assert outbox.check() == "ok"
    total = sum(final.values())
    assert sum(copies.values()) - 1 == final[State.ACCEPTED] + unknown_delivered  # no strays
    assert final[State.ACCEPTED] > total // 2  # the batch did get through
    assert sum(killed.values()) >= ROUNDS * 3 // 4  # and the workers did die, often
    assert all(killed[kind] for kind, _, _ in KILLS), killed  # at every kind of point
    print(
        f"\noutbox crash test: {sum(killed.values())} kills {dict(killed)}; "
        f"{total} recipients: { ({s.value: n for s, n in final.items()}) }; "
        f"delivery_unknown delivered: {unknown_delivered}"
    )
