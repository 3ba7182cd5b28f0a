"""Safe by default: injection-proof envelopes and data, redacted transcripts, bounded replies."""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
import traceback
from email.message import EmailMessage, Message
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from rawserver import RawServer
from test_address_grammar import VALID_ADDRESS
from test_address_grammar import oracle as address_oracle
from tls_ca import LocalCA

import smtpx
from smtpx._address import check_address, check_parameter
from smtpx._message import MessageInput
from smtpx.testing import ScriptedServer

PLAIN: dict[str, Any] = {"tls": smtpx.TLSMode.NONE, "local_hostname": "client.test"}
HEAD = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: t\r\n\r\n"

# Known smuggling and injection payloads: each, placed in a message body, must
# arrive as content and never end DATA or start a second transaction.
SMUGGLING = [
    b"\n.\n",
    b"\r.\r",
    b"\n.\r\n",
    b"\r\n.\n",
    b"\r.\r\n",
    b"\r\n.\r\nMAIL FROM:<evil@attacker.test>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n",
    b"\n.\nMAIL FROM:<evil@attacker.test>\n",
    b".\r\nQUIT\r\n",
    b"..\r\n.\r\n",
]


def as_input(kind: str, body: bytes) -> MessageInput:
    if kind == "bytes":
        return HEAD + body
    if kind == "str":
        return (HEAD + body).decode("latin-1")
    message = EmailMessage()
    message["From"] = "a@example.com"
    message["To"] = "b@example.com"
    message["Subject"] = "t"
    if body.isascii():
        message.set_content(body.decode("ascii"))
    else:
        message.set_content(body.decode("latin-1"), cte="8bit")
    return message


@pytest.mark.parametrize("kind", ["bytes", "str", "EmailMessage"])
@pytest.mark.parametrize("payload", SMUGGLING, ids=repr)
async def test_no_payload_ends_data_early_or_starts_a_second_transaction(
    kind: str, payload: bytes
) -> None:
    async with RawServer() as server:
        result = await smtpx.send(
            as_input(kind, b"before" + payload + b"after\r\n"),
            host=server.host,
            port=server.port,
            **PLAIN,
        )
    assert result.accepted == ("b@example.com",)
    commands = server.commands()
    assert [c.split(b":")[0] for c in commands] == [
        b"EHLO client.test",
        b"MAIL FROM",
        b"RCPT TO",
        b"DATA",
        b"QUIT",
    ]
    (body,) = server.message_bodies()
    # exactly one terminator, at the very end; every bare CR/LF became CRLF
    assert body.endswith(b"\r\n.\r\n") and body.count(b"\r\n.\r\n") == 1
    assert b"\r" not in body.replace(b"\r\n", b"")
    assert b"\n" not in body.replace(b"\r\n", b"")
    assert b"evil@attacker.test" not in b"".join(commands)


async def test_dot_stuffing_round_trips() -> None:
    async with ScriptedServer() as server:
        body = b".leading dot\r\n..two dots\r\n.\r\nend\r\n"
        await smtpx.send(HEAD + body, host=server.host, port=server.port, **PLAIN)
    assert server.messages[0].data.endswith(body)


@pytest.mark.parametrize(
    "address",
    [
        "bob@example.com\r\nRCPT TO:<evil@attacker.test>",
        "bob@example.com\n",
        "bob\x00@example.com",
        "bob@exa\tmple.com",
        "bob@example.com>",
        "<bob@example.com>",
        "bob",
        "@example.com",
        "bob@",
        "b" * 65 + "@example.com",
        "bob@" + "a" * 250 + ".com",
        "bob smith@example.com",
        "bob@exa mple.com",
    ],
)
async def test_bad_envelope_addresses_are_refused_before_sending(address: str) -> None:
    async with RawServer() as server:
        client = smtpx.Client(server.host, server.port, **PLAIN)
        with pytest.raises(smtpx.InvalidEnvelope):
            await client.send(HEAD + b"x\r\n", recipients=[address])
        with pytest.raises(smtpx.InvalidEnvelope):
            await client.send(HEAD + b"x\r\n", sender=address)
        await client.quit()
    assert server.received == b""  # not even a connection's worth of commands


