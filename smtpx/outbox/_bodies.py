"""Large message bodies as files beside the database, written so a crash leaves no half.

A body is written to a temporary name, flushed to disk (``fsync``), renamed into
place and the directory flushed too; only then does the database row that names it
commit.  A crash in between leaves at worst a complete file no row names: an orphan,
removed by ``sweep`` once it is old enough not to belong to a put still under way.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path

__all__ = ["Bodies"]

SUFFIX = ".eml"


class Bodies:
    """The directory of message files for one outbox database."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(self, *parts: bytes) -> str:
        """Store the ``parts``, one after the other, durably; return the file's name
        (relative to the directory)."""
        self.directory.mkdir(mode=0o700, exist_ok=True)
        name = secrets.token_hex(16) + SUFFIX
        temporary = self.directory / f".{name}.tmp"
        with open(temporary, "wb") as file:
            file.writelines(parts)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.directory / name)
        self._sync_directory()
        return name

    def read(self, name: str) -> bytes:
        return (self.directory / _checked(name)).read_bytes()

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.directory / _checked(name)).unlink()

    def sweep(self, keep: set[str], older_than: float) -> int:
        """Remove files no row names (``keep``), unchanged for ``older_than`` seconds."""
        if not self.directory.is_dir():
            return 0
        removed = 0
        limit = time.time() - older_than
        for path in self.directory.iterdir():
            if path.name in keep or not path.name.endswith((SUFFIX, ".tmp")):
                continue
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < limit:
                    path.unlink()
                    removed += 1
        return removed

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _checked(name: str) -> str:
    # Names come from our own database; refuse anything that could leave the directory.
    if not name.endswith(SUFFIX) or "/" in name or name.startswith("."):
        raise ValueError(f"not a message file name: {name!r}")
    return name
