"""smtpx.contrib.django.EmailBackend, driven through Django's own mail API."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest

if os.environ.get("CI", "").lower() != "true":  # in CI a missing extra is an error
    pytest.importorskip("django", reason="the Django backend needs the django extra")

import django  # type: ignore[import-untyped]
from django.conf import settings  # type: ignore[import-untyped]
from django.core import mail  # type: ignore[import-untyped]

import smtpx
from smtpx.contrib.django import EmailBackend
from smtpx.testing import ScriptedServer, assert_not_sent, assert_sent, serve_in_thread

BACKEND = "smtpx.contrib.django.EmailBackend"

if not settings.configured:
    settings.configure(
        EMAIL_BACKEND=BACKEND,
        DEFAULT_FROM_EMAIL="app@example.com",
        SMTPX_OPTIONS={"local_hostname": "client.test"},
    )
    django.setup()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    """A scripted server in a thread, and Django's settings pointing at it."""
    with serve_in_thread(credentials={"app": "s3cret"}) as scripted:
        values: dict[str, Any] = {
            "EMAIL_HOST": scripted.host,
            "EMAIL_PORT": scripted.port,
            "EMAIL_HOST_USER": "",
            "EMAIL_HOST_PASSWORD": "",
            "EMAIL_USE_TLS": False,
            "EMAIL_USE_SSL": False,
            "EMAIL_TIMEOUT": 2,
            "SMTPX_RETRY": None,
            "SMTPX_ALLOW_PLAINTEXT_AUTH": False,
        }
        for name, value in values.items():
            monkeypatch.setattr(settings, name, value, raising=False)
        yield scripted


def test_send_mail_reads_the_settings(server: ScriptedServer) -> None:
    sent = mail.send_mail(
        "Welcome",
        "Hello Alice.",
        "Shop <shop@example.com>",
        ["Alice <alice@example.com>"],
    )
    assert sent == 1
    [received] = assert_sent(server, to="alice@example.com", subject="Welcome", count=1)
    assert received.mail_from == "shop@example.com"
    assert "Hello Alice." in received.text


def test_bcc_is_delivered_but_not_shown(server: ScriptedServer) -> None:
    message = mail.EmailMessage(
        "Hi", "Body", to=["alice@example.com"], cc=["carol@example.com"], bcc=["bob@example.com"]
    )
    assert message.send() == 1
    [received] = assert_sent(
        server, to=["alice@example.com", "carol@example.com", "bob@example.com"]
    )
    assert received.message["Bcc"] is None


def test_one_connection_for_many_messages(server: ScriptedServer) -> None:
    messages = [(f"Message {n}", "Body", None, [f"user{n}@example.com"]) for n in range(3)]
    assert mail.send_mass_mail(messages) == 3
    assert server.connections == 1
    assert_sent(server, count=3)


def test_535_raises_the_typed_error(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "EMAIL_HOST_USER", "app")
    monkeypatch.setattr(settings, "EMAIL_HOST_PASSWORD", "wrong")
    monkeypatch.setattr(settings, "SMTPX_ALLOW_PLAINTEXT_AUTH", True)
    with pytest.raises(smtpx.AuthFailed) as info:
        mail.send_mail("Hi", "Body", None, ["alice@example.com"])
    assert info.value.code == 535
    assert "wrong" not in str(info.value)
    assert_not_sent(server)


def test_correct_credentials(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "EMAIL_HOST_USER", "app")
    monkeypatch.setattr(settings, "EMAIL_HOST_PASSWORD", "s3cret")
    monkeypatch.setattr(settings, "SMTPX_ALLOW_PLAINTEXT_AUTH", True)
    assert mail.send_mail("Hi", "Body", None, ["alice@example.com"]) == 1


def test_password_never_crosses_plaintext_by_default(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "EMAIL_HOST_USER", "app")
    monkeypatch.setattr(settings, "EMAIL_HOST_PASSWORD", "s3cret")
    with pytest.raises(smtpx.PlaintextAuthRefused):
        mail.send_mail("Hi", "Body", None, ["alice@example.com"])


def test_use_tls_requires_starttls(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "EMAIL_USE_TLS", True)
    with pytest.raises(smtpx.TLSNotOffered):
        mail.send_mail("Hi", "Body", None, ["alice@example.com"])
    assert mail.send_mail("Hi", "Body", None, ["alice@example.com"], fail_silently=True) == 0


