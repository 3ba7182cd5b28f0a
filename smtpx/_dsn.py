"""``DSN``: what delivery status notifications (RFC 3461) to ask for, checked when made,
and the MAIL FROM / RCPT TO parameters that ask for them, xtext-encoded.

RFC 3461 §4.1-4.4: ``NOTIFY=NEVER`` or a comma list of SUCCESS, FAILURE, DELAY per
recipient; ``ORCPT=<addr-type>;<xtext>`` per recipient (at most 500 characters);
``RET=FULL|HDRS`` and ``ENVID=<xtext>`` (at most 100 characters) on MAIL FROM.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

import attrs

from smtpx.errors import UsageError

__all__ = ["DSN"]

_EVENTS = ("success", "failure", "delay")
_RET = {"full": "FULL", "headers": "HDRS"}
_ENVID_MAX = 100  # RFC 3461 §4.4
_ORCPT_MAX = 500  # RFC 3461 §4.2


def xtext(text: str) -> str:
    """RFC 3461 §4: "!" to "~" as they are except "+" and "=", every other octet as
    "+" and two upper-case hex digits."""
    return "".join(c if "!" <= c <= "~" and c not in "+=" else f"+{ord(c):02X}" for c in text)


def _graphic(text: str) -> bool:
    return all("!" <= c <= "~" for c in text)


def _notify(value: object) -> frozenset[str] | Literal["never"]:
    if isinstance(value, str):
        if value.lower() == "never":
            return "never"
        value = (value,)
    if not isinstance(value, Iterable):
        raise UsageError(f"notify must be 'never' or a set of {_EVENTS}, not {value!r}")
    events = frozenset(str(event).lower() if isinstance(event, str) else event for event in value)
    if "never" in events:
        raise UsageError("NOTIFY=NEVER excludes every other notification (RFC 3461 §4.1)")
    unknown = sorted(map(repr, events - set(_EVENTS)))
    if unknown or not events:
        raise UsageError(
            f"notify must be 'never' or a non-empty set of {', '.join(_EVENTS)}"
            + (f"; not {', '.join(unknown)}" if unknown else "")
        )
    return events


def _ret(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and value not in _RET:
        raise UsageError(f"ret must be 'headers', 'full' or None, not {value!r}")


def _envid(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value or not _graphic(value):
        raise UsageError(
            f"envid must be printable US-ASCII without spaces (RFC 3461 §4.4), not {value!r}"
        )
    if len(xtext(value)) > _ENVID_MAX:  # counted as sent, the stricter reading
        raise UsageError(
            f"envid is {len(xtext(value))} characters xtext-encoded; RFC 3461 §4.4 allows 100"
        )


def _original(recipient: str, value: str) -> str:
    """``ORCPT``'s value: ``addr-type;address``, ``rfc822`` when no type is given."""
    if not isinstance(value, str) or not value or not value.isascii() or not value.isprintable():
        raise UsageError(
            f"the original recipient of {recipient!r} must be printable US-ASCII, not {value!r}"
        )
    kind, semicolon, address = value.partition(";")
    if not semicolon or "@" in kind:
        kind, address = "rfc822", value
    if not kind or not all(c.isalnum() or c == "-" for c in kind) or not address:
        raise UsageError(f"the original recipient {value!r} is not addr-type;address")
    encoded = f"{kind};{xtext(address)}"
    if len(encoded) > _ORCPT_MAX:
        raise UsageError(f"ORCPT for {recipient!r} is over RFC 3461's 500 characters")
    return encoded


class _Originals(Mapping[str, str]):
    """``DSN.orcpt`` once checked: read-only and hashable, as the frozen ``DSN`` holding
    it is (a dict could be changed after its values were checked)."""

    __slots__ = ("_items",)

    def __init__(self, items: dict[str, str]) -> None:
        self._items = items

    def __getitem__(self, recipient: str) -> str:
        return self._items[recipient]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return repr(self._items)

    def __reduce__(self) -> tuple[type[_Originals], tuple[dict[str, str]]]:
        return (_Originals, (self._items,))


def _orcpts(value: object) -> Mapping[str, str]:
    if isinstance(value, _Originals):
        return value
    if not isinstance(value, Mapping):
        raise UsageError(f"orcpt must map recipients to original addresses, not {value!r}")
    return _Originals(
        {str(recipient).lower(): _original(recipient, v) for recipient, v in value.items()}
    )


@attrs.frozen
class DSN:
    """Delivery status notifications to ask for (RFC 3461), for ``send(..., dsn=...)``.

    ``notify``: ``"never"``, or a set of ``"success"``, ``"failure"``, ``"delay"``
    (asked for each recipient; None leaves it to the server: failures and delays).
    ``ret``: ``"headers"`` or ``"full"``, how much of the message a bounce carries.
    ``envid``: your identifier for this message, returned in every notification
    (printable US-ASCII, at most 100 characters once xtext-encoded). ``orcpt``: for
    some recipients, the address originally given
    (``{"bob@example.com": "rfc822;robert@example.org"}``; a bare address means
    ``rfc822``). Values are xtext-encoded when sent.
    """

    notify: frozenset[str] | Literal["never"] | None = attrs.field(
        default=None, converter=attrs.converters.optional(_notify)
    )
    ret: Literal["headers", "full"] | None = attrs.field(default=None, validator=_ret)
    envid: str | None = attrs.field(default=None, validator=_envid)
    orcpt: Mapping[str, str] = attrs.field(factory=dict, converter=_orcpts)

    def mail_parameters(self) -> list[str]:
        """``RET=`` and ``ENVID=`` for MAIL FROM."""
        options = [f"RET={_RET[self.ret]}"] if self.ret is not None else []
        if self.envid is not None:
            options.append(f"ENVID={xtext(self.envid)}")
        return options

    def rcpt_parameters(self, recipient: str) -> list[str]:
        """``NOTIFY=`` and ``ORCPT=`` for RCPT TO:<recipient>."""
        options = []
        if self.notify == "never":
            options.append("NOTIFY=NEVER")
        elif self.notify is not None:
            options.append("NOTIFY=" + ",".join(e.upper() for e in _EVENTS if e in self.notify))
        original = self.orcpt.get(recipient.lower())
        if original is not None:
            options.append(f"ORCPT={original}")
        return options
