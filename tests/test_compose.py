"""``smtpx.compose`` and the ``send(to=, subject=, text=)`` shortcut: the MIME structure of
every combination of parts, encodings that parse back to what was given, attachment types,
Bcc in the envelope and never in the bytes, and header injection refused in every field."""

from __future__ import annotations

import email.header
import email.policy
import itertools
import re
from collections.abc import Callable
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import smtpx
from smtpx.testing import ScriptedServer, serve_in_thread

PLAIN: dict[str, Any] = {"tls": "none", "local_hostname": "client.example.com", "timeout": 5}
SENDER, TO = "Shop <shop@example.com>", "alice@example.com"


def sent_bytes(message: EmailMessage) -> bytes:
    """What send() would transmit for ``message``."""
    return smtpx.prepare(message).data


def parse(data: bytes) -> EmailMessage:
    parsed = BytesParser(policy=email.policy.default).parsebytes(data)
    assert isinstance(parsed, EmailMessage)
    return parsed


def shape(part: EmailMessage) -> object:
    """The content types of a message's tree: ``("multipart/mixed", [...])``."""
    if part.is_multipart():
        return (part.get_content_type(), [shape(p) for p in part.iter_parts()])  # type: ignore[arg-type]
    return part.get_content_type()


ATTACHMENT = ("report.pdf", b"%PDF-1.7 ...", "application/pdf")


@pytest.mark.parametrize(
    ("text", "html", "attach"), list(itertools.product([None, "Hi"], [None, "<p>Hi</p>"], [0, 1]))
)
def test_the_structure_of_every_combination(
    text: str | None, html: str | None, attach: int
) -> None:
    attachments = [ATTACHMENT] * attach
    message = smtpx.compose(SENDER, TO, "s", text=text, html=html, attachments=attachments)
    body: object
    if text is not None and html is not None:
        body = ("multipart/alternative", ["text/plain", "text/html"])
    elif html is not None:
        body = "text/html"
    else:
        body = "text/plain"
    expected = ("multipart/mixed", [body, "application/pdf"]) if attach else body
    assert shape(message) == expected
    parsed = parse(sent_bytes(message))
    assert shape(parsed) == expected
    assert parsed["MIME-Version"] == "1.0"
    # exactly one MIME-Version: the parts carry none of their own
    assert sent_bytes(message).count(b"MIME-Version:") == 1


# Any text a header may carry (no control characters or line separators).  The email
# package decodes a literal "=?...?=" it wrote unencoded, and strips a value's outer
# whitespace: neither is compose's to fix, so they are left out of the comparison.
PRINTABLE = st.text(
    st.characters(codec="utf-8", categories=("L", "M", "N", "P", "S", "Zs", "Cf")), max_size=60
).filter(lambda text: "=?" not in text)


@settings(max_examples=150, deadline=None)
@given(
    subject=PRINTABLE,
    name=PRINTABLE,
    filename=PRINTABLE.filter(str.strip),  # a filename of spaces alone is refused
    body=PRINTABLE,
)
def test_non_ascii_parses_back_and_the_bytes_are_ascii(
    subject: str, name: str, filename: str, body: str
) -> None:
    message = smtpx.compose(
        Address(name, "shop", "example.com"),
        TO,
        subject,
        text=body + "\n",
        html=f"<p>{body}</p>\n",
        attachments=[(filename, body.encode(), "text/plain")],
    )
    data = sent_bytes(message)
    # ASCII addresses: no SMTPUTF8, so every header and (7-bit encodings) every body is ASCII
    assert data.isascii()
    assert max(map(len, data.split(b"\r\n"))) <= 998  # RFC 5322 §2.1.1
    parsed = parse(data)
    # (the email package strips ASCII whitespace only: a no-break space is text)
    outer = " \t"
    assert parsed["Subject"].strip(outer) == subject.strip(outer)
    # A display name is a phrase, whose whitespace the email package's parser does not
    # keep exactly (it joins encoded words with a space): its text must all be there.
    # The test below decodes a folded name exactly.
    shown = parsed["From"].addresses[0].display_name
    assert re.sub(r"\s+", "", shown) == re.sub(r"\s+", "", name)
    text_part, html_part = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert text_part is not None and html_part is not None
    assert text_part.get_content().replace("\r\n", "\n") == body + "\n"
    assert html_part.get_content().replace("\r\n", "\n") == f"<p>{body}</p>\n"
    (attachment,) = parsed.iter_attachments()
    assert _words(attachment.get_filename() or "") == _words(filename)
    assert attachment.get_payload(decode=True) == body.encode()


def _words(text: str) -> str:
    """``text`` with each run of whitespace one space, and none at the ends: what the
    email package keeps of whitespace in a phrase or parameter is not always all of it."""
    return re.sub(r"\s+", " ", text).strip()


