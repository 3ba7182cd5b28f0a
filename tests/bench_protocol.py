"""Timings of the protocol core (not a test): ``.venv/bin/python tests/bench_protocol.py``.

1. Framing replies with ``smtpx.protocol.ReplyFramer``: one-line replies, a 10-line
   EHLO reply, and a reply trickled in one octet at a time.
2. One 3-recipient pipelined transaction through the core alone (no I/O): MailFlow,
   Session, framing, classification, ledger; with BDAT (one round trip) and with DATA
   (two), on a warm session.
"""

from __future__ import annotations

import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from protocol_harness import envelope

from smtpx._address import check_address
from smtpx._classify import classify
from smtpx._commands import Command
from smtpx._reply import Reply
from smtpx.protocol import Action, MailFlow, ReplyFramer, Session
from smtpx.protocol.lines import command_line as wire_line

ONE_LINE = b"250 2.1.5 Ok\r\n"
EHLO = b"".join(b"250-EXTENSION%d\r\n" % i for i in range(9)) + b"250 SIZE 1000\r\n"


def new_feed(chunks: list[bytes]) -> None:
    framer = ReplyFramer()
    for chunk in chunks:
        framer.receive_data(chunk)
        while framer.next_reply() is not None:
            pass


def per_call(function: Callable[[], object], number: int) -> float:
    # CPU time, not wall time, and many short repeats: on a shared machine the best of
    # them is the least disturbed
    runs = max(1, number // 20)
    best = min(timeit.repeat(function, number=runs, repeat=60, timer=time.process_time))
    return best / runs * 1e6  # µs


def framing() -> None:
    cases = {
        "one-line reply": [ONE_LINE],
        "10-line EHLO reply": [EHLO],
        "6 pipelined replies in one read": [ONE_LINE * 6],
        "EHLO reply trickled octet by octet": [EHLO[i : i + 1] for i in range(len(EHLO))],
    }
    print("framing (µs of CPU per feed, best of 60 runs)")
    for name, chunks in cases.items():
        number = 2000 if len(chunks) > 1 else 50_000
        new = per_call(lambda c=chunks: new_feed(c), number)  # type: ignore[misc]
        print(f"  {name:38} {new:8.2f}")


def ready(chunking: bool) -> Session:
    session = Session("client.test")
    session.receive_data(b"220 mx.test\r\n")
    session.ehlo()
    _flush(session)
    extensions = b"250-PIPELINING\r\n" + (b"250-CHUNKING\r\n" if chunking else b"")
    session.receive_data(b"250-mx.test\r\n" + extensions + b"250 8BITMIME\r\n")
    return session


def _flush(session: Session) -> None:
    while data := session.data_to_send():
        session.wrote(len(data))


REPLIES = b"250 2.1.0 Ok\r\n" + b"250 2.1.5 Ok\r\n" * 3
QUEUED = b"250 2.0.0 Ok: queued as 4Xyz\r\n"


def transaction(chunking: bool) -> float:
    session = ready(chunking)
    message = envelope(["a@example.com", "b@example.com", "c@example.com"])
    first = REPLIES + (QUEUED if chunking else b"354 End data with <CR><LF>.<CR><LF>\r\n")

    done, send, receive = Action.DONE, Action.SEND, Action.RECEIVE  # read once

    def one() -> None:
        flow = MailFlow(session, message)
        replies = [first, QUEUED]
        while (action := flow.next_action()) is not done:
            if action is send:
                _flush(session)
            elif action is receive:
                session.receive_data(replies.pop(0))
            else:
                raise AssertionError(flow.error)

    return per_call(one, 20_000)


def reference() -> float:
    """The least any client spends on the same transaction outside asyncio: building and
    checking the five lines, parsing and classifying the five replies."""
    commands = [Command.MAIL, Command.RCPT, Command.RCPT, Command.RCPT, Command.BDAT]
    replies = [b"250 2.1.0 Ok\r\n", *[b"250 2.1.5 Ok\r\n"] * 3, QUEUED]
    recipients = ["a@example.com", "b@example.com", "c@example.com"]

    def one() -> None:
        check_address("s@example.com", role="sender")
        lines = [wire_line((b"MAIL", b"FROM:<s@example.com>", b"SIZE=100"))]
        for recipient in recipients:
            check_address(recipient, role="recipient")
            lines.append(wire_line((b"RCPT", f"TO:<{recipient}>".encode())))
        lines.append(wire_line((b"BDAT", b"100", b"LAST")))
        for command, raw in zip(commands, replies, strict=True):
            classify(command, Reply.parse(raw))

    return per_call(one, 20_000)


def main() -> None:
    framing()
    print("one 3-recipient pipelined transaction through the core (µs of CPU, best of 60 runs)")
    print(f"  BDAT (one round trip)  {transaction(chunking=True):6.1f}")
    print(f"  DATA (two round trips) {transaction(chunking=False):6.1f}")
    print(f"  for comparison, bare line building, parsing and classifying: {reference():.1f}")


if __name__ == "__main__":
    main()
