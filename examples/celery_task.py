"""Sending mail from a Celery worker: transient failures are retried for the recipients
still pending, after the delay smtpx suggests; permanent ones are not retried.

In a project, the app module (``celery -A proj worker`` imports it) holds::

    app = Celery("proj", broker="redis://localhost:6379/0", backend="redis://localhost:6379/0")
    mailer = Mailer("smtp.example.com", 587, credentials=("app", password), max_attempts=8)
    send_mail = register(app, mailer)

and the application calls ``enqueue_mail(send_mail, message)``.

The demo: ``.venv/bin/python examples/celery_task.py`` (needs ``pip install
'smtpx[celery]'``). To run without a Redis, it uses Celery's in-memory broker and a worker
thread, and an embedded SMTP server that greylists bob once and does not know carol.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage

from celery import Celery  # type: ignore[import-untyped]
from celery.contrib.testing.worker import start_worker  # type: ignore[import-untyped]

import smtpx
from smtpx.contrib.celery import Mailer, enqueue_mail, register
from smtpx.testing import serve_in_thread


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    with serve_in_thread() as server:
        server.on("RCPT", match="bob@", reply="450 4.2.0 Greylisted, try again later", times=1)
        server.on("RCPT", match="carol@", reply="550 5.1.1 No such user")

        app = Celery("demo", broker="memory://", backend="cache+memory://")
        app.conf.broker_connection_retry_on_startup = True
        mailer = Mailer(
            server.host,
            server.port,
            tls=smtpx.TLSMode.NONE,  # loopback only; the default requires STARTTLS
            local_hostname="worker.example.com",
            # a demo waits 0.2 s; the default backoff starts at 2 s and honours the
            # server's "try again in N minutes"
            backoff=smtpx.Backoff(initial=0.2, jitter=0),
        )
        send_mail = register(app, mailer)

        message = EmailMessage()
        message["From"] = "shop@example.com"
        message["To"] = "alice@example.com, bob@example.com, carol@example.com"
        message["Subject"] = "Your order"
        message.set_content("It has shipped.\n")

        with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
            outcome = enqueue_mail(send_mail, message).get(timeout=30)
        print("attempts:", outcome["attempts"])
        print("accepted:", ", ".join(outcome["accepted"]))
        for recipient, why in outcome["rejected"].items():
            print(f"rejected: {recipient}: {why}")
        copies = {r: len(server.received_by(r)) for r in ("alice@example.com", "bob@example.com")}
        print("copies received:", copies)


if __name__ == "__main__":
    main()