def test_a_long_non_ascii_name_and_subject_fold_into_encoded_words() -> None:
    long = ("Grüße aus Köln " * 8).strip()
    message = smtpx.compose(Address(long, "shop", "example.com"), TO, long, text="x")
    data = sent_bytes(message)
    assert data.isascii()
    head = data.split(b"\r\n\r\n")[0]
    assert max(map(len, head.split(b"\r\n"))) <= 78  # RFC 5322 §2.1.1's SHOULD
    raw = BytesParser(policy=email.policy.compat32).parsebytes(data)
    decode = email.header.decode_header
    # whitespace between adjacent encoded words is not text (RFC 2047 §6.2)
    assert str(email.header.make_header(decode(raw["Subject"]))) == long
    from_ = str(email.header.make_header(decode(raw["From"])))
    assert from_ == f"{long} <shop@example.com>"


@pytest.mark.parametrize("text", ["\xa0", "a\u200db", "\u00ad", "x\u3000y"])
def test_spaces_and_format_characters_are_text(text: str) -> None:
    message = smtpx.compose(SENDER, TO, f"s{text}s", text="x", attachments=[(f"a{text}", b"")])
    parsed = parse(sent_bytes(message))
    assert parsed["Subject"] == f"s{text}s"


def test_a_non_ascii_filename_is_an_rfc2231_parameter() -> None:
    message = smtpx.compose(SENDER, TO, "Grüße", text="x", attachments=[("résumé.pdf", b"x")])
    data = sent_bytes(message)
    assert b"filename*=utf-8''r%C3%A9sum%C3%A9.pdf" in data
    assert b"Subject: =?utf-8?" in data


@pytest.mark.parametrize(
    ("filename", "mime"),
    [
        ("report.pdf", "application/pdf"),
        ("photo.JPG", "image/jpeg"),
        ("data.csv", "text/csv"),
        ("page.html", "text/html"),
        ("archive.zip", "application/zip"),
        ("backup.tar.gz", "application/gzip"),
        ("notes", "application/octet-stream"),
        ("strange.zzqx", "application/octet-stream"),
    ],
)
def test_attachment_types_from_the_filename(tmp_path: Path, filename: str, mime: str) -> None:
    path = tmp_path / filename
    path.write_bytes(b"\x00\x01content\xff")
    for attachment in (path, str(path), (filename, path.read_bytes()), (filename, b"x", None)):
        message = smtpx.compose(SENDER, TO, "s", text="x", attachments=[attachment])
        (part,) = parse(sent_bytes(message)).iter_attachments()
        assert part.get_content_type() == mime
        assert part.get_filename() == filename
    (part,) = parse(
        sent_bytes(smtpx.compose(SENDER, TO, "s", attachments=[path]))
    ).iter_attachments()
    assert part.get_payload(decode=True) == b"\x00\x01content\xff"  # bytes kept exactly


def test_a_given_type_wins(tmp_path: Path) -> None:
    message = smtpx.compose(SENDER, TO, "s", attachments=[("a.pdf", b"x", "text/x-custom")])
    (part,) = message.iter_attachments()
    assert part.get_content_type() == "text/x-custom"


@pytest.mark.parametrize(
    "attachment",
    [
        ("a.pdf", "not bytes"),
        ("a.pdf", b"x", "pdf"),
        ("a.pdf", b"x", "a/b\r\nX: y"),
        ("", b"x"),
        (" \xa0 ", b"x"),
        ("a\r\nb.pdf", b"x"),
        ("a.pdf",),
        42,
        b"/etc/passwd",
    ],
)
def test_bad_attachments_are_usage_errors(attachment: object) -> None:
    with pytest.raises(smtpx.UsageError):
        smtpx.compose(SENDER, TO, "s", attachments=[attachment])  # type: ignore[list-item]


def test_an_unreadable_attachment_is_invalid_message_with_the_os_error(tmp_path: Path) -> None:
    with pytest.raises(smtpx.InvalidMessage, match=r"missing\.pdf") as caught:
        smtpx.compose(SENDER, TO, "s", attachments=[tmp_path / "missing.pdf"])
    assert isinstance(caught.value.__cause__, FileNotFoundError)


def test_date_and_message_id_are_set() -> None:
    message = smtpx.compose(SENDER, TO, "s", text="x")
    assert message["Date"].datetime is not None
    assert re.fullmatch(r"<[^<>@]+@example\.com>", message["Message-ID"])
    local = smtpx.compose("me@localhost", TO, "s", text="x")
    assert local["Message-ID"].endswith(".invalid>")
    # prepare() adds nothing: the message already has them
    data = sent_bytes(message)
    assert data.count(b"Message-ID:") == 1 and data.count(b"Date:") == 1
    assert str(message["Message-ID"]).encode() in data


