"""The session's states and its transition tables, as data.

``ISSUE`` says which intent each state allows and where it leads; ``ON_REPLY`` how
the reply to a command moves the state on.  Everything absent from ``ISSUE`` is
refused with ``SessionStateError`` before a single octet is queued.  Two rules
come on top (``smtpx.protocol.session``): without PIPELINING every command waits
for the reply to the one before, and with it a *barrier* (a command RFC 2920 §3.1,
RFC 3207 §4 or RFC 4954 §4 puts last in a group, or the end of a message) must be
answered before anything follows it, except that the next transaction's MAIL may
follow the end of a message (``Session`` says when).
"""

from __future__ import annotations

import enum

from smtpx._commands import Command
from smtpx.errors import UsageError

__all__ = [
    "BARRIERS",
    "ISSUE",
    "REPLY_MOVES",
    "Intent",
    "SessionClosed",
    "SessionStateError",
    "State",
]


class State(enum.Enum):
    # Members are singletons compared by identity: hash them by identity too (C speed;
    # Enum's own __hash__ is Python code, and the tables below are read on every step).
    __hash__ = object.__hash__

    CONNECTING = "waiting for the greeting"
    GREETED = "greeted: EHLO or HELO next"
    HELLO_SENT = "EHLO or HELO sent"
    READY = "ready (EHLO or HELO answered), no transaction"
    STARTTLS_SENT = "STARTTLS sent"
    TLS_HANDSHAKE = "STARTTLS accepted: the TLS handshake is next"
    AUTH_SENT = "an AUTH line sent"
    AUTH_CHALLENGED = "AUTH challenged: the client's response is next"
    MAIL_SENT = "in a transaction: MAIL sent, no RCPT yet"
    RCPT_SENT = "in a transaction: RCPT sent"
    DATA_SENT = "DATA sent, its 354 awaited"
    DATA_OPEN = "in DATA: the payload and its final '.' are next"
    BDAT_OPEN = "in BDAT: more chunks, or the LAST one, are next"
    END_SENT = "the end of the message sent, its reply awaited"
    QUIT_SENT = "QUIT sent"
    CLOSED = "closed"


class Intent(enum.Enum):
    """What the caller asks the session to send."""

    __hash__ = object.__hash__

    EHLO = "EHLO"
    HELO = "HELO"
    STARTTLS = "STARTTLS"
    AUTH = "AUTH"
    AUTH_RESPONSE = "an AUTH response"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    DATA_PAYLOAD = "the DATA payload"
    BDAT = "BDAT"
    BDAT_LAST = "BDAT LAST"
    RSET = "RSET"
    NOOP = "NOOP"
    VRFY = "VRFY"
    EXPN = "EXPN"
    HELP = "HELP"
    QUIT = "QUIT"


class SessionStateError(UsageError):
    """The session's state does not allow this intent now (a caller's mistake, never the
    server's): nothing was queued, and the session is unchanged."""

    summary = "not allowed in the session's state"


class SessionClosed(SessionStateError):
    """The session is closed (an interruption, a 421, QUIT, a reply that is not SMTP)."""

    summary = "the session is closed"


S, I = State, Intent  # noqa: E741 - the table reads better short
_ANYTIME = {I.NOOP: None, I.VRFY: None, I.EXPN: None, I.HELP: None, I.QUIT: S.QUIT_SENT}

# state -> {intent: next state}; None keeps the state.
ISSUE: dict[State, dict[Intent, State | None]] = {
    S.GREETED: {I.EHLO: S.HELLO_SENT, I.HELO: S.HELLO_SENT, I.RSET: None, **_ANYTIME},
    S.READY: {
        I.EHLO: S.HELLO_SENT,
        I.HELO: S.HELLO_SENT,
        I.STARTTLS: S.STARTTLS_SENT,
        I.AUTH: S.AUTH_SENT,
        I.MAIL: S.MAIL_SENT,
        I.RSET: None,
        **_ANYTIME,
    },
    S.AUTH_CHALLENGED: {I.AUTH_RESPONSE: S.AUTH_SENT},
    S.MAIL_SENT: {I.RCPT: S.RCPT_SENT, I.RSET: S.READY, I.NOOP: None, I.QUIT: S.QUIT_SENT},
    S.RCPT_SENT: {
        I.RCPT: None,
        I.DATA: S.DATA_SENT,
        I.BDAT: S.BDAT_OPEN,
        I.BDAT_LAST: S.END_SENT,
        I.RSET: S.READY,
        I.NOOP: None,
        I.QUIT: S.QUIT_SENT,
    },
    S.DATA_OPEN: {I.DATA_PAYLOAD: S.END_SENT},
    S.BDAT_OPEN: {I.BDAT: None, I.BDAT_LAST: S.END_SENT, I.RSET: S.READY, I.QUIT: S.QUIT_SENT},
    # the next transaction behind the end of a message, before its reply: with
    # PIPELINING only, and only once that end is all that is awaited and is sure to end
    # the server's transaction (RFC 2920 §3.1 lets message content start a group)
    S.END_SENT: {I.MAIL: S.MAIL_SENT},
}

# (state, command answered) -> (next state on a positive reply, next on a negative one).
# A 421 or a reply that is not SMTP closes the session in any state; so does QUIT's reply.
ON_REPLY: dict[tuple[State, Command], tuple[State, State]] = {
    (S.CONNECTING, Command.CONNECT): (S.GREETED, S.CLOSED),
    (S.HELLO_SENT, Command.EHLO): (S.READY, S.GREETED),
    (S.HELLO_SENT, Command.HELO): (S.READY, S.GREETED),
    (S.STARTTLS_SENT, Command.STARTTLS): (S.TLS_HANDSHAKE, S.READY),
    # 334 leads to AUTH_CHALLENGED instead (a positive reply that continues the exchange)
    (S.AUTH_SENT, Command.AUTH): (S.READY, S.READY),
    (S.MAIL_SENT, Command.MAIL): (S.MAIL_SENT, S.READY),
    (S.DATA_SENT, Command.DATA): (S.DATA_OPEN, S.RCPT_SENT),
    (S.END_SENT, Command.DATA_END): (S.READY, S.READY),
    (S.END_SENT, Command.BDAT): (S.READY, S.READY),
    (S.QUIT_SENT, Command.QUIT): (S.CLOSED, S.CLOSED),
}

# The same, by state: what a reply to which command does there (read on every reply).
REPLY_MOVES: dict[State, tuple[tuple[Command, State, State], ...]] = {}
for (_state, _command), (_good, _bad) in ON_REPLY.items():
    REPLY_MOVES[_state] = (*REPLY_MOVES.get(_state, ()), (_command, _good, _bad))

# Intents that end a pipelined group (RFC 2920 §3.1; STARTTLS: RFC 3207 §4; AUTH:
# RFC 4954 §4), and the end of a message: one transaction at a time.
BARRIERS = frozenset(
    {
        I.EHLO,
        I.HELO,
        I.STARTTLS,
        I.AUTH,
        I.AUTH_RESPONSE,
        I.DATA,
        I.DATA_PAYLOAD,
        I.BDAT_LAST,
        I.VRFY,
        I.EXPN,
        I.HELP,
        I.NOOP,
        I.QUIT,
    }
)


def allowed(state: State) -> tuple[Intent, ...]:
    """The intents ``state`` allows, for error messages and the docs."""
    return tuple(ISSUE.get(state, {}))
