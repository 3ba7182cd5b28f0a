"""The message in parts (``Envelope.head`` above ``Envelope.content``): the same octets on
the wire as the message in one piece, at every split point, and no copy of it."""

from __future__ import annotations

import itertools
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from memory_server import MemoryServer, Script
from protocol_harness import Pump
from test_protocol_session import REACH, flush

from smtpx import errors as e
from smtpx._data import dot_stuff, dot_stuff_parts, last_octets
from smtpx._dsn import DSN
from smtpx._envelope import Envelope
from smtpx._message import prepare
from smtpx.protocol import Action, MailFlow, Session, SetupFlow, StartTLS, State

# Every class of octet at a boundary: a line-leading dot, two, an end-of-data
# sequence, a bare CR or LF, a CRLF split in two, ordinary text.
ATOMS = (b"\r\n", b"\n", b"\r", b".", b"..", b"a", b"\r\n.\r\n")


def messages(longest: int) -> Iterator[bytes]:
    for length in range(longest + 1):
        for atoms in itertools.product(ATOMS, repeat=length):
            yield b"".join(atoms)


def splits(message: bytes) -> Iterator[tuple[bytes, ...]]:
    """``message`` cut in two at every offset, and in three at every pair of offsets."""
    for one in range(len(message) + 1):
        yield message[:one], message[one:]
        for two in range(one, len(message) + 1):
            yield message[:one], message[one:two], message[two:]


# -- dot-stuffing part by part ----------------------------------------------------------


def test_dot_stuffing_the_parts_equals_dot_stuffing_the_whole_at_every_split() -> None:
    cases = 0
    for message in messages(3):
        whole = dot_stuff(message)
        for parts in splits(message):
            stuffed = dot_stuff_parts(parts)
            assert b"".join(stuffed) == whole, parts
            assert all(stuffed), parts  # no empty part goes out
            assert last_octets(parts) == message[-2:], parts
            cases += 1
    assert cases > 10_000  # the enumeration ran


@given(st.lists(st.binary(max_size=6) | st.sampled_from(ATOMS), max_size=6))
def test_dot_stuffing_any_parts_equals_dot_stuffing_their_concatenation(
    parts: list[bytes],
) -> None:
    assert b"".join(dot_stuff_parts(tuple(parts))) == dot_stuff(b"".join(parts))
    assert last_octets(tuple(parts)) == b"".join(parts)[-2:]


def test_a_part_without_a_line_leading_dot_is_sent_as_it_is() -> None:
    content = b"Subject: x\r\n\r\nbody\r\n"
    (same,) = dot_stuff_parts((content,))
    assert same is content
    dot, rest = dot_stuff_parts((b".x\r\n",))  # the dot goes beside it: no copy
    assert (dot, rest) == (b".", b".x\r\n")


# -- the octets on the wire ------------------------------------------------------------


def _bdat_ready() -> Session:
    session = REACH[State.RCPT_SENT]()  # MAIL and RCPT queued, pipelined
    flush(session)
    return session


Queue = Callable[[Session, bytes | tuple[bytes, ...]], object]

WAYS: dict[str, tuple[Callable[[], Session], Queue]] = {
    "DATA normalized": (REACH[State.DATA_OPEN], lambda s, m: s.data_payload(m, normalized=True)),
    "DATA raw": (REACH[State.DATA_OPEN], lambda s, m: s.data_payload(m)),
    "DATA encoded": (REACH[State.DATA_OPEN], lambda s, m: s.data_payload(m, encoded=True)),
    "BDAT normalized": (_bdat_ready, lambda s, m: s.bdat(m, normalized=True)),
    "BDAT raw": (_bdat_ready, lambda s, m: s.bdat(m)),
    "BDAT not last": (_bdat_ready, lambda s, m: s.bdat(m, last=False, normalized=True)),
}