def test_headers_add_fields_and_may_replace_date_and_message_id() -> None:
    headers = {
        "List-Unsubscribe": "<mailto:unsubscribe@example.com>",
        "Message-ID": "<mine@example.com>",
        "In-Reply-To": "<earlier@example.com>",
    }
    message = smtpx.compose(SENDER, TO, "s", text="x", headers=headers)
    parsed = parse(sent_bytes(message))
    assert parsed["Message-ID"] == "<mine@example.com>"
    assert parsed["List-Unsubscribe"] == "<mailto:unsubscribe@example.com>"
    assert parsed["In-Reply-To"] == "<earlier@example.com>"
    assert len(parsed.get_all("Message-ID") or []) == 1


@pytest.mark.parametrize("name", ["From", "to", "Bcc", "Subject", "Content-Type", "MIME-Version"])
def test_headers_cannot_set_what_compose_writes(name: str) -> None:
    with pytest.raises(smtpx.UsageError, match=name):
        smtpx.compose(SENDER, TO, "s", text="x", headers={name: "x"})


def test_cc_reply_to_and_address_objects() -> None:
    message = smtpx.compose(
        Address("Shop", "shop", "example.com"),
        ["Alice <alice@example.com>", Address("Bob", "bob", "example.com")],
        "s",
        text="x",
        cc="carol@example.com, dave@example.com",
        reply_to="support@example.com",
    )
    envelope = smtpx.prepare(message)
    assert envelope.sender == "shop@example.com"
    expected = ("alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com")
    assert envelope.recipients == expected
    assert parse(envelope.data)["Reply-To"] == "support@example.com"


# -- Bcc --------------------------------------------------------------------------------


def test_bcc_is_in_no_header_of_the_message() -> None:
    message = smtpx.compose(SENDER, TO, "s", text="x", bcc=["Archive <archive@example.com>"])
    assert message["Bcc"] is None
    assert message.bcc == ("archive@example.com",)
    assert b"archive" not in message.as_bytes()
    envelope = smtpx.prepare(message)
    assert envelope.recipients == ("alice@example.com", "archive@example.com")
    assert b"archive" not in envelope.data


def test_only_bcc_recipients() -> None:
    message = smtpx.compose(SENDER, [], "s", text="x", bcc="archive@example.com")
    assert smtpx.prepare(message).recipients == ("archive@example.com",)
    with pytest.raises(smtpx.InvalidEnvelope, match="recipient"):
        smtpx.compose(SENDER, [], "s", text="x")


async def test_bcc_reaches_the_server_in_the_envelope_only(server: ScriptedServer) -> None:
    message = smtpx.compose(
        SENDER, TO, "Order", text="shipped", cc="carol@example.com", bcc="archive@example.com"
    )
    async with smtpx.Client(server.host, server.port, **PLAIN) as client:
        result = await client.send(message)
    assert result.accepted == ("alice@example.com", "carol@example.com", "archive@example.com")
    (received,) = server.messages
    assert received.rcpt_tos == ("alice@example.com", "carol@example.com", "archive@example.com")
    assert not re.search(rb"(?im)^bcc:", received.data)
    assert b"archive" not in received.data
    assert received.subject == "Order"


def test_explicit_recipients_replace_the_bcc_too() -> None:
    message = smtpx.compose(SENDER, TO, "s", text="x", bcc="archive@example.com")
    assert smtpx.prepare(message, recipients=["x@example.com"]).recipients == ("x@example.com",)


# -- injection and bad input ----------------------------------------------------------

BREAKS = ["\r", "\n", "\r\n", "\r\nBcc: evil@example.com", "\x0b", "\x0c", "\x1c", "\x85"]
BREAKS += ["\u2028", "\u2029", "\x00", "\x7f", "\t"]


# Each field that ends up in a header: the compose() argument, and its value around a break.
PLACES: dict[str, tuple[str, Callable[[str], object]]] = {
    "subject": ("subject", lambda bad: f"Hello{bad}world"),
    "sender name": ("sender", lambda bad: f'"Shop{bad}" <shop@example.com>'),
    "to": ("to", lambda bad: f"alice{bad}@example.com"),
    "to name": ("to", lambda bad: [f"Alice{bad} <alice@example.com>"]),
    "cc": ("cc", lambda bad: f"Carol {bad}<carol@example.com>"),
    "bcc": ("bcc", lambda bad: f"archive@example.com{bad}"),
    "reply_to": ("reply_to", lambda bad: f"support{bad}@example.com"),
    "header value": ("headers", lambda bad: {"X-Campaign": f"spring{bad}sale"}),
    "header name": ("headers", lambda bad: {f"X-Camp{bad}aign": "spring"}),
    "filename": ("attachments", lambda bad: [(f"a{bad}.pdf", b"x")]),
    "address object name": ("to", lambda bad: Address(f"Alice{bad}", "alice", "example.com")),
}
FIELDS = list(PLACES)


