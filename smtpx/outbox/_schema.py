"""The outbox's SQLite database: one file, WAL, a versioned schema.

``PRAGMA user_version`` holds the schema version.  A new file gets the current
schema; an older one is migrated forward in one transaction (``MIGRATIONS``);
one written by a newer smtpx is refused rather than guessed at.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from smtpx.errors import UsageError

__all__ = ["MIGRATIONS", "SCHEMA", "VERSION", "connect"]

VERSION = 1

_STATES = "'pending', 'deferred', 'accepted', 'refused', 'delivery_unknown', 'expired'"

SCHEMA = f"""
CREATE TABLE message (
    id        INTEGER PRIMARY KEY,
    key       TEXT UNIQUE,          -- the caller's idempotency key
    sender    TEXT NOT NULL,
    size      INTEGER NOT NULL,
    body      BLOB,                 -- the message, up to the inline limit
    body_file TEXT,                 -- else its file in the bodies directory
    created   REAL NOT NULL,
    expires   REAL,                 -- created + max_age
    finished  REAL                  -- every recipient final: the body was removed then
);
CREATE TABLE recipient (
    message_id  INTEGER NOT NULL REFERENCES message (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    address     TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ({_STATES})),
    attempts    INTEGER NOT NULL DEFAULT 0,
    due         REAL,               -- pending/deferred: not before
    attempt     INTEGER,            -- the attempt under way (NULL: none)
    end_written INTEGER NOT NULL DEFAULT 0,  -- that attempt may have sent the end
    error       TEXT,
    code        INTEGER,
    enhanced    TEXT,
    reason      TEXT,
    text        TEXT,
    updated     REAL NOT NULL,
    PRIMARY KEY (message_id, address)
);
CREATE INDEX recipient_to_send ON recipient (due) WHERE state IN ('pending', 'deferred');
CREATE INDEX recipient_state ON recipient (state);
CREATE INDEX message_expires ON message (expires) WHERE finished IS NULL;
CREATE TABLE attempt (
    id         INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES message (id) ON DELETE CASCADE,
    started    REAL NOT NULL,
    ended      REAL
);
"""

# version n -> the statements that bring a version n database to n + 1
MIGRATIONS: dict[int, str] = {}


def connect(
    path: Path, *, timeout: float, fsync: bool, trace: Callable[[str], None] | None = None
) -> sqlite3.Connection:
    """Open (creating or migrating) the database at ``path``.

    Autocommit mode: every write is an explicit ``BEGIN IMMEDIATE`` ... ``COMMIT``.
    With ``fsync``, ``synchronous=FULL``: a committed transaction survives a power cut
    or an OS crash.  Without, ``NORMAL``: in WAL mode it survives a killed process (the
    data is in the OS's cache), not a power cut.
    """
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    try:
        if trace is not None:
            db.set_trace_callback(trace)
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise UsageError(f"{path}: SQLite could not use WAL mode here (got {mode!r})")
        db.execute(f"PRAGMA synchronous = {'FULL' if fsync else 'NORMAL'}")
        db.execute("PRAGMA foreign_keys = ON")
        _upgrade(db, path)
    except BaseException:
        db.close()
        raise
    return db


def _upgrade(db: sqlite3.Connection, path: Path) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == VERSION:
        return
    if version > VERSION:
        raise UsageError(
            f"{path} has outbox schema version {version}; this smtpx knows up to {VERSION}"
        )
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]  # another process may have
        if version == 0:
            if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise UsageError(f"{path} is an SQLite database, but not an outbox")
            _script(db, SCHEMA)
        else:
            for step in range(version, VERSION):
                _script(db, MIGRATIONS[step])
        db.execute(f"PRAGMA user_version = {VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _script(db: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT first; run each statement inside our transaction.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)
