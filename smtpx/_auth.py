"""AUTH (RFC 4954): credentials, the choice of mechanism, and the PLAIN, LOGIN and
CRAM-MD5 exchanges, each step's reply classified by the client like any other."""

from __future__ import annotations

import base64
import binascii
import hmac
from base64 import b64encode
from typing import TYPE_CHECKING

import attrs

from smtpx import errors as e
from smtpx._commands import Command
from smtpx._secret import Secret
from smtpx.results import AuthChallenge, Authenticated, Success

if TYPE_CHECKING:
    from smtpx.client import Client


@attrs.frozen(repr=False)
class Credentials:
    """A user name and password; the password never appears in a repr or a log.

    The AUTH responses are built here as ``Secret`` bytes, in single expressions,
    so that no frame ever holds the password or an encoding of it as a plain local
    (tracebacks formatted with their locals show only redacted values)."""

    username: str
    password: str = attrs.field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***')"

    def plain(self) -> Secret:
        """AUTH PLAIN's initial response (RFC 4616): base64 of NUL user NUL password."""
        return Secret(b64encode(b"\0%s\0%s" % (self.username.encode(), self.password.encode())))

    def login_username(self) -> Secret:
        """AUTH LOGIN's first response: the user name in base64."""
        return Secret(b64encode(self.username.encode()))

    def login_password(self) -> Secret:
        """AUTH LOGIN's second response: the password in base64."""
        return Secret(b64encode(self.password.encode()))

    def cram_md5(self, nonce: bytes) -> Secret:
        """AUTH CRAM-MD5's response (RFC 2195): user, space, HMAC-MD5 of the nonce, base64."""
        return Secret(
            b64encode(
                b"%s %s"
                % (
                    self.username.encode(),
                    hmac.new(self.password.encode(), nonce, "md5").hexdigest().encode(),
                )
            )
        )


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
    auth = Command.AUTH
    if mechanism == "PLAIN":
        result = await client.command(auth, b"AUTH", b"PLAIN", credentials.plain())
    elif mechanism == "LOGIN":
        _challenge(client, await client.command(auth, b"AUTH", b"LOGIN"))
        _challenge(client, await client.command(auth, credentials.login_username()))
        result = await client.command(auth, credentials.login_password())
    else:
        challenge = _challenge(client, await client.command(auth, b"AUTH", b"CRAM-MD5"))
        try:
            nonce = base64.b64decode(challenge.reply.text, validate=True)
        except binascii.Error as exc:
            client.close()
            raise e.ProtocolError(
                "the CRAM-MD5 challenge is not base64", command=auth, reply=challenge.reply
            ) from exc
        result = await client.command(auth, credentials.cram_md5(nonce))
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
