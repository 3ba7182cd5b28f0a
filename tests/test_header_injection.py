"""No header value becomes a second header, or the end of the headers, on the wire.

A message object is serialised by the ``email`` package, which writes a value's line
breaks as they are; smtpx refuses every break that is not a fold (CRLF, then a space
or tab, then text: RFC 5322 §2.2.3 and §3.2.2) before MAIL, for every way of building
the object.  Raw ``bytes``/``str`` input is the caller's own header block: smtpx reads
it as ``email.feedparser`` does and never turns a value into another field.
"""

from __future__ import annotations

import email
import email.policy
from email.header import Header
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rawserver import RawServer

import smtpx
from smtpx._message import prepare

PLAIN: dict[str, Any] = {"tls": smtpx.TLSMode.NONE, "local_hostname": "client.test"}
EVIL = "Reply-To: attacker@evil.test"

# Every line break str.splitlines() knows, which is where the email package breaks a
# value's lines when it writes them, and the blank or white-space-only lines that end
# the headers for some readers.
BREAKS = [
    "\r\n",
    "\n",
    "\r",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x1d",
    "\x1e",
    "\x85",
    "\u2028",
    "\u2029",
]
# A value that adds a header, one that ends the headers (pushing the next ones into the
# body), and one with a white-space-only line, for each break.
PAYLOADS = [
    *(f"hi{brk}{EVIL}" for brk in BREAKS),
    *(f"hi{brk}{brk}" for brk in BREAKS),
    *(f"hi{brk} {brk}\tx" for brk in BREAKS),
    f"hi\r\n{EVIL}\r\n\r\n",  # the shape that keeps the header count equal
    "hi\r\n\r\nX-Body: 1",
    "hi\r\n \r\n",
]


def legacy(subject: str) -> Message:
    message = Message()
    message["From"] = "a@example.com"
    message["Subject"] = subject
    message["To"] = "b@example.com"
    return message


def email_message_set_raw(subject: str) -> Message:
    message = EmailMessage()
    message["From"] = "a@example.com"
    message.set_raw("Subject", subject)  # set_raw skips EmailMessage's own check
    message["To"] = "b@example.com"
    return message


def email_message_parsed(subject: str) -> Message:
    # a str source keeps U+2028 and the other breaks that are not CR or LF in the value
    text = f"From: a@example.com\nSubject: {subject}\nTo: b@example.com\n\nbody\n"
    return email.message_from_string(text, policy=email.policy.default)


def legacy_parsed(subject: str) -> Message:
    text = f"From: a@example.com\nSubject: {subject}\nTo: b@example.com\n\nbody\n"
    return email.message_from_string(text)


def nested_part(subject: str) -> Message:
    outer = Message()
    outer["From"] = "a@example.com"
    outer["To"] = "b@example.com"
    outer["Content-Type"] = "multipart/mixed; boundary=XYZ"
    part = Message()
    part["Content-Type"] = "text/plain"
    part["Content-Description"] = subject
    part.set_payload("inner\n")
    outer.attach(part)
    return outer


BUILDERS = [legacy, email_message_set_raw, nested_part]
# Parsing splits a source at CR and LF itself (a field there is the source's own); the
# other breaks stay inside the value.
PARSED = [legacy_parsed, email_message_parsed]
UNICODE_PAYLOADS = [p for p in PAYLOADS if "\r" not in p and "\n" not in p]


CASES = [
    *((build, value) for build in BUILDERS for value in PAYLOADS),
    *((build, value) for build in PARSED for value in UNICODE_PAYLOADS),
]


@pytest.mark.parametrize(("build", "value"), CASES, ids=[f"{b.__name__}-{v!r}" for b, v in CASES])
def test_a_break_that_is_not_a_fold_is_refused_for_every_message_object(
    build: Any, value: str
) -> None:
    with pytest.raises(smtpx.InvalidMessage, match=r"header's value .* not a fold"):
        prepare(build(value))


def test_an_encoded_word_that_decodes_to_a_line_break_is_refused() -> None:
    # EmailMessage decodes the encoded word, then writes the CRLF it holds as is
    message = EmailMessage()
    message["From"] = "a@example.com"
    message["Subject"] = "=?utf-8?q?hi=0D=0AReply-To:_attacker@evil.test?="
    message["To"] = "b@example.com"
    with pytest.raises(smtpx.InvalidMessage, match="Subject"):
        prepare(message)


