"""TLS and AUTH end to end: STARTTLS and implicit TLS against a test CA, every way the
certificate can be wrong, the TLS modes, and each AUTH outcome (credentials never shown)."""

from __future__ import annotations

import base64
import ssl
import traceback
from typing import Any

import pytest
from tls_ca import LocalCA

import smtpx
from smtpx import Command
from smtpx.testing import ScriptedServer

USER, PASSWORD = "mailer", "Pa55-w0rd-SECRET"
HOST: dict[str, Any] = {"local_hostname": "client.test", "timeout": 5}
MESSAGE = b"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: tls\r\n\r\nHello.\r\n"


def commands(server: ScriptedServer) -> list[bytes]:
    """The verbs the server received, in order."""
    return [line.split(b" ")[0].upper() for line in server.transcript]


# -- STARTTLS -------------------------------------------------------------------------


async def test_starttls_verified_is_the_default(ca: LocalCA) -> None:
    async with ScriptedServer(tls_context=ca.server_context()) as server:
        client = smtpx.Client(server.host, server.port, tls_context=ca.client_context(), **HOST)
        assert client.tls is smtpx.TLSMode.STARTTLS and client.port == server.port
        result = await client.send(MESSAGE)
        assert client.encrypted
        await client.quit()
    assert result.accepted == ("bob@example.com",) and result.rejected == {}
    assert commands(server)[:3] == [b"EHLO", b"STARTTLS", b"EHLO"]  # EHLO again after TLS
    assert server.received_by("bob@example.com")


async def test_plaintext_sent_with_the_starttls_reply_is_discarded(ca: LocalCA) -> None:
    # A man in the middle (or a broken server) appends replies to the 220: they must not
    # be read as the answer to the EHLO sent over TLS (RFC 3207 §4.2, CVE-2011-0411 class).
    async with ScriptedServer(tls_context=ca.server_context()) as server:
        server.on("STARTTLS", reply="220 Ready\n250-injected.example\n250 AUTH PLAIN")
        client = smtpx.Client(server.host, server.port, tls_context=ca.client_context(), **HOST)
        await client.connect()
        assert client.encrypted
        assert "auth" not in client.extensions and "pipelining" in client.extensions
        result = await client.send(MESSAGE)
        await client.quit()
    assert result.accepted == ("bob@example.com",)
    assert commands(server)[:3] == [b"EHLO", b"STARTTLS", b"EHLO"]


async def test_starttls_with_system_cas_rejects_the_test_certificate(ca: LocalCA) -> None:
    async with ScriptedServer(tls_context=ca.server_context()) as server:
        client = smtpx.Client(server.host, server.port, **HOST)  # default context
        with pytest.raises(smtpx.CertificateInvalid) as info:
            await client.send(MESSAGE)
        assert not client.connected
    error = info.value
    assert error.command is Command.STARTTLS and error.code is None
    assert not error.retryable
    assert isinstance(error.__cause__, ssl.SSLCertVerificationError)
    assert error.undelivered == ("bob@example.com",)
    assert commands(server) == [b"EHLO", b"STARTTLS"]  # nothing after the failed handshake
    assert server.messages == []


@pytest.mark.parametrize(("which", "reason"), [("wrong_host", "mismatch"), ("expired", "expired")])
async def test_starttls_bad_certificate_is_certificate_invalid(
    ca: LocalCA, which: str, reason: str
) -> None:
    context = (
        ca.wrong_host_server_context() if which == "wrong_host" else ca.expired_server_context()
    )
    async with ScriptedServer(tls_context=context) as server:
        client = smtpx.Client(server.host, server.port, tls_context=ca.client_context(), **HOST)
        with pytest.raises(smtpx.CertificateInvalid) as info:
            await client.connect()
        assert not client.connected
    error = info.value
    assert isinstance(error, smtpx.TLSHandshakeFailed) and isinstance(error, smtpx.TLSError)
    assert error.command is Command.STARTTLS
    assert isinstance(error.__cause__, ssl.SSLCertVerificationError)
    assert reason in str(error).lower()
    assert commands(server) == [b"EHLO", b"STARTTLS"]


