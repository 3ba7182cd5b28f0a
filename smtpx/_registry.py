"""The IANA registry of enhanced status codes (RFC 3463), one row per ``subject.detail``.

The rows live in ``smtpx/data/enhanced-status-codes.csv``, read once on import.
"""

from __future__ import annotations

import csv
import io
from importlib import resources

import attrs

__all__ = ["REGISTRY", "RegistryEntry"]


@attrs.frozen
class RegistryEntry:
    """One row of the registry: ``X.1.1`` → "Bad destination mailbox address"."""

    subject: int
    detail: int
    title: str
    basic_codes: tuple[int, ...]
    use: str  # "permanent", "transient", "success" or "any"
    reference: str


def _load_registry() -> dict[tuple[int, int], RegistryEntry]:
    text = resources.files("smtpx").joinpath("data/enhanced-status-codes.csv").read_text("utf-8")
    registry: dict[tuple[int, int], RegistryEntry] = {}
    for row in csv.DictReader(io.StringIO(text)):
        _, subject, detail = row["code"].split(".")
        entry = RegistryEntry(
            subject=int(subject),
            detail=int(detail),
            title=row["title"],
            basic_codes=tuple(int(code) for code in row["basic_codes"].split() if code != "any"),
            use=row["use"],
            reference=row["reference"],
        )
        registry[entry.subject, entry.detail] = entry
    return registry


REGISTRY: dict[tuple[int, int], RegistryEntry] = _load_registry()
"""The registry, by ``(subject, detail)``: ``(1, 1)`` is ``X.1.1``."""
