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
from typing import Any

import attrs
from aiosmtpd.smtp import SMTP, AuthResult

__all__ = ["OAuthAccounts"]

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

    :param tokens: ``{username: token}``: the one token accepted for each user.
    :param mechanisms: the mechanisms offered in EHLO (of ``"OAUTHBEARER"``, ``"XOAUTH2"``).
    :param error_status: the JSON status of the error challenge for a refused token.
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


class OAuthMechanisms:
    """``auth_XOAUTH2`` and ``auth_OAUTHBEARER`` hooks for an aiosmtpd handler whose
    ``oauth_accounts()`` gives the server's ``OAuthAccounts`` (None: refuse)."""

    def oauth_accounts(self) -> OAuthAccounts | None:
        raise NotImplementedError

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer_login(server, "XOAUTH2", args)

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer_login(server, "OAUTHBEARER", args)

    async def _bearer_login(self, server: SMTP, mechanism: str, args: list[str]) -> AuthResult:
        accounts = self.oauth_accounts()
        if accounts is None:
            return AuthResult(success=False, handled=False)
        if len(args) > 1:
            try:
                message = base64.b64decode(args[1], validate=True)
            except ValueError:
                return AuthResult(
                    success=False, handled=False, message="501 5.5.2 Can't decode base64"
                )
        else:
            answer = await server.challenge_auth("")
            if not isinstance(answer, bytes):
                return AuthResult(success=False, handled=True)  # aiosmtpd already replied
            message = answer
        accounts.received.append((mechanism, message))
        port = _local_port(server)
        user = accounts.accepted_user(mechanism, message, port)
        if user is not None:  # auth_data is logged by aiosmtpd: the user, not the token
            return AuthResult(success=True, auth_data=user)
        dummy = await server.challenge_auth(json.dumps(accounts.error_status))
        if not isinstance(dummy, bytes):
            return AuthResult(success=False, handled=True)
        accounts.dummies.append(dummy)
        if dummy != _DUMMY[mechanism]:
            return AuthResult(
                success=False, handled=False, message="501 5.5.2 Bad response to the challenge"
            )
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Username and Password not accepted"
        )


def _local_port(server: Any) -> int:
    transport = server.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    return int(sockname[1]) if sockname else 0
