"""The examples of URL configuration, composing and dry runs run standalone and print
what they promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(script: str) -> list[str]:
    env = {"PATH": "/usr/bin:/bin"}  # no SMTPX_URL or SMTPX_PASSWORD of the caller's
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


def test_from_url_example() -> None:
    out = run("from_url.py")
    assert out[0].startswith("config: 127.0.0.1:") and out[0].endswith(" tls=none")
    assert out[1] == "credentials: Credentials(username='app', password='***')"
    assert out[2] == "accepted: alice@example.com"
    assert out[3].startswith("refused: the URL has an '@' after its host")
    assert out[4] == "password shown: False"


def test_compose_example() -> None:
    out = run("compose.py")
    assert out == [
        "accepted: zoe@example.com, archive@example.com",
        "structure: multipart/mixed",
        "parts: multipart/mixed, multipart/alternative, text/plain, text/html, application/pdf",
        "subject: Your order — Grüße",
        "Bcc header transmitted: False",
        "headers ASCII: True",
        "one-liner: 'Hello' to zoe@example.com",
    ]


def test_dry_run_example() -> None:
    out = run("dry_run.py")
    assert out[:3] == [
        "dry run: True; accepted: alice@example.com, archive@example.com",
        "recorded: 1 message(s), Bcc in the bytes: False",
        "refused: InvalidMessage",
    ]
    assert out[3] == "-" * 79
    assert out[4:7] == [
        "smtpx dry run (not sent)",
        "MAIL FROM:<shop@example.com>",
        "RCPT TO:<carol@example.com>",
    ]
    assert "Subject: Printed" in out
    assert out[-2:] == ["On standard output.", "-" * 79]