async def test_starttls_not_offered_raises_before_anything_but_ehlo(
    server: ScriptedServer,
) -> None:
    client = smtpx.Client(server.host, server.port, credentials=(USER, PASSWORD), **HOST)
    with pytest.raises(smtpx.TLSNotOffered) as info:
        await client.send(MESSAGE)
    error = info.value
    assert error.command is Command.STARTTLS and not error.retryable
    assert isinstance(error, smtpx.TLSError)
    assert error.undelivered == ("bob@example.com",)
    assert not client.connected
    assert server.transcript == [b"EHLO client.test"]
    assert server.messages == []


async def test_opportunistic_falls_back_to_plaintext(server: ScriptedServer) -> None:
    client = smtpx.Client(server.host, server.port, tls=smtpx.TLSMode.OPPORTUNISTIC, **HOST)
    result = await client.send(MESSAGE)
    assert result.accepted == ("bob@example.com",)
    assert client.connected and not client.encrypted
    await client.quit()
    assert b"STARTTLS" not in commands(server)
    assert server.received_by("bob@example.com")


async def test_opportunistic_upgrades_when_offered(ca: LocalCA) -> None:
    async with ScriptedServer(tls_context=ca.server_context()) as server:
        client = smtpx.Client(
            server.host,
            server.port,
            tls=smtpx.TLSMode.OPPORTUNISTIC,
            tls_context=ca.client_context(),
            **HOST,
        )
        await client.send(MESSAGE)
        assert client.encrypted
        await client.quit()
    assert commands(server)[:3] == [b"EHLO", b"STARTTLS", b"EHLO"]


async def test_opportunistic_does_not_fall_back_on_a_bad_certificate(ca: LocalCA) -> None:
    async with ScriptedServer(tls_context=ca.expired_server_context()) as server:
        client = smtpx.Client(
            server.host,
            server.port,
            tls=smtpx.TLSMode.OPPORTUNISTIC,
            tls_context=ca.client_context(),
            **HOST,
        )
        with pytest.raises(smtpx.CertificateInvalid):
            await client.send(MESSAGE)
    assert server.messages == []


async def test_starttls_454_is_tls_unavailable(ca: LocalCA) -> None:
    async with ScriptedServer(tls_context=ca.server_context()) as server:
        server.on("STARTTLS", reply="454 4.7.0 TLS not available due to temporary reason")
        client = smtpx.Client(server.host, server.port, tls_context=ca.client_context(), **HOST)
        with pytest.raises(smtpx.TLSUnavailable) as info:
            await client.send(MESSAGE)
        assert not client.connected  # a half-set-up session is never reused
    error = info.value
    assert error.code == 454 and error.command is Command.STARTTLS
    assert error.retryable and isinstance(error, smtpx.TLSError)
    assert error.undelivered == ("bob@example.com",)
    assert b"MAIL" not in commands(server)


async def test_explicit_starttls_on_a_server_without_it(server: ScriptedServer) -> None:
    async with smtpx.Client(server.host, server.port, tls=smtpx.TLSMode.NONE, **HOST) as client:
        with pytest.raises(smtpx.TLSNotOffered):
            await client.starttls()
    assert b"STARTTLS" not in commands(server)


# -- implicit TLS ---------------------------------------------------------------------------


async def test_implicit_tls(ca: LocalCA) -> None:
    server = auth_server(ca, implicit_tls=True, auth_require_tls=True)
    async with server:
        client = auth_client(server, ca, tls=smtpx.TLSMode.IMPLICIT)
        ready = await client.connect()  # TLS from the first byte, then AUTH at once
        assert isinstance(ready, smtpx.Ready) and client.encrypted
        result = await client.send(MESSAGE)
        await client.quit()
    assert result.accepted == ("bob@example.com",)
    assert commands(server)[:2] == [b"EHLO", b"AUTH"]
    assert b"STARTTLS" not in commands(server)
    assert server.received_by("bob@example.com")
    assert smtpx.Client("mx.example.com", tls=smtpx.TLSMode.IMPLICIT).port == 465


