"""Date and Message-ID: added when a message lacks them, above its first header.

A caller's own are kept; ``add_missing_headers=False`` adds none; bytes are otherwise
left exactly as given.  The Message-ID's domain is the client's host name when that is
a real dotted domain, else the sender's, else a random name under ``.invalid``.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import re
from email.message import EmailMessage, Message
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import smtpx
from smtpx import RetryPolicy, VirtualClock
from smtpx._data import normalize
from smtpx._message import prepare
from smtpx.testing import ScriptedServer

PLAIN: dict[str, Any] = {"tls": smtpx.TLSMode.NONE, "local_hostname": "client.test"}
MESSAGE = (
    b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: hi\r\n\r\nHello.\r\n"
)
NOON = datetime.datetime(2024, 2, 29, 12, 30, 5, tzinfo=datetime.UTC)
# RFC 5322 §3.6.4 msg-id with a dot-atom id-left and a domain id-right
MSG_ID = re.compile(rb"Message-ID: <[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@([A-Za-z0-9.-]+)>\r\n")


@pytest.fixture
def noon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("smtpx._message._now", NOON.timestamp)


def added_lines(data: bytes, original: bytes) -> bytes:
    """What was put in front of ``original`` (asserting that nothing else changed)."""
    assert data.endswith(original)
    return data[: len(data) - len(original)]


def test_bytes_get_date_and_message_id_on_top_and_stay_otherwise_byte_for_byte(
    noon: None,
) -> None:
    envelope = prepare(MESSAGE, local_hostname="mail.example.net")
    added = added_lines(envelope.data, MESSAGE)
    date, message_id = added.split(b"\r\n", 1)
    assert date == b"Date: Thu, 29 Feb 2024 12:30:05 +0000"
    match = MSG_ID.fullmatch(message_id)
    assert match is not None and match[1] == b"mail.example.net"
    assert parsedate_to_datetime(date.decode().removeprefix("Date: ")) == NOON


@pytest.mark.parametrize(
    "kept",
    [
        b"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n",
        b"date: Mon, 01 Jan 2024 00:00:00 +0000\r\n",
        b"Message-ID: <own@example.com>\r\n",
        b"MESSAGE-ID:\r\n <own@example.com>\r\n",
    ],
    ids=["Date", "date", "Message-ID", "folded MESSAGE-ID"],
)
def test_a_callers_own_header_is_kept_and_only_the_other_added(kept: bytes) -> None:
    message = MESSAGE.replace(b"Subject:", kept + b"Subject:")
    added = added_lines(prepare(message).data, message)
    names = [line.split(b":")[0].lower() for line in added.splitlines()]
    assert names == [n for n in (b"date", b"message-id") if n not in kept.lower()]


def test_a_message_with_both_is_sent_as_the_very_same_object() -> None:
    message = MESSAGE.replace(
        b"Subject:", b"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\nMessage-ID: <a@b.c>\r\nSubject:"
    )
    assert prepare(message).data is message  # not even copied


def test_add_missing_headers_false_adds_nothing() -> None:
    assert prepare(MESSAGE, add_missing_headers=False).data is MESSAGE
    message = EmailMessage()
    message["From"] = "a@example.com"
    message["To"] = "b@example.com"
    data = prepare(message, add_missing_headers=False).data
    assert b"Date:" not in data and b"Message-ID:" not in data


LINES = st.sampled_from(
    [
        b"From: a@example.com",
        b"To: b@example.com",
        b"Subject: x",
        b"Subject: folded\r\n more",
        b"From x@y Mon Jan  1 00:00:00 2024",
        b"X-Mixed: lf only\n",
        b"",
        b"body text",
        b".dot",
        b"\xc3\xa9t\xc3\xa9",
    ]
)


@given(st.lists(LINES, max_size=10), st.sampled_from([b"\r\n", b"\n"]))
@settings(max_examples=300)
def test_only_the_added_lines_differ_for_any_raw_message(lines: list[bytes], end: bytes) -> None:
    message = b"".join(line + end for line in lines)
    envelope = prepare(message, sender="a@example.com", recipients=["b@example.com"])
    expected = normalize(message)
    added = added_lines(envelope.data, expected)
    blank = b"\r\n" if expected and not re.match(rb"From |[^ \t\r\n:]*:|\r\n", expected) else b""
    added = added.removesuffix(blank)
    assert re.fullmatch(rb"Date: [^\r\n]+\r\n" + MSG_ID.pattern, added)
    # and what a parser sees: the message's own fields, plus exactly these two
    parsed = email.message_from_bytes(envelope.data, policy=email.policy.compat32)
    assert parsed.get_all("Date") is not None and len(parsed.get_all("Message-ID") or []) == 1


def test_a_headerless_message_gets_an_empty_line_after_the_added_headers() -> None:
    envelope = prepare(b"just a body\r\n", sender="a@example.com", recipients=["b@example.com"])
    head, body = envelope.data.split(b"\r\n\r\n")
    assert body == b"just a body\r\n"
    assert [line.split(b":")[0] for line in head.split(b"\r\n")] == [b"Date", b"Message-ID"]


@pytest.mark.parametrize("kind", ["EmailMessage", "Message"])
def test_message_objects_get_them_and_are_not_changed(kind: str) -> None:
    message = EmailMessage() if kind == "EmailMessage" else Message()
    message["From"] = "a@example.com"
    message["To"] = "b@example.com"
    message["Subject"] = "object"
    message.set_payload("Hello.\n")
    data = prepare(message, local_hostname="mail.example.net").data
    assert data.startswith(b"Date: ")
    assert MSG_ID.search(data.split(b"\r\n", 1)[1]) is not None
    assert b"@mail.example.net>" in data
    assert "Date" not in message and "Message-ID" not in message  # the caller's, untouched


def message_id_domain(**options: Any) -> str:
    match = MSG_ID.search(prepare(MESSAGE, **options).data)
    assert match is not None
    return match[1].decode()


@pytest.mark.parametrize(
    ("hostname", "domain"),
    [
        ("mail.example.net", "mail.example.net"),
        ("MX1.Example.NET", "MX1.Example.NET"),
        (None, "example.com"),  # the sender's domain
        ("localhost", "example.com"),
        ("localhost.localdomain", "example.com"),
        ("web1.localdomain", "example.com"),
        ("app.localhost", "example.com"),
        ("mail", "example.com"),  # not dotted
        ("127.0.0.1", "example.com"),
        ("[192.0.2.1]", "example.com"),
        ("evil.test>\r\nBcc: x@evil.test", "example.com"),  # never written into the header
        ("-bad.example.net", "example.com"),
        ("a" * 64 + ".example.net", "example.com"),  # a label over 63 octets
    ],
)
def test_the_message_id_domain(hostname: str | None, domain: str) -> None:
    assert message_id_domain(local_hostname=hostname) == domain


def test_the_message_id_domain_falls_back_to_from_then_to_a_random_invalid_name() -> None:
    assert message_id_domain(sender="", recipients=["b@example.com"]) == "example.com"  # From
    assert message_id_domain(sender="bounce@xn--bcher-kva.de") == "xn--bcher-kva.de"
    assert message_id_domain(sender="jörg@bücher.de") == "xn--bcher-kva.de"  # IDNA
    for message, sender in ((b"body\r\n", ""), (b"Subject: x\r\n\r\n", "a@[192.0.2.1]")):
        data = prepare(message, sender=sender, recipients=["b@example.com"]).data
        match = MSG_ID.search(data)
        assert match is not None
        assert re.fullmatch(rb"[0-9a-f]{12}\.invalid", match[1])


def test_message_ids_are_unique() -> None:
    ids = {MSG_ID.search(prepare(MESSAGE).data)[0] for _ in range(2000)}  # type: ignore[index]
    assert len(ids) == 2000


async def test_the_server_receives_date_and_message_id() -> None:
    async with ScriptedServer() as server:
        await smtpx.send(MESSAGE, host=server.host, port=server.port, **PLAIN)
    (received,) = server.messages
    parsed = received.message
    assert parsed["Date"].datetime.tzinfo is not None
    assert re.fullmatch(r"<[^<>@\s]+@[A-Za-z0-9.-]+\.[a-z]+>", parsed["Message-ID"])
    assert received.data.endswith(MESSAGE)


async def test_a_resent_message_keeps_its_message_id() -> None:
    # the copy the caller chose over a loss carries the same id: receivers can drop it
    async with ScriptedServer() as server:
        server.on("DATA_END", close=True, record=True, times=1)
        policy = RetryPolicy.for_testing(VirtualClock(), retry_delivery_unknown=True)
        await smtpx.send(MESSAGE, host=server.host, port=server.port, retry=policy, **PLAIN)
    first, second = (m.message["Message-ID"] for m in server.messages)
    assert first == second


async def test_client_add_missing_headers_false_sends_the_message_as_it_is() -> None:
    async with ScriptedServer() as server:
        await smtpx.send(
            MESSAGE, host=server.host, port=server.port, add_missing_headers=False, **PLAIN
        )
    assert server.messages[0].data == MESSAGE


async def test_the_message_id_takes_the_clients_host_name() -> None:
    options = {**PLAIN, "local_hostname": "mail.example.net"}
    async with ScriptedServer() as server:
        await smtpx.send(MESSAGE, host=server.host, port=server.port, **options)
    assert server.messages[0].message["Message-ID"].endswith("@mail.example.net>")
