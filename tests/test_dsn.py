"""Delivery status notifications (RFC 3461) and REQUIRETLS (RFC 8689): the values are
checked when made, xtext-encoded, sent only when the server offers the extension;
in memory against the pure flow, then over loopback against Postfix (which offers DSN
and checks the syntax of every parameter) and ScriptedServer (which does not offer it).
"""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from realservers import PostfixServer
from tls_ca import LocalCA

import smtpx
from smtpx._address import check_parameter
from smtpx._dsn import xtext
from smtpx.protocol import Action, MailFlow, Session, SetupFlow, StartTLS, prepare
from smtpx.protocol.mail import mail_options, rcpt_options
from smtpx.testing import ScriptedServer

BOB, CAROL = "bob@example.com", "carol@example.com"
MESSAGE = f"From: a@example.com\r\nTo: {BOB}, {CAROL}\r\n\r\nhi\r\n".encode()
OFFERS_DSN = {"dsn": "", "requiretls": ""}


def envelope(**options: Any) -> smtpx.Envelope:
    return prepare(MESSAGE, add_missing_headers=False, **options)


# -- the value ----------------------------------------------------------------------------


def test_xtext_encodes_plus_equals_and_everything_outside_graphic_ascii() -> None:
    assert xtext("a+b=c d") == "a+2Bb+3Dc+20d"
    assert xtext("\x01~!") == "+01~!"


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127)))
def test_xtext_is_reversible_and_never_carries_a_separator(text: str) -> None:
    encoded = xtext(text)
    assert all("!" <= c <= "~" and c != "=" for c in encoded)
    decoded, rest = "", encoded
    while rest:
        if rest[0] == "+":
            decoded, rest = decoded + chr(int(rest[1:3], 16)), rest[3:]
        else:
            decoded, rest = decoded + rest[0], rest[1:]
    assert decoded == text


@pytest.mark.parametrize(
    ("notify", "sent"),
    [
        ("never", "NOTIFY=NEVER"),
        ("NEVER", "NOTIFY=NEVER"),
        ({"failure"}, "NOTIFY=FAILURE"),
        ("delay", "NOTIFY=DELAY"),
        ({"delay", "FAILURE"}, "NOTIFY=FAILURE,DELAY"),
        (["success", "failure", "delay"], "NOTIFY=SUCCESS,FAILURE,DELAY"),
    ],
)
def test_notify_values(notify: Any, sent: str) -> None:
    assert smtpx.DSN(notify=notify).rcpt_parameters(BOB) == [sent]


@pytest.mark.parametrize(
    "notify", [{"never", "failure"}, set(), {"bounce"}, 3, {"failure", 1}], ids=repr
)
def test_bad_notify_values_are_usage_errors(notify: Any) -> None:
    with pytest.raises(smtpx.UsageError, match=r"NEVER|notify"):
        smtpx.DSN(notify=notify)


@pytest.mark.parametrize(("ret", "sent"), [("headers", "RET=HDRS"), ("full", "RET=FULL")])
def test_ret_values(ret: Any, sent: str) -> None:
    assert smtpx.DSN(ret=ret).mail_parameters() == [sent]


@pytest.mark.parametrize("ret", ["HDRS", "FULL", "body", 1, ""])
def test_bad_ret_values_are_usage_errors(ret: Any) -> None:
    with pytest.raises(smtpx.UsageError, match="ret must be"):
        smtpx.DSN(ret=ret)


@pytest.mark.parametrize(
    "envid", ["", "with space", "a\r\nRCPT TO:<x@y>", "ümlaut", "x" * 101, 7, "tab\t"]
)
def test_bad_envids_are_usage_errors(envid: Any) -> None:
    with pytest.raises(smtpx.UsageError, match="envid"):
        smtpx.DSN(envid=envid)


def test_an_envid_is_xtext_encoded_and_at_most_100_characters_so() -> None:
    envid = "+=" + "x" * 94
    assert smtpx.DSN(envid=envid).mail_parameters() == ["ENVID=+2B+3D" + "x" * 94]
    assert smtpx.DSN(envid="x" * 100).mail_parameters() == ["ENVID=" + "x" * 100]
    with pytest.raises(smtpx.UsageError, match="100"):
        smtpx.DSN(envid="+" + "x" * 98)  # 101 once encoded


