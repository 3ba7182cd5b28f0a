"""Envelope address checks, done by smtpx before anything is sent.

aiosmtplib on Python ≤ 3.12 rewrites some malformed addresses silently, and a
CR or LF in an address would inject a command: we refuse both with
``InvalidEnvelope``.  Limits are RFC 5321 §4.5.3.1.

No address, host name or command argument may hold a character that
``str.isprintable()`` rejects: the Unicode categories Cc (C0 and C1 controls,
DEL), Cf (format characters: soft hyphen, zero-width space and joiners, bidi
marks and overrides, word joiner, BOM...), Zl and Zp (U+2028, U+2029), Zs other
than the ASCII space (no-break and other spaces), Cs (lone surrogates: what
bytes that are not UTF-8 become), Co (private use) and Cn (unassigned).  Some
split a line where a reader does not expect it; the others make an address
look like another.  An address may not hold U+FFFD either: a decoder leaves it
where the bytes were not text (``EmailMessage`` does, for a lone surrogate).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

from smtpx.errors import InvalidEnvelope

__all__ = [
    "check_address",
    "check_hostname",
    "needs_smtputf8",
    "param_arg",
    "param_args",
    "text_arg",
]

MAX_LOCAL_PART = 64
MAX_DOMAIN = 255
MAX_PATH = 256

# What each category that str.isprintable() rejects is, for error messages.
_KINDS = {
    "Cc": "a control character",
    "Cf": "an invisible format character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Zs": "a space character",
    "Co": "a private-use character",
    "Cn": "an unassigned code point",
}


def unprintable(text: str) -> str | None:
    """What the first character of ``text`` that is not printable is, or None if all are.

    Printable as ``str.isprintable()`` means it (the ASCII space counts as printable)."""
    if text.isprintable():  # one pass in C: the common case
        return None
    char = next(c for c in text if not c.isprintable())
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # how surrogateescape carries an undecodable byte
        return f"the byte 0x{code - 0xDC00:02X}, which is not UTF-8 (lone surrogate U+{code:04X})"
    category = unicodedata.category(char)
    if category == "Cs":
        return f"a lone surrogate U+{code:04X}, which is not Unicode text"
    return f"{_KINDS.get(category, 'a non-printing character')} U+{code:04X}"


# RFC 5321 §4.1.2 Local-part: Dot-string or Quoted-string; RFC 6531 §3.3 adds any non-ASCII
# character to atext and qtextSMTP (the printable check above keeps out the invisible ones).
_NON_ASCII = "\u0080-\U0010ffff"
_ATEXT = rf"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~\-{_NON_ASCII}]"
# qtextSMTP is %d32-33 / %d35-91 / %d93-126; quoted-pairSMTP is "\\" then %d32-126.
_QTEXT = rf"[ !#-\[\]-~{_NON_ASCII}]"
_QUOTED = re.compile(rf'"(?:{_QTEXT}|\\[ -~])*"')
_LOCAL = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*|{_QUOTED.pattern}")
# sub-domain = Let-dig [Ldh-str]: no "-" first or last; RFC 6531 admits U-labels.
_LET_DIG = rf"[A-Za-z0-9{_NON_ASCII}]"
_LABEL = rf"{_LET_DIG}(?:[A-Za-z0-9\-{_NON_ASCII}]*{_LET_DIG})?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")

# address-literal (RFC 5321 §4.1.3): IPv4 (each Snum 0-255), "IPv6:" IPv6-addr, or a
# General-address-literal: Standardized-tag ":" 1*dcontent (printable ASCII but "[\\]").
_SNUM = r"(?:[01]?[0-9]?[0-9]|2[0-4][0-9]|25[0-5])"
_IPV4 = re.compile(rf"{_SNUM}(?:\.{_SNUM}){{3}}")
_HEX = re.compile(r"[0-9A-Fa-f]{1,4}")
_TAG = re.compile(r"[A-Za-z0-9-]*[A-Za-z0-9]")
_DCONTENT = re.compile(r"[\x21-\x5a\x5e-\x7e]+")


def _is_ipv6(text: str) -> bool:
    """RFC 5321 §4.1.3 IPv6-addr: eight hex groups, or at most six beside one "::"; an
    IPv4 address may stand for the last two groups."""
    if "." in text:
        head, colon, four = text.rpartition(":")
        if not colon or not _IPV4.fullmatch(four):
            return False
        text = f"{head}:0:0"
    compressed = "::" in text
    if compressed:
        head, _, tail = text.partition("::")
        groups = (head.split(":") if head else []) + (tail.split(":") if tail else [])
    else:
        groups = text.split(":")
    if not all(_HEX.fullmatch(group) for group in groups):
        return False
    return len(groups) <= 6 if compressed else len(groups) == 8


def _is_literal(content: str) -> bool:
    """``content`` (between the brackets) is an RFC 5321 address literal."""
    if _IPV4.fullmatch(content):
        return True
    tag, colon, rest = content.partition(":")
    if not colon:
        return False
    if tag.lower() == "ipv6":  # the one registered tag: its content must be an IPv6 address
        return _is_ipv6(rest)
    return bool(_TAG.fullmatch(tag) and _DCONTENT.fullmatch(rest))


def _is_domain(domain: str) -> bool:
    if domain.startswith("[") and domain.endswith("]"):
        return _is_literal(domain[1:-1])
    return _DOMAIN.fullmatch(domain) is not None


def check_address(address: str, *, role: str, allow_null: bool = False) -> str:
    """Return ``address`` when it is a safe RFC 5321 mailbox; raise ``InvalidEnvelope`` if not.

    ``role`` names it in the message ("sender", "recipient"); ``allow_null``
    admits the null reverse-path ``""`` (bounces).
    """
    if not isinstance(address, str):
        raise InvalidEnvelope(f"the {role} must be a str, not {type(address).__name__}")
    if address == "" and allow_null:
        return address
    problem = _problem(address)
    if problem is not None:
        raise InvalidEnvelope(problem.replace(_ROLE, role))
    return address


_ROLE = "\0role\0"  # stands for the role in a cached message; repr() never yields a NUL


def _find_problem(address: str) -> str | None:
    """What is wrong with ``address``, or None."""
    bad = unprintable(address)
    if bad is not None:
        return f"the {_ROLE} address {address!r} contains {bad}"
    if "\ufffd" in address:  # a decoder's mark for bytes it could not read
        return (
            f"the {_ROLE} address {address!r} contains U+FFFD, the replacement character: "
            "it was decoded from bytes that are not UTF-8"
        )
    if address.startswith("<") or address.endswith(">"):
        return f"give the {_ROLE} address without angle brackets: {address!r}"
    local, at, domain = _split(address)
    if not at or not local or not domain:
        return f"the {_ROLE} address {address!r} is not of the form local@domain"
    if not _LOCAL.fullmatch(local):
        return f"the {_ROLE} address {address!r} has an invalid local part"
    if not _is_domain(domain):
        return f"the {_ROLE} address {address!r} has an invalid domain"
    if len(local.encode()) > MAX_LOCAL_PART:
        return f"the {_ROLE} address's local part is over {MAX_LOCAL_PART} octets"
    if len(domain.encode()) > MAX_DOMAIN:
        return f"the {_ROLE} address's domain is over {MAX_DOMAIN} octets"
    if len(address.encode()) + 2 > MAX_PATH:
        return f"the {_ROLE} address is over {MAX_PATH - 2} octets"
    return None


# Cached: each address of a message is checked when the envelope is built and again when
# its command is written.  (Wrapped, not decorated, so that mutation testing reaches it.)
_problem = functools.lru_cache(maxsize=4096)(_find_problem)


def _split(address: str) -> tuple[str, str, str]:
    """Local part, "@", domain: a quoted local part and an address literal may both hold
    an "@", so the split is at the end of a quoted local part, else at the first "@"."""
    quoted = _QUOTED.match(address)
    if quoted is not None and address.startswith("@", quoted.end()):
        return address[: quoted.end()], "@", address[quoted.end() + 1 :]
    return address.partition("@")


def check_hostname(hostname: str) -> str:
    """Return ``hostname`` (our EHLO/HELO name) when it is one printable ASCII word."""
    if not isinstance(hostname, str):
        raise InvalidEnvelope(f"local_hostname must be a str, not {type(hostname).__name__}")
    if not hostname or not hostname.isascii() or not hostname.isprintable() or " " in hostname:
        raise InvalidEnvelope(
            f"local_hostname {hostname!r} must be one word of printable ASCII "
            "(no spaces, no control character)"
        )
    return hostname


def needs_smtputf8(address: str) -> bool:
    return not address.isascii()


# RFC 5321 §4.1.2: esmtp-keyword ["=" esmtp-value]; the value excludes "=", SP and controls.
_PARAMETER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*(?:=[\x21-\x3c\x3e-\x7e]+)?")


def check_parameter(parameter: str) -> str:
    """Return ``parameter`` when it is a well-formed ESMTP parameter (``SIZE=1000``,
    ``NOTIFY=SUCCESS,FAILURE``); raise ``InvalidEnvelope`` if not."""
    if not isinstance(parameter, str) or not _PARAMETER.fullmatch(parameter):
        bad = unprintable(parameter) if isinstance(parameter, str) else None
        detail = f": it contains {bad}" if bad else ""
        raise InvalidEnvelope(f"invalid ESMTP parameter {parameter!r}{detail}")
    return parameter


def param_arg(option: str) -> bytes:
    """An ESMTP parameter as command bytes, checked."""
    return check_parameter(option).encode("ascii")


def param_args(options: Iterable[str]) -> tuple[bytes, ...]:
    """ESMTP parameters as command bytes, checked; one str is refused, not split into
    one parameter per letter (``"SMTPUTF8"`` would go out as ``S M T P U T F 8``)."""
    if isinstance(options, str | bytes):
        raise InvalidEnvelope(f"ESMTP parameters must be a list of str, not one: {options!r}")
    return tuple(map(param_arg, options))


def text_arg(value: str) -> bytes:
    """A free-text argument (VRFY, EXPN, HELP) as command bytes: printable, so no control,
    format or separator character and no lone surrogate (see the module docstring)."""
    if not isinstance(value, str):
        raise InvalidEnvelope(f"the argument must be a str, not {type(value).__name__}")
    bad = unprintable(value)
    if bad is not None:
        raise InvalidEnvelope(f"argument {value!r} contains {bad}")
    return value.encode("utf-8")
