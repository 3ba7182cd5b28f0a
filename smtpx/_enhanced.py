"""Enhanced status codes (RFC 3463): ``class.subject.detail``, explained from the IANA registry.

The registry itself is ``smtpx._registry`` (public as ``smtpx.codes.REGISTRY``).
"""

from __future__ import annotations

import functools
import re

import attrs

from smtpx._registry import REGISTRY, RegistryEntry

__all__ = ["EnhancedStatus"]

# RFC 3463 §2: class is 2, 4 or 5; subject and detail are 1-3 digits without
# leading zeros (we accept them anyway: servers send "5.01.1" rarely but it happens).
_PATTERN = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")


@attrs.frozen
class EnhancedStatus:
    """An RFC 3463 enhanced status code such as ``5.1.1``, with its registry entry."""

    klass: int
    subject: int
    detail: int

    @classmethod
    def parse(cls, text: str) -> EnhancedStatus | None:
        """The enhanced code at the start of ``text``, or None when there is none."""
        # A code and the character after it fit in 10; servers repeat the same few.
        return _parse_prefix(text[:10])

    @property
    def entry(self) -> RegistryEntry | None:
        """The registry row for ``X.subject.detail``, or None for an unregistered code."""
        return REGISTRY.get((self.subject, self.detail))

    @property
    def title(self) -> str:
        """The registry title, or a generic one built from the subject."""
        entry = self.entry
        if entry is not None:
            return entry.title
        return f"unregistered code in the {_SUBJECTS.get(self.subject, 'unknown')} subject"

    def __str__(self) -> str:
        return f"{self.klass}.{self.subject}.{self.detail}"


def _read_prefix(prefix: str) -> EnhancedStatus | None:
    match = _PATTERN.match(prefix)
    if match is None:
        return None
    return EnhancedStatus(int(match[1]), int(match[2]), int(match[3]))


# Wrapped, not decorated, so that mutation testing reaches it.
_parse_prefix = functools.lru_cache(maxsize=512)(_read_prefix)


# RFC 3463 §3: the subject sub-codes.
_SUBJECTS = {
    0: "other or undefined",
    1: "addressing",
    2: "mailbox",
    3: "mail system",
    4: "network and routing",
    5: "mail delivery protocol",
    6: "message content or media",
    7: "security or policy",
}
