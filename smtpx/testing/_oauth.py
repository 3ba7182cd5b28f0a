"""OAuth2 logins for ``ScriptedServer``: XOAUTH2 and OAUTHBEARER (RFC 7628), which
aiosmtpd lacks.

The server checks the exact SASL message of each mechanism, records it decoded, and
answers a token it does not accept the way Gmail does: a 334 error challenge with a
base64 JSON status, then (after the client's dummy response) ``535 5.7.8``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Awaitable, Callable

import attrs

__all__ = ["MECHANISMS", "OAuthAccounts"]

MECHANISMS = ("OAUTHBEARER", "XOAUTH2")

# Google's documented XOAUTH2 form, and RFC 7628 §3.1's OAUTHBEARER form with the
# host and port pairs smtpx sends.
_XOAUTH2 = re.compile(rb"user=([^\x01]+)\x01auth=Bearer ([^\x01]+)\x01\x01")
_OAUTHBEARER = re.compile(
    rb"n,a=([^,]+),\x01host=([^\x01]+)\x01port=([0-9]+)\x01auth=Bearer ([^\x01]+)\x01\x01"
)
# The client's dummy answer to the error challenge: RFC 7628 §3.2.3 (one ^A) for
# OAUTHBEARER, an empty line for XOAUTH2 (Google's documentation).
_DUMMY = {"OAUTHBEARER": b"\x01", "XOAUTH2": b""}


@attrs.define
class OAuthAccounts:
    """The bearer tokens a ``ScriptedServer`` accepts, by user, and what it was sent.

    ``tokens`` is ``{username: token}``, the one token accepted for each user;
    ``mechanisms`` the mechanisms offered in EHLO (of ``"OAUTHBEARER"``, ``"XOAUTH2"``);
    ``error_status`` the JSON status of the error challenge for a refused token.
    """

    tokens: dict[str, str]
    mechanisms: tuple[str, ...] = MECHANISMS
    error_status: dict[str, str] = attrs.Factory(
        lambda: {
            "status": "invalid_token",
            "scope": "https://mail.example.com/",
            "schemes": "bearer",
        }
    )
    #: Each SASL message received, decoded, with its mechanism: ``(mechanism, message)``.
    received: list[tuple[str, bytes]] = attrs.Factory(list)
    #: The answers to error challenges, decoded (``b"\x01"``, ``b""``).
    dummies: list[bytes] = attrs.Factory(list)

    def excluded(self) -> tuple[str, ...]:
        """The mechanisms aiosmtpd must not offer."""
        return tuple(m for m in MECHANISMS if m not in self.mechanisms)

    def _parse(self, mechanism: str, message: bytes, port: int) -> tuple[str, bytes] | None:
        """The user and token of an exactly formed message (to this port), else None."""
        if mechanism == "XOAUTH2":
            match = _XOAUTH2.fullmatch(message)
            if match is None:
                return None
            user, token = match[1], match[2]
        else:
            match = _OAUTHBEARER.fullmatch(message)
            if match is None or int(match[3]) != port:
                return None
            user = match[1].replace(b"=2C", b",").replace(b"=3D", b"=")
            token = match[4]
        return user.decode("utf-8", "replace"), token

    def accepted_user(self, mechanism: str, message: bytes, port: int) -> str | None:
        """The user logged in by ``message``: well formed, with that user's token."""
        parsed = self._parse(mechanism, message, port)
        if parsed is None:
            return None
        user, token = parsed
        expected = self.tokens.get(user)
        return user if expected is not None and expected.encode() == token else None

    async def login(
        self,
        mechanism: str,
        initial: str | None,
        challenge: Callable[[str], Awaitable[bytes | None]],
        port: int,
    ) -> tuple[str | None, str | None]:
        """One AUTH exchange: ``(user, None)`` when it logs in, else ``(None, reply)``
        (``reply`` None when the exchange was already answered).  ``initial`` is the
        base64 initial response, if any; ``challenge(text)`` sends a 334 with ``text``
        base64-encoded and returns the decoded answer (None: already answered)."""
        if initial is not None:
            try:
                message: bytes | None = base64.b64decode(initial, validate=True)
            except ValueError:
                return None, "501 5.5.2 Can't decode base64"
        else:
            message = await challenge("")
        if message is None:
            return None, None
        self.received.append((mechanism, message))
        user = self.accepted_user(mechanism, message, port)
        if user is not None:
            return user, None
        dummy = await challenge(json.dumps(self.error_status))
        if dummy is None:
            return None, None
        self.dummies.append(dummy)
        if dummy != _DUMMY[mechanism]:
            return None, "501 5.5.2 Bad response to the challenge"
        return None, "535 5.7.8 Username and Password not accepted"