@pytest.mark.parametrize(
    ("given_value", "sent"),
    [
        ("rfc822;orig+tag@example.org", "ORCPT=rfc822;orig+2Btag@example.org"),
        ("orig=x@example.org", "ORCPT=rfc822;orig+3Dx@example.org"),
        ("x-local;some one", "ORCPT=x-local;some+20one"),
    ],
)
def test_orcpt_per_recipient(given_value: str, sent: str) -> None:
    dsn = smtpx.DSN(orcpt={BOB.upper(): given_value})
    assert dsn.rcpt_parameters(BOB) == [sent]  # recipients compared case-insensitively
    assert dsn.rcpt_parameters(CAROL) == []


@pytest.mark.parametrize(
    "original", ["", "a\nb@x", "ö@example.org", "rfc822;", "bad type;x@y", "x" * 500], ids=repr
)
def test_bad_orcpts_are_usage_errors(original: str) -> None:
    with pytest.raises(smtpx.UsageError):
        smtpx.DSN(orcpt={BOB: original})


@given(
    envid=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1),
    original=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1),
)
def test_every_parameter_passes_the_command_checks(envid: str, original: str) -> None:
    try:
        dsn = smtpx.DSN(
            notify={"failure"}, ret="full", envid=envid[:100], orcpt={BOB: "rfc822;" + original}
        )
    except smtpx.UsageError:
        return  # refused when made: nothing to send
    for parameter in dsn.mail_parameters() + dsn.rcpt_parameters(BOB):
        assert check_parameter(parameter) == parameter  # no space, control, CR or LF


# -- building MAIL and RCPT ---------------------------------------------------------------


def test_offered_dsn_adds_the_parameters() -> None:
    dsn = smtpx.DSN(notify={"failure", "delay"}, ret="headers", envid="id-1", orcpt={BOB: BOB})
    env = envelope(dsn=dsn)
    assert mail_options(OFFERS_DSN, env) == ["RET=HDRS", "ENVID=id-1"]
    assert rcpt_options(OFFERS_DSN, env, BOB) == ["NOTIFY=FAILURE,DELAY", f"ORCPT=rfc822;{BOB}"]
    assert rcpt_options(OFFERS_DSN, env, CAROL) == ["NOTIFY=FAILURE,DELAY"]


def test_dsn_not_offered_is_extension_required_unless_optional() -> None:
    dsn = smtpx.DSN(notify="never", ret="full")
    with pytest.raises(smtpx.ExtensionRequired, match="DSN"):
        mail_options({}, envelope(dsn=dsn))
    optional = envelope(dsn=dsn, dsn_required=False)
    assert mail_options({}, optional) == [] and rcpt_options({}, optional, BOB) == []


@pytest.mark.parametrize("offered", [True, False])
@pytest.mark.parametrize("encrypted", [True, False])
def test_requiretls_needs_the_extension_and_an_encrypted_session(
    offered: bool, encrypted: bool
) -> None:
    extensions = {"requiretls": ""} if offered else {}
    env = envelope(require_tls=True)
    if offered and encrypted:
        assert mail_options(extensions, env, encrypted=True) == ["REQUIRETLS"]
    else:
        with pytest.raises(smtpx.ExtensionRequired, match=r"REQUIRETLS|TLS session"):
            mail_options(extensions, env, encrypted=encrypted)
    assert mail_options(extensions, envelope(), encrypted=encrypted) == []  # not asked: none


@pytest.mark.parametrize(
    "options", [{"dsn": "never"}, {"dsn_required": 1}, {"require_tls": "yes"}], ids=repr
)
def test_wrong_option_types_are_usage_errors(options: dict[str, Any]) -> None:
    with pytest.raises(smtpx.UsageError):
        envelope(**options)


def drive(flow: Any, session: Session, replies: list[bytes]) -> tuple[Action, bytes]:
    sent = b""
    while True:
        action = flow.next_action()
        if action is Action.SEND:
            out = bytes(session.data_to_send())
            session.wrote(len(out))
            sent += out
        elif action is Action.RECEIVE:
            session.receive_data(replies.pop(0))
        else:
            return action, sent


