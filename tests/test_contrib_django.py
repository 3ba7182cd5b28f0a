"""smtpx.contrib.django.EmailBackend, driven through Django's own mail API."""

from __future__ import annotations

import logging
import os
import pickle
import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from tls_ca import LocalCA

if os.environ.get("CI", "").lower() != "true":  # in CI a missing extra is an error
    pytest.importorskip("django", reason="the Django backend needs the django extra")

import django  # type: ignore[import-untyped]
from django.conf import settings  # type: ignore[import-untyped]
from django.core import mail  # type: ignore[import-untyped]

import smtpx
import smtpx.contrib.django as smtpx_django
from smtpx.contrib.django import AllRecipientsRejected, EmailBackend
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
    with pytest.raises(AllRecipientsRejected) as info:
        mail.send_mail("Hi", "Body", None, ["alice@example.com", "bob@example.com"])
    assert set(info.value.rejected) == {"alice@example.com", "bob@example.com"}
    assert isinstance(info.value, smtpx.PermanentError | smtplib.SMTPRecipientsRefused)
    assert isinstance(info.value.__cause__, smtpx.AllRecipientsRejected)  # the smtpx group
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
        ("SMTPX_LOG_LEVEL", "LOUD"),
        ("SMTPX_LOG_LEVEL", -1),
        ("SMTPX_LOG_LEVEL", True),
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


# -- what the backend raises: the smtpx class and, as Django's own backend, smtplib's ---------

DJANGO_SMTP = "django.core.mail.backends.smtp.EmailBackend"


@attrs.frozen
class Case:
    """A failure, scripted on the server, and the smtpx class it must raise."""

    name: str
    smtpx_class: type[smtpx.SMTPError]
    rules: tuple[dict[str, Any], ...] = ()
    settings: tuple[tuple[str, Any], ...] = ()
    server: tuple[tuple[str, Any], ...] = ()
    recipients: tuple[str, ...] = ("alice@example.com",)


def on(command: str, reply: str | None = None, **action: bool) -> dict[str, Any]:
    """A rule for ScriptedServer.on()."""
    return {"command": command, "reply": reply, **action}


LOGIN = (("EMAIL_HOST_USER", "app"), ("EMAIL_HOST_PASSWORD", "s3cret"))
PLAIN_LOGIN = (*LOGIN, ("SMTPX_ALLOW_PLAINTEXT_AUTH", True))
USE_TLS = (("EMAIL_USE_TLS", True),)
TLS_SERVER = (("tls", True),)
TWO = ("alice@example.com", "bob@example.com")
e = smtpx
CASES = [
    Case("greeting 554", e.NoSMTPService, (on("CONNECT", "554 5.3.2 No"),)),
    Case("greeting 421", e.ServiceUnavailable, (on("CONNECT", "421 Busy", close=True),)),
    Case("closed before greeting", e.ConnectError, (on("CONNECT", close=True),)),
    Case("EHLO, HELO 550", e.MailboxUnavailable, (on("EHLO", "550 No"), on("HELO", "550 No"))),
    Case("AUTH 535", e.AuthFailed, (on("AUTH", "535 5.7.8 Bad credentials"),), PLAIN_LOGIN),
    Case("AUTH 454", e.AuthUnavailable, (on("AUTH", "454 4.7.0 Try later"),), PLAIN_LOGIN),
    Case("AUTH 534", e.AuthMechanismTooWeak, (on("AUTH", "534 5.7.9 Too weak"),), PLAIN_LOGIN),
    Case("AUTH not offered", e.AuthNotOffered, (), PLAIN_LOGIN, (("credentials", None),)),
    Case("MAIL 550", e.MailboxUnavailable, (on("MAIL", "550 5.7.1 Sender blocked"),)),
    Case("MAIL 451", e.LocalError, (on("MAIL", "451 4.3.0 Try later"),)),
    Case("MAIL 530", e.AuthRequired, (on("MAIL", "530 5.7.0 Authentication required"),)),
    Case("MAIL 421, closing", e.ServiceUnavailable, (on("MAIL", "421 4.3.2 Bye", close=True),)),
    Case("lost at MAIL", e.ConnectionLost, (on("MAIL", close=True),)),
    Case("every RCPT 550", e.AllRecipientsRejected, (on("RCPT", "550 5.1.1 No"),), recipients=TWO),
    Case("one RCPT 550", e.NoSuchMailbox, (on("RCPT", "550 5.1.1 No such user"),)),
    Case(
        "every RCPT 450", e.AllRecipientsDeferred, (on("RCPT", "450 4.2.0 Grey"),), recipients=TWO
    ),
    Case("RCPT 421, closing", e.ServiceUnavailable, (on("RCPT", "421 4.3.2 Bye", close=True),)),
    Case("DATA 554", e.TransactionFailed, (on("DATA", "554 5.5.1 No valid recipients"),)),
    Case("end of DATA 552", e.MessageTooLarge, (on("DATA_END", "552 5.3.4 Too big"),)),
    Case("end of DATA 451", e.LocalError, (on("DATA_END", "451 4.3.0 Queue trouble"),)),
    Case("lost after the final dot", e.DeliveryUnknown, (on("DATA_END", close=True),)),
    Case("STARTTLS not offered", e.TLSNotOffered, (), USE_TLS),
    Case("STARTTLS 454", e.TLSUnavailable, (on("STARTTLS", "454 4.7.0 No"),), USE_TLS, TLS_SERVER),
    Case("certificate not trusted", e.CertificateInvalid, (), USE_TLS, TLS_SERVER),
    Case("implicit TLS, plaintext port", e.TLSModeMismatch, (), (("EMAIL_USE_SSL", True),)),
    Case(
        "no reply in time", e.ResponseTimeout, (on("MAIL", hang=True),), (("EMAIL_TIMEOUT", 0.3),)
    ),
]