@pytest.mark.parametrize(
    "parameter", ["SIZE=1 RCPT", "NOTIFY=\r\nRSET", "X=a=b", "=x", "", "BODY=8BIT\x00"]
)
async def test_bad_esmtp_parameters_are_refused(parameter: str) -> None:
    async with RawServer() as server, smtpx.Client(server.host, server.port, **PLAIN) as client:
        with pytest.raises(smtpx.InvalidEnvelope):
            await client.mail("a@example.com", [parameter])
    assert not any(c.startswith(b"MAIL") for c in server.commands())


@pytest.mark.parametrize("evil", ["\r\nRSET", "\nQUIT", "x\x00y", "x\x7f"], ids=repr)
async def test_no_command_line_carries_a_control_character(evil: str) -> None:
    # the last guard, below every validator: the line that goes to the socket
    async with RawServer() as server:
        with pytest.raises(smtpx.InvalidEnvelope, match="control character"):
            smtpx.Client(server.host, server.port, **{**PLAIN, "local_hostname": evil})
        async with smtpx.Client(server.host, server.port, **PLAIN) as good:
            with pytest.raises(smtpx.InvalidEnvelope):
                await good.command(smtpx.Command.NOOP, b"NOOP", evil.encode())
            assert (await good.noop()).reply.code == 250  # nothing was sent; still in step
    assert not any(b"RSET" in c or b"QUIT" in c[4:] for c in server.commands())
    assert all(b"\x00" not in c and b"\x7f" not in c for c in server.commands())


@pytest.mark.parametrize("hostname", ["hôte.example", "a b", ""])
async def test_a_local_hostname_that_is_not_one_ascii_word_is_refused(hostname: str) -> None:
    with pytest.raises(smtpx.InvalidEnvelope, match="local_hostname"):
        smtpx.Client("127.0.0.1", 1, **{**PLAIN, "local_hostname": hostname})


def test_good_esmtp_parameters_pass() -> None:
    for parameter in (
        "SIZE=1000",
        "BODY=8BITMIME",
        "SMTPUTF8",
        "NOTIFY=SUCCESS,FAILURE",
        "RET=HDRS",
    ):
        assert check_parameter(parameter) == parameter


async def test_header_injection_through_legacy_message_is_refused() -> None:
    message = Message()
    message["From"] = "a@example.com"
    message["To"] = "b@example.com"
    message["Subject"] = "hello\r\nBcc: everyone@example.com"
    async with RawServer() as server:
        with pytest.raises(smtpx.InvalidMessage):
            await smtpx.send(message, host=server.host, port=server.port, **PLAIN)
    assert server.received == b""


def test_email_message_refuses_header_injection_itself() -> None:
    message = EmailMessage()
    with pytest.raises(ValueError):
        message["Subject"] = "hello\r\nBcc: everyone@example.com"


async def test_nul_and_over_long_lines_in_raw_bytes_are_refused() -> None:
    async with RawServer() as server:
        with pytest.raises(smtpx.InvalidMessage):
            await smtpx.send(HEAD + b"a\x00b\r\n", host=server.host, port=server.port, **PLAIN)
        with pytest.raises(smtpx.InvalidMessage, match="998"):
            await smtpx.send(
                HEAD + b"x" * 999 + b"\r\n", host=server.host, port=server.port, **PLAIN
            )
    assert not any(c.startswith(b"DATA") for c in server.commands())


async def test_email_message_with_a_long_line_is_encoded_to_fit() -> None:
    message = as_input("EmailMessage", b"y" * 5000 + b"\r\n")
    async with RawServer() as server:
        await smtpx.send(message, host=server.host, port=server.port, **PLAIN)
    (body,) = server.message_bodies()
    assert max(len(line) for line in body.split(b"\r\n")) <= 998


# -- credentials never leak ----------------------------------------------------------

