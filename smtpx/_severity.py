"""``Severity``: what a reply code says about the future (RFC 5321 §4.2.1)."""

from __future__ import annotations

import enum

__all__ = ["Severity"]


class Severity(enum.Enum):
    """What a reply says about the future: did it work, will a retry help?"""

    SUCCESS = "success"  # 2xx and 3xx: positive completion or intermediate
    TRANSIENT = "transient"  # 4xx: try again later
    PERMANENT = "permanent"  # 5xx: do not try again unchanged

    @classmethod
    def of_code(cls, code: int) -> Severity:
        """Severity by the first digit alone (RFC 5321 §4.2.1)."""
        if 200 <= code < 400:
            return cls.SUCCESS
        if 400 <= code < 500:
            return cls.TRANSIENT
        return cls.PERMANENT
