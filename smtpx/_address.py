"""Envelope address checks, done by smtpx before anything is sent.

aiosmtplib on Python ≤ 3.12 rewrites some malformed addresses silently, and a
CR or LF in an address would inject a command: we refuse both with
``InvalidEnvelope``.  Limits are RFC 5321 §4.5.3.1.
"""

from __future__ import annotations

import functools
import re

from smtpx.errors import InvalidEnvelope

MAX_LOCAL_PART = 64
MAX_DOMAIN = 255
MAX_PATH = 256

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# dot-atom or quoted-string local part (RFC 5321 §4.1.2), any non-ASCII allowed (RFC 6531)
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]"
_LOCAL = re.compile(rf'(?:{_ATEXT}+(?:\.{_ATEXT}+)*|"(?:[^"\\]|\\[ -~])*")')
_LABEL = (
    r"[A-Za-z0-9\u0080-\U0010ffff](?:[A-Za-z0-9\-\u0080-\U0010ffff]*[A-Za-z0-9\u0080-\U0010ffff])?"
)
_DOMAIN = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[^\[\]\\]+\])")


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


@functools.lru_cache(maxsize=4096)
def _problem(address: str) -> str | None:
    """What is wrong with ``address``, or None.  Cached: each address of a message is
    checked when the envelope is built and again when its command is written."""
    if _CONTROL.search(address):
        return f"the {_ROLE} address {address!r} contains a control character (CR, LF, NUL, ...)"
    if address.startswith("<") or address.endswith(">"):
        return f"give the {_ROLE} address without angle brackets: {address!r}"
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return f"the {_ROLE} address {address!r} is not of the form local@domain"
    if not _LOCAL.fullmatch(local):
        return f"the {_ROLE} address {address!r} has an invalid local part"
    if not _DOMAIN.fullmatch(domain):
        return f"the {_ROLE} address {address!r} has an invalid domain"
    if len(local.encode()) > MAX_LOCAL_PART:
        return f"the {_ROLE} address's local part is over {MAX_LOCAL_PART} octets"
    if len(domain.encode()) > MAX_DOMAIN:
        return f"the {_ROLE} address's domain is over {MAX_DOMAIN} octets"
    if len(address.encode()) + 2 > MAX_PATH:
        return f"the {_ROLE} address is over {MAX_PATH - 2} octets"
    return None


def check_hostname(hostname: str) -> str:
    """Return ``hostname`` (our EHLO/HELO name) when it is one printable ASCII word."""
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
        raise InvalidEnvelope(f"invalid ESMTP parameter {parameter!r}")
    return parameter


def param_arg(option: str) -> bytes:
    """An ESMTP parameter as command bytes, checked."""
    return check_parameter(option).encode("ascii")


def text_arg(value: str) -> bytes:
    """A free-text argument (VRFY, EXPN, HELP) as command bytes: no control characters."""
    if not value.isprintable():
        raise InvalidEnvelope(f"argument {value!r} contains a control character")
    return value.encode("utf-8")
