"""Django sending through smtpx: the settings, a send_mail call, and the typed failures.

Run: ``.venv/bin/python examples/django_backend.py`` (needs ``pip install 'smtpx[django]'``).
The SMTP server is embedded and Django is configured in this file; in a project, the
settings below go in ``settings.py``.
"""

from __future__ import annotations

import logging
import smtplib

import django  # type: ignore[import-untyped]
from django.conf import settings  # type: ignore[import-untyped]
from django.core.mail import send_mail  # type: ignore[import-untyped]

import smtpx
from smtpx.testing import serve_in_thread


def configure(host: str, port: int) -> None:
    # -- settings.py -------------------------------------------------------------------
    settings.configure(
        EMAIL_BACKEND="smtpx.contrib.django.EmailBackend",
        EMAIL_HOST=host,  # e.g. "smtp.example.com"
        EMAIL_PORT=port,  # e.g. 587
        EMAIL_USE_TLS=False,  # True in production: STARTTLS required, certificate verified
        EMAIL_HOST_USER="",  # with EMAIL_USE_TLS: "app" ...
        EMAIL_HOST_PASSWORD="",  # ... and its password
        EMAIL_TIMEOUT=10,
        SMTPX_RETRY=3,  # attempts; retried only for recipients still pending
        DEFAULT_FROM_EMAIL="Shop <shop@example.com>",
    )
    # ----------------------------------------------------------------------------------
    django.setup()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    with serve_in_thread() as server:
        configure(server.host, server.port)

        sent = send_mail("Your order", "It has shipped.", None, ["alice@example.com"])
        print("sent:", sent)

        # One recipient refused: the message still counts; the refusal is logged.
        server.on("RCPT", match="bob@", reply="550 5.1.1 No such user")
        sent = send_mail("Your order", "It has shipped.", None, ["carol@x.com", "bob@x.com"])
        print("sent, with bob refused:", sent)

        # Nobody accepted: the typed error, with each recipient's own refusal. It is also
        # what Django's own SMTP backend raises, so existing `except smtplib...` code works.
        server.on("RCPT", reply="550 5.7.1 Relaying denied")
        try:
            send_mail("Your order", "It has shipped.", None, ["dave@example.com"])
        except smtplib.SMTPRecipientsRefused as error:
            assert isinstance(error, smtpx.PermanentError)
            print("raised:", type(error).__name__, dict(error.rejected))
            print("  smtplib's view:", error.recipients)

        # A server that wants a login: smtpx.AuthRequired, and (as the reply to MAIL FROM)
        # smtplib.SMTPSenderRefused, with smtplib's smtp_code and smtpx's reason.
        server.on("MAIL", reply="530 5.7.0 Authentication required")
        try:
            send_mail("Your order", "It has shipped.", None, ["erin@example.com"])
        except smtplib.SMTPSenderRefused as error:
            assert isinstance(error, smtpx.AuthRequired)
            print("raised:", type(error).__name__, error.smtp_code, error.reason.value)


if __name__ == "__main__":
    main()
