"""The fast header reader agrees with the ``email`` package it replaces.

``smtpx._headers`` reads envelope addresses without ``email.parser``; these
properties hold it to what ``HeaderParser(policy=compat32)`` and
``email.utils.getaddresses`` give for the same bytes.
"""

from __future__ import annotations

import email.policy
from email.parser import HeaderParser
from email.utils import getaddresses

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from smtpx import InvalidEnvelope
from smtpx._headers import READ_FIELDS, addresses, field_values, header_block

LINES = st.sampled_from(
    [
        b"From: Alice <alice@example.com>",
        b"from: bob@example.com",
        b"Sender: <s@example.org>",
        b"To: a@example.com, B <b@example.com>",
        b'TO: "Quoted, Name" <q@example.com>',
        b"To:",
        b"To:   ",
        b"Cc: c@example.com (comment)",
        b"Bcc: hidden@example.com",
        b"bcc:x@y.z,",
        b"  d@example.com",
        b"\te@example.com,",
        b" ",
        b"From x@y Mon Jan  1 00:00:00 2024",
        b"From  double",
        b":no name",
        b"X-Other: value",
        b"Subject: =?utf-8?q?caf=C3=A9?=",
        b"To : spaced@example.com",
        b"not a header line",
        b"To: j\xc3\xb6rg@example.com",
        b"Cc: \xff\xfe@example.com",
        b"Received: from a by b; Mon, 1 Jan 2024",
        b"Date: Mon, 1 Jan 2024 00:00:00 +0000",
        b"message-id: <x@y.z>",
        b"Message-ID:",
    ]
)


def compat32_values(head: bytes) -> dict[str, list[str]]:
    text = head.decode("utf-8", "surrogateescape")
    parsed = HeaderParser(policy=email.policy.compat32).parsestr(text, headersonly=True)
    values: dict[str, list[str]] = {}
    for key, value in parsed.raw_items():
        if key.lower() in READ_FIELDS:
            values.setdefault(key.lower(), []).append(str(value))
    return values


@given(st.lists(LINES, max_size=12), st.booleans())
@settings(max_examples=400)
@example([b" first is a continuation", b"To: a@example.com"], True)
@example([b"From ", b"To: a@example.com", b"From last"], False)
def test_field_values_agree_with_the_email_package(lines: list[bytes], body: bool) -> None:
    data = b"".join(line + b"\r\n" for line in lines) + (b"\r\nbody\r\n" if body else b"")
    head = header_block(data)
    ours = {
        name: [v.decode("utf-8", "surrogateescape") for v in values]
        for name, values in field_values(head).items()
    }
    assert ours == compat32_values(head)


def test_header_block_ends_at_the_first_empty_line() -> None:
    assert header_block(b"To: a@b.c\r\n\r\nbody\r\n\r\n") == b"To: a@b.c\r\n"
    assert header_block(b"\r\nTo: a@b.c\r\n") == b""
    assert header_block(b"To: a@b.c\r\n") == b"To: a@b.c\r\n"


ADDRESS_TEXT = st.lists(
    st.sampled_from([*"ab.@<>,;:\"() \t\r\n\\[]=?-'é", "x@y.z", " <a@b.c>", "=?q?", ", "]),
    max_size=15,
).map("".join)


@given(ADDRESS_TEXT)
@settings(max_examples=1000)
@example("Bench <bench@example.com>")
@example("a@b.c, D <d@e.f>")
@example("J. Smith <j@x.y>")
@example("<a@b.c>")
@example("a..b@c.d")
def test_addresses_agree_with_getaddresses(text: str) -> None:
    raw = text.encode("utf-8", "surrogateescape")
    try:
        ours = addresses([raw], "To")
    except InvalidEnvelope:
        assert any(ord(c) < 32 and c not in "\t\r\n" for c in text)
        return
    assert ours == [address for _, address in getaddresses([text]) if address]


@pytest.mark.parametrize("value", [b"a@b.c\x00", b"x\x0b@y.z", b"a@b.c\x7f"])
def test_a_control_character_in_an_address_header_is_refused(value: bytes) -> None:
    with pytest.raises(InvalidEnvelope, match="To header contains a control character"):
        addresses([b"ok@example.com", value], "To")