async def test_implicit_tls_bad_certificate(ca: LocalCA) -> None:
    server = ScriptedServer(tls_context=ca.wrong_host_server_context(), implicit_tls=True)
    async with server:
        client = smtpx.Client(
            server.host,
            server.port,
            tls=smtpx.TLSMode.IMPLICIT,
            tls_context=ca.client_context(),
            **HOST,
        )
        with pytest.raises(smtpx.CertificateInvalid) as info:
            await client.connect()
    assert info.value.command is Command.CONNECT
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
    assert server.transcript == []


# -- AUTH -------------------------------------------------------------------------------


def auth_server(ca: LocalCA, **options: Any) -> ScriptedServer:
    return ScriptedServer(tls_context=ca.server_context(), credentials={USER: PASSWORD}, **options)


def auth_client(
    server: ScriptedServer, ca: LocalCA, password: str = PASSWORD, **options: Any
) -> smtpx.Client:
    return smtpx.Client(
        server.host,
        server.port,
        credentials=(USER, password),
        tls_context=ca.client_context(),
        **{**HOST, **options},
    )


def auth_lines(server: ScriptedServer) -> list[bytes]:
    return [line for line in server.transcript if line.upper().startswith(b"AUTH")]


def assert_no_password(*objects: object) -> None:
    for obj in objects:
        texts = [str(obj), repr(obj)]
        if isinstance(obj, BaseException):
            texts += traceback.format_exception(obj)
        for text in texts:
            assert PASSWORD not in text


async def test_auth_plain_over_starttls(ca: LocalCA) -> None:
    async with auth_server(ca, auth_require_tls=True) as server:
        client = auth_client(server, ca)
        await client.connect()
        assert client.encrypted and "PLAIN" in client.auth_mechanisms
        result = await client.send(MESSAGE)
        assert_no_password(client, result)
        await client.quit()
    assert result.accepted == ("bob@example.com",)
    assert commands(server)[:4] == [b"EHLO", b"STARTTLS", b"EHLO", b"AUTH"]
    assert [line.split(b" ")[:2] for line in auth_lines(server)] == [[b"AUTH", b"PLAIN"]]


async def test_auth_login_when_only_login_is_offered(ca: LocalCA) -> None:
    async with auth_server(ca) as server:
        server.on("EHLO", reply="250-localhost\n250-STARTTLS\n250-AUTH LOGIN\n250 8BITMIME")
        client = auth_client(server, ca)
        await client.connect()
        assert client.auth_mechanisms == ("LOGIN",)
        result = await client.send(MESSAGE)
        await client.quit()
    assert result.accepted == ("bob@example.com",)
    assert auth_lines(server) == [b"AUTH LOGIN"]
    # user name and password follow as their own lines, base64-encoded
    start = server.transcript.index(b"AUTH LOGIN")
    assert [base64.b64decode(line) for line in server.transcript[start + 1 : start + 3]] == [
        USER.encode(),
        PASSWORD.encode(),
    ]


async def test_auth_535_is_auth_failed(ca: LocalCA) -> None:
    async with auth_server(ca) as server:
        client = auth_client(server, ca, password="wrong-password")
        with pytest.raises(smtpx.AuthFailed) as info:
            await client.send(MESSAGE)
        assert not client.connected
    error = info.value
    assert error.code == 535 and error.command is Command.AUTH
    assert error.enhanced is not None and str(error.enhanced) == "5.7.8"
    assert not error.retryable and isinstance(error, smtpx.AuthError)
    assert error.undelivered == ("bob@example.com",)
    assert b"MAIL" not in commands(server)
    assert_no_password(error, client)
    assert "wrong-password" not in str(error) + repr(error)


