# Long on purpose (~430 lines): every read and write of the outbox database in one module.
"""Every read and write of the outbox database, each one short transaction.

The store is synchronous on purpose: the worker records "the end of the message may
leave now" from inside the client's ``before_end_of_message`` hook, which must have
committed before it returns.  One connection, used from one thread, keeps the order
of writes the order of events; each transaction touches one message and lasts about
one ``fsync``.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path

import attrs

from smtpx.outbox import _schema
from smtpx.outbox._values import (
    Failure,
    MessageStatus,
    OutboxStats,
    RecipientStatus,
    State,
    Verdict,
)

__all__ = ["Job", "Store"]


@attrs.frozen
class Job:
    """One message's recipients that are due, claimed for one attempt."""

    message_id: int
    sender: str
    recipients: tuple[str, ...]
    attempts: Mapping[str, int]  # this one included
    attempt: int = 0  # the attempt's id, once claimed


class Store:
    def __init__(
        self,
        path: Path,
        *,
        timeout: float,
        fsync: bool = True,
        trace: Callable[[str], None] | None = None,
    ) -> None:
        self.path = path
        self.db = _schema.connect(path, timeout=timeout, fsync=fsync, trace=trace)

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- putting ------------------------------------------------------------------------

    def find_key(self, key: str) -> int | None:
        row = self.db.execute("SELECT id FROM message WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else None

    def add(
        self,
        *,
        key: str | None,
        sender: str,
        recipients: Iterable[str],
        size: int,
        body: bytes | None,
        body_file: str | None,
        now: float,
        expires: float | None,
    ) -> tuple[int, bool]:
        """Insert a message and its recipients; ``(id, False)`` if ``key`` is taken."""
        with self._transaction() as db:
            if key is not None and (existing := self.find_key(key)) is not None:
                return existing, False
            cursor = db.execute(
                "INSERT INTO message (key, sender, size, body, body_file, created, expires)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, sender, size, body, body_file, now, expires),
            )
            message_id = cursor.lastrowid
            assert message_id is not None
            db.executemany(
                "INSERT INTO recipient (message_id, position, address, state, due, updated)"
                " VALUES (?, ?, ?, 'pending', ?, ?)",
                [(message_id, i, address, now, now) for i, address in enumerate(recipients)],
            )
        return message_id, True

    def body(self, message_id: int) -> tuple[bytes | None, str | None]:
        row = self.db.execute(
            "SELECT body, body_file FROM message WHERE id = ?", (message_id,)
        ).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def body_files(self) -> set[str]:
        rows = self.db.execute("SELECT body_file FROM message WHERE body_file IS NOT NULL")
        return {row[0] for row in rows}

    # -- the worker's cycle ---------------------------------------------------------------

    def recover(self, now: float, started_before: float | None = None) -> tuple[int, int]:
        """After a worker stopped mid-attempt: a recipient whose end may have left becomes
        ``delivery_unknown``; any other goes back to be sent.  Returns both counts.

        Every attempt not ended, or (``started_before``) only those whose lease began
        before then: the attempts of workers that share the database stay theirs."""
        before = math.inf if started_before is None else started_before
        with self._transaction() as db:
            unknown = db.execute(
                "UPDATE recipient SET state = 'delivery_unknown', due = NULL, attempt = NULL,"
                " end_written = 0, error = 'DeliveryUnknown', code = NULL, enhanced = NULL,"
                " reason = NULL, text = ?, updated = ? WHERE end_written = 1 AND attempt IN"
                " (SELECT id FROM attempt WHERE ended IS NULL AND started < ?)",
                (_STOPPED_AFTER_END, now, before),
            ).rowcount
            back = db.execute(
                "UPDATE recipient SET attempt = NULL, updated = ? WHERE attempt IN"
                " (SELECT id FROM attempt WHERE ended IS NULL AND started < ?)",
                (now, before),
            ).rowcount
            db.execute(
                "UPDATE attempt SET ended = ? WHERE ended IS NULL AND started < ?", (now, before)
            )
        return unknown, back

    def take(self, attempt: int, now: float) -> Job | None:
        """The job of an attempt ``due`` claimed, for the one worker that delivers it.

        The claimed attempt ends and a new one, whose lease starts now, takes its
        recipients: a second ``take`` of the same attempt (a task queue delivering the
        task twice, or again after its worker died mid-send) gets None, so it can never
        send what the first may be sending.  None too when the attempt was taken back."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT a.message_id, m.sender FROM attempt a JOIN message m"
                " ON m.id = a.message_id WHERE a.id = ? AND a.ended IS NULL",
                (attempt,),
            ).fetchone()
            if row is None:
                return None
            db.execute("UPDATE attempt SET ended = ? WHERE id = ?", (now, attempt))
            rows = db.execute(
                "SELECT address, attempts FROM recipient WHERE attempt = ? ORDER BY position",
                (attempt,),
            ).fetchall()
            if not rows:
                return None
            taken = db.execute(
                "INSERT INTO attempt (message_id, started) VALUES (?, ?)", (row[0], now)
            ).lastrowid
            assert taken is not None
            db.execute(
                "UPDATE recipient SET attempt = ?, updated = ? WHERE attempt = ?",
                (taken, now, attempt),
            )
        return _job(row[0], row[1], rows, taken)

    def expire(self, now: float) -> tuple[int, list[str]]:
        """Recipients still to send whose message is past ``expires`` become ``expired``.
        Returns their number and the body files of messages now finished."""
        expired = [
            row[0]
            for row in self.db.execute(
                "SELECT DISTINCT m.id FROM message m JOIN recipient r ON r.message_id = m.id"
                " WHERE m.finished IS NULL AND m.expires <= ?"
                " AND r.state IN ('pending', 'deferred') AND r.attempt IS NULL",
                (now,),
            )
        ]
        if not expired:
            return 0, []
        count = 0
        with self._transaction() as db:
            for message_id in expired:
                count += db.execute(
                    "UPDATE recipient SET state = 'expired', due = NULL, updated = ?,"
                    " text = coalesce(text, 'not sent within max_age')"
                    " WHERE message_id = ? AND state IN ('pending', 'deferred')"
                    " AND attempt IS NULL",
                    (now, message_id),
                ).rowcount
            files = self._finish(expired, now)
        return count, files

    def due(self, now: float, limit: int, busy: Collection[int]) -> list[Job]:
        """Up to ``limit`` messages with recipients due now, claimed for one attempt each.

        A message with an attempt under way (``busy``) is skipped."""
        jobs: list[Job] = []
        if limit <= 0:
            return jobs
        # Walk the to-send index in due order; the scan stops once enough messages are found.
        rows = self.db.execute(
            "SELECT message_id FROM recipient WHERE state IN ('pending', 'deferred')"
            " AND attempt IS NULL AND due <= ? ORDER BY due",
            (now,),
        )
        candidates: list[int] = []
        for (message_id,) in rows:
            if message_id not in busy and message_id not in candidates:
                candidates.append(message_id)
                if len(candidates) == limit:
                    break
        rows.close()
        for message_id in candidates:
            job = self._claim(message_id, now)
            if job is not None:
                jobs.append(job)
        return jobs

    def _claim(self, message_id: int, now: float) -> Job | None:
        with self._transaction() as db:
            sender = db.execute(
                "SELECT sender FROM message WHERE id = ? AND (expires IS NULL OR expires > ?)",
                (message_id, now),
            ).fetchone()
            rows = db.execute(
                "SELECT address, attempts FROM recipient WHERE message_id = ?"
                " AND state IN ('pending', 'deferred') AND attempt IS NULL AND due <= ?"
                " ORDER BY position",
                (message_id, now),
            ).fetchall()
            if sender is None or not rows:
                return None
            attempt = db.execute(
                "INSERT INTO attempt (message_id, started) VALUES (?, ?)", (message_id, now)
            ).lastrowid
            assert attempt is not None
            db.executemany(
                "UPDATE recipient SET attempt = ?, attempts = attempts + 1, end_written = 0,"
                " updated = ? WHERE message_id = ? AND address = ?",
                [(attempt, now, message_id, address) for address, _ in rows],
            )
        return _job(message_id, sender[0], [(a, count + 1) for a, count in rows], attempt)

    def mark_end(self, attempt: int, recipients: Iterable[str], now: float) -> None:
        """Record, durably, that this attempt's end may reach ``recipients`` from now on."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE recipient SET end_written = 1, updated = ?"
                " WHERE attempt = ? AND address = ?",
                [(now, attempt, address) for address in recipients],
            )

    def settle(self, job: Job, verdicts: Mapping[str, Verdict], now: float) -> list[str]:
        """Record each recipient's outcome and end the attempt; returns body files to remove."""
        with self._transaction() as db:
            for address, verdict in verdicts.items():
                failure = verdict.failure
                db.execute(
                    "UPDATE recipient SET state = ?, due = ?, attempt = NULL, end_written = 0,"
                    " error = ?, code = ?, enhanced = ?, reason = ?, text = ?, updated = ?"
                    " WHERE message_id = ? AND address = ? AND attempt = ?",
                    (
                        verdict.state.value,
                        verdict.due,
                        failure.error if failure else None,
                        failure.code if failure else None,
                        failure.enhanced if failure else None,
                        failure.reason if failure else None,
                        failure.text if failure else None,
                        now,
                        job.message_id,
                        address,
                        job.attempt,
                    ),
                )
            db.execute("UPDATE attempt SET ended = ? WHERE id = ?", (now, job.attempt))
            return self._finish({job.message_id}, now)

    def abandon(self, job: Job, now: float, due: float) -> None:
        """End an attempt that got no outcome (cancelled, or a failure outside SMTP): as
        ``recover`` does, a recipient whose end may have left becomes ``delivery_unknown``;
        the others are sent again from ``due``."""
        with self._transaction() as db:
            db.execute(
                "UPDATE recipient SET state = 'delivery_unknown', due = NULL, attempt = NULL,"
                " end_written = 0, error = 'DeliveryUnknown', code = NULL, enhanced = NULL,"
                " reason = NULL, text = ?, updated = ? WHERE attempt = ? AND end_written = 1",
                (_STOPPED_AFTER_END, now, job.attempt),
            )
            db.execute(
                "UPDATE recipient SET attempt = NULL, due = ?, updated = ? WHERE attempt = ?",
                (due, now, job.attempt),
            )
            db.execute("UPDATE attempt SET ended = ? WHERE id = ?", (now, job.attempt))

    def _finish(self, message_ids: Iterable[int], now: float) -> list[str]:
        """Drop the body of each message whose recipients are all final (in a transaction)."""
        files: list[str] = []
        for message_id in message_ids:
            open_ = self.db.execute(
                "SELECT count(*) FROM recipient WHERE message_id = ?"
                " AND state IN ('pending', 'deferred', 'delivery_unknown')",
                (message_id,),
            ).fetchone()[0]
            if open_:
                continue
            row = self.db.execute(
                "SELECT body_file FROM message WHERE id = ? AND finished IS NULL", (message_id,)
            ).fetchone()
            if row is None:
                continue
            self.db.execute(
                "UPDATE message SET finished = ?, body = NULL, body_file = NULL WHERE id = ?",
                (now, message_id),
            )
            if row[0] is not None:
                files.append(row[0])
        return files

    def next_due(self, busy: Collection[int]) -> float | None:
        rows = self.db.execute(
            "SELECT message_id, due FROM recipient WHERE state IN ('pending', 'deferred')"
            " AND attempt IS NULL ORDER BY due"
        )
        due = next((due for message_id, due in rows if message_id not in busy), None)
        rows.close()
        return float(due) if due is not None else None

    def anything_to_send(self) -> bool:
        """Whether a recipient is still to send (in flight included)."""
        query = "SELECT 1 FROM recipient WHERE state IN ('pending', 'deferred') LIMIT 1"
        return self.db.execute(query).fetchone() is not None

    # -- decisions and views -------------------------------------------------------------

    def release(self, message_id: int, recipients: Collection[str] | None, now: float) -> int:
        """Send again the ``delivery_unknown`` recipients of a message (all, or those)."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT address FROM recipient"
                " WHERE message_id = ? AND state = 'delivery_unknown'",
                (message_id,),
            ).fetchall()
            chosen = [a for (a,) in rows if recipients is None or a in recipients]
            db.executemany(
                "UPDATE recipient SET state = 'pending', due = ?, updated = ?,"
                " text = 'released for sending again' WHERE message_id = ? AND address = ?",
                [(now, now, message_id, address) for address in chosen],
            )
        return len(chosen)

    def status(self, message_id: int) -> MessageStatus | None:
        row = self.db.execute(
            "SELECT id, key, sender, size, created, expires FROM message WHERE id = ?",
            (message_id,),
        ).fetchone()
        if row is None:
            return None
        recipients = self._recipients("WHERE message_id = ? ORDER BY position", (message_id,))
        message_id, key, sender, size, created, expires = row
        return MessageStatus(message_id, key, sender, size, created, expires, tuple(recipients))

    def unknown(self) -> list[RecipientStatus]:
        return self._recipients(
            "WHERE state = 'delivery_unknown' ORDER BY message_id, position", ()
        )

    def _recipients(self, where: str, args: tuple[object, ...]) -> list[RecipientStatus]:
        query = (
            "SELECT message_id, address, state, attempts, due, updated, attempt, error, text,"
            " code, enhanced, reason FROM recipient "
        )
        rows = self.db.execute(query + where, args).fetchall()  # where: a constant of ours
        return [
            RecipientStatus(
                message_id=row[0],
                address=row[1],
                state=State(row[2]),
                attempts=row[3],
                due=row[4],
                updated=row[5],
                in_flight=row[6] is not None,
                failure=Failure(*row[7:]) if row[7] is not None else None,
            )
            for row in rows
        ]

    def stats(self) -> OutboxStats:
        counts = {
            State(state): count
            for state, count in self.db.execute(
                "SELECT state, count(*) FROM recipient GROUP BY state"
            )
        }
        messages = self.db.execute("SELECT count(*) FROM message").fetchone()[0]
        in_flight = self.db.execute(
            "SELECT count(*) FROM recipient WHERE attempt IS NOT NULL"
        ).fetchone()[0]
        next_due = self.db.execute(
            "SELECT min(due) FROM recipient WHERE state IN ('pending', 'deferred')"
            " AND attempt IS NULL"
        ).fetchone()[0]
        oldest = self.db.execute(
            "SELECT min(m.created) FROM message m WHERE EXISTS (SELECT 1 FROM recipient r"
            " WHERE r.message_id = m.id AND r.state IN ('pending', 'deferred'))"
        ).fetchone()[0]
        return OutboxStats(messages, counts, in_flight, next_due, oldest)

    def integrity(self) -> str:
        return str(self.db.execute("PRAGMA integrity_check").fetchone()[0])


def _job(message_id: int, sender: str, rows: list[tuple[str, int]], attempt: int) -> Job:
    """The job of an attempt: ``rows`` are (address, attempts, this one included)."""
    return Job(
        message_id=message_id,
        sender=sender,
        recipients=tuple(address for address, _ in rows),
        attempts=dict(rows),
        attempt=attempt,
    )


_STOPPED_AFTER_END = (
    "the worker stopped after the end of the message may have been written; "
    "no reply was recorded, so the server may have the message"
)
