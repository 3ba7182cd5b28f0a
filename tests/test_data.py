"""The DATA payload: one pass per step, no copy when nothing changes, large messages in slices."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rawserver import RawServer

import smtpx
from smtpx._data import MAX_LINE, _long_line, dot_stuff, encode_data, normalize
from smtpx._message import prepare

PLAIN: dict[str, Any] = {"tls": smtpx.TLSMode.NONE, "local_hostname": "client.test"}
# Date and Message-ID of its own: smtpx adds none, so the message is not copied
HEAD = (
    b"From: a@example.com\r\nTo: b@example.com\r\nSubject: big\r\n"
    b"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\nMessage-ID: <fixture@example.com>\r\n\r\n"
)


def reference_payload(message: bytes) -> bytes:
    """The payload by the plainest possible route: split into lines, fix each, join."""
    lines = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)


@given(st.lists(st.sampled_from([b"a", b".", b"..", b"\r", b"\n", b"\r\n", b" ", b"\xc3"])))
def test_encode_data_matches_the_line_by_line_definition(parts: list[bytes]) -> None:
    message = b"".join(parts)
    assert encode_data(message) == reference_payload(message)


def test_a_well_formed_message_is_not_copied() -> None:
    message = HEAD + b"line one\r\nline two\r\n" * 1000
    assert normalize(message) is message
    assert dot_stuff(message) is message
    envelope = prepare(message)
    assert envelope.data is message
    assert envelope.payload is message  # no line starts with "."


def test_the_over_long_line_is_named_whatever_its_position() -> None:
    ok = b"x" * MAX_LINE
    for message in (ok + b"x\r\n", b"a\r\n" + ok + b"xy\r\nb\r\n", b"a\n" + ok + b"xyz"):
        with pytest.raises(smtpx.InvalidMessage, match=r"a line of \d+ octets exceeds"):
            normalize(message)
    assert normalize(b"a\r\n" + ok + b"\r\n" + ok) == b"a\r\n" + ok + b"\r\n" + ok + b"\r\n"


@given(st.lists(st.sampled_from([0, 1, 500, 997, 998, 999, 1000, 1500, 2500]), max_size=8))
def test_the_long_line_search_finds_the_first_line_over_the_limit(lengths: list[int]) -> None:
    data = b"".join(b"x" * n + b"\r\n" for n in lengths)
    starts = [sum(n + 2 for n in lengths[:i]) for i in range(len(lengths))]
    expected = next((at for at, n in zip(starts, lengths, strict=True) if n > MAX_LINE), None)
    assert _long_line(data) == expected


def test_size_counts_crlf_lines_before_dot_stuffing() -> None:
    envelope = prepare(HEAD + b".hidden\n..two\nend")
    assert envelope.payload.endswith(b"\r\n...two\r\nend\r\n")
    assert len(envelope.data) == len(HEAD) + len(b".hidden\r\n..two\r\nend\r\n")


async def test_a_large_message_arrives_whole_in_slices() -> None:
    # 3 MiB, lines that need dot-stuffing, bare LFs: written 64 KiB at a time.
    body = b"".join(
        b".line %d\n" % i if i % 7 == 0 else b"line %d\r\n" % i for i in range(300_000)
    )
    async with RawServer() as server:
        async with smtpx.Client(server.host, server.port, **PLAIN) as client:
            result = await client.send(HEAD + body)
        assert result.accepted == ("b@example.com",)
    sent = bytes(server.received).split(b"DATA\r\n", 1)[1].removesuffix(b"QUIT\r\n")
    assert sent == reference_payload(HEAD + body) + b".\r\n"


async def test_a_connection_lost_mid_message_is_not_delivery_unknown() -> None:
    # The final "." never left: the server cannot have accepted the message, so a
    # retry is safe -- unlike a loss after the ".", which is DeliveryUnknown.
    body = b"0123456789abcdef\r\n" * 400_000  # 7 MiB: far more than the socket buffers
    async with RawServer(drop_after=64 * 1024) as server:
        client = smtpx.Client(server.host, server.port, **PLAIN)
        with pytest.raises(smtpx.ConnectionLost) as caught:
            await client.send(HEAD + body)
        assert not isinstance(caught.value, smtpx.DeliveryUnknown)
        assert caught.value.command is smtpx.Command.DATA_END
        assert caught.value.retryable
        assert caught.value.undelivered == ("b@example.com",)
        assert "not delivered" in str(caught.value)
        assert not client.connected


@pytest.mark.parametrize("message", ["Subject: x\r\n\r\nbody\r\n", None, 5])
async def test_data_and_bdat_refuse_what_is_not_bytes_before_sending(message: object) -> None:
    async with (
        RawServer(chunking=True) as server,
        smtpx.Client(server.host, server.port, **PLAIN) as client,
    ):
        await client.mail("a@example.com")
        await client.rcpt("b@example.com")
        for method in (client.data, client.bdat):
            with pytest.raises(smtpx.InvalidMessage, match="must be bytes"):
                await method(message)  # type: ignore[arg-type]
        assert (await client.data(b"Subject: x\r\n\r\nok\r\n")).reply.code == 250
    assert not any(c.startswith(b"BDAT") for c in server.commands())
    assert server.commands().count(b"DATA") == 1