def _wire(way: str, message: bytes | tuple[bytes, ...]) -> tuple[bytes, int] | str:
    """The octets queued for ``message`` and the entry's size, or the error's class."""
    reach, queue = WAYS[way]
    session = reach()
    try:
        entry = queue(session, message)
    except e.InvalidMessage:
        assert not session.has_output
        return "InvalidMessage"
    wire = flush(session)
    assert entry.size == len(wire) == entry.written  # type: ignore[attr-defined]
    return wire, entry.size  # type: ignore[attr-defined]


@pytest.mark.parametrize("way", sorted(WAYS))
def test_parts_put_the_same_octets_on_the_wire_as_the_message_in_one_piece(way: str) -> None:
    for message in messages(2):
        single = _wire(way, message)
        for one in range(len(message) + 1):
            parts = (message[:one], message[one:])
            assert _wire(way, parts) == single, (way, parts)


def test_the_bdat_size_counts_every_part() -> None:
    session = _bdat_ready()
    entry = session.bdat((b"Date: x\r\n", b"Subject: y\r\n\r\nhi\r\n"), normalized=True)
    assert flush(session) == b"BDAT 27 LAST\r\nDate: x\r\nSubject: y\r\n\r\nhi\r\n"
    assert entry.size == 14 + 27


# -- the envelope ------------------------------------------------------------------------

MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: s\r\n\r\nbody\r\n"


def test_added_headers_are_kept_apart_and_the_message_is_not_copied() -> None:
    envelope = prepare(MESSAGE)
    assert envelope.content is MESSAGE
    assert envelope.head.startswith(b"Date: ") and b"\r\nMessage-ID: <" in envelope.head
    assert envelope.data == envelope.head + MESSAGE
    assert envelope.parts == (envelope.head, MESSAGE)
    assert envelope.size == len(envelope.data)
    assert envelope.payload == envelope.data


def test_a_message_that_is_all_body_gets_its_header_lines_and_the_empty_line() -> None:
    envelope = prepare(b"just text\r\n", sender="a@example.com", recipients=["b@example.com"])
    assert envelope.head.endswith(b">\r\n\r\n") and envelope.content == b"just text\r\n"
    assert not envelope.smtputf8


def _prepared_with_peak(message: bytes) -> tuple[Envelope, int]:
    """``prepare(message)`` and the most memory it had allocated at once."""
    prepare(message)  # warm caches (the regular expressions, the Date formatter)
    tracemalloc.start()
    try:
        envelope = prepare(message)
        return envelope, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_preparing_a_large_message_without_date_allocates_no_copy_of_it() -> None:
    message = MESSAGE + b"0123456789abcdefghijklmnopqrstuvwxyz\r\n" * 30_000  # ~1.1 MiB
    envelope, peak = _prepared_with_peak(message)
    assert envelope.content is message
    assert peak < len(message) // 10


def test_removing_a_bcc_copies_the_body_once() -> None:
    headers = b"From: a@example.com\r\nTo: b@example.com\r\nBcc: c@example.com\r\n"
    message = headers + b"Subject: s\r\n\r\n" + b"0123456789abcdefghij\r\n" * 50_000
    envelope, peak = _prepared_with_peak(message)
    assert envelope.recipients == ("b@example.com", "c@example.com")
    added, _, rest = envelope.data.partition(b"From: ")
    assert b"From: " + rest == message.replace(b"Bcc: c@example.com\r\n", b"")
    assert added.startswith(b"Date: ") and b"\r\nMessage-ID: <" in added
    assert envelope.head == added + b"From: " + rest[: rest.index(b"\r\n\r\n") + 2]
    assert peak < len(message) * 1.1  # the body once; joined again, it was twice