async def test_the_issue_payload_never_reaches_the_wire() -> None:
    async with RawServer() as server:
        with pytest.raises(smtpx.InvalidMessage):
            await smtpx.send(
                legacy(f"hi\r\n{EVIL}\r\n\r\n"), host=server.host, port=server.port, **PLAIN
            )
    assert server.received == b""  # refused before connecting


@pytest.mark.parametrize("name", ["X\r\nBcc", "X\nBcc", "Bad Name", "Sübject", "X:Y", ""])
def test_a_header_name_that_is_not_one_field_name_is_refused(name: str) -> None:
    message = legacy("hi")
    message[name] = "value"
    with pytest.raises(smtpx.InvalidMessage, match="header name"):
        prepare(message)


def test_a_header_value_that_is_not_text_is_refused() -> None:
    message = legacy("hi")
    message["X-Count"] = 5  # type: ignore[assignment]
    with pytest.raises(smtpx.InvalidMessage, match="X-Count"):
        prepare(message)


def test_a_header_object_whose_fold_adds_a_field_is_refused() -> None:
    # The last guard: whatever writes the text, the block sent has the object's fields.
    class Sneaky(str):
        name = "Subject"

        def fold(self, *, policy: object) -> str:
            return f"Subject: hi\r\n{EVIL}\r\n"

    message = legacy("placeholder")
    message.replace_header("Subject", Sneaky("hi"))
    with pytest.raises(smtpx.InvalidMessage, match="serialised"):
        prepare(message)


@pytest.mark.parametrize("build", [*BUILDERS, *PARSED], ids=lambda b: b.__name__)
@pytest.mark.parametrize("fold", ["\r\n ", "\n\t", "\r\n   \t"], ids=repr)
async def test_a_valid_fold_is_sent_and_unfolds_to_the_value(build: Any, fold: str) -> None:
    async with RawServer() as server:
        result = await smtpx.send(
            build(f"first{fold}second"), host=server.host, port=server.port, **PLAIN
        )
    assert result.accepted == ("b@example.com",)
    (body,) = server.message_bodies()
    parsed = email.message_from_bytes(body.removesuffix(b".\r\n"))
    for part in parsed.walk():
        for name in ("Subject", "Content-Description"):
            if name in part:
                assert " ".join(str(part[name]).split()) == "first second"
                assert EVIL not in str(part[name])


async def test_legacy_header_objects_are_sent() -> None:
    # Header values in a legacy Message: written with their own encoding, never a crash
    message = legacy("placeholder")
    message.replace_header("Subject", Header("Grüße aus Köln", "utf-8"))  # type: ignore[arg-type]
    async with RawServer() as server:
        await smtpx.send(message, host=server.host, port=server.port, **PLAIN)
    (body,) = server.message_bodies()
    parsed = email.message_from_bytes(body, policy=email.policy.default)
    assert parsed["Subject"] == "Grüße aus Köln"
    assert parsed["To"] == "b@example.com"


# -- bytes and str: the caller's header block, never a field made from a value ---------

HEAD_LINES = st.sampled_from(
    [
        "From: a@example.com",
        "To: b@example.com",
        "Subject: plain",
        *(f"Subject: hi{brk}{EVIL}" for brk in BREAKS),
        f"Subject: hi\r\n {EVIL}",
        "X-Note: é ü",
    ]
)


@given(st.lists(HEAD_LINES, min_size=1, max_size=6), st.sampled_from(["bytes", "str"]))
@settings(max_examples=300)
def test_raw_input_goes_out_with_the_fields_a_parser_reads_in_it(
    lines: list[str], kind: str
) -> None:
    text = "From: a@example.com\r\nTo: b@example.com\r\n" + "\r\n".join(lines) + "\r\n\r\nbody\r\n"
    given_input: bytes | str = text if kind == "str" else text.encode("utf-8")
    raw = text.encode("utf-8")
    envelope = prepare(given_input, add_missing_headers=False)
    parser = BytesHeaderParser(policy=email.policy.compat32)
    # what a parser sees in the input is what it sees on the wire: smtpx read the block
    # as feedparser does and only made its line ends CRLF (Bcc aside: there is none)
    assert parser.parsebytes(envelope.data).items() == parser.parsebytes(raw).items()


def test_raw_input_starting_with_a_fold_is_refused() -> None:
    # feedparser skips such a line and reads the headers after it; MTAs see no header
    for message in (b" x\r\nFrom: a@example.com\r\nTo: b@example.com\r\n\r\n", "\tx\n"):
        with pytest.raises(smtpx.InvalidMessage, match="continues no header"):
            prepare(message, sender="a@example.com", recipients=["b@example.com"])
