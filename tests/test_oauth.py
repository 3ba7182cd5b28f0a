"""OAuth2 logins (XOAUTH2, OAUTHBEARER per RFC 7628): the SASL messages, the error
challenge and its dummy answer, the one retry with a fresh token, the token provider's
failures; in memory against the pure flow, then over loopback against ScriptedServer,
which checks the exact SASL message of each mechanism."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import smtpx
from smtpx import errors as e
from smtpx._secret import Secret
from smtpx.protocol import Action, AuthFlow, Bearer, Session, SetupFlow, StartTLS
from smtpx.protocol.oauth import error_status
from smtpx.results import Authenticated
from smtpx.testing import OAuthAccounts, ScriptedServer

USER, STALE, FRESH = "alice@example.com", "ya29.stale-Token_1", "ya29.fresh-Token_2"
MESSAGE = b"From: alice@example.com\r\nTo: bob@example.com\r\n\r\nhi\r\n"
PLAINTEXT: dict[str, Any] = {
    "tls": "none",
    "allow_plaintext_auth": True,
    "local_hostname": "client.test",
    "timeout": 5,
}
STATUS = {"status": "invalid_token", "scope": "https://mail.example.com/", "schemes": "bearer"}
CHALLENGE = base64.b64encode(json.dumps(STATUS).encode()).decode()


def bearer(user: str = USER, token: str = FRESH, host: str = "smtp.example.com") -> Bearer:
    return Bearer(user, Secret(token.encode()), host, 587)


# -- the SASL messages --------------------------------------------------------------------


def test_xoauth2_message_is_googles_exact_form() -> None:
    decoded = base64.b64decode(bearer().xoauth2())
    assert decoded == f"user={USER}\x01auth=Bearer {FRESH}\x01\x01".encode()


def test_oauthbearer_message_is_rfc_7628_exact_form() -> None:
    decoded = base64.b64decode(bearer().oauthbearer())
    expected = f"n,a={USER},\x01host=smtp.example.com\x01port=587\x01auth=Bearer {FRESH}\x01\x01"
    assert decoded == expected.encode()


def test_oauthbearer_escapes_the_authzid_and_sends_a_labels() -> None:
    decoded = base64.b64decode(
        bearer(user="a,b=c@example.com", host="smtp.bücher.example").oauthbearer()
    )
    assert decoded.startswith(b"n,a=a=2Cb=3Dc@example.com,\x01host=smtp.xn--bcher-kva.example\x01")


def test_a_bearer_repr_hides_the_token() -> None:
    assert FRESH not in repr(bearer()) and FRESH not in str(bearer())


# -- the error challenge's status --------------------------------------------------------


def test_the_error_status_is_decoded() -> None:
    assert error_status(CHALLENGE) == STATUS
    gmail = base64.b64encode(b'{"status":"401","schemes":"bearer mac","scope":"x","n":1}')
    assert error_status(gmail.decode()) == {"status": "401", "schemes": "bearer mac", "scope": "x"}


@pytest.mark.parametrize("text", ["", "not base64!", base64.b64encode(b"[1]").decode(), "e30"])
def test_a_status_that_is_not_a_json_object_is_empty(text: str) -> None:
    assert error_status(text) == {}


@given(st.text())
def test_no_challenge_text_makes_the_status_raise(text: str) -> None:
    assert isinstance(error_status(text), dict)


# -- the flow, in memory ------------------------------------------------------------------


def drive(flow: Any, session: Session, replies: list[bytes]) -> tuple[Action, list[bytes]]:
    """Run ``flow``: each write recorded, each read given the next scripted reply."""
    sent: list[bytes] = []
    while True:
        action = flow.next_action()
        if action is Action.SEND:
            out = bytes(session.data_to_send())
            session.wrote(len(out))
            sent.append(out)
        elif action is Action.RECEIVE:
            session.receive_data(replies.pop(0))
        else:
            return action, sent


def ready(mechanisms: str) -> Session:
    session = Session("client.test", encrypted=True)
    greeting = [b"220 mx.test ESMTP\r\n", f"250-mx.test\r\n250 AUTH {mechanisms}\r\n".encode()]
    action, _ = drive(SetupFlow(session, starttls=StartTLS.NEVER), session, greeting)
    assert action is Action.DONE
    return session


def login(mechanisms: str, replies: list[bytes]) -> tuple[AuthFlow, list[bytes]]:
    session = ready(mechanisms)
    flow = AuthFlow(session, bearer(), allow_plaintext=False)
    _, sent = drive(flow, session, replies)
    return flow, sent


OFFERS = ("PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2", "OAUTHBEARER")


@pytest.mark.parametrize(
    "offered",
    [c for n in range(1, len(OFFERS) + 1) for c in itertools.combinations(OFFERS, n)],
    ids=" ".join,
)
def test_oauthbearer_is_preferred_then_xoauth2_for_every_offer(offered: tuple[str, ...]) -> None:
    flow, sent = login(" ".join(offered), [b"235 2.7.0 ok\r\n"])
    if "OAUTHBEARER" in offered or "XOAUTH2" in offered:
        expected = "OAUTHBEARER" if "OAUTHBEARER" in offered else "XOAUTH2"
        assert isinstance(flow.result, Authenticated)
        (line,) = sent
        assert line.split(b" ")[:2] == [b"AUTH", expected.encode()]
    else:
        assert isinstance(flow.error, e.AuthMechanismTooWeak) and sent == []


@pytest.mark.parametrize(("mechanism", "dummy"), [("OAUTHBEARER", b"AQ=="), ("XOAUTH2", b"")])
def test_an_error_challenge_gets_the_dummy_then_the_status_is_raised(
    mechanism: str, dummy: bytes
) -> None:
    replies = [
        f"334 {CHALLENGE}\r\n".encode(),
        b"535 5.7.8 Username and Password not accepted\r\n",
    ]
    flow, sent = login(mechanism, replies)
    assert sent[1] == dummy + b"\r\n"
    error = flow.error
    assert isinstance(error, e.OAuthRejected) and isinstance(error, e.AuthFailed)
    assert (error.status, error.scope, error.schemes) == tuple(STATUS.values())
    assert error.code == 535 and "invalid_token" in str(error)
    assert not flow.session.closed  # a new AUTH may follow


@pytest.mark.parametrize(
    ("final", "kind"),
    [
        (b"454 4.7.0 Temporary authentication failure\r\n", e.AuthUnavailable),
        (b"334 again\r\n", e.UnexpectedReply),
        (b"235 2.7.0 ok after all\r\n", None),
    ],
)
def test_what_follows_the_dummy_is_classified(
    final: bytes, kind: type[e.SMTPError] | None
) -> None:
    flow, _ = login("XOAUTH2", [f"334 {CHALLENGE}\r\n".encode(), final])
    if kind is None:
        assert isinstance(flow.result, Authenticated)
    else:
        assert type(flow.error) is kind


def test_a_refusal_without_a_challenge_is_plain_auth_failed() -> None:
    flow, _ = login("XOAUTH2", [b"535 5.7.3 Authentication unsuccessful\r\n"])
    assert type(flow.error) is e.AuthFailed


# -- the OAuth2 value and its token provider ----------------------------------------------


def test_oauth2_repr_hides_the_token_and_the_provider() -> None:
    def provider(token: str = FRESH) -> str:
        return token

    for given_token in (FRESH, provider):
        assert repr(smtpx.OAuth2(USER, given_token)) == (
            f"OAuth2(username={USER!r}, token_provider='***')"
        )


@pytest.mark.parametrize("token", ["", "tok en", "tok\n", "tok\x01", "tök", '"tok"'])
def test_a_static_token_a_bearer_cannot_carry_is_refused(token: str) -> None:
    with pytest.raises(smtpx.UsageError, match="RFC 6750"):
        smtpx.OAuth2(USER, token)


@pytest.mark.parametrize("provider", [None, 42, b"token", ["token"]], ids=repr)
def test_a_provider_that_is_neither_callable_nor_str_is_refused(provider: Any) -> None:
    with pytest.raises(smtpx.UsageError, match="token_provider"):
        smtpx.OAuth2(USER, provider)


@pytest.mark.parametrize("user", ["", "a\nb", "a\x01b", 7])
def test_a_username_that_cannot_be_sent_is_refused(user: Any) -> None:
    with pytest.raises(smtpx.UsageError, match="username"):
        smtpx.OAuth2(user, FRESH)


class AsyncCallable:
    async def __call__(self) -> str:
        return FRESH


async def _async_provider() -> str:
    return FRESH


PROVIDERS: dict[str, Callable[[], Any]] = {
    "sync function": lambda: FRESH,
    "async function": _async_provider,
    "object with async __call__": AsyncCallable(),
    "sync function returning a coroutine": lambda: _async_provider(),
}


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_every_kind_of_provider_gives_a_secret(kind: str) -> None:
    token = await smtpx.OAuth2(USER, PROVIDERS[kind]).token()
    assert type(token) is Secret and token == FRESH.encode()


async def test_a_static_token_is_its_own_provider() -> None:
    oauth = smtpx.OAuth2(USER, FRESH)
    assert await oauth.token() == FRESH.encode() and not oauth.refreshable


@pytest.mark.parametrize("returned", [None, 42, FRESH.encode(), "two words", "tok\r\n"], ids=repr)
async def test_a_provider_returning_no_bearer_token_is_a_typed_error(returned: Any) -> None:
    with pytest.raises(smtpx.OAuthTokenError) as caught:
        await smtpx.OAuth2(USER, lambda: returned).token()
    assert isinstance(caught.value, smtpx.AuthError)
    assert "two words" not in str(caught.value)


@pytest.mark.parametrize("is_async", [False, True])
async def test_a_provider_that_raises_is_a_typed_error_keeping_the_cause(is_async: bool) -> None:
    problem = RuntimeError("refresh token revoked")

    def sync() -> str:
        raise problem

    async def asynchronous() -> str:
        raise problem

    with pytest.raises(smtpx.OAuthTokenError, match="RuntimeError") as caught:
        await smtpx.OAuth2(USER, asynchronous if is_async else sync).token()
    assert caught.value.__cause__ is problem


async def test_a_provider_that_runs_dry_is_a_typed_error_not_a_hang() -> None:
    # StopIteration cannot travel through a future: unconverted, the login never ended
    oauth = smtpx.OAuth2(USER, iter([FRESH]).__next__)
    assert await oauth.token() == FRESH.encode()
    with pytest.raises(smtpx.OAuthTokenError, match="StopIteration") as caught:
        await oauth.token()
    assert isinstance(caught.value.__cause__, StopIteration)


# -- over loopback, against ScriptedServer -------------------------------------------------


class Tokens:
    """A provider handing out the given tokens in turn, counting its calls."""

    def __init__(self, *tokens: str) -> None:
        self._tokens: Iterator[str] = iter(tokens)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return next(self._tokens)


def client(server: ScriptedServer, provider: Any, **options: Any) -> smtpx.Client:
    return smtpx.Client(
        server.host, server.port, credentials=smtpx.OAuth2(USER, provider), **PLAINTEXT, **options
    )


def expected_message(mechanism: str, port: int, token: str) -> bytes:
    if mechanism == "XOAUTH2":
        return f"user={USER}\x01auth=Bearer {token}\x01\x01".encode()
    return f"n,a={USER},\x01host=127.0.0.1\x01port={port}\x01auth=Bearer {token}\x01\x01".encode()


@pytest.mark.parametrize(
    ("offered", "mechanism"),
    [
        (("OAUTHBEARER", "XOAUTH2"), "OAUTHBEARER"),
        (("XOAUTH2",), "XOAUTH2"),
        (("OAUTHBEARER",), "OAUTHBEARER"),
    ],
)
async def test_the_server_gets_the_exact_sasl_message(
    offered: tuple[str, ...], mechanism: str
) -> None:
    accounts = OAuthAccounts({USER: FRESH}, mechanisms=offered)
    async with ScriptedServer(oauth=accounts) as server:
        provider = Tokens(FRESH)
        result = await smtpx.send(
            MESSAGE,
            host=server.host,
            port=server.port,
            credentials=smtpx.OAuth2(USER, provider),
            **PLAINTEXT,
        )
    assert result.accepted == ("bob@example.com",)
    assert accounts.received == [(mechanism, expected_message(mechanism, server.port, FRESH))]
    assert provider.calls == 1 and accounts.dummies == []


@pytest.mark.parametrize(("mechanism", "dummy"), [("OAUTHBEARER", b"\x01"), ("XOAUTH2", b"")])
async def test_a_refused_token_is_replaced_by_a_fresh_one_once(
    mechanism: str, dummy: bytes
) -> None:
    accounts = OAuthAccounts({USER: FRESH}, mechanisms=(mechanism,))
    async with ScriptedServer(oauth=accounts) as server:
        provider = Tokens(STALE, FRESH)
        async with client(server, provider) as c:
            await c.send(MESSAGE)
    assert provider.calls == 2
    assert [m for _, m in accounts.received] == [
        expected_message(mechanism, server.port, STALE),
        expected_message(mechanism, server.port, FRESH),
    ]
    assert accounts.dummies == [dummy]
    assert server.received_by("bob@example.com")


@pytest.mark.parametrize("mechanism", ["OAUTHBEARER", "XOAUTH2"])
async def test_a_second_refusal_is_oauth_rejected_with_the_status(mechanism: str) -> None:
    accounts = OAuthAccounts({USER: FRESH}, mechanisms=(mechanism,), error_status=STATUS)
    async with ScriptedServer(oauth=accounts) as server:
        provider = Tokens(STALE, STALE, FRESH)
        c = client(server, provider)
        with pytest.raises(smtpx.OAuthRejected) as caught:
            await c.send(MESSAGE)
    error = caught.value
    assert isinstance(error, smtpx.AuthFailed) and error.code == 535
    assert (error.status, error.scope, error.schemes) == tuple(STATUS.values())
    assert provider.calls == 2 and len(accounts.received) == 2  # once more, not forever
    assert error.undelivered == ("bob@example.com",) and not c.connected
    assert not server.messages


async def test_a_refused_static_token_is_not_sent_twice() -> None:
    accounts = OAuthAccounts({USER: FRESH})
    async with ScriptedServer(oauth=accounts) as server:
        with pytest.raises(smtpx.OAuthRejected):
            await client(server, STALE).connect()
    assert len(accounts.received) == 1


async def test_a_failing_provider_sends_no_auth_and_keeps_its_cause() -> None:
    problem = ConnectionError("token endpoint unreachable")

    def provider() -> str:
        raise problem

    accounts = OAuthAccounts({USER: FRESH})
    async with ScriptedServer(oauth=accounts) as server:
        c = client(server, provider)
        with pytest.raises(smtpx.OAuthTokenError) as caught:
            await c.send(MESSAGE)
    assert caught.value.__cause__ is problem and not c.connected
    assert not any(line.startswith(b"AUTH") for line in server.transcript)


async def test_no_oauth_mechanism_offered_is_mechanism_too_weak() -> None:
    async with ScriptedServer(credentials={USER: "password"}) as server:
        provider = Tokens(FRESH)
        with pytest.raises(smtpx.AuthMechanismTooWeak, match="OAUTHBEARER or XOAUTH2"):
            await client(server, provider).connect()


async def test_a_bearer_token_is_not_sent_in_plaintext_without_opt_in() -> None:
    async with ScriptedServer(oauth=OAuthAccounts({USER: FRESH})) as server:
        options = {**PLAINTEXT, "allow_plaintext_auth": False}
        c = smtpx.Client(
            server.host, server.port, credentials=smtpx.OAuth2(USER, FRESH), **options
        )
        with pytest.raises(smtpx.PlaintextAuthRefused):
            await c.connect()
    assert not any(line.startswith(b"AUTH") for line in server.transcript)


@pytest.mark.parametrize("provider_kind", ["async function", "object with async __call__"])
async def test_login_takes_oauth2_credentials_with_async_providers(provider_kind: str) -> None:
    accounts = OAuthAccounts({USER: FRESH})
    async with ScriptedServer(oauth=accounts, credentials={}) as server:
        c = smtpx.Client(server.host, server.port, **PLAINTEXT)
        async with c:
            result = await c.login(smtpx.OAuth2(USER, PROVIDERS[provider_kind]))
            assert isinstance(result, smtpx.Authenticated)
    assert accounts.received[0][1].endswith(f"auth=Bearer {FRESH}\x01\x01".encode())


def test_sync_client_logs_in_with_a_blocking_provider() -> None:
    from smtpx.testing import serve_in_thread

    accounts = OAuthAccounts({USER: FRESH})
    provider = Tokens(STALE, FRESH)
    with (
        serve_in_thread(ScriptedServer(oauth=accounts)) as server,
        smtpx.SyncClient(
            server.host, server.port, credentials=smtpx.OAuth2(USER, provider), **PLAINTEXT
        ) as c,
    ):
        c.send(MESSAGE)
    assert provider.calls == 2 and len(accounts.received) == 2