def test_an_envelope_is_built_as_before_and_checks_its_parts() -> None:
    envelope = Envelope("a@example.com", ("b@example.com",), MESSAGE, False, False)
    assert envelope.data is MESSAGE and envelope.head == b"" and envelope.parts == (MESSAGE,)
    assert Envelope("a@x.org", ("b@x.org",), data=b"", smtputf8=False, eight_bit=False).parts == ()
    moved = attrs.evolve(prepare(MESSAGE), recipients=("c@example.com",))
    assert moved.head and moved.content is MESSAGE
    with pytest.raises(e.UsageError, match="CRLF"):
        Envelope("a@example.com", ("b@example.com",), MESSAGE, False, False, head=b"Date: x")
    with pytest.raises(e.UsageError, match="data must be bytes, not str"):
        Envelope("a@example.com", ("b@example.com",), "text", False, False)  # type: ignore[arg-type]
    with pytest.raises(e.UsageError, match="head must be bytes"):
        Envelope("a@example.com", ("b@example.com",), MESSAGE, False, False, head="x")  # type: ignore[arg-type]


# -- a whole transaction -----------------------------------------------------------------

CONTENTS = (
    b"Subject: s\r\n\r\nbody\r\n",
    b".leading dot\r\n..two\r\n.\r\n",  # every line-leading dot, and a lone one
    b"\r\n.\r\nbody after an empty header block\r\n",
    b"Subject: large\r\n\r\n" + b".0123456789abcdef0123456789abcdef\r\n" * 9000,  # > 256 KiB
)


class _Recording(MemoryServer):
    def __init__(self, script: Script) -> None:
        super().__init__(script)
        self.wire = bytearray()

    def receive(self, data: bytes) -> None:
        self.wire += data
        super().receive(data)


def _transaction(envelope: Envelope, script: Script) -> bytes:
    session = Session("client.test")
    server = _Recording(script)
    pump = Pump(session, server, None)
    assert pump.run(SetupFlow(session, starttls=StartTLS.NEVER)) is Action.DONE
    flow = MailFlow(session, envelope)
    assert pump.run(flow) is Action.DONE, flow.error
    (delivery,) = server.store.deliveries
    assert delivery.data == envelope.data
    return bytes(server.wire)


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("chunking", [True, False])
@pytest.mark.parametrize("content", CONTENTS, ids=["plain", "dots", "empty-head", "large"])
def test_a_transaction_sends_the_parts_exactly_as_the_joined_message(
    pipelining: bool, chunking: bool, content: bytes
) -> None:
    script = Script(pipelining=pipelining, chunking=chunking, size=10**7)
    head = b"Date: Tue, 01 Dec 2026 16:00:00 +0000\r\nMessage-ID: <x@example.com>\r\n"
    parted = Envelope("a@example.com", ("b@example.com",), content, False, False, head=head)
    whole = Envelope("a@example.com", ("b@example.com",), head + content, False, False)
    wire = _transaction(parted, script)
    assert wire == _transaction(whole, script)
    assert f"SIZE={len(head + content)}".encode() in wire


WHOLE = (
    b"Date: Tue, 01 Dec 2026 16:00:00 +0000\r\nMessage-ID: <x@example.com>\r\n"
    b"Subject: parts\r\n\r\n.a line with a dot\r\nbody\r\n"
)
LINE_ENDS = [i + 2 for i in range(len(WHOLE) - 1) if WHOLE[i : i + 2] == b"\r\n"]


@pytest.mark.parametrize("split", [0, *LINE_ENDS])
def test_envelopes_that_send_the_same_are_equal_however_they_are_split(split: int) -> None:
    whole = Envelope("a@example.com", ("b@example.com",), WHOLE, False, False)
    parted = Envelope(
        "a@example.com", ("b@example.com",), WHOLE[split:], False, False, head=WHOLE[:split]
    )
    assert parted == whole and hash(parted) == hash(whole)
    assert len({whole, parted}) == 1
    # and any field that changes what is sent makes them differ
    changes: dict[str, Any] = {
        "sender": "c@example.com",
        "recipients": ("b@example.com", "c@example.com"),
        "data": WHOLE[split:] + b"more\r\n",
        "smtputf8": True,
        "eight_bit": True,
        "dsn": DSN(notify={"failure"}),
        "dsn_required": False,
        "require_tls": True,
    }
    for name, value in changes.items():
        other = attrs.evolve(parted, **{name: value})
        assert other != parted, name
        assert other != whole, name
    assert parted != WHOLE  # never equal to anything but an envelope
