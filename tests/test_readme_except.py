"""README's ``except`` examples, run as written against a scripted server."""

from __future__ import annotations

import re
import textwrap
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

import smtpx
from smtpx.testing import ScriptedServer

README = Path(__file__).resolve().parents[1] / "README.md"
PASSWORD = "s3cret-Pa55"


def block(marker: str) -> str:
    """The README's python block containing ``marker``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text("utf-8"), re.S)
    (found,) = [b for b in blocks if marker in b]
    return str(found)


def runnable(code: str) -> str:
    """The block as an async function: the server's address for smtp.example.com, each
    ``...`` branch body records the branch it is in."""
    code = code.replace(
        'host="smtp.example.com", credentials=("app", password)',
        "host=HOST, port=PORT, credentials=('app', password), **OPTIONS",
    )
    lines, branch = [], "none"
    for line in code.splitlines():
        found = re.match(r"\s*except\*? (smtpx\.\w+)", line)
        if found:
            branch = found[1]
        if line.strip() == "..." or line.strip().startswith("print("):
            line = re.sub(r"\S.*", f"caught.append({branch!r})", line)
        lines.append(line)
    return "async def example():\n" + textwrap.indent("\n".join(lines), "    ")


async def run(code: str, server: ScriptedServer, to: str) -> list[str]:
    msg = EmailMessage()
    msg["From"] = "app@example.com"
    msg["To"] = to
    msg["Subject"] = "Hello"
    msg.set_content("Hi!")
    caught: list[str] = []
    scope: dict[str, Any] = {
        "smtpx": smtpx,
        "msg": msg,
        "password": PASSWORD,
        "caught": caught,
        "HOST": server.host,
        "PORT": server.port,
        "OPTIONS": {
            "tls": smtpx.TLSMode.NONE,
            "allow_plaintext_auth": True,
            "local_hostname": "client.test",
            "timeout": 2.0,
        },
    }
    exec(runnable(code), scope)
    await scope["example"]()
    return caught


ONE_RECIPIENT = [
    ("AUTH", "535 5.7.8 Authentication credentials invalid", "smtpx.AuthFailed"),
    ("RCPT", "550 User unknown", "smtpx.NoSuchMailbox"),
    ("RCPT", "550 5.1.1 <alice@example.com>: Recipient address rejected", "smtpx.NoSuchMailbox"),
    ("RCPT", "452 4.2.2 Mailbox full", "smtpx.MailboxFull"),
    ("RCPT", "552 5.2.2 Over quota", "smtpx.MailboxFull"),
    ("DATA_END", "552 5.2.2 Quota exceeded (mailbox for user is full)", "smtpx.MailboxFull"),
    (
        "RCPT",
        "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
        "smtpx.Blocklisted",
    ),
    ("MAIL", "451 4.3.0 Temporary local problem", "smtpx.TransientError"),
    ("RCPT", "450 4.2.0 Greylisted, try again in 5 minutes", "smtpx.TransientError"),
]


@pytest.mark.parametrize(("command", "reply", "branch"), ONE_RECIPIENT)
async def test_the_one_recipient_example_takes_the_branch_it_says(
    command: str, reply: str, branch: str
) -> None:
    async with ScriptedServer(credentials={"app": PASSWORD}) as server:
        server.on(command, reply=reply)
        caught = await run(block("except smtpx.AuthFailed"), server, "alice@example.com")
    assert caught[:1] == [branch], caught


async def test_the_except_star_example_takes_the_refusals_apart() -> None:
    async with ScriptedServer(credentials={"app": PASSWORD}) as server:
        server.on("RCPT", match="alice@", reply="550 5.1.1 User unknown")
        server.on("RCPT", match="bob@", reply="450 4.2.1 Mailbox busy")
        code = block("except* smtpx.NoSuchMailbox")
        caught = await run(code, server, "alice@example.com, bob@example.com")
    assert caught == ["smtpx.NoSuchMailbox", "smtpx.TransientError"]