def test_partial_refusal_is_logged_and_counted(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.on("RCPT", match="bob@", reply="550 5.1.1 No such user")
    with caplog.at_level(logging.WARNING, logger="smtpx.contrib.django"):
        sent = mail.send_mail("Hi", "Body", None, ["alice@example.com", "bob@example.com"])
    assert sent == 1
    assert_sent(server, to="alice@example.com", count=1)
    assert_not_sent(server, to="bob@example.com")
    [record] = caplog.records
    assert "<bob@example.com>" in record.getMessage()
    assert "550 5.1.1" in record.getMessage()


def test_nothing_delivered_raises_or_counts_zero(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.on("RCPT", reply="550 5.1.1 No such user")
    with pytest.raises(smtpx.AllRecipientsRejected) as info:
        mail.send_mail("Hi", "Body", None, ["alice@example.com", "bob@example.com"])
    assert set(info.value.rejected) == {"alice@example.com", "bob@example.com"}
    with caplog.at_level(logging.WARNING, logger="smtpx.contrib.django"):
        sent = mail.send_mail("Hi", "Body", None, ["alice@example.com"], fail_silently=True)
    assert sent == 0
    assert "not sent" in caplog.text


def test_greylisting_retried_per_smtpx_retry(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = smtpx.VirtualClock()
    monkeypatch.setattr(settings, "SMTPX_RETRY", smtpx.RetryPolicy.for_testing(clock, attempts=3))
    server.on("RCPT", match="bob@", reply="450 4.2.0 Greylisted, try again later", times=1)
    assert mail.send_mail("Hi", "Body", None, ["alice@example.com", "bob@example.com"]) == 1
    assert len(clock.sleeps) == 1
    assert_sent(server, to="alice@example.com", count=1)
    assert_sent(server, to="bob@example.com", count=1)


def test_settings_map_to_client_options(server: ScriptedServer) -> None:
    backend = EmailBackend(retry=4)
    assert backend.retry is not None and backend.retry.attempts == 4
    assert EmailBackend(retry=1).retry is None
    assert backend.tls is smtpx.TLSMode.NONE
    assert EmailBackend(use_ssl=True).tls is smtpx.TLSMode.IMPLICIT
    assert EmailBackend(use_tls=True).tls is smtpx.TLSMode.STARTTLS
    with pytest.raises(ValueError, match="mutually exclusive"):
        EmailBackend(use_tls=True, use_ssl=True)
    with pytest.raises(ValueError, match="SMTPX_RETRY"):
        EmailBackend(retry="3")  # type: ignore[arg-type]


def test_connection_failure(server: ScriptedServer) -> None:
    server.on("CONNECT", reply="554 5.3.2 No service")
    with pytest.raises(smtpx.NoSMTPService):
        mail.send_mail("Hi", "Body", None, ["alice@example.com"])
    assert mail.send_mail("Hi", "Body", None, ["alice@example.com"], fail_silently=True) == 0


async def test_usable_from_a_running_event_loop(server: ScriptedServer) -> None:
    # e.g. called from an async view without sync_to_async: the backend has its own loop.
    assert mail.send_mail("Hi", "Body", None, ["alice@example.com"]) == 1


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("SMTPX_TLS", "bogus"),
        ("SMTPX_TLS", "ssl"),
        ("EMAIL_TIMEOUT", 0),
        ("EMAIL_TIMEOUT", "30"),
        ("EMAIL_PORT", 70000),
        ("EMAIL_PORT", "smtp"),
        ("SMTPX_OPTIONS", {"hostname": "x"}),
        ("SMTPX_OPTIONS", {"chunking": "no"}),
        ("EMAIL_SSL_CERTFILE", "/nonexistent/cert.pem"),
    ],
)
def test_a_wrong_setting_is_a_usage_error_when_the_backend_is_made(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, setting: str, value: object
) -> None:
    monkeypatch.setattr(settings, setting, value, raising=False)
    with pytest.raises(smtpx.UsageError):
        EmailBackend()
    assert server.connections == 0  # nothing connected


@pytest.mark.parametrize("value", ["starttls", "STARTTLS", "None", "none"])
def test_smtpx_tls_setting_takes_any_case(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setattr(settings, "SMTPX_TLS", value, raising=False)
    assert EmailBackend().tls.value == value.lower()


def test_a_port_from_the_environment_may_be_a_string(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "EMAIL_PORT", str(server.port))
    assert mail.send_mail("Hi", "Body", None, ["alice@example.com"]) == 1


# -- SMTPX_OUTBOX: store, and let the outbox worker deliver --------------------------


def test_with_an_outbox_messages_are_stored_not_sent(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import asyncio

    from smtpx.outbox import Outbox, State

    path = tmp_path / "outbox.db"
    monkeypatch.setattr(settings, "SMTPX_OUTBOX", str(path), raising=False)
    message = mail.EmailMessage(
        "Receipt", "Thanks.", "shop@example.com", ["alice@example.com"], bcc=["audit@example.com"]
    )
    message.extra_headers["Message-ID"] = "<receipt-1@example.com>"
    assert mail.get_connection().send_messages([message, message]) == 2
    assert server.connections == 0  # nothing was sent inline
    with Outbox(path) as outbox:
        stats = outbox.stats()
        assert stats.messages == 1  # the Message-ID is the idempotency key
        assert stats.count(State.PENDING) == 2

        async def deliver() -> None:
            async with smtpx.Client(
                server.host, server.port, tls=smtpx.TLSMode.NONE, local_hostname="worker.test"
            ) as client:
                await outbox.run(client, until_idle=True)

        asyncio.run(deliver())
        assert outbox.stats().count(State.ACCEPTED) == 2
    (received,) = server.messages
    assert received.rcpt_tos == ("alice@example.com", "audit@example.com")
    assert b"Bcc" not in received.data and received.subject == "Receipt"


@pytest.mark.parametrize("value", [3, ["a.db"], b"a.db"])
def test_a_wrong_outbox_setting_is_a_usage_error(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, value: object
) -> None:
    monkeypatch.setattr(settings, "SMTPX_OUTBOX", value, raising=False)
    with pytest.raises(smtpx.UsageError, match="SMTPX_OUTBOX"):
        EmailBackend()


def test_an_outbox_that_cannot_be_opened_fails_or_counts_zero(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from smtpx.outbox import StorageError

    monkeypatch.setattr(settings, "SMTPX_OUTBOX", str(tmp_path / "no" / "x.db"), raising=False)
    with pytest.raises(StorageError):
        mail.send_mail("s", "b", "a@example.com", ["b@example.com"])
    assert mail.send_mail("s", "b", "a@example.com", ["b@example.com"], fail_silently=True) == 0
