"""Addresses that are not Unicode text, or hold a character that prints as nothing.

Every input type, every envelope field, every kind of bad text: a typed error naming
the field, before anything is sent, and never a raw ``UnicodeError``.  Valid non-ASCII
(UTF-8) addresses keep working with SMTPUTF8.
"""

from __future__ import annotations

import email
import email.policy
import unicodedata
from collections.abc import Awaitable, Callable
from email.message import EmailMessage, Message
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from rawserver import RawServer

import smtpx
from smtpx._address import (
    check_address,
    check_hostname,
    check_parameter,
    param_args,
    text_arg,
)
from smtpx._message import MessageInput, prepare

PLAIN: dict[str, Any] = {"tls": smtpx.TLSMode.NONE, "local_hostname": "client.test"}
GOOD = "good@example.com"
HEADER_FIELDS = ["From", "Sender", "To", "Cc", "Bcc"]
FIELDS = [*HEADER_FIELDS, "sender=", "recipients="]
KINDS = ["EmailMessage", "Message", "parsed EmailMessage", "bytes", "str"]

# The local part of a bad address, as bytes on the wire (for bytes input and parsed
# messages) and as the str a caller would hold (for str, objects and arguments).
BAD_BYTES = {
    "undecodable byte": b"x\xff",
    "overlong UTF-8": b"x\xc0\xaf",  # "/" in two octets: not UTF-8
    "encoded surrogate": b"x\xed\xb3\xbf",  # U+DCFF in three octets (CESU-8): not UTF-8
    "C1 control": "x\x85y".encode(),
    "bidi override": "x\u202ey".encode(),
    "line separator": "x\u2028y".encode(),
    "zero-width space": "x\u200by".encode(),
}
BAD_TEXT = {
    "lone low surrogate": "x\udcff",
    "lone high surrogate": "x\ud800",
    "C1 control": "x\x85y",
    "bidi override": "x\u202ey",
    "line separator": "x\u2028y",
    "paragraph separator": "x\u2029y",
    "zero-width space": "x\u200by",
    "byte order mark": "x\ufeffy",
    "isolate": "x\u2066y",
}
VALID = "jörg"


def build(kind: str, field: str, local: bytes | str) -> tuple[MessageInput, dict[str, Any]]:
    """A message whose ``field`` holds ``local``@example.com; the other fields are good."""
    if isinstance(local, bytes):
        address = local + b"@example.com"
    else:
        address = local.encode("utf-8", "surrogatepass") + b"@example.com"
    heads = {"From": b"from@example.com", "To": GOOD.encode()}
    options: dict[str, Any] = {}
    if field == "sender=":
        options["sender"] = str_address(local)
    elif field == "recipients=":
        options["recipients"] = [str_address(local)]
    else:
        heads[field] = address
    raw = b"".join(b"%s: %s\r\n" % (name.encode(), value) for name, value in heads.items())
    raw += b"Subject: t\r\n\r\nbody\r\n"
    if kind == "bytes":
        return raw, options
    if kind == "parsed EmailMessage":
        return email.message_from_bytes(raw, policy=email.policy.default), options
    # str, EmailMessage and Message hold the text itself
    values = {
        name: value.decode("utf-8", "surrogatepass") if name != field else str_address(local)
        for name, value in heads.items()
    }
    if kind == "str":
        lines = "".join(f"{name}: {value}\r\n" for name, value in values.items())
        return lines + "Subject: t\r\n\r\nbody\r\n", options
    message = EmailMessage() if kind == "EmailMessage" else Message()
    for name, value in values.items():
        message[name] = value
    message["Subject"] = "t"
    message.set_payload("body\n")
    return message, options


def str_address(local: bytes | str) -> str:
    if isinstance(local, bytes):
        return (local + b"@example.com").decode("utf-8", "surrogateescape")
    return local + "@example.com"


def named(field: str, error: smtpx.SMTPError) -> bool:
    text = str(error)
    if field == "sender=":
        return "sender" in text
    if field == "recipients=":
        return "recipient" in text
    return field in text


CASES = [
    *((kind, field, name, local) for kind in KINDS for field in FIELDS
      for name, local in BAD_TEXT.items() if kind != "bytes" and kind != "parsed EmailMessage"),
    *((kind, field, name, local) for kind in ("bytes", "parsed EmailMessage") for field in FIELDS
      for name, local in BAD_BYTES.items()),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "field", "name", "local"), CASES, ids=repr)
def test_bad_text_in_any_envelope_field_is_a_typed_error_naming_it(
    kind: str, field: str, name: str, local: bytes | str
) -> None:
    try:
        message, options = build(kind, field, local)
    except ValueError:  # EmailMessage refuses some of these itself: nothing to send
        assert kind == "EmailMessage"
        return
    with pytest.raises((smtpx.InvalidEnvelope, smtpx.InvalidMessage)) as info:
        prepare(message, **options)
    assert named(field, info.value), (field, str(info.value))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("field", FIELDS)
async def test_bad_text_in_every_field_reaches_no_server(kind: str, field: str) -> None:
    local: bytes | str = b"x\xff" if kind in ("bytes", "parsed EmailMessage") else "x\udcff"
    message, options = build(kind, field, local)
    async with RawServer() as server:
        with pytest.raises((smtpx.InvalidEnvelope, smtpx.InvalidMessage)):
            await smtpx.send(message, host=server.host, port=server.port, **options, **PLAIN)
    assert server.received == b""


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("field", FIELDS)
async def test_valid_non_ascii_addresses_go_with_smtputf8(kind: str, field: str) -> None:
    message, options = build(kind, field, VALID.encode() if kind == "bytes" else VALID)
    address = f"{VALID}@example.com"
    async with RawServer() as server:
        result = await smtpx.send(message, host=server.host, port=server.port, **options, **PLAIN)
    commands = server.commands()
    (mail,) = [c for c in commands if c.startswith(b"MAIL")]
    assert b"SMTPUTF8" in mail.split(b">", 1)[1].split()
    if field in ("From", "Sender", "sender="):
        assert mail.startswith(f"MAIL FROM:<{address}>".encode())
    else:
        assert address in result.accepted
        assert f"RCPT TO:<{address}>".encode() in commands