@pytest.mark.parametrize("pipelining", [True, False])
def test_the_flow_writes_the_parameters_on_mail_and_each_rcpt(pipelining: bool) -> None:
    session = Session("client.test", encrypted=True)
    ehlo = b"250-mx.test\r\n250-DSN\r\n250-REQUIRETLS\r\n250 PIPELINING\r\n"
    action, _ = drive(SetupFlow(session, starttls=StartTLS.NEVER), session, [b"220 mx\r\n", ehlo])
    assert action is Action.DONE
    dsn = smtpx.DSN(notify={"success"}, ret="full", envid="Q+1", orcpt={CAROL: "c@example.org"})
    env = envelope(dsn=dsn, require_tls=True)
    ok = b"250 ok\r\n"
    replies = [ok, ok, ok, b"354 go\r\n", ok]
    flow = MailFlow(session, env, pipelining=pipelining, chunking=False)
    action, sent = drive(flow, session, replies)
    assert action is Action.DONE, flow.error
    lines = sent.split(b"\r\n")
    assert lines[0] == b"MAIL FROM:<a@example.com> RET=FULL ENVID=Q+2B1 REQUIRETLS"
    assert lines[1] == f"RCPT TO:<{BOB}> NOTIFY=SUCCESS".encode()
    assert lines[2] == f"RCPT TO:<{CAROL}> NOTIFY=SUCCESS ORCPT=rfc822;c@example.org".encode()


# -- over loopback -----------------------------------------------------------------------


async def test_a_server_without_dsn_refuses_before_mail_or_sends_without() -> None:
    options: dict[str, Any] = {"tls": "none", "local_hostname": "client.test", "timeout": 5}
    async with ScriptedServer() as server:
        client = smtpx.Client(server.host, server.port, **options)
        with pytest.raises(smtpx.ExtensionRequired, match="DSN"):
            await client.send(MESSAGE, dsn=smtpx.DSN(notify="never"))
        assert not any(line.startswith(b"MAIL") for line in server.transcript)
        with pytest.raises(smtpx.ExtensionRequired, match="TLS"):
            await client.send(MESSAGE, require_tls=True)
        assert not any(line.startswith(b"MAIL") for line in server.transcript)
        result = await client.send(MESSAGE, dsn=smtpx.DSN(notify="never"), dsn_required=False)
        await client.quit()
    assert result.accepted == (BOB, CAROL)
    (received,) = server.messages
    assert received.mail_options == () and received.rcpt_options == ()


async def test_postfix_accepts_the_dsn_parameters(postfix_server: PostfixServer) -> None:
    dsn = smtpx.DSN(
        notify={"failure", "delay"},
        ret="headers",
        envid="order+42=shipped",  # needs xtext: Postfix refuses a malformed one with 501
        orcpt={postfix_server.recipient: "rfc822;first last+x@example.org"},
    )
    async with smtpx.Client(
        postfix_server.host,
        postfix_server.submission_port,
        tls_context=postfix_server.ssl_context(),
        credentials=(postfix_server.username, postfix_server.password),
        local_hostname="client.test",
        transcript=True,
    ) as client:
        assert "dsn" in client.extensions  # Postfix offers DSN by default
        # ... and checks xtext: "+" must start two hex digits
        with pytest.raises(smtpx.InvalidArguments, match="ENVID"):
            await client.mail(postfix_server.sender, ["ENVID=order+zz"])
        await client.rset()
        message = (
            f"From: {postfix_server.sender}\r\nTo: {postfix_server.recipient}\r\n\r\nhi\r\n"
        ).encode()
        result = await client.send(message, dsn=dsn)
        assert result.accepted == (postfix_server.recipient,)
        if "requiretls" not in client.extensions:
            with pytest.raises(smtpx.ExtensionRequired, match="REQUIRETLS"):
                await client.send(message, require_tls=True)
        else:
            assert (await client.send(message, require_tls=True)).accepted