async def test_auth_454_is_auth_unavailable_and_not_lost(ca: LocalCA) -> None:
    async with auth_server(ca) as server:
        server.on("AUTH", reply="454 4.7.0 Temporary authentication failure")
        client = auth_client(server, ca)
        with pytest.raises(smtpx.AuthUnavailable) as info:
            await client.connect()
    error = info.value
    assert error.code == 454 and error.command is Command.AUTH
    assert error.retryable and isinstance(error, smtpx.AuthError)
    assert "Temporary authentication failure" in str(error)
    assert len(auth_lines(server)) == 1  # no second mechanism tried, so no later 535
    assert_no_password(error, client)


async def test_auth_538_is_encryption_required() -> None:
    async with ScriptedServer(credentials={USER: PASSWORD}) as plain_server:
        plain_server.on("AUTH", reply="538 5.7.11 Encryption required for requested mechanism")
        client = smtpx.Client(
            plain_server.host,
            plain_server.port,
            tls=smtpx.TLSMode.NONE,
            credentials=(USER, PASSWORD),
            allow_plaintext_auth=True,
            **HOST,
        )
        with pytest.raises(smtpx.EncryptionRequired) as info:
            await client.connect()
    assert info.value.code == 538 and info.value.command is Command.AUTH
    assert not info.value.retryable and isinstance(info.value, smtpx.AuthError)
    assert_no_password(info.value, client)


async def test_530_at_mail_is_auth_required(server: ScriptedServer) -> None:
    server.on("MAIL", reply="530 5.7.0 Authentication required")
    client = smtpx.Client(server.host, server.port, tls=smtpx.TLSMode.NONE, **HOST)
    message = MESSAGE.replace(b"To: bob", b"To: carol@example.com, bob")
    with pytest.raises(smtpx.AuthRequired) as info:
        await client.send(message)
    error = info.value
    assert error.code == 530 and error.command is Command.MAIL
    assert isinstance(error, smtpx.AuthError) and not error.retryable
    assert set(error.undelivered) | set(error.rejected) == {"carol@example.com", "bob@example.com"}
    assert server.messages == []
    await client.quit()


async def test_credentials_for_a_server_without_auth(server: ScriptedServer) -> None:
    client = smtpx.Client(
        server.host,
        server.port,
        tls=smtpx.TLSMode.NONE,
        credentials=(USER, PASSWORD),
        allow_plaintext_auth=True,
        **HOST,
    )
    with pytest.raises(smtpx.AuthNotOffered) as info:
        await client.send(MESSAGE)
    assert info.value.command is Command.AUTH and not info.value.retryable
    assert info.value.undelivered == ("bob@example.com",)
    assert auth_lines(server) == [] and b"MAIL" not in commands(server)
    assert not client.connected


@pytest.mark.parametrize("mode", [smtpx.TLSMode.NONE, smtpx.TLSMode.OPPORTUNISTIC])
async def test_credentials_over_plaintext_need_opt_in(mode: smtpx.TLSMode) -> None:
    async with ScriptedServer(credentials={USER: PASSWORD}) as server:
        client = smtpx.Client(
            server.host, server.port, tls=mode, credentials=(USER, PASSWORD), **HOST
        )
        with pytest.raises(smtpx.PlaintextAuthRefused) as info:
            await client.send(MESSAGE)
        assert not client.connected
        assert info.value.command is Command.AUTH
        assert info.value.undelivered == ("bob@example.com",)
        assert auth_lines(server) == []  # refused before any AUTH was sent
        assert b"MAIL" not in commands(server)
        assert_no_password(info.value, client)

        allowed = smtpx.Client(
            server.host,
            server.port,
            tls=mode,
            credentials=(USER, PASSWORD),
            allow_plaintext_auth=True,
            **HOST,
        )
        result = await allowed.send(MESSAGE)
        await allowed.quit()
    assert result.accepted == ("bob@example.com",)
    assert len(auth_lines(server)) == 1
    assert server.received_by("bob@example.com")


def test_password_is_never_shown() -> None:
    credentials = smtpx.Credentials(USER, PASSWORD)
    client = smtpx.Client("mx.example.com", credentials=credentials)
    assert USER in repr(client)
    assert_no_password(client, credentials)
