"""The outbox's own failure: its database or files could not be read or written."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

__all__ = ["StorageError", "storage_errors"]


class StorageError(Exception):
    """The outbox could not read or write its database or message files (a full disk, a
    database locked for longer than ``busy_timeout``, missing permissions...).

    Nothing was recorded by the operation that raised it; the SQLite or ``OSError``
    exception is the ``__cause__``.  A worker that meets one stops: it never sends
    what it cannot record.
    """


@contextlib.contextmanager
def storage_errors() -> Iterator[None]:
    """Raise ``StorageError`` (the original as cause) for a failure of SQLite or the disk."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise StorageError(f"outbox storage failed: {exc}") from exc
