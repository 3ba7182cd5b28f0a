"""Opening a session as flows: the greeting, EHLO (HELO when refused), STARTTLS, AUTH.

AUTH (RFC 4954) picks the best mechanism both sides know and runs PLAIN, LOGIN or
CRAM-MD5, or with an OAuth2 ``Bearer`` OAUTHBEARER or XOAUTH2 (``smtpx.protocol.oauth``);
every step's reply is classified like any other.
"""

from __future__ import annotations

import base64
import binascii
import enum
from typing import Protocol

from smtpx import errors as e
from smtpx._commands import Command
from smtpx.protocol.flow import Action, Flow, Steps, ok
from smtpx.protocol.ledger import Entry
from smtpx.protocol.oauth import Bearer
from smtpx.protocol.oauth import login as oauth_login
from smtpx.protocol.session import Session
from smtpx.results import AuthChallenge, Authenticated, Ready, Success

__all__ = ["AuthFlow", "SetupFlow", "StartTLS", "hello", "secure"]

# Mechanisms we implement, best first.  Over TLS the password is protected by the
# channel, so PLAIN is preferred; without TLS (explicit opt-in only), CRAM-MD5 at
# least keeps the password itself off the wire.
MECHANISMS_TLS = ("PLAIN", "LOGIN", "CRAM-MD5")
MECHANISMS_PLAINTEXT = ("CRAM-MD5", "PLAIN", "LOGIN")


class Secret(Protocol):
    """A user name and password that builds its own AUTH responses as ``Secret`` bytes
    (``smtpx.Credentials``), so that no frame here ever holds the password."""

    @property
    def username(self) -> str: ...

    def plain(self) -> bytes: ...

    def login_username(self) -> bytes: ...

    def login_password(self) -> bytes: ...

    def cram_md5(self, nonce: bytes) -> bytes: ...


class StartTLS(enum.Enum):
    """Whether the session upgrades with STARTTLS (RFC 3207)."""

    REQUIRE = "require"  # TLSNotOffered when the server does not offer it
    IF_OFFERED = "if offered"
    NEVER = "never"


def hello(session: Session) -> Steps[Success]:
    """EHLO, falling back to HELO when the server does not know EHLO (500, 502)."""
    ehlo = session.ehlo()
    yield ehlo
    if isinstance(ehlo.result, e.CommandUnrecognized | e.CommandNotImplemented):
        helo = session.helo()
        yield helo
        return ok(helo.result)
    return ok(ehlo.result)


def secure(session: Session, mode: StartTLS) -> Steps[Ready | None]:
    """STARTTLS when ``mode`` asks for it, the handshake, and EHLO again (RFC 3207 §4.2)."""
    if mode is StartTLS.NEVER or session.encrypted:
        return None
    if "starttls" not in session.extensions:
        if mode is StartTLS.REQUIRE:
            raise e.TLSNotOffered(
                "the server did not offer STARTTLS; use TLS from the first octet (port "
                "465), or allow plaintext explicitly",
                command=Command.STARTTLS,
            )
        return None
    starttls = session.starttls()
    yield starttls
    ready = ok(starttls.result)
    yield Action.START_TLS
    yield from hello(session)
    assert isinstance(ready, Ready)  # the table's only positive reply to STARTTLS
    return ready