async def test_every_send_entry_point_takes_the_options() -> None:
    options: dict[str, Any] = {"tls": "none", "local_hostname": "client.test", "timeout": 5}
    never = smtpx.DSN(notify="never")
    async with ScriptedServer() as server:
        with pytest.raises(smtpx.ExtensionRequired, match="DSN"):
            await smtpx.send(MESSAGE, host=server.host, port=server.port, dsn=never, **options)
        async with smtpx.Pool(server.host, server.port, **options) as pool:
            with pytest.raises(smtpx.ExtensionRequired, match="TLS"):
                await pool.send(MESSAGE, require_tls=True)
            assert (await pool.send(MESSAGE, dsn=never, dsn_required=False)).accepted
    assert not any(b"NOTIFY" in line for line in server.transcript)


def test_send_sync_takes_the_options() -> None:
    from smtpx.testing import serve_in_thread

    with serve_in_thread() as server, pytest.raises(smtpx.ExtensionRequired, match="DSN"):
        smtpx.send_sync(
            MESSAGE,
            host=server.host,
            port=server.port,
            tls="none",
            local_hostname="client.test",
            dsn=smtpx.DSN(ret="full"),
        )


async def test_requiretls_goes_out_on_a_verified_tls_session_that_offers_it(ca: LocalCA) -> None:
    """End to end: STARTTLS, then a server offering REQUIRETLS (RFC 8689 §4.1 says it is
    offered only after TLS) gets it on MAIL FROM; the message is accepted."""
    server_context = ca.server_context()
    seen: list[bytes] = []

    async def requiretls_server(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # Just enough SMTP: STARTTLS, then REQUIRETLS in the EHLO reply after it.
        writer.write(b"220 mx.test ESMTP\r\n")
        encrypted = False
        while line := await reader.readline():
            seen.append(line)
            verb = line[:4].upper()
            if verb == b"EHLO":
                offer = b"250 REQUIRETLS\r\n" if encrypted else b"250 STARTTLS\r\n"
                writer.write(b"250-mx.test\r\n" + offer)
            elif verb == b"STAR":
                writer.write(b"220 2.0.0 Ready to start TLS\r\n")
                await writer.drain()
                await writer.start_tls(server_context)
                encrypted = True
            elif verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                while await reader.readline() not in (b".\r\n", b""):
                    pass
                writer.write(b"250 2.0.0 queued\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 2.0.0 bye\r\n")
                break
            else:
                writer.write(b"250 2.0.0 ok\r\n")
            await writer.drain()
        writer.close()

    listener = await asyncio.start_server(requiretls_server, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        async with smtpx.Client(
            "127.0.0.1",
            port,
            tls_context=ca.client_context(),
            local_hostname="client.test",
            timeout=5,
        ) as client:
            assert client.encrypted and "requiretls" in client.extensions
            result = await client.send(MESSAGE, require_tls=True)
    finally:
        listener.close()
    assert result.accepted == (BOB, CAROL)
    mail = [line for line in seen if line.startswith(b"MAIL")]
    assert mail == [b"MAIL FROM:<a@example.com> REQUIRETLS\r\n"], mail


def test_a_dsn_is_a_frozen_value_all_the_way_down() -> None:
    dsn = smtpx.DSN(notify={"failure"}, orcpt={BOB.upper(): "rfc822;robert@example.org"})
    assert dsn.orcpt == {BOB: "rfc822;robert@example.org"}  # a Mapping, equal to the dict
    with pytest.raises(TypeError):
        dsn.orcpt[CAROL] = "rfc822;x\r\nRCPT TO:<evil@example.org>"  # type: ignore[index]
    same = smtpx.DSN(notify={"failure"}, orcpt={BOB: "rfc822;robert@example.org"})
    assert dsn == same and hash(dsn) == hash(same) and len({dsn, same}) == 1
    assert pickle.loads(pickle.dumps(dsn)) == dsn
    assert attrs.evolve(dsn, ret="full").orcpt == dsn.orcpt
    # a copy keeps the encoded value as it is: it is not xtext-encoded a second time
    plus = smtpx.DSN(orcpt={BOB: "rfc822;a+b=c@example.org"})
    assert attrs.evolve(plus, ret="full").rcpt_parameters(BOB) == plus.rcpt_parameters(BOB)
    assert plus.rcpt_parameters(BOB) == ["ORCPT=rfc822;a+2Bb+3Dc@example.org"]
    assert repr(dsn.orcpt) == repr({BOB: "rfc822;robert@example.org"})
