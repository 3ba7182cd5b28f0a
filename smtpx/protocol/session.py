# Long on purpose (~500 lines): one state machine, whose every transition is read together.
"""``Session``: one SMTP session as a pure state machine, in the manner of h11.

The caller states its intent (``ehlo()``, ``mail()``, ``rcpt()``, ``data()``…); the
session checks it against its state, queues the octets and returns the ledger
``Entry`` that will carry the reply.  An I/O edge moves octets and nothing else::

    out = session.data_to_send()      # octets to write (empty: nothing to write)
    session.wrote(n)                  # n of them handed to the transport
    session.receive_data(data)        # octets from the server
    session.tls_established()         # after STARTTLS' 220, once the handshake is done
    session.interrupt(what, unsent)   # the connection was lost, timed out, cancelled

Each reply is paired with the oldest command still waiting for one (RFC 2920 §3.1:
replies come in command order) and classified.  A reply when no command is waiting
is a ``ProtocolError`` and closes the session: it is never paired with a later
command.  An interruption closes the session too, and ``smtpx.protocol.interruptions``
says from the ledger what it means for each recipient.
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from smtpx import errors as e
from smtpx._address import check_address, check_hostname, param_arg, text_arg
from smtpx._classify import classify
from smtpx._commands import Command
from smtpx._data import (
    END_OF_DATA,
    dot_stuff_parts,
    encode_data,
    last_octets,
    normalize,
)
from smtpx._reply import Reply
from smtpx._secret import Secret
from smtpx.protocol.framing import ReplyFramer
from smtpx.protocol.interruptions import Interruption, Verdict, verdict
from smtpx.protocol.ledger import Entry, Ledger, Transaction
from smtpx.protocol.limits import WRITE_SLICE
from smtpx.protocol.lines import (
    check_payload,
    check_payload_end,
    command_line,
    has_control,
    parse_extensions,
    secret_line,
)
from smtpx.protocol.outgoing import Outgoing
from smtpx.protocol.states import (
    BARRIERS,
    ISSUE,
    REPLY_MOVES,
    Intent,
    SessionClosed,
    SessionStateError,
    State,
)
from smtpx.results import AuthChallenge, Authenticated

__all__ = ["Session"]

_CLOSING = (e.ServiceUnavailable, e.ProtocolError)  # 421, or the session is out of step

# Enum members read on every command and reply, as module constants: on Python 3.11
# ``State.CLOSED`` goes through EnumType's __getattr__ hook, ~0.1 µs each time.
_CLOSED, _TLS_HANDSHAKE, _CHALLENGED = State.CLOSED, State.TLS_HANDSHAKE, State.AUTH_CHALLENGED
_END_SENT = State.END_SENT
_MAIL, _RCPT, _DATA, _DATA_END, _BDAT = (
    Command.MAIL,
    Command.RCPT,
    Command.DATA,
    Command.DATA_END,
    Command.BDAT,
)
_EHLO, _HELO, _AUTH, _STARTTLS = Command.EHLO, Command.HELO, Command.AUTH, Command.STARTTLS
_I_MAIL, _I_RCPT, _I_DATA, _I_PAYLOAD = Intent.MAIL, Intent.RCPT, Intent.DATA, Intent.DATA_PAYLOAD
_I_BDAT, _I_BDAT_LAST, _I_RSET = Intent.BDAT, Intent.BDAT_LAST, Intent.RSET

# Command lines without arguments, built (and checked) once.
_DATA_LINE, _RSET_LINE, _NOOP_LINE, _QUIT_LINE = (
    command_line((verb,)) for verb in (b"DATA", b"RSET", b"NOOP", b"QUIT")
)

# Why an intent is refused (``Session._refusal``); ``_check`` words each.
_CLOSED_NOW, _NOT_IN_STATE, _BEHIND_BARRIER, _LOCK_STEP = "closed", "state", "barrier", "lock"
_END_WITHOUT_PIPELINING, _END_NOT_ALONE = "end, lock-step", "end, not alone"

# The intent a command line of the escape hatch (``Session.command``) stands for.
_INTENT_OF: dict[Command, Intent] = {
    command: Intent[command.name]
    for command in Command
    if command.name in Intent.__members__ and command is not Command.BDAT
}


class Session:
    """The client side of one SMTP connection, from the greeting to QUIT.

    ``local_hostname`` is the name EHLO and HELO announce; ``encrypted=True`` for a
    connection that is TLS from its first octet (port 465).  The session starts
    waiting for the greeting (``session.greeting`` is its entry).
    """

    def __init__(self, local_hostname: str = "localhost", *, encrypted: bool = False) -> None:
        self.local_hostname = check_hostname(local_hostname)
        self.ledger = Ledger(encrypted=encrypted)
        self.state = State.CONNECTING
        self.authenticated = False
        #: Why the session closed, when a reply closed it (421, a malformed or
        #: unsolicited reply).
        self.error: e.SMTPError | None = None
        #: What an interruption meant, once ``interrupt()`` was called (for the newest
        #: transaction; ``verdict_for()`` judges an older one).
        self.verdict: Verdict | None = None
        self._interruption: tuple[Interruption, int | None, str | None] | None = None
        self._framer = ReplyFramer()
        self._extensions: dict[str, str] = {}
        self._mechanisms: tuple[str, ...] = ()
        self._out = Outgoing()  # entries with octets not yet handed out
        self._awaiting: deque[Entry] = deque()  # entries waiting for their reply
        self._barriers = 0  # barriers among them
        self.greeting = Entry(self.ledger, Command.CONNECT, ())
        self.ledger.add(self.greeting)
        self._awaiting.append(self.greeting)
        self._barriers = 1

    def __repr__(self) -> str:
        return f"<smtpx.protocol.Session {self.state.name} outstanding={len(self._awaiting)}>"

    # -- what the session knows ------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.state is _CLOSED

    @property
    def encrypted(self) -> bool:
        return self.ledger.encrypted

    @property
    def extensions(self) -> Mapping[str, str]:
        """ESMTP extensions of the last EHLO (lower-cased keyword -> parameters)."""
        return MappingProxyType(self._extensions)

    @property
    def auth_mechanisms(self) -> tuple[str, ...]:
        return self._mechanisms

    @property
    def pipelining(self) -> bool:
        return "pipelining" in self._extensions

    @property
    def chunking(self) -> bool:
        return "chunking" in self._extensions

    @property
    def has_output(self) -> bool:
        """Whether ``data_to_send()`` has octets to give."""
        return bool(self._out)

    def may(self, intent: Intent) -> bool:
        """Whether ``intent`` may be queued now (else it raises ``SessionStateError``);
        cheap enough to ask on every step (no error is built)."""
        return self._refusal(intent) is None

    @property
    def outstanding(self) -> int:
        """Commands written, or queued, whose reply has not arrived."""
        return len(self._awaiting)

    # -- intents -----------------------------------------------------------------------

    def ehlo(self) -> Entry:
        return self._command(Intent.EHLO, Command.EHLO, b"EHLO", self.local_hostname.encode())

    def helo(self) -> Entry:
        return self._command(Intent.HELO, Command.HELO, b"HELO", self.local_hostname.encode())

    def starttls(self) -> Entry:
        if self.encrypted:
            raise SessionStateError("the session is already encrypted", command=Command.STARTTLS)
        return self._command(Intent.STARTTLS, Command.STARTTLS, b"STARTTLS")

    def auth(
        self, mechanism: str, initial_response: bytes | None = None, *, encoded: bool = False
    ) -> Entry:
        """``AUTH <mechanism> [initial-response]``; the response is sent base64-encoded
        (``encoded``: it already is, a ``Secret`` such as ``Credentials.plain()``).

        Every AUTH line is kept as a ``Secret`` until it is written."""
        args = [b"AUTH", mechanism.upper().encode("ascii")]
        if initial_response is not None:
            if encoded:
                args.append(initial_response)
            else:
                args.append(
                    Secret(base64.b64encode(initial_response)) if initial_response else b"="
                )
        return self._queue(Intent.AUTH, _AUTH, (secret_line(args),))

    def auth_response(self, response: bytes, *, encoded: bool = False) -> Entry:
        """The client's answer to a 334 challenge, sent base64-encoded (``encoded``: it
        already is)."""
        line = secret_line((response if encoded else Secret(base64.b64encode(response)),))
        return self._queue(Intent.AUTH_RESPONSE, _AUTH, (line,))

    def command(self, command: Command, *args: bytes, recipient: str | None = None) -> Entry:
        """The escape hatch: one command line of ``args``, its reply classified as
        ``command``.  The state table applies as for the intent ``command`` names (an
        AUTH line in a challenged exchange is its response); MAIL starts a transaction
        and RCPT joins it, as their own intents do."""
        intent = _INTENT_OF.get(command)
        if intent is None:
            raise e.UsageError(f"{command.label} is not sent as a command line", command=command)
        if command is _AUTH:
            if self.state is _CHALLENGED:
                intent = Intent.AUTH_RESPONSE
            return self._queue(intent, command, (secret_line(args),))
        entry = self._queue(intent, command, (command_line(args),), recipient)
        if command is _MAIL:
            self.ledger.begin_transaction(entry, ())
        elif command is _RCPT and recipient is not None:
            transaction = self.ledger.transaction
            assert transaction is not None  # RCPT is allowed only in a transaction
            transaction.rcpts[recipient] = entry
        return entry

    def mail(
        self, sender: str, options: Iterable[str] = (), *, recipients: Iterable[str] = ()
    ) -> Entry:
        """MAIL FROM:<sender> with ESMTP parameters; starts a transaction.

        ``recipients``: everyone the transaction is meant for, so that an interruption
        before their RCPT went out still accounts for them.
        """
        check_address(sender, role="sender", allow_null=True)
        args = (b"MAIL", f"FROM:<{sender}>".encode(), *map(param_arg, options))
        entry = self._command(_I_MAIL, _MAIL, *args)
        self.ledger.begin_transaction(entry, tuple(recipients))
        return entry

    def rcpt(self, recipient: str, options: Iterable[str] = ()) -> Entry:
        check_address(recipient, role="recipient")
        if options:
            path = f"TO:<{recipient}>".encode()
            line = command_line((b"RCPT", path, *map(param_arg, options)))
        else:  # the usual line from its fixed parts; command_line's check, once
            line = b"".join((b"RCPT TO:<", recipient.encode(), b">\r\n"))
            if has_control(line, len(line) - 2):
                line = command_line((line[:-2],))  # raises InvalidEnvelope
        entry = self._queue(_I_RCPT, _RCPT, (line,), recipient)
        transaction = self.ledger.transaction
        assert transaction is not None  # RCPT is allowed only in a transaction
        transaction.rcpts[recipient] = entry
        return entry

    def data(self) -> Entry:
        return self._queue(_I_DATA, _DATA, (_DATA_LINE,))

    def data_payload(
        self,
        payload: bytes | tuple[bytes, ...],
        *,
        encoded: bool = False,
        normalized: bool = False,
    ) -> Entry:
        """After the 354: the message and its final ``.``; the reply decides delivery.

        The message is normalised and dot-stuffed here.  ``normalized`` says it has
        CRLF line endings already (``Envelope.data``): it is then only dot-stuffed.
        ``encoded`` says it is dot-stuffed too (``Envelope.payload``); even then, a
        payload that would end DATA early is refused.  A tuple of parts
        (``Envelope.parts``) is sent as their concatenation; with ``normalized`` they
        are dot-stuffed one by one and never joined.
        """
        if normalized and not encoded:
            # dot-stuffing doubles every line-leading ".", so nothing it returns can end
            # DATA early, whatever the line endings: one pass, no check after it
            parts = dot_stuff_parts(payload if isinstance(payload, tuple) else (payload,))
            check_payload_end(last_octets(parts))
            return self._queue(_I_PAYLOAD, _DATA_END, (*parts, END_OF_DATA))
        if isinstance(payload, tuple):
            payload = b"".join(payload)  # normalising and checking look across the parts
        payload = check_payload(payload) if encoded else encode_data(payload)
        return self._queue(_I_PAYLOAD, _DATA_END, (payload, END_OF_DATA))

    def bdat(
        self, chunk: bytes | tuple[bytes, ...], *, last: bool = True, normalized: bool = False
    ) -> Entry:
        """``BDAT <size> [LAST]`` and the chunk itself (CHUNKING, RFC 3030).

        Line endings are normalised unless ``normalized`` says they are; nothing is
        dot-stuffed.  The last octet of a LAST chunk is the end of the message.  A
        tuple of parts (``Envelope.parts``) is one chunk, their concatenation; with
        ``normalized`` they are sent as they are, never joined.
        """
        intent = _I_BDAT_LAST if last else _I_BDAT
        self._check(intent, _BDAT)
        if not self.chunking:
            raise e.ExtensionRequired("the server does not offer CHUNKING", command=Command.BDAT)
        if not normalized:  # across parts too: a CR ending one, an LF starting the next
            chunk = normalize(b"".join(chunk) if isinstance(chunk, tuple) else chunk)
        parts = chunk if isinstance(chunk, tuple) else (chunk,)
        chunks = tuple(part for part in parts if part)  # an empty chunk: the line alone
        size = sum(map(len, chunks))
        line = b"BDAT %d LAST\r\n" % size if last else b"BDAT %d\r\n" % size
        return self._queue(intent, _BDAT, (line, *chunks), None, last)

    def rset(self) -> Entry:
        return self._queue(_I_RSET, Command.RSET, (_RSET_LINE,))

    def noop(self) -> Entry:
        return self._queue(Intent.NOOP, Command.NOOP, (_NOOP_LINE,))

    def vrfy(self, address: str) -> Entry:
        return self._command(Intent.VRFY, Command.VRFY, b"VRFY", text_arg(address))

    def expn(self, mailing_list: str) -> Entry:
        return self._command(Intent.EXPN, Command.EXPN, b"EXPN", text_arg(mailing_list))

    def help(self, topic: str | None = None) -> Entry:
        args = [b"HELP"] + ([text_arg(topic)] if topic else [])
        return self._command(Intent.HELP, Command.HELP, *args)

    def quit(self) -> Entry:
        return self._queue(Intent.QUIT, Command.QUIT, (_QUIT_LINE,))

    def close(self) -> None:
        """End the session here (the edge then closes the connection); nothing more is sent."""
        self.state = _CLOSED
        self._out.clear()

    # -- the edge: octets in and out ---------------------------------------------------

    def data_to_send(self, limit: int = WRITE_SLICE) -> bytes | memoryview:
        """Up to ``limit`` octets to write next (empty when there are none); a slice of a
        large payload is a view of the caller's buffer.  Report what was handed to the
        transport with ``wrote()``."""
        return self._out.take(limit)

    def wrote(self, octets: int) -> None:
        """``octets`` more of what ``data_to_send()`` gave were handed to the transport.

        Report them as soon as the transport has them; a transport that cannot say how
        much of a write it took should report all of it before writing (the ledger
        then errs towards "the server may have it", never towards a resend).
        """
        handed = self.ledger.handed + octets
        if octets < 0 or handed > self._out.taken:
            raise e.UsageError(f"wrote({octets}): more than data_to_send() gave")
        self.ledger.handed = handed

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Octets from the server: each complete reply answers the oldest waiting command."""
        state = self.state
        if state is _CLOSED or state is _TLS_HANDSHAKE:
            # after QUIT, a 421 or a protocol error, further octets mean nothing; before
            # the handshake they are plaintext nobody may answer for (RFC 3207 §5)
            return
        for start in range(0, len(data), WRITE_SLICE):
            piece = data if len(data) <= WRITE_SLICE else data[start : start + WRITE_SLICE]
            if not self._frame(piece):
                return

    def tls_established(self) -> None:
        """The TLS handshake after STARTTLS' 220 is done: EHLO is next (RFC 3207 §4.2)."""
        if self.state is not State.TLS_HANDSHAKE:
            raise SessionStateError(f"no TLS handshake is due: the session is {self.state.value}")
        self.ledger.encrypted = True
        self.ledger.handshaking = False
        self._framer = ReplyFramer()
        self._extensions, self._mechanisms = {}, ()
        self.state = State.GREETED

    def interrupt(
        self, what: Interruption, *, unsent: int | None = None, detail: str | None = None
    ) -> Verdict:
        """The connection was lost, timed out, cancelled, or failed in TLS: judge the
        ledger (``unsent``: octets reported handed that are still in the transport's
        buffer, if the edge can tell) and close."""
        if self.verdict is None:
            self._interruption = (what, unsent, detail)
            self.verdict = verdict(self.ledger, what, unsent=unsent, detail=detail)
        self.close()
        return self.verdict

    def verdict_for(self, transaction: Transaction) -> Verdict | None:
        """The interruption's verdict on ``transaction`` (one of ``ledger.transactions``),
        or None if there was no interruption."""
        if self._interruption is None:
            return None
        if transaction is self.ledger.transaction:
            return self.verdict
        what, unsent, detail = self._interruption
        return verdict(self.ledger, what, unsent=unsent, detail=detail, transaction=transaction)

    # -- inside ------------------------------------------------------------------------

    def _command(
        self, intent: Intent, command: Command, *args: bytes, recipient: str | None = None
    ) -> Entry:
        return self._queue(intent, command, (command_line(args),), recipient)

    def _queue(
        self,
        intent: Intent,
        command: Command,
        parts: tuple[bytes, ...],
        recipient: str | None = None,
        last: bool = False,
    ) -> Entry:
        # the common case in a few lookups; _check() says precisely what is wrong
        state = self.state
        moves = ISSUE.get(state)
        if (
            moves is None
            or intent not in moves
            or (self._awaiting and (self._barriers or "pipelining" not in self._extensions))
        ):
            self._check(intent, command, recipient)
            if state is _END_SENT and self._awaiting:  # MAIL behind the end (_check said so)
                end = self._awaiting[0]
                end.barrier = False  # the end starts this group instead of ending one
                self._barriers -= 1
        following = moves[intent]  # type: ignore[index]  # _check() raised if None
        ledger = self.ledger
        ends = last or command is _DATA_END
        entry = Entry(ledger, command, parts, recipient, ends, intent in BARRIERS)
        ledger.entries.append(entry)
        ledger.queued += entry.size
        if ends and ledger.transaction is not None:
            ledger.transaction.end = entry
        self._awaiting.append(entry)
        self._out.append(entry)
        if entry.barrier:
            self._barriers += 1
        if following is not None:
            self.state = following
        return entry

    def _check(self, intent: Intent, command: Command, recipient: str | None = None) -> None:
        """``SessionStateError`` if the state table, a barrier or lock-step forbids
        ``intent`` now (``_refusal()`` decides; this words it)."""
        refusal = self._refusal(intent)
        if refusal is None:
            return
        what = intent.value
        if refusal is _CLOSED_NOW:
            raise SessionClosed(
                f"{what} cannot be sent: the session is closed",
                command=command,
                recipient=recipient,
            )
        if refusal is _NOT_IN_STATE:
            message = f"{what} is not allowed now: the session is {self.state.value}"
        elif refusal is _END_WITHOUT_PIPELINING:
            message = (
                f"{what} must wait for the reply to the end of the message: the server "
                "does not offer PIPELINING"
            )
        elif refusal is _END_NOT_ALONE:
            message = (
                f"{what} must wait for the replies to this transaction: it may follow the "
                "end of a message only once the end is all that is awaited and ends the "
                "transaction whatever its reply"
            )
        elif refusal is _BEHIND_BARRIER:
            waiting = next(entry for entry in self._awaiting if entry.barrier)
            message = f"{what} must wait for the reply to {waiting.command.label}"
        else:
            message = (
                f"{what} must wait for the replies it follows: the server does not offer "
                "PIPELINING"
            )
        raise SessionStateError(message, command=command)

    def _refusal(self, intent: Intent) -> str | None:
        """Why ``intent`` may not be queued now (one of the ``_`` reasons below), or None.

        In ``END_SENT``, MAIL may follow the end of a message before its reply (RFC 2920
        §3.1): only with PIPELINING, when that end is the one reply awaited, and when its
        reply ends the server's transaction whatever it says
        (``Transaction.closes_at_end``): else the next transaction's commands could land
        in a transaction still open."""
        state = self.state
        if state is _CLOSED:
            return _CLOSED_NOW
        moves = ISSUE.get(state)
        if moves is None or intent not in moves:
            return _NOT_IN_STATE
        if not self._awaiting:
            return None
        if state is _END_SENT:
            if not self.pipelining:
                return _END_WITHOUT_PIPELINING
            return None if self._end_is_all_awaited() else _END_NOT_ALONE
        if self._barriers:
            return _BEHIND_BARRIER
        return None if self.pipelining else _LOCK_STEP

    def _end_is_all_awaited(self) -> bool:
        """Whether the end of the message is the one reply awaited, and its reply ends
        the server's transaction whatever it says."""
        awaiting, transaction = self._awaiting, self.ledger.transaction
        return (
            len(awaiting) == 1
            and transaction is not None
            and awaiting[0] is transaction.end
            and transaction.closes_at_end
        )

    def _frame(self, data: bytes | bytearray | memoryview) -> bool:
        """Frame and pair what ``data`` completes; False once the session closed."""
        framer = self._framer
        try:
            framer.receive_data(data)
            while (reply := framer.next_reply()) is not None:
                self._answer(reply)
                state = self.state
                if state is _CLOSED:
                    return False
                if state is _TLS_HANDSHAKE:
                    # octets after STARTTLS' 220 and before the handshake may be a man in
                    # the middle's replies for the encrypted session (RFC 3207 §5,
                    # CVE-2011-0411): discarded (tls_established() frames afresh)
                    return False
        except e.ProtocolError as error:
            self._broken(error)
            return False
        return True

    def _answer(self, reply: Reply) -> None:
        awaiting = self._awaiting
        entry = awaiting[0] if awaiting else None
        if entry is None or (entry.start >= self._out.taken and entry.size):
            self._broken(
                e.ProtocolError(
                    f"the server replied {reply.code} when no command was waiting for a reply",
                    raw=reply.raw,
                )
            )
            return
        awaiting.popleft()
        if entry.barrier:
            self._barriers -= 1
        command = entry.command
        result = classify(command, reply, recipient=entry.recipient)
        if (
            entry.ends_message
            and entry.start + entry.size > self._out.taken
            and not isinstance(result, e.SMTPError)
        ):
            # "accepted" before the message's end was even handed out: out of step
            result = e.UnexpectedReply(
                f"the server replied {reply.code} before the end of the message was sent",
                command=command,
                reply=reply,
                raw=reply.raw,
            )
        entry.reply = reply
        entry.result = result
        refused = isinstance(result, e.SMTPError)
        if refused and isinstance(result, _CLOSING):
            self.error = result
            self.close()
            return
        # Only the reply to the newest command moves the state: an older one (a pipelined
        # MAIL, a BDAT chunk before the LAST, the end of the message the next MAIL
        # followed) was overtaken by the commands queued after it.
        moves = REPLY_MOVES.get(self.state) if not awaiting else None
        if moves is not None:
            for expected, good, bad in moves:
                if expected is command:
                    self.state = bad if refused else good
                    if self.state is _CLOSED:
                        self.close()  # QUIT answered, or a greeting that refuses service
                    break
        if refused or command is _RCPT or command is _MAIL:
            return
        if command is _EHLO:
            self._extensions, self._mechanisms = parse_extensions(reply.lines)
        elif command is _HELO:
            self._extensions, self._mechanisms = {}, ()
        elif command is _AUTH:
            if isinstance(result, AuthChallenge):
                self.state = _CHALLENGED
            elif isinstance(result, Authenticated):
                self.authenticated = True
        elif command is _STARTTLS:
            self.ledger.handshaking = True

    def _broken(self, error: e.ProtocolError) -> None:
        """A reply that is not SMTP answers the oldest waiting command (if one was sent);
        either way the session is out of step and closes."""
        awaiting = self._awaiting
        if awaiting and (awaiting[0].start < self._out.taken or not awaiting[0].size):
            entry = awaiting.popleft()
            e.enrich(error, command=error.command or entry.command, recipient=entry.recipient)
            entry.result = error
        self.error = error
        self.close()
