"""Framing: a reply stream split anywhere frames the same, limits hold as octets arrive."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpx import ProtocolError, Reply
from smtpx.protocol import ReplyFramer
from smtpx.protocol.limits import MAX_LINE_LENGTH, MAX_LINES, MAX_UNREAD

RAW = [
    b"220 mx.test ESMTP\r\n",
    b"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 CHUNKING\r\n",
    b"250 2.1.0 Ok\r\n",
    b"550 5.1.1 <nobody@example.com>: no such user\r\n",
    b"354 go ahead\n",  # a bare LF ends a line too
    b"250 2.0.0 queued as 4Xyz\r\n",
]
STREAM = b"".join(RAW)


def frame(chunks: list[bytes]) -> tuple[list[Reply], str | None]:
    """Every reply the chunks frame, and the message of the error that stops them."""
    framer = ReplyFramer()
    replies: list[Reply] = []
    try:
        for chunk in chunks:
            framer.receive_data(chunk)
            while (reply := framer.next_reply()) is not None:
                replies.append(reply)
    except ProtocolError as error:
        return replies, error.detail
    return replies, None


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def test_a_stream_frames_into_its_replies() -> None:
    replies, error = frame([STREAM])
    assert error is None
    assert [r.code for r in replies] == [220, 250, 250, 550, 354, 250]
    assert replies[1].lines == ("mx.test", "PIPELINING", "SIZE 1000", "CHUNKING")
    assert str(replies[3].enhanced) == "5.1.1"
    assert replies == [Reply.parse(raw) for raw in RAW]  # what the strict parser makes
    assert [r.raw for r in replies] == RAW


@given(st.lists(st.integers(min_value=0), max_size=12))
def test_any_split_frames_the_same(cuts: list[int]) -> None:
    assert frame(split(STREAM, cuts)) == frame([STREAM])


def test_octet_by_octet_frames_the_same() -> None:
    assert frame([STREAM[i : i + 1] for i in range(len(STREAM))]) == frame([STREAM])


BAD = [
    b"250 ok\r\n25O bad code\r\n",
    b"250 ok\r\n250-first\r\n251 second\r\n",
    b"250 ok\r\n" + b"250 " + b"x" * (MAX_LINE_LENGTH - 3) + b"\r\n",  # 1001 octets of text
    b"250 ok\r\n" + b"250-line\r\n" * MAX_LINES + b"250 last\r\n",
    b"250 ok\r\n\r\n",
    b"250 ok\r\n999 out of range\r\n",
]


@pytest.mark.parametrize("data", BAD, ids=range(len(BAD)))
@given(cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_a_bad_stream_fails_the_same_wherever_split(data: bytes, cuts: list[int]) -> None:
    whole = frame([data])
    assert whole[1] is not None and [r.code for r in whole[0]] == [250]  # the good one first
    assert frame(split(data, cuts)) == whole


def test_a_line_at_the_limit_is_fine_and_one_more_octet_is_not() -> None:
    at_limit = b"250 " + b"x" * (MAX_LINE_LENGTH - 4) + b"\r\n"
    (reply,), error = frame([at_limit[:-1], at_limit[-1:]])  # the CR waits for its LF
    assert error is None and len(reply.text) == MAX_LINE_LENGTH - 4
    replies, error = frame([b"250 " + b"x" * (MAX_LINE_LENGTH - 2)])  # no end in sight
    assert replies == [] and error == f"reply line longer than {MAX_LINE_LENGTH} octets"


def test_an_endless_line_is_refused_before_it_accumulates() -> None:
    framer = ReplyFramer()
    framer.receive_data(b"250 ")
    with pytest.raises(ProtocolError):
        for _ in range(MAX_LINE_LENGTH):
            framer.receive_data(b"x")
            framer.next_reply()
    assert framer.unread <= MAX_LINE_LENGTH + 2


def test_unframed_octets_are_capped() -> None:
    framer = ReplyFramer()
    with pytest.raises(ProtocolError, match="answer nothing"):
        framer.receive_data(b"x" * (MAX_UNREAD + 1))


def test_each_octet_is_scanned_once() -> None:
    # a reply trickled in one octet at a time costs as many searches as octets
    framer = ReplyFramer()
    reply = b"250-" + b"x" * 900 + b"\r\n250 end\r\n"
    for octet in reply[:-1]:
        framer.receive_data(bytes([octet]))
        assert framer.next_reply() is None
    framer.receive_data(reply[-1:])
    done = framer.next_reply()
    assert done is not None and done.lines[-1] == "end" and framer.unread == 0


# -- one-line replies, the parser's fast path ----------------------------------------------


@pytest.mark.parametrize("raw", [b"250\r\n", b"250\n"])
def test_a_code_alone_is_a_reply_without_text(raw: bytes) -> None:
    reply = Reply.parse(raw)
    assert (reply.code, reply.lines, reply.enhanced, reply.raw) == (250, (), None, raw)
    assert str(reply) == "250"


@pytest.mark.parametrize("raw", [b"250x\r\n", b"250-\r\n", b"250\t\r\n", b"250XXXX\r\n"])
def test_a_one_line_reply_needs_a_space_after_its_code(raw: bytes) -> None:
    with pytest.raises(ProtocolError, match="last line must read 'NNN text'") as raised:
        Reply.parse(raw)
    assert raised.value.raw == raw


def test_undecodable_reply_text_is_replaced_not_raised() -> None:
    one = Reply.parse(b"550 5.1.1 caf\xe9\r\n")
    assert one.lines == ("5.1.1 caf\ufffd",)
    many = Reply.parse(b"550-caf\xe9\r\n550 ok\r\n")
    assert many.lines == ("caf\ufffd", "ok")


def test_a_reply_built_from_lines_reads_the_enhanced_code_of_the_first() -> None:
    reply = Reply(550, ("5.1.1 no such user", "4.2.2 not this one"))
    assert reply.enhanced is not None and str(reply.enhanced) == "5.1.1"
    assert Reply(550).enhanced is None
    assert Reply(550, ("no code here", "5.1.1 x")).enhanced is None
