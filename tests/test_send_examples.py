"""The client examples run standalone and print the typed outcomes they promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(script: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


def test_send_example() -> None:
    out = run("send.py")
    assert out[0] == "accepted: alice@example.com, archive@example.com"
    assert "all accepted: True" in out
    assert "server said: 250 OK" in out
    assert "Bcc header transmitted: False" in out


def test_catch_auth_failed_example() -> None:
    out = run("catch_auth_failed.py")
    assert out[0] == "1. wrong password"
    assert out[1] == "AuthFailed: code=535 enhanced=5.7.8 retryable=False"
    assert "s3cret" not in "\n".join(out[1:3])
    assert "AuthUnavailable: code=454 retryable=True" in out
    assert out[-1] == "sent: accepted alice@example.com"


def test_partial_refusal_example() -> None:
    out = run("partial_refusal.py")
    assert "   accepted: alice@example.com" in out
    assert "   refused:  nobody@example.com: NoSuchMailbox (550 5.1.1, permanent)" in out
    assert "   refused:  busy@example.com: MailboxBusy (450 4.2.1, transient, retry later)" in out
    assert "   AllRecipientsRejected (retryable=False)" in out
    assert out[-1] == "the server received 1 message(s), for alice@example.com"


def test_blocking_session_example() -> None:
    out = run("blocking_session.py")
    assert out[0] == "accepted: alice@example.com"
    assert "refused: nobody@example.com: NoSuchMailbox (550 5.1.1)" in out
    assert "server said: 250 OK" in out
    assert "  BDAT LAST: fully written, reply 250" in out  # the ledger, entry by entry
    assert out[-1] == "the server got 'Your order has shipped' for alice@example.com"


def test_outbox_example() -> None:
    out = run("outbox.py")
    assert out[:4] == [
        "alice@example.com: accepted, 1 attempt(s)",
        "bob@example.com: accepted, 2 attempt(s)",
        "nobody@example.com: refused, 1 attempt(s)  (NoSuchMailbox)",
        "carol@example.com: delivery_unknown, 1 attempt(s)  (DeliveryUnknown)",
    ]
    assert "unknown: ['carol@example.com']" in out
    assert "accepted: 3 refused: 1" in out
    # one copy each; carol's second was asked for, after the lost reply
    assert out[-1] == (
        "copies on the server: "
        "{'alice@example.com': 1, 'bob@example.com': 1, 'carol@example.com': 2}"
    )


def test_failover_example() -> None:
    out = run("failover.py")
    assert out[1] == "   accepted by the good server: alice@example.com"
    assert out[-1] == "   good got 2, spare got 2"


def test_client_certificate_example() -> None:
    out = run("client_certificate.py")
    assert out[0] == "1. with the certificate: accepted alice@example.com"
    assert out[1] == "   encrypted: True"
    assert out[2].startswith("2. without it: ") and out[2].endswith(", nothing sent")
    assert out[-1] == "the server received 1 message(s)"


def test_oauth2_example() -> None:
    out = run("oauth2.py")
    assert out[0] == "credentials: OAuth2(username='app@example.com', token_provider='***')"
    assert out[1] == "1. sent to alice@example.com after 2 token requests"
    assert "   OAuthRejected: code=535 status=invalid_token scope=https://mail.example.com/" in out
    assert out[-1] == "   OAuthTokenError, caused by ConnectionError"
    assert "ya29" not in "\n".join(out)


def test_dsn_example() -> None:
    out = run("dsn.py")
    assert "   server got: MAIL FROM:<shop@example.com> RET=HDRS ENVID=order-42+2Bshipped" in out
    assert (
        "   server got: RCPT TO:<bob@example.com> NOTIFY=FAILURE,DELAY "
        "ORCPT=rfc822;robert@example.org"
    ) in out
    assert out.count("   accepted: alice@example.com, bob@example.com") == 1
    assert any(line.startswith("   ExtensionRequired: delivery status") for line in out)
    assert out[-1].startswith("   ExtensionRequired: require_tls=True needs a TLS session")


def test_demo_example() -> None:
    # what scripts/demo runs once its venv is ready (the install is the script's own part)
    out = run("demo.py")
    assert "   accepted: alice@example.com" in out
    assert any(
        line.startswith("   rejected: nobody@example.com -> NoSuchMailbox: ") for line in out
    )
    assert any(line.startswith("   except smtpx.AuthFailed -> ") for line in out)
    assert "s3cret" not in "\n".join(out)
    assert [line.split(":")[0] for line in out if line.startswith("   attempt ")] == [
        "   attempt 1",
        "   attempt 2",
    ]
    assert out[-4].startswith("   accepted: carol@example.com, bob@example.com after waits of ")
    copies = "{'carol@example.com': 1, 'bob@example.com': 1}  (never twice)"
    assert out[-3] == f"   copies received per recipient: {copies}"
    assert out[-1] == "The server received 3 messages."


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


def test_send_many_example() -> None:
    assert run("send_many.py") == [
        "sent to alice@example.com",
        "failed: AllRecipientsRejected: RCPT TO failed: every recipient was refused, at least "
        "one permanently [refused: <gone@example.com> 550]",
        "failed: InvalidEnvelope: Sending failed: invalid envelope: no sender given and the "
        "message has no From or Sender header",
        "sent to carol@example.com",
        "the server received 2 messages",
    ]