def _compose_with(field: str, bad: str) -> None:
    arguments: dict[str, Any] = {"sender": SENDER, "to": TO, "subject": "s", "text": "x"}
    name, value = PLACES[field]
    arguments[name] = value(bad)
    smtpx.compose(**arguments)


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("bad", BREAKS, ids=repr)
def test_header_injection_is_refused_in_every_field(field: str, bad: str) -> None:
    if field == "address object name" and ("\r" in bad or "\n" in bad):
        pytest.skip("email.headerregistry.Address refuses CR and LF itself")
    with pytest.raises((smtpx.InvalidMessage, smtpx.InvalidEnvelope)):
        _compose_with(field, bad)


@pytest.mark.parametrize("field", FIELDS)
def test_the_same_fields_are_fine_without_the_break(field: str) -> None:
    _compose_with(field, "")  # the test above fails for the break, not the field


@pytest.mark.parametrize(
    "arguments",
    [
        {"sender": "not an address"},
        {"sender": "a@example.com, b@example.com"},
        {"sender": 42},
        {"to": "not an address"},
        {"to": 42},
        {"to": [42]},
        {"subject": None},
        {"subject": b"bytes"},
        {"text": b"bytes"},
        {"html": 1},
        {"text": "a\x00b"},
        {"text": "\ud800"},
        {"headers": [("X-A", "b")]},
        {"headers": {"X-A": 1}},
    ],
)
def test_bad_arguments_are_usage_errors(arguments: dict[str, Any]) -> None:
    with pytest.raises(smtpx.UsageError):
        smtpx.compose(**{"sender": SENDER, "to": TO, "subject": "s", **arguments})


# -- the one-liner --------------------------------------------------------------------


async def test_send_composes_from_shortcuts(server: ScriptedServer) -> None:
    result = await smtpx.send(
        host=server.host,
        port=server.port,
        sender="shop@example.com",
        to=["alice@example.com", "bob@example.com"],
        subject="Hi",
        text="Hello.",
        html="<p>Hello.</p>",
        **PLAIN,
    )
    assert result.accepted == ("alice@example.com", "bob@example.com")
    (received,) = server.messages
    assert received.subject == "Hi"
    assert shape(received.message) == ("multipart/alternative", ["text/plain", "text/html"])


def test_send_sync_composes_from_shortcuts() -> None:
    with serve_in_thread() as server:
        result = smtpx.send_sync(
            host=server.host,
            port=server.port,
            sender="shop@example.com",
            to="alice@example.com",
            subject="Hi",
            text="Hello.",
            **PLAIN,
        )
        assert result.accepted == ("alice@example.com",)
        assert "Hello." in server.messages[0].text


@pytest.mark.parametrize("shortcut", ["to", "subject", "text", "html"])
async def test_a_message_and_shortcuts_is_a_usage_error(
    server: ScriptedServer, shortcut: str
) -> None:
    message = smtpx.compose(SENDER, TO, "s", text="x")
    options: dict[str, Any] = {shortcut: "alice@example.com" if shortcut == "to" else "x"}
    with pytest.raises(smtpx.UsageError, match=f"{shortcut}="):
        await smtpx.send(message, host=server.host, port=server.port, **options, **PLAIN)
    assert server.connections == 0


@pytest.mark.parametrize("shortcut", ["to", "subject", "text", "html"])
def test_send_sync_with_a_message_and_shortcuts_is_a_usage_error(shortcut: str) -> None:
    message = smtpx.compose(SENDER, TO, "s", text="x")
    options: dict[str, Any] = {shortcut: "alice@example.com" if shortcut == "to" else "x"}
    with serve_in_thread() as server:
        with pytest.raises(smtpx.UsageError, match=f"{shortcut}="):
            smtpx.send_sync(message, host=server.host, port=server.port, **options, **PLAIN)
        assert server.connections == 0


async def test_shortcuts_need_a_sender_and_recipients(server: ScriptedServer) -> None:
    choices: list[dict[str, Any]] = [{"to": TO}, {"sender": "shop@example.com"}, {}]
    for options in choices:
        with pytest.raises(smtpx.UsageError, match="sender= and to="):
            await smtpx.send(host=server.host, port=server.port, **options, **PLAIN)
    assert server.connections == 0


async def test_a_non_ascii_address_goes_with_smtputf8(server: ScriptedServer) -> None:
    message = smtpx.compose("Zoë <zoë@example.com>", "jürgen@example.com", "Grüße", text="x")
    assert smtpx.prepare(message).smtputf8
    async with smtpx.Client(server.host, server.port, **PLAIN) as client:
        result = await client.send(message)
    assert result.accepted == ("jürgen@example.com",)
    assert server.messages[0].mail_from == "zoë@example.com"
    assert "SMTPUTF8" in server.messages[0].mail_options