USER, PASSWORD = "mailer", "pa55-w0rd-SECRET"
SECRETS = [
    PASSWORD,
    base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode(),
    base64.b64encode(PASSWORD.encode()).decode(),
]


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.mark.parametrize("mechanisms", [("PLAIN",), ("LOGIN",)])
async def test_credentials_appear_in_no_log_repr_or_error(
    mechanisms: tuple[str, ...], caplog: pytest.LogCaptureFixture
) -> None:
    ca = LocalCA()
    server = ScriptedServer(
        tls_context=ca.server_context(), credentials={USER: PASSWORD}, auth_require_tls=True
    )
    caplog.set_level(logging.DEBUG)
    async with server:
        if mechanisms == ("LOGIN",):
            server.on(
                "EHLO",
                reply="250-localhost\n250-STARTTLS\n250-AUTH LOGIN\n250 8BITMIME",
                times=None,
            )
        client = smtpx.Client(
            server.host,
            server.port,
            credentials=(USER, PASSWORD),
            tls_context=ca.client_context(),
            local_hostname="client.test",
            transcript=True,
        )
        texts = [repr(client), repr(smtpx.Credentials(USER, PASSWORD))]
        result = await client.send(HEAD + b"hi\r\n")
        assert result.accepted == ("b@example.com",)
        await client.quit()
        bad = smtpx.Client(
            server.host,
            server.port,
            credentials=(USER, PASSWORD + "x"),
            tls_context=ca.client_context(),
            local_hostname="client.test",
            transcript=True,
        )
        with pytest.raises(smtpx.AuthError) as info:
            await bad.connect()
        texts += [str(info.value), repr(info.value), repr(bad)]
        texts += traceback.format_exception(info.value)
    # the server did receive them (so the test is not vacuous) ...
    assert any(
        SECRETS[1].encode() in line or SECRETS[2].encode() in line for line in server.transcript
    )
    # ... but no log record, repr, message or traceback shows them
    assert any(r.name == "smtpx.transcript" for r in caplog.records)
    for record in caplog.records:
        assert_no_secret(record.getMessage())
        assert_no_secret(repr(getattr(record, "smtpx", "")))
    for text in texts:
        assert_no_secret(text)


TOKEN, STALE_TOKEN = "ya29.a0-SECRET-access-token", "ya29.a0-SECRET-stale-token"


def token_forms(port: int) -> list[str]:
    """The tokens and every encoding of them that goes on the wire."""
    forms = [TOKEN, STALE_TOKEN]
    for token in (TOKEN, STALE_TOKEN):
        for sasl in (
            f"user={USER}\x01auth=Bearer {token}\x01\x01",
            f"n,a={USER},\x01host=127.0.0.1\x01port={port}\x01auth=Bearer {token}\x01\x01",
        ):
            forms += [base64.b64encode(sasl.encode()).decode(), repr(sasl.encode())[2:-1]]
    return forms


@pytest.mark.parametrize("mechanism", ["OAUTHBEARER", "XOAUTH2"])
async def test_oauth2_tokens_appear_in_no_log_repr_or_error(
    mechanism: str, caplog: pytest.LogCaptureFixture
) -> None:
    from smtpx.testing import OAuthAccounts

    ca = LocalCA()
    accounts = OAuthAccounts({USER: TOKEN}, mechanisms=(mechanism,))
    server = ScriptedServer(tls_context=ca.server_context(), oauth=accounts, auth_require_tls=True)
    caplog.set_level(logging.DEBUG)
    tokens = iter([STALE_TOKEN, TOKEN])
    async with server:
        options: dict[str, Any] = {
            "tls_context": ca.client_context(),
            "local_hostname": "client.test",
            "transcript": True,
        }
        oauth = smtpx.OAuth2(USER, lambda: next(tokens))  # refused once, then accepted
        client = smtpx.Client(server.host, server.port, credentials=oauth, **options)
        texts = [repr(client), repr(oauth), repr(client.config), repr(smtpx.OAuth2(USER, TOKEN))]
        result = await client.send(HEAD + b"hi\r\n")
        assert result.accepted == ("b@example.com",)
        await client.quit()
        stale = smtpx.OAuth2(USER, STALE_TOKEN)
        bad = smtpx.Client(server.host, server.port, credentials=stale, **options)
        with pytest.raises(smtpx.OAuthRejected) as info:
            await bad.connect()
        texts += [str(info.value), repr(info.value), repr(bad)]
        texts += traceback.format_exception(info.value)
    forms = token_forms(server.port)
    # the server did receive them (so the test is not vacuous) ...
    assert sum(any(f.encode() in line for f in forms) for line in server.transcript) == 3
    # ... but no log record, repr, message or traceback shows them
    assert any(r.name == "smtpx.transcript" for r in caplog.records)
    shown = [r.getMessage() for r in caplog.records]
    shown += [repr(getattr(r, "smtpx", "")) for r in caplog.records]
    for text in shown + texts:
        for form in forms:
            assert form not in text


