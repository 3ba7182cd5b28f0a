"""OAuth 2.0 login: the SASL mechanisms OAUTHBEARER (RFC 7628) and XOAUTH2 (Google's).

Both send a bearer token as the initial response.  A server that refuses the token
answers with a 334 challenge holding a base64 JSON status (RFC 7628 §3.2.2); the
client must answer it with a dummy response (RFC 7628 §3.2.3: a single %x01 for
OAUTHBEARER; Google's XOAUTH2 documentation: an empty line) and then gets the final
failure reply, raised as ``OAuthRejected`` carrying the decoded status.
"""

from __future__ import annotations

import base64
import binascii
import json
from base64 import b64encode

import attrs

from smtpx import errors as e
from smtpx._commands import Command
from smtpx._secret import Secret
from smtpx.protocol.flow import Steps, ok
from smtpx.protocol.session import Session
from smtpx.results import AuthChallenge, Success

__all__ = ["MECHANISMS", "Bearer", "error_status", "login"]

#: Best first: OAUTHBEARER is the standard (RFC 7628), XOAUTH2 its predecessor.
MECHANISMS = ("OAUTHBEARER", "XOAUTH2")

# The dummy answer to an error challenge, per mechanism (sent base64-encoded).
_DUMMY = {"OAUTHBEARER": b"\x01", "XOAUTH2": b""}


def _saslname(user: str) -> bytes:
    """The authzid of a GS2 header (RFC 5801 §4): "=" and "," escaped as =3D and =2C."""
    return user.replace("=", "=3D").replace(",", "=2C").encode()


def _host(name: str) -> bytes:
    """The host name as sent: A-labels for an internationalized name (RFC 5890)."""
    return name.encode("ascii") if name.isascii() else name.encode("idna")


@attrs.frozen(repr=False)
class Bearer:
    """A user, an access token (a ``Secret``) and the server it is for; builds the SASL
    initial responses as base64 ``Secret`` bytes, in single expressions, so that no
    frame holds the token as plain bytes."""

    username: str
    token: Secret
    host: str
    port: int

    def __repr__(self) -> str:
        return f"Bearer(username={self.username!r}, token='***')"

    def xoauth2(self) -> Secret:
        """``user=<user>^Aauth=Bearer <token>^A^A``, base64."""
        return Secret(
            b64encode(b"user=%s\x01auth=Bearer %s\x01\x01" % (self.username.encode(), self.token))
        )

    def oauthbearer(self) -> Secret:
        """RFC 7628 §3.1: the GS2 header ``n,a=<user>,``, then host, port and the token as
        ^A-separated key=value pairs, ended by ^A^A; base64."""
        return Secret(
            b64encode(
                b"n,a=%s,\x01host=%s\x01port=%d\x01auth=Bearer %s\x01\x01"
                % (_saslname(self.username), _host(self.host), self.port, self.token)
            )
        )


def error_status(text: str) -> dict[str, str]:
    """The JSON status of an error challenge (RFC 7628 §3.2.2), its string members only;
    empty when the challenge is not base64 JSON (nothing to learn from it then)."""
    try:
        decoded = json.loads(base64.b64decode(text.strip(), validate=True))
    except (binascii.Error, ValueError):
        return {}
    if not isinstance(decoded, dict):
        return {}
    return {str(k): v for k, v in decoded.items() if isinstance(v, str)}


def login(session: Session, bearer: Bearer) -> Steps[Success]:
    """AUTH OAUTHBEARER (preferred) or XOAUTH2 with ``bearer``'s token: the last reply's
    result; ``login()`` in ``smtpx.protocol.setup`` has checked TLS and that AUTH is
    offered, and checks that this result is ``Authenticated``."""
    offered = session.auth_mechanisms
    mechanism = next((m for m in MECHANISMS if m in offered), None)
    if mechanism is None:
        raise e.AuthMechanismTooWeak(
            f"the server offers AUTH {' '.join(offered)}; an OAuth2 login needs "
            f"{' or '.join(MECHANISMS)}",
            command=Command.AUTH,
        )
    first = session.auth(
        mechanism,
        bearer.oauthbearer() if mechanism == "OAUTHBEARER" else bearer.xoauth2(),
        encoded=True,
    )
    yield first
    challenge = ok(first.result)
    if isinstance(challenge, AuthChallenge):  # the token was refused: the status says why
        status = error_status(challenge.reply.text)
        last = session.auth_response(_DUMMY[mechanism])
        yield last
        final = last.result
        if isinstance(final, e.AuthFailed):
            raise e.OAuthRejected(command=Command.AUTH, reply=final.reply, status=status)
        return ok(final)
    return challenge
