"""examples/fastapi_app.py: a shared Pool, and smtpx errors mapped to HTTP statuses."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

if os.environ.get("CI", "").lower() != "true":  # in CI a missing extra is an error
    pytest.importorskip("fastapi", reason="the FastAPI example needs fastapi")
    pytest.importorskip("httpx", reason="the FastAPI example's test needs httpx")

import httpx

import smtpx
from smtpx.testing import ScriptedServer, assert_not_sent, assert_sent

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from fastapi_app import create_app, http_status

MAIL = {"to": ["alice@example.com", "bob@example.com"], "subject": "Hi", "body": "Hello."}


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    async with ScriptedServer(credentials={"app": "s3cret"}) as scripted:
        yield scripted


@pytest.fixture
async def api(server: ScriptedServer) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(server.host, server.port, tls=smtpx.TLSMode.NONE, timeout=2, size=2)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        yield client


async def test_sent(api: httpx.AsyncClient, server: ScriptedServer) -> None:
    response = await api.post("/send", json=MAIL)
    assert response.status_code == 200
    assert response.json() == {"accepted": MAIL["to"], "rejected": {}}
    [message] = assert_sent(server, to=MAIL["to"], subject="Hi")
    assert message.mail_from == "app@example.com"


async def test_the_pool_is_shared(api: httpx.AsyncClient, server: ScriptedServer) -> None:
    for _ in range(3):
        assert (await api.post("/send", json=MAIL)).status_code == 200
    assert server.connections == 1
    assert_sent(server, count=3)


async def test_partial_refusal_is_reported(api: httpx.AsyncClient, server: ScriptedServer) -> None:
    server.on("RCPT", match="bob@", reply="550 5.1.1 No such user")
    response = await api.post("/send", json=MAIL)
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == ["alice@example.com"]
    assert "550 5.1.1" in body["rejected"]["bob@example.com"]


async def test_greylisting_is_503_with_the_servers_delay(
    api: httpx.AsyncClient, server: ScriptedServer
) -> None:
    server.on("RCPT", reply="450 4.2.0 Greylisted, try again in 5 minutes")
    response = await api.post("/send", json=MAIL)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "300"
    assert response.json()["error"] == "AllRecipientsDeferred"
    assert response.json()["retryable"] is True
    assert_not_sent(server)


async def test_421_is_503(api: httpx.AsyncClient, server: ScriptedServer) -> None:
    server.on("MAIL", reply="421 4.3.2 Shutting down", close=True)
    response = await api.post("/send", json=MAIL)
    assert response.status_code == 503
    assert 2 <= int(response.headers["Retry-After"]) <= 4  # smtpx's backoff: 2 s + jitter
    assert response.json()["code"] == 421


async def test_permanent_recipient_refusal_is_422(
    api: httpx.AsyncClient, server: ScriptedServer
) -> None:
    server.on("RCPT", reply="550 5.1.1 No such user")
    response = await api.post("/send", json=MAIL)
    assert response.status_code == 422
    assert response.json()["error"] == "AllRecipientsRejected"


async def test_invalid_address_is_422(api: httpx.AsyncClient, server: ScriptedServer) -> None:
    response = await api.post("/send", json={**MAIL, "to": ["not an address"]})
    assert response.status_code == 422
    assert server.connections == 0


async def test_auth_failure_is_502(server: ScriptedServer) -> None:
    app = create_app(
        server.host,
        server.port,
        tls=smtpx.TLSMode.NONE,
        timeout=2,
        credentials=("app", "wrong"),
        allow_plaintext_auth=True,
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as api,
    ):
        response = await api.post("/send", json=MAIL)
    assert response.status_code == 502
    assert response.json()["error"] == "AuthFailed"
    assert response.json()["code"] == 535
    assert "wrong" not in response.text


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (smtpx.TLSNotOffered(), 502),
        (smtpx.CertificateInvalid(), 502),
        (smtpx.AuthUnavailable(), 503),  # transient first: an auth server down for now
        (smtpx.DeliveryUnknown(), 504),
        (smtpx.MessageTooLarge(), 413),
        (smtpx.NoSuchMailbox(recipient="bob@example.com"), 422),
        (smtpx.SpamRejected(), 502),
        (smtpx.ConnectError(), 503),
    ],
)
def test_status_mapping(error: smtpx.SMTPError, status: int) -> None:
    assert http_status(error)[0] == status
