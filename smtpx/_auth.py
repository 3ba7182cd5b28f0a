"""AUTH (RFC 4954): credentials, the choice of mechanism, and the PLAIN, LOGIN and
CRAM-MD5 exchanges, each step's reply classified by the client like any other."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import TYPE_CHECKING

import attrs

from smtpx import errors as e
from smtpx._commands import Command
from smtpx.results import AuthChallenge, Authenticated, Success

if TYPE_CHECKING:
    from smtpx.client import Client


@attrs.frozen(repr=False)
class Credentials:
    """A user name and password; the password never appears in a repr or a log."""

    username: str
    password: str = attrs.field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***')"


# Mechanisms we implement, best first.  Over TLS the password is protected by
# the channel, so PLAIN is preferred; without TLS (explicit opt-in only),
# CRAM-MD5 at least keeps the password itself off the wire.
MECHANISMS_TLS = ("PLAIN", "LOGIN", "CRAM-MD5")
MECHANISMS_PLAINTEXT = ("CRAM-MD5", "PLAIN", "LOGIN")


async def login(client: Client, credentials: Credentials | None) -> Authenticated:
    """AUTH with the best mechanism both sides know; the server's reply decides."""
    if credentials is None:
        raise e.UsageError("login() needs credentials", command=Command.AUTH)
    if not client.encrypted and not client.allow_plaintext_auth:
        raise e.PlaintextAuthRefused(
            "pass allow_plaintext_auth=True to send credentials without TLS",
            command=Command.AUTH,
        )
    offered = client.auth_mechanisms
    if not offered:
        raise e.AuthNotOffered(
            f"{client.host}:{client.port} advertises no AUTH mechanism", command=Command.AUTH
        )
    preference = MECHANISMS_TLS if client.encrypted else MECHANISMS_PLAINTEXT
    mechanism = next((m for m in preference if m in offered), None)
    if mechanism is None:
        raise e.AuthMechanismTooWeak(
            f"the server offers AUTH {' '.join(offered) or '(nothing)'}; "
            f"smtpx implements {', '.join(MECHANISMS_TLS)}",
            command=Command.AUTH,
        )
    return await _authenticate(client, mechanism, credentials)


async def _authenticate(client: Client, mechanism: str, credentials: Credentials) -> Authenticated:
    user, password = credentials.username.encode(), credentials.password.encode()
    b64 = base64.b64encode
    auth = Command.AUTH
    if mechanism == "PLAIN":
        result = await client.command(auth, b"AUTH", b"PLAIN", b64(b"\0%s\0%s" % (user, password)))
    elif mechanism == "LOGIN":
        _challenge(client, await client.command(auth, b"AUTH", b"LOGIN"))
        _challenge(client, await client.command(auth, b64(user)))
        result = await client.command(auth, b64(password))
    else:
        challenge = _challenge(client, await client.command(auth, b"AUTH", b"CRAM-MD5"))
        try:
            nonce = base64.b64decode(challenge.reply.text, validate=True)
        except binascii.Error as exc:
            client.close()
            raise e.ProtocolError(
                "the CRAM-MD5 challenge is not base64", command=auth, reply=challenge.reply
            ) from exc
        digest = hmac.new(password, nonce, "md5").hexdigest()
        result = await client.command(auth, b64(user + b" " + digest.encode()))
    if not isinstance(result, Authenticated):
        client.close()
        raise e.UnexpectedReply(
            "the server asked for more AUTH steps than the mechanism has",
            command=auth,
            reply=result.reply,
        )
    return result


def _challenge(client: Client, result: Success) -> AuthChallenge:
    if not isinstance(result, AuthChallenge):
        client.close()
        raise e.UnexpectedReply(
            "the server ended the AUTH exchange early",
            command=Command.AUTH,
            reply=result.reply,
        )
    return result