def _raised(backend: str, case: Case, port: int) -> BaseException:
    with pytest.raises(Exception) as info:  # any class: the test compares the two
        mail.send_mail(
            "Hi", "Body", "shop@example.com", list(case.recipients),
            connection=mail.get_connection(backend, port=port),
        )  # fmt: skip
    return info.value


def _both_backends(
    case: Case, ca: LocalCA, monkeypatch: pytest.MonkeyPatch
) -> tuple[BaseException, BaseException]:
    """What Django's own SMTP backend raises for *case*, and what smtpx's backend raises."""
    options: dict[str, Any] = {"credentials": {"app": "s3cret"}}
    for name, value in case.server:
        if name == "tls":
            options["tls_context"] = ca.server_context()
        else:
            options[name] = value
    values: dict[str, Any] = {
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_HOST_USER": "",
        "EMAIL_HOST_PASSWORD": "",
        "EMAIL_USE_TLS": False,
        "EMAIL_USE_SSL": False,
        "EMAIL_TIMEOUT": 2,
        "SMTPX_RETRY": None,
        "SMTPX_ALLOW_PLAINTEXT_AUTH": False,
        **dict(case.settings),
    }
    for name, value in values.items():
        monkeypatch.setattr(settings, name, value, raising=False)
    with serve_in_thread(**options) as scripted:
        for rule in case.rules:
            scripted.on(**rule)
        theirs = _raised(DJANGO_SMTP, case, scripted.port)
        ours = _raised(BACKEND, case, scripted.port)
    return theirs, ours


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_raises_the_smtpx_class_and_what_djangos_backend_raises(
    case: Case, ca: LocalCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs, ours = _both_backends(case, ca, monkeypatch)
    if case.smtpx_class in (smtpx.AllRecipientsRejected, smtpx.AllRecipientsDeferred):
        assert isinstance(ours, smtpx_django.RecipientsRefused)
        assert type(ours).__name__ == case.smtpx_class.__name__
        assert isinstance(ours.__cause__, case.smtpx_class)
    else:
        assert isinstance(ours, case.smtpx_class), repr(ours)
    assert isinstance(ours, type(theirs)), (type(theirs), type(ours).__mro__)
    assert isinstance(ours, smtplib.SMTPException | OSError)
    for attribute in ("smtp_code", "smtp_error", "sender", "recipients"):
        if hasattr(theirs, attribute):
            assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    if isinstance(theirs, smtplib.SMTPResponseException | smtplib.SMTPRecipientsRefused):
        assert ours.args == theirs.args  # (code, message), as smtplib gives them
    if isinstance(theirs, OSError) and theirs.errno is not None:
        assert ours.errno == theirs.errno
    copy = pickle.loads(pickle.dumps(ours))  # task queues and test runners pickle errors
    assert type(copy) is type(ours) and str(copy) == str(ours)
    assert _state(copy) == _state(ours) and copy.args == ours.args


def _state(error: BaseException) -> dict[str, str]:
    return {name: repr(value) for name, value in error.__dict__.items()}


def test_connection_refused_is_also_the_oserror(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nobody listens there once closed
    monkeypatch.setattr(settings, "EMAIL_HOST", "127.0.0.1")
    case = Case("refused", smtpx.ConnectError)
    theirs = _raised(DJANGO_SMTP, case, port)
    ours = _raised(BACKEND, case, port)
    assert isinstance(theirs, ConnectionRefusedError)
    assert isinstance(ours, smtpx.ConnectError | smtplib.SMTPConnectError | ConnectionRefusedError)
    assert isinstance(ours, ConnectionRefusedError) and isinstance(ours, smtpx.ConnectError)
    assert ours.errno == theirs.errno
    assert ours.__cause__ is not None  # the aiosmtplib / OSError story stays
    assert mail.send_mail(
        "Hi", "Body", None, ["a@example.com"],
        connection=mail.get_connection(BACKEND, port=port, fail_silently=True),
    ) == 0  # fmt: skip


def test_the_traceback_and_cause_are_kept(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.on("DATA_END", close=True)
    with pytest.raises(smtpx.DeliveryUnknown) as info:
        mail.send_mail("Hi", "Body", None, ["alice@example.com"])
    error = info.value
    assert isinstance(error, smtplib.SMTPServerDisconnected)
    frames = [frame.name for frame in info.traceback]
    assert "send" in frames  # raised where smtpx raised it, not only in the backend
    assert isinstance(error.__context__, smtpx.DeliveryUnknown)  # the original
    assert error.__cause__ is error.__context__.__cause__
    assert error.undelivered == error.__context__.undelivered == ("alice@example.com",)


def _every_error() -> list[smtpx.SMTPError]:
    """An error of every class the classifier gives, and of every class raised without a
    reply, each at every command."""
    from smtpx import errors

    found: list[smtpx.SMTPError] = []
    for command in smtpx.Command:
        for code in range(400, 600):
            text = ("", "5.1.1 No such user", "4.7.1 Blocked using zen.spamhaus.org")[code % 3]
            result = smtpx.classify(command, smtpx.Reply.build(code, text), recipient="a@x.org")
            if isinstance(result, smtpx.SMTPError):
                found.append(result)
    for kind in vars(errors).values():
        if (
            isinstance(kind, type)
            and issubclass(kind, smtpx.SMTPError)
            and not issubclass(kind, smtpx.RecipientsRefused)
        ):
            for command in (None, *smtpx.Command):
                found.append(kind("detail", command=command))
    refusals = {"a@x.org": found[0], "b@x.org": found[1]}
    found += [
        smtpx.errors.recipients_refused(refusals),
        smtpx.errors.recipients_refused({"a@x.org": found[0]}),
    ]
    return found


def test_every_smtpx_error_converts_keeping_everything() -> None:
    from smtpx.contrib._django_errors import compatible

    errors = _every_error()
    assert len(errors) > 3000
    kinds = set()
    for error in errors:
        error.undelivered = ("u@x.org",)
        converted = compatible(error, sender="s@x.org")
        if isinstance(error, smtpx.UsageError) and not isinstance(error, smtpx.ExtensionRequired):
            assert converted is error  # a ValueError, as Django raises for a bad address
            continue
        assert converted is not error
        assert isinstance(converted, smtplib.SMTPException | ssl.SSLError), repr(error)
        if isinstance(error, smtpx.RecipientsRefused):
            assert isinstance(converted, smtpx_django.RecipientsRefused)
            assert converted.retryable == error.retryable
        else:
            assert isinstance(converted, type(error))
        assert str(converted) == str(error) and repr(converted) == repr(error)
        assert converted.reason is error.reason and converted.undelivered == ("u@x.org",)
        assert all(converted.__dict__[k] is v for k, v in list(error.__dict__.items()))
        assert compatible(converted) is converted  # converting twice changes nothing
        copy = pickle.loads(pickle.dumps(converted))
        assert type(copy) is type(converted) and str(copy) == str(converted)
        assert _state(copy) == _state(converted)
        kinds.add(type(converted))
    assert len(kinds) > 100  # one made class per (smtpx class, smtplib classes) pair


# -- every setting Django's backend and messages read, and smtpx's own --------------------


@pytest.mark.parametrize("localtime", [False, True])
def test_email_use_localtime_sets_the_date_header(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, localtime: bool
) -> None:
    import time

    from django.test import override_settings  # type: ignore[import-untyped]

    # +0530, not UTC, for Django 5 (the process's zone) and 6 (TIME_ZONE) alike
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        with override_settings(EMAIL_USE_LOCALTIME=localtime, TIME_ZONE="Asia/Kolkata"):
            assert mail.send_mail("Hi", "Body", None, ["alice@example.com"]) == 1
    finally:
        monkeypatch.undo()
        time.tzset()
    [received] = server.messages
    date = str(received.message["Date"])
    assert date.endswith("+0530") if localtime else date[-5:] in ("+0000", "-0000"), date


def test_ehlo_says_djangos_cached_dns_name(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.core.mail.utils import DNS_NAME  # type: ignore[import-untyped]

    monkeypatch.setattr(settings, "SMTPX_OPTIONS", {})
    monkeypatch.setattr(DNS_NAME, "_fqdn", "web1.example.com", raising=False)
    assert mail.send_mail("Hi", "Body", None, ["alice@example.com"]) == 1
    assert b"EHLO web1.example.com" in server.transcript


def test_default_charset_and_subject_prefix_come_through(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "ADMINS", [("Ops", "ops@example.com")])
    monkeypatch.setattr(settings, "EMAIL_SUBJECT_PREFIX", "[shop] ")
    mail.mail_admins("Disk full", "Cleanup needed: äöü")
    [received] = assert_sent(server, to="ops@example.com", subject="[shop] Disk full")
    assert "äöü" in received.text


def test_options_as_django_mailers_gives_them(server: ScriptedServer) -> None:
    # MAILERS (Django 6.1+) makes the backend with alias= and its OPTIONS, never reading
    # the EMAIL_* settings; the same call works on older Django.
    backend = EmailBackend(
        alias="transactional",
        host=server.host,
        port=server.port,
        retry=3,
        tls="none",
        log_level="ERROR",
        client_options={"local_hostname": "mailer.test"},
    )
    assert backend.retry is not None and backend.retry.attempts == 3
    assert backend.tls is smtpx.TLSMode.NONE and backend.log_level == logging.ERROR
    message = mail.EmailMessage("Hi", "Body", "shop@example.com", ["alice@example.com"])
    assert backend.send_messages([message]) == 1
    assert b"EHLO mailer.test" in server.transcript
    assert EmailBackend(alias="x", host="mx.example").port == 25
    assert EmailBackend(alias="x", host="mx.example", use_tls=True).port == 587
    assert EmailBackend(alias="x", host="mx.example", use_ssl=True).port == 465
    with pytest.raises(smtpx.UsageError, match="'host'"):
        EmailBackend(alias="x")


@pytest.mark.skipif(not hasattr(mail, "mailers"), reason="MAILERS came with Django 6.1")
def test_django_mailers_setting(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    options = {
        "host": server.host,
        "port": server.port,
        "client_options": {"local_hostname": "m.test"},
    }
    monkeypatch.setattr(
        settings, "MAILERS", {"default": {"BACKEND": BACKEND, "OPTIONS": options}}, raising=False
    )
    mail.mailers["default"].send_messages(
        [mail.EmailMessage("Hi", "Body", "shop@example.com", ["alice@example.com"])]
    )
    assert_sent(server, to="alice@example.com", count=1)


def test_refusals_are_logged_with_their_reason(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    server.on("RCPT", match="bob@", reply="550 5.1.1 No such user")
    with caplog.at_level(logging.DEBUG, logger="smtpx.contrib.django"):
        mail.send_mail("Hi", "Body", None, ["alice@example.com", "bob@example.com"])
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    fields = record.__dict__
    assert fields["smtpx_reason"] == "user_unknown" and "user_unknown" in record.getMessage()
    assert fields["smtpx_recipient"] == "bob@example.com"
    assert fields["smtpx_error"] == "NoSuchMailbox"
    caplog.clear()
    monkeypatch.setattr(settings, "SMTPX_LOG_LEVEL", "info", raising=False)
    with caplog.at_level(logging.DEBUG, logger="smtpx.contrib.django"):
        mail.send_mail("Hi", "Body", None, ["alice@example.com", "bob@example.com"])
        mail.send_mail("Hi", "Body", None, ["bob@example.com"], fail_silently=True)
    assert [r.levelno for r in caplog.records] == [logging.INFO, logging.INFO]
    assert caplog.records[1].__dict__["smtpx_reason"] == "user_unknown"
    caplog.clear()
    monkeypatch.setattr(settings, "SMTPX_LOG_LEVEL", None)
    with caplog.at_level(logging.DEBUG, logger="smtpx.contrib.django"):
        mail.send_mail("Hi", "Body", None, ["alice@example.com", "bob@example.com"])
    assert caplog.records == []


def test_fail_silently_is_the_backends_own(server: ScriptedServer) -> None:
    import warnings

    with warnings.catch_warnings():
        # Django 6.1 warns when the base class's fail_silently is used
        warnings.filterwarnings("error", message=".*fail_silently.*")
        assert EmailBackend(fail_silently=True).fail_silently is True
        assert EmailBackend().fail_silently is False


def test_email_ssl_certfile_and_keyfile_present_a_client_certificate(
    monkeypatch: pytest.MonkeyPatch, ca: LocalCA, tmp_path: Path
) -> None:
    ca_file = ca.write_ca_pem(tmp_path)
    cert, key = ca.write_client_cert(tmp_path)
    with serve_in_thread(tls_context=ca.client_cert_server_context()) as srv:
        values: dict[str, Any] = {
            "EMAIL_HOST": srv.host,
            "EMAIL_PORT": srv.port,
            "EMAIL_USE_TLS": True,
            "EMAIL_TIMEOUT": 5,
            "EMAIL_SSL_CERTFILE": str(cert),
            "EMAIL_SSL_KEYFILE": str(key),
            "SMTPX_OPTIONS": {"local_hostname": "client.test", "ca_file": str(ca_file)},
        }
        for name, value in values.items():
            monkeypatch.setattr(settings, name, value, raising=False)
        assert mail.send_mail("Hi", "Body", None, ["alice@example.com"]) == 1
        assert srv.received_by("alice@example.com")
        monkeypatch.setattr(settings, "EMAIL_SSL_CERTFILE", None)
        monkeypatch.setattr(settings, "EMAIL_SSL_KEYFILE", None)
        with pytest.raises(smtpx.SMTPError):  # without it, the server ends the handshake
            mail.send_mail("Hi", "Body", None, ["alice@example.com"])
    assert len(srv.received_by("alice@example.com")) == 1


# -- SMTPX_DRY_RUN: prepared, checked and printed, never sent ---------------------------


def test_dry_run_prints_and_counts_without_connecting(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(settings, "SMTPX_DRY_RUN", True, raising=False)
    message = mail.EmailMessage("Hi", "Body", to=["alice@example.com"], bcc=["bob@example.com"])
    assert message.send() == 1
    out = capsys.readouterr().out
    assert "smtpx dry run (not sent)" in out
    assert "RCPT TO:<alice@example.com>\nRCPT TO:<bob@example.com>" in out
    assert "Subject: Hi" in out and "Body" in out
    assert server.connections == 0


def test_dry_run_still_raises_the_typed_error(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "SMTPX_DRY_RUN", True, raising=False)
    with pytest.raises(smtpx.InvalidEnvelope):
        mail.send_mail("Hi", "Body", "app@example.com", ["bad address@example.com"])
    assert server.connections == 0


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_a_wrong_dry_run_setting_is_a_usage_error(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, value: object
) -> None:
    monkeypatch.setattr(settings, "SMTPX_DRY_RUN", value, raising=False)
    with pytest.raises(smtpx.UsageError, match="SMTPX_DRY_RUN"):
        EmailBackend()


# -- OAuth2 through SMTPX_OPTIONS ---------------------------------------------------------


def test_oauth2_credentials_come_through_smtpx_options(monkeypatch: pytest.MonkeyPatch) -> None:
    from smtpx.testing import OAuthAccounts

    accounts = OAuthAccounts({"app@example.com": "fresh-token"})
    calls: list[int] = []

    def provider() -> str:
        calls.append(1)
        return "fresh-token"

    with serve_in_thread(oauth=accounts) as scripted:
        for name, value in {
            "EMAIL_HOST": scripted.host,
            "EMAIL_PORT": scripted.port,
            "EMAIL_HOST_USER": "",
            "EMAIL_USE_TLS": False,
            "EMAIL_USE_SSL": False,
            "SMTPX_RETRY": None,
            # loopback without TLS: a token may then go in the clear only when asked
            "SMTPX_ALLOW_PLAINTEXT_AUTH": True,
            "SMTPX_OPTIONS": {"credentials": smtpx.OAuth2("app@example.com", provider)},
        }.items():
            monkeypatch.setattr(settings, name, value, raising=False)
        assert mail.send_mail("Hi", "Body", "app@example.com", ["alice@example.com"]) == 1
        assert calls == [1]
        assert [mechanism for mechanism, _ in accounts.received] in (["OAUTHBEARER"], ["XOAUTH2"])
        assert_sent(scripted, to="alice@example.com", subject="Hi", count=1)