async def test_plaintext_auth_needs_explicit_opt_in() -> None:
    async with ScriptedServer(credentials={USER: PASSWORD}) as server:
        client = smtpx.Client(server.host, server.port, credentials=(USER, PASSWORD), **PLAIN)
        with pytest.raises(smtpx.PlaintextAuthRefused):
            await client.connect()
        assert not any(line.upper().startswith(b"AUTH") for line in server.transcript)
        allowed = smtpx.Client(
            server.host,
            server.port,
            credentials=(USER, PASSWORD),
            allow_plaintext_auth=True,
            **PLAIN,
        )
        await allowed.connect()
        await allowed.quit()


def test_default_tls_context_verifies_and_refuses_old_protocols() -> None:
    context = smtpx.default_context()
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert smtpx.Client("mx.example.com").tls is smtpx.TLSMode.STARTTLS


# -- hostile servers cannot exhaust memory or time ------------------------------------


@pytest.mark.parametrize(
    "endless", [b"x" * 65536, b"250-" + b"y" * 60 + b"\r\n"], ids=["line", "multiline"]
)
async def test_endless_reply_is_a_protocol_error(endless: bytes) -> None:
    async with RawServer(endless=endless) as server:
        with pytest.raises(smtpx.ProtocolError):
            await smtpx.send(HEAD, host=server.host, port=server.port, timeout=5, **PLAIN)


async def test_a_server_streaming_between_commands_cannot_exhaust_memory() -> None:
    # 250 to NOOP, then 2 MiB that answer nothing, while the client sends nothing.
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 flood.test\r\n")
        while line := await reader.readline():
            if line.startswith(b"NOOP"):
                writer.write(b"250 ok\r\n" + b"250 junk\r\n" * 200_000)
            else:
                writer.write(b"250 flood.test\r\n")
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, smtpx.Client("127.0.0.1", port, **PLAIN) as client:
        assert (await client.noop()).code == 250
        async with asyncio.timeout(5):
            while client.connected:  # the first reply that answers nothing closes it
                await asyncio.sleep(0.01)
        with pytest.raises(smtpx.ProtocolError, match="no command was waiting"):
            await client.noop()
        assert not client.connected


async def test_trickling_server_cannot_hold_a_send_past_its_total_timeout() -> None:
    async with RawServer(trickle=0.02) as server:
        with pytest.raises(smtpx.ResponseTimeout, match="total_timeout"):
            await smtpx.send(
                HEAD + b"x\r\n",
                host=server.host,
                port=server.port,
                timeout=5,
                total_timeout=0.3,
                **PLAIN,
            )


# Any character, surrogates and the C1, format and separator characters included
# (st.text() alone never yields a surrogate), mixed with what makes text look like an
# address, so that the validator is tried on near-misses and not only on noise.
ANY_CHAR = st.one_of(
    st.characters(codec=None, categories=None),
    st.characters(categories=["Cc", "Cf", "Cs", "Zl", "Zp", "Zs"]),
    st.sampled_from("@.ab-"),
)


@given(st.text(ANY_CHAR, max_size=80))
@example("a\x85b@example.com")
@example("\udcff@example.com")
@example("a@exa\u2028mple.com")
def test_address_validator_never_passes_a_control_character(text: str) -> None:
    # Refused exactly when the RFC grammar (an oracle written for the tests) refuses it:
    # a validator that refused everything would fail here.
    try:
        address = check_address(text, role="recipient")
    except smtpx.InvalidEnvelope:
        assert not address_oracle(text)
        return
    assert address_oracle(address)
    assert "@" in address
    assert address.isprintable()  # no Cc (C0, C1, DEL), Cf, Cs, Zl, Zp; ASCII space at most
    address.encode("utf-8")  # no lone surrogate: it can go on the wire
    assert "<" not in address and ">" not in address
    assert len(address.encode()) <= 254


@given(VALID_ADDRESS, st.sampled_from(["\r", "\n", "\r\n", "\x00", "\x7f", "\x85", "\u2028"]))
def test_valid_addresses_pass_and_a_line_break_anywhere_is_refused(
    address: str, evil: str
) -> None:
    assert check_address(address, role="recipient") == address
    for at in range(len(address) + 1):
        with pytest.raises(smtpx.InvalidEnvelope):
            check_address(address[:at] + evil + address[at:], role="recipient")