def login(
    session: Session, secret: Secret | Bearer | None, *, allow_plaintext: bool
) -> Steps[Authenticated]:
    """AUTH with the best mechanism both sides know; the server's reply decides."""
    if secret is None:
        raise e.UsageError("login() needs credentials", command=Command.AUTH)
    if not session.encrypted and not allow_plaintext:
        raise e.PlaintextAuthRefused(
            "pass allow_plaintext_auth=True to send credentials without TLS",
            command=Command.AUTH,
        )
    offered = session.auth_mechanisms
    if not offered:
        raise e.AuthNotOffered("the server advertises no AUTH mechanism", command=Command.AUTH)
    if isinstance(secret, Bearer):
        return _authenticated(session, (yield from oauth_login(session, secret)))
    preference = MECHANISMS_TLS if session.encrypted else MECHANISMS_PLAINTEXT
    mechanism = next((m for m in preference if m in offered), None)
    if mechanism is None:
        raise e.AuthMechanismTooWeak(
            f"the server offers AUTH {' '.join(offered)}; "
            f"smtpx implements {', '.join(MECHANISMS_TLS)}",
            command=Command.AUTH,
        )
    # Each response is a base64 ``Secret`` built by the credentials themselves.
    if mechanism == "PLAIN":
        last = session.auth("PLAIN", secret.plain(), encoded=True)
    elif mechanism == "LOGIN":
        yield from _challenge(session, session.auth("LOGIN"))
        yield from _challenge(
            session, session.auth_response(secret.login_username(), encoded=True)
        )
        last = session.auth_response(secret.login_password(), encoded=True)
    else:
        challenge = yield from _challenge(session, session.auth("CRAM-MD5"))
        try:
            nonce = base64.b64decode(challenge.reply.text, validate=True)
        except binascii.Error as exc:
            session.close()
            raise e.ProtocolError(
                "the CRAM-MD5 challenge is not base64", command=Command.AUTH, reply=challenge.reply
            ) from exc
        last = session.auth_response(secret.cram_md5(nonce), encoded=True)
    yield last
    return _authenticated(session, ok(last.result))


def _authenticated(session: Session, result: Success) -> Authenticated:
    if not isinstance(result, Authenticated):
        session.close()
        raise e.UnexpectedReply(
            "the server asked for more AUTH steps than the mechanism has",
            command=Command.AUTH,
            reply=result.reply,
        )
    return result


def _challenge(session: Session, entry: Entry) -> Steps[AuthChallenge]:
    yield entry
    result = ok(entry.result)
    if not isinstance(result, AuthChallenge):
        session.close()
        raise e.UnexpectedReply(
            "the server ended the AUTH exchange early", command=Command.AUTH, reply=result.reply
        )
    return result


class SetupFlow(Flow[Ready]):
    """From the greeting to a session ready for mail: EHLO, STARTTLS per ``starttls``,
    and AUTH when ``secret`` is given.  Any failure closes the session: a half-set-up
    session must not carry mail."""

    def __init__(
        self,
        session: Session,
        *,
        starttls: StartTLS = StartTLS.REQUIRE,
        secret: Secret | Bearer | None = None,
        allow_plaintext_auth: bool = False,
    ) -> None:
        self.starttls = starttls
        self.secret = secret
        self.allow_plaintext_auth = allow_plaintext_auth
        super().__init__(session)

    def __repr__(self) -> str:
        return f"<SetupFlow starttls={self.starttls.value} auth={self.secret is not None}>"

    def steps(self) -> Steps[Ready]:
        session = self.session
        try:
            greeting = session.greeting
            yield greeting
            ready = ok(greeting.result)
            yield from hello(session)
            yield from secure(session, self.starttls)
            if self.secret is not None:
                yield from login(session, self.secret, allow_plaintext=self.allow_plaintext_auth)
        except e.SMTPError:
            session.close()
            raise
        assert isinstance(ready, Ready)  # the table's only positive greeting
        return ready


class AuthFlow(Flow[Authenticated]):
    """AUTH alone, on a session that is ready (``login``)."""

    def __init__(
        self, session: Session, secret: Secret | Bearer | None, *, allow_plaintext: bool
    ) -> None:
        self.secret = secret
        self.allow_plaintext = allow_plaintext
        super().__init__(session)

    def __repr__(self) -> str:
        return "<AuthFlow>"

    def steps(self) -> Steps[Authenticated]:
        return (yield from login(self.session, self.secret, allow_plaintext=self.allow_plaintext))
