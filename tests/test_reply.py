"""``Reply`` as a value and its strict parser, field by field and limit by limit
(RFC 5321 §4.2: ``NNN-text`` on every line but the last, ``NNN text`` or ``NNN`` on it)."""

from __future__ import annotations

import pytest

from smtpx import ProtocolError, Reply
from smtpx.protocol.limits import MAX_LINE_LENGTH, MAX_LINES

# -- the value ------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "kind"), [("250", "str"), (250.0, "float"), (True, "bool")])
def test_a_code_is_an_int(code: object, kind: str) -> None:
    with pytest.raises(TypeError, match=f"a reply code is an int, not {kind}$"):
        Reply(code)  # type: ignore[arg-type]


def test_any_int_is_kept_for_classify_to_judge() -> None:
    assert Reply(700).code == 700


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ("", ()),
        ("one", ("one",)),
        ("a\nb", ("a", "b")),
        (["a", "b"], ("a", "b")),
        (("a",), ("a",)),
        ((), ()),
    ],
)
def test_lines_become_a_tuple_of_str(lines: object, expected: tuple[str, ...]) -> None:
    assert Reply(250, lines).lines == expected


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (5, "reply lines are a tuple of str, not int$"),
        (b"x", "reply lines are a tuple of str, not bytes$"),
        (("a", 1), "reply lines are str, not int$"),
        ([b"a"], "reply lines are str, not bytes$"),
    ],
)
def test_lines_of_another_type_are_refused(lines: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        Reply(250, lines)


def test_build_reads_the_enhanced_code_of_the_first_line_only() -> None:
    reply = Reply.build(550, "5.1.1 no such user\nsecond", raw=b"raw")
    assert reply.code == 550 and reply.lines == ("5.1.1 no such user", "second")
    assert str(reply.enhanced) == "5.1.1" and reply.raw == b"raw"
    assert reply.message == "no such user\nsecond"
    bare = Reply.build(250)
    assert (bare.lines, bare.enhanced, bare.raw) == ((), None, None)
    assert Reply.build(250, "fine\n5.1.1 late").enhanced is None


def test_text_and_str() -> None:
    assert Reply(250, ("a", "b")).text == "a\nb"
    assert str(Reply(250, "ok")) == "250 ok"
    assert str(Reply(250)) == "250"
    assert Reply(250, "no code").message == "no code"


# -- the parser -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"250-a\r\n250-5.1.1 b\r\n250 c\r\n",
        b"250-a\n250-5.1.1 b\n250 c\n",
        b"250-a\r\n250-5.1.1 b\r\n250 c",
        bytearray(b"250-a\r\n250-5.1.1 b\r\n250 c\r\n"),
    ],
)
def test_multiline_replies(raw: bytes) -> None:
    reply = Reply.parse(raw)
    assert reply.code == 250
    assert reply.lines == ("a", "5.1.1 b", "c")
    assert reply.enhanced is None  # only the first line's counts
    assert reply.raw == bytes(raw)


def test_the_first_line_gives_the_enhanced_code() -> None:
    reply = Reply.parse(b"550-5.7.1 refused\r\n550 see https://example.com\r\n")
    assert str(reply.enhanced) == "5.7.1"
    assert reply.lines == ("5.7.1 refused", "see https://example.com")


def test_empty_lines_of_a_multiline_reply() -> None:
    assert Reply.parse(b"250-\r\n250\r\n").lines == ("", "")


def test_a_str_keeps_undecodable_bytes_as_they_came() -> None:
    reply = Reply.parse("250 caf\udce9\r\n")
    assert reply.raw == b"250 caf\xe9\r\n"
    assert reply.lines == ("caf\ufffd",)


def test_undecodable_text_in_a_multiline_reply_is_replaced() -> None:
    assert Reply.parse(b"250-\xff\r\n250 ok\r\n").lines == ("\ufffd", "ok")


LAST = "a reply's last line must read 'NNN text' and every other 'NNN-text'"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty reply"),
        (b"25\r\n", "reply line does not start with a three-digit code"),
        (b"2x0 x\r\n", "reply line does not start with a three-digit code"),
        (b" 250 x\r\n", "reply line does not start with a three-digit code"),
        (b"250-a\r\n25 b\r\n", "reply line does not start with a three-digit code"),
        (b"199 x\r\n", "reply code 199 is outside 200-599"),
        (b"600 x\r\n", "reply code 600 is outside 200-599"),
        (b"250-a\r\n600 b\r\n", "reply code 600 is outside 200-599"),
        (b"250-a\r\n251 b\r\n", "continuation line has code 251, first line had 250"),
        (b"250-a\r\n250-b\r\n", LAST),
        (b"250 a\r\n250 b\r\n", LAST),
        (b"250xa\r\n250 b\r\n", LAST),
        (b"250-a\r\n250xb\r\n", LAST),
        (b"250-a\r\n", LAST),
        (b"250-a\n2", "reply line does not start with a three-digit code"),  # "\n" not last
    ],
)
def test_malformed_replies_are_protocol_errors_with_their_bytes(raw: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        Reply.parse(raw)
    assert raised.value.detail == message
    assert raised.value.raw == raw


@pytest.mark.parametrize("code", [200, 599])
def test_the_code_range_includes_its_ends(code: int) -> None:
    assert Reply.parse(f"{code}-a\r\n{code} b\r\n".encode()).code == code
    assert Reply.parse(f"{code} b\r\n".encode()).code == code


def test_line_length_limit_at_its_boundary() -> None:
    longest = b"250 " + b"x" * (MAX_LINE_LENGTH - 4)
    assert Reply.parse(longest + b"\r\n").lines == ("x" * (MAX_LINE_LENGTH - 4),)
    assert Reply.parse(b"250-a\r\n" + longest + b"\r\n").code == 250
    for raw in (longest + b"x\r\n", b"250-a\r\n" + longest + b"x\r\n"):
        with pytest.raises(ProtocolError, match=f"longer than {MAX_LINE_LENGTH} octets"):
            Reply.parse(raw)


def test_line_count_limit_at_its_boundary() -> None:
    def reply(lines: int) -> bytes:
        return b"250-x\r\n" * (lines - 1) + b"250 x\r\n"

    assert len(Reply.parse(reply(MAX_LINES)).lines) == MAX_LINES
    with pytest.raises(ProtocolError, match=f"more than {MAX_LINES} lines"):
        Reply.parse(reply(MAX_LINES + 1))