async def test_an_undecodable_display_name_does_not_spoil_its_address() -> None:
    # Legacy 8-bit (Latin-1) text beside an ASCII address: the address is still good
    message = b"From: J\xf6rg <a@example.com>\r\nTo: b@example.com\r\n\r\nbody\r\n"
    async with RawServer() as server:
        result = await smtpx.send(message, host=server.host, port=server.port, **PLAIN)
    assert result.accepted == ("b@example.com",)
    assert b"MAIL FROM:<a@example.com>" in b"".join(server.commands())


def test_a_str_message_with_a_surrogate_in_its_body_is_refused() -> None:
    with pytest.raises(smtpx.InvalidMessage, match="in the body"):
        prepare("From: a@example.com\r\nTo: b@example.com\r\n\r\nbody \udcff\r\n")
    with pytest.raises(smtpx.InvalidMessage, match="in the Subject header"):
        prepare("From: a@example.com\nSubject: x\n y \ud800\nTo: b@example.com\n\nbody\n")


def test_recipients_that_are_not_a_list_are_refused() -> None:
    for recipients in (5, None.__class__, b"b@example.com"):
        with pytest.raises(smtpx.InvalidEnvelope, match="recipient"):
            prepare(b"From: a@example.com\r\n\r\n", recipients=recipients)  # type: ignore[arg-type]


# -- the exact set of refused characters -----------------------------------------------

# Every category str.isprintable() rejects; ASCII space is the syntax's business.
UNPRINTABLE = st.characters(categories=["Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"]).filter(
    lambda c: c != " "
)


@given(UNPRINTABLE, st.integers(min_value=0, max_value=15))
@settings(max_examples=500)
@example("\x85", 1)
@example("\u2028", 0)
@example("\udcff", 3)
@example("\u202e", 15)
def test_any_unprintable_character_anywhere_in_an_address_is_refused(
    char: str, where: int
) -> None:
    address = "local.part@example.com"
    address = address[:where] + char + address[where:]
    with pytest.raises(smtpx.InvalidEnvelope, match=f"U\\+{ord(char):04X}"):
        check_address(address, role="recipient")


@given(UNPRINTABLE)
@example("\x85")
@example("\u200b")
@example("\udcff")
def test_host_names_parameters_and_arguments_refuse_it_too(char: str) -> None:
    with pytest.raises(smtpx.InvalidEnvelope):
        check_hostname(f"mail{char}.example.com")
    with pytest.raises(smtpx.InvalidEnvelope):
        check_parameter(f"NOTIFY=SUCCESS{char}")
    with pytest.raises(smtpx.InvalidEnvelope, match=f"U\\+{ord(char):04X}"):
        text_arg(f"postmaster{char}")


def test_printable_non_ascii_is_kept() -> None:
    for address in ("jörg@example.com", "用户@例子.广告", "δοκιμή@παράδειγμα.δοκιμή", "a@b.c"):
        assert check_address(address, role="recipient") == address
    assert text_arg("Jörg Müller") == "Jörg Müller".encode()


def test_the_refused_set_is_the_unprintable_categories() -> None:
    # documented in smtpx._address: what str.isprintable() rejects, by category
    for code in (0x85, 0xAD, 0x200B, 0x200F, 0x202A, 0x202E, 0x2028, 0x2029, 0x2066, 0xFEFF):
        assert unicodedata.category(chr(code)) in ("Cc", "Cf", "Zl", "Zp")
        with pytest.raises(smtpx.InvalidEnvelope):
            check_address(f"a{chr(code)}b@example.com", role="recipient")


@pytest.mark.parametrize("evil", ["a\x85b", "a\u2028b", "a\u202eb", "a\udcffb", "a\u200bb"])
async def test_unprintable_text_reaches_no_server_in_any_command(evil: str) -> None:
    with pytest.raises(smtpx.InvalidEnvelope, match="local_hostname"):
        smtpx.Client("127.0.0.1", 25, **{**PLAIN, "local_hostname": evil})
    async with RawServer() as server, smtpx.Client(server.host, server.port, **PLAIN) as client:
        commands: dict[str, Callable[[], Awaitable[object]]] = {
            "MAIL": lambda: client.mail(f"{evil}@example.com"),
            "MAIL parameter": lambda: client.mail("a@example.com", [f"X-P={evil}"]),
            "RCPT": lambda: client.rcpt(f"{evil}@example.com"),
            "VRFY": lambda: client.vrfy(evil),
            "EXPN": lambda: client.expn(evil),
            "HELP": lambda: client.help(evil),
        }
        for name, call in commands.items():
            with pytest.raises(smtpx.InvalidEnvelope, match="U\\+"):
                await call()
                pytest.fail(f"{name} was sent")
        assert (await client.noop()).reply.code == 250  # nothing was sent: still in step
    assert [c.split(b" ")[0] for c in server.commands()] == [b"EHLO", b"NOOP", b"QUIT"]


def test_esmtp_parameters_are_a_list_never_one_str_split_into_letters() -> None:
    assert param_args(["SMTPUTF8", "SIZE=10"]) == (b"SMTPUTF8", b"SIZE=10")
    for one in ("SMTPUTF8", b"SMTPUTF8"):
        with pytest.raises(smtpx.InvalidEnvelope, match="list"):
            param_args(one)  # type: ignore[arg-type]
