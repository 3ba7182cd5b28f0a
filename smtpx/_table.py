"""The command table as data: per command, the positive and the negative reply codes.

Transcribed from ``smtpx/data/command-table.txt`` (the test suite checks every
row against that file).  One deliberate refinement: the table's DATA row lists
250 and 354 together, but 250 to the ``DATA`` verb or 354 after the final
``.`` would desynchronise the session, so the two stages get one positive code
each and share the row's negative codes.

One addition: ``BDAT`` (CHUNKING, RFC 3030), which the reference does not
list.  smtpx sends a message as a single ``BDAT <size> LAST`` chunk, whose
reply is the end-of-data reply (RFC 3030 §2: 250 when the message is
accepted), so it gets the ``DATA_END`` row.
"""

from __future__ import annotations

import attrs

from smtpx._commands import Command

__all__ = ["TABLE", "Row", "is_expected"]


@attrs.frozen
class Row:
    """The codes the command table lists for one command: positive and negative."""

    positive: frozenset[int]
    negative: frozenset[int]


def _row(positive: tuple[int, ...], negative: tuple[int, ...] = ()) -> Row:
    return Row(frozenset(positive), frozenset(negative))


_EHLO = _row((250,), (502, 504, 550))
_DATA_NEGATIVE = (450, 451, 452, 503, 550, 552, 554)

TABLE: dict[Command, Row] = {
    Command.CONNECT: _row((220,), (554,)),
    Command.STARTTLS: _row((220,), (454,)),
    Command.EHLO: _EHLO,
    Command.HELO: _EHLO,
    Command.AUTH: _row((235, 334), (530, 535, 538)),
    Command.MAIL: _row((250,), (451, 452, 455, 503, 550, 552, 553, 555)),
    Command.RCPT: _row((250, 251), (450, 451, 452, 455, 503, 550, 551, 552, 553, 555)),
    Command.DATA: _row((354,), _DATA_NEGATIVE),
    Command.DATA_END: _row((250,), _DATA_NEGATIVE),
    Command.BDAT: _row((250,), _DATA_NEGATIVE),
    Command.RSET: _row((250,)),
    Command.VRFY: _row((250, 251, 252), (502, 504, 550, 551, 553)),
    Command.EXPN: _row((250, 252), (502, 504, 550)),
    Command.HELP: _row((211, 214), (502, 504)),
    Command.NOOP: _row((250,)),
    Command.QUIT: _row((221,)),
}
"""The command table: for each ``Command``, the ``Row`` of codes it lists."""

# RFC 5321 §3.8: any command may be answered by 421 when the server shuts down.
ANY_COMMAND = frozenset({421})

# Negative replies the RFCs foresee that the reference table leaves out.  They
# are classified like any other code; this only decides ``unexpected``.
_SYNTAX = frozenset({500, 501})  # RFC 5321 §4.3.2, for every command verb
RFC_NEGATIVE: dict[Command, frozenset[int]] = {
    Command.CONNECT: frozenset(),
    Command.STARTTLS: _SYNTAX,  # RFC 3207 §4
    Command.EHLO: _SYNTAX,
    Command.HELO: _SYNTAX,
    Command.AUTH: _SYNTAX | {432, 454, 504, 534},  # RFC 4954 §6
    Command.MAIL: _SYNTAX | {530},  # RFC 4954 §6: authentication required
    Command.RCPT: _SYNTAX | {530},
    Command.DATA: _SYNTAX | {530},
    Command.DATA_END: frozenset(),
    Command.BDAT: _SYNTAX | {530},  # a command verb, unlike the final "."
    Command.RSET: _SYNTAX,
    Command.VRFY: _SYNTAX,
    Command.EXPN: _SYNTAX,
    Command.HELP: _SYNTAX,
    Command.NOOP: _SYNTAX,
    Command.QUIT: _SYNTAX,
}


def is_expected(command: Command, code: int) -> bool:
    """Whether ``code`` is a reply the table, or the RFCs it omits, foresee for ``command``."""
    row = TABLE[command]
    return (
        code in row.positive
        or code in row.negative
        or code in ANY_COMMAND
        or code in RFC_NEGATIVE[command]
    )
