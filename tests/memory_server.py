"""A scripted SMTP server in memory: client octets in, reply octets out, no sockets.

It parses what a real server parses (command lines, DATA up to ``CRLF.CRLF``, BDAT by
octet count), answers each command as soon as it is complete, and records every
reply it sends (with its place in the server's output) and every message whose end
it received, so that a test can tell what the server knew at any point.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping

import attrs


@attrs.frozen
class Script:
    """How the server answers."""

    pipelining: bool = True
    chunking: bool = False
    starttls: bool = False
    auth: tuple[str, ...] = ()  # mechanisms offered (after TLS when starttls)
    credentials: Mapping[str, str] = attrs.field(factory=dict)
    size: int | None = None
    refuse: Mapping[str, str] = attrs.field(factory=dict)  # recipient -> reply
    greeting: str = "220 mx.test ESMTP ready"
    ehlo_reply: str | None = None  # instead of the extensions (a server without ESMTP)
    data_reply: str | None = None  # instead of 354
    cram_challenge: str | None = None  # instead of the base64 of a nonce
    mail_reply: str = "250 2.1.0 Sender ok"
    end_reply: str = "250 2.0.0 Ok: queued"
    extra_after_end: bytes = b""  # octets sent right after the end-of-data reply
    careless_data: bool = False  # 354 to DATA even when no recipient was accepted
    # the n-th message end (counting from 0) gets end_replies[n] when there is one
    end_replies: tuple[str, ...] = ()
    # a refused BDAT LAST (no recipient accepted) leaves the transaction open, as RFC 3030
    # does not say it ends it: a MAIL then is a nested MAIL, refused until an RSET
    bdat_refusal_keeps_transaction: bool = False


@attrs.frozen
class Sent:
    """One reply the server wrote: what it answers, and where it lies in its output."""

    command: str
    recipient: str | None
    code: int
    start: int
    end: int
    message: int = -1  # MAIL commands received before it, less one: the message it is of


@attrs.define
class Delivery:
    recipients: tuple[str, ...]
    data: bytes
    end: int  # the client octet offset just past the message's end


@attrs.define
class Mailstore:
    """What the server side as a whole accepted, across connections."""

    deliveries: list[Delivery] = attrs.field(factory=list)

    def count(self, recipient: str) -> int:
        return sum(recipient in d.recipients for d in self.deliveries)


class MemoryServer:
    """One connection's server side."""

    def __init__(self, script: Script, store: Mailstore | None = None) -> None:
        self.script = script
        self.store = store if store is not None else Mailstore()
        self.output = bytearray()  # produced, not yet taken by the client
        self.produced = 0
        self.consumed = 0  # client octets parsed
        self.sent: list[Sent] = []
        self.ends: list[int] = []  # client offsets just past each message end received
        self.mails: list[int] = []  # client offsets where each MAIL line started
        self.tls = False
        self.closed = False
        self._buffer = bytearray()
        self._mode = "command"
        self._scan = 0  # where the search for the end of DATA resumes
        self._bdat = 0
        self._last = False
        self._chunks = bytearray()
        self._auth: list[str] = []  # pending AUTH LOGIN steps
        self._auth_user = ""
        self._nonce = b""
        self._line_at = 0
        self._reset()
        self._reply("CONNECT", script.greeting)

    def _reset(self) -> None:
        self._sender: str | None = None
        self._rcpts: list[str] = []

    # -- the wire ----------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        if self.closed:
            return
        self._buffer += data
        while not self.closed and self._step():
            pass

    def take_output(self) -> bytes:
        data = bytes(self.output)
        self.output.clear()
        return data

    def start_tls(self) -> None:
        self.tls = True
        self._buffer.clear()
        self._reset()

    # -- parsing ------------------------------------------------------------------------

    def _step(self) -> bool:
        buffer = self._buffer
        if self._mode == "bdat":
            if len(buffer) < self._bdat:
                return False
            self._chunks += buffer[: self._bdat]
            self._consume(self._bdat)
            self._mode = "command"
            self._chunk_done()
            return True
        if self._mode == "data":
            if buffer.startswith(b".\r\n"):
                end = 0
            else:
                end = buffer.find(b"\r\n.\r\n", self._scan)
                if end == -1:
                    self._scan = max(0, len(buffer) - 4)  # resume where a match could start
                    return False
                end += 2
            self._scan = 0
            payload = bytes(buffer[:end]).replace(b"\r\n..", b"\r\n.")
            payload = payload[1:] if payload.startswith(b"..") else payload
            self._consume(end + 3)
            self._mode = "command"
            self._deliver(payload, "DATA_END")
            return True
        end = buffer.find(b"\r\n")
        if end == -1:
            return False
        line = bytes(buffer[:end]).decode("utf-8", "replace")
        self._line_at = self.consumed
        self._consume(end + 2)
        self._command(line)
        return True

    def _consume(self, octets: int) -> None:
        del self._buffer[:octets]
        self.consumed += octets

    def _reply(self, command: str, text: str, recipient: str | None = None) -> None:
        raw = ("\r\n".join(text.split("\n")) + "\r\n").encode()
        self.sent.append(
            Sent(
                command,
                recipient,
                int(text[:3]),
                self.produced,
                self.produced + len(raw),
                len(self.mails) - 1,
            )
        )
        self.output += raw
        self.produced += len(raw)

    # -- commands -----------------------------------------------------------------------

    def _command(self, line: str) -> None:
        if self._auth:
            self._auth_step(line)
            return
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        handler = getattr(self, f"_do_{verb}", None)
        if handler is None:
            self._reply(verb, "500 5.5.2 Command unrecognized")
        else:
            handler(arg)

    def _do_EHLO(self, arg: str) -> None:
        script = self.script
        if script.ehlo_reply is not None:
            self._reply("EHLO", script.ehlo_reply)
            return
        lines = ["250-mx.test"]
        if script.pipelining:
            lines.append("250-PIPELINING")
        if script.chunking:
            lines.append("250-CHUNKING")
        if script.size is not None:
            lines.append(f"250-SIZE {script.size}")
        if script.starttls and not self.tls:
            lines.append("250-STARTTLS")
        if script.auth and (self.tls or not script.starttls):
            lines.append("250-AUTH " + " ".join(script.auth))
        lines.append("250 8BITMIME")
        self._reset()
        self._reply("EHLO", "\n".join(lines))

    def _do_HELO(self, arg: str) -> None:
        self._reset()
        self._reply("HELO", "250 mx.test")

    def _do_STARTTLS(self, arg: str) -> None:
        self._reply("STARTTLS", "220 2.0.0 Ready to start TLS")

    def _do_AUTH(self, arg: str) -> None:
        mechanism, _, initial = arg.partition(" ")
        mechanism = mechanism.upper()
        if mechanism == "PLAIN":
            _, user, password = base64.b64decode(initial).decode().split("\0")
            self._auth_result(user, password)
        elif mechanism == "LOGIN":
            self._auth = ["user", "password"]
            self._reply("AUTH", "334 VXNlcm5hbWU6")
        elif mechanism == "CRAM-MD5":
            self._nonce = b"<1896.697170952@mx.test>"
            self._auth = ["digest"]
            challenge = self.script.cram_challenge or base64.b64encode(self._nonce).decode()
            self._reply("AUTH", "334 " + challenge)
        else:
            self._reply("AUTH", "504 5.5.4 Unrecognized authentication type")

    def _auth_step(self, line: str) -> None:
        step = self._auth.pop(0)
        value = base64.b64decode(line).decode()
        if step == "user":
            self._auth_user = value
            self._reply("AUTH", "334 UGFzc3dvcmQ6")
        elif step == "password":
            self._auth_result(self._auth_user, value)
        else:
            user, _, digest = value.partition(" ")
            password = self.script.credentials.get(user, "")
            wanted = hmac.new(password.encode(), self._nonce, "md5").hexdigest()
            self._auth_result(user, password if digest == wanted else "\0wrong")

    def _auth_result(self, user: str, password: str) -> None:
        if self.script.credentials.get(user) == password:
            self._reply("AUTH", "235 2.7.0 Authentication successful")
        else:
            self._reply("AUTH", "535 5.7.8 Authentication credentials invalid")

    def _do_MAIL(self, arg: str) -> None:
        self.mails.append(self._line_at)
        if self._sender is not None:  # Postfix's reply to a MAIL inside a transaction
            self._reply("MAIL", "503 5.5.1 Error: nested MAIL command")
            return
        reply = self.script.mail_reply
        if reply.startswith("2"):
            self._sender = arg[arg.index("<") + 1 : arg.index(">")]
        self._reply("MAIL", reply)

    def _do_RCPT(self, arg: str) -> None:
        recipient = arg[arg.index("<") + 1 : arg.index(">")]
        if self._sender is None:
            self._reply("RCPT", "503 5.5.1 Error: need MAIL command", recipient)
            return
        reply = self.script.refuse.get(recipient, "250 2.1.5 Ok")
        if reply.startswith("2"):
            self._rcpts.append(recipient)
        self._reply("RCPT", reply, recipient)

    def _do_DATA(self, arg: str) -> None:
        if self._sender is None or not (self._rcpts or self.script.careless_data):
            self._reply("DATA", "554 5.5.1 Error: no valid recipients")
            return
        if self.script.data_reply is not None:
            self._reply("DATA", self.script.data_reply)
            return
        self._mode = "data"
        self._reply("DATA", "354 End data with <CR><LF>.<CR><LF>")

    def _do_BDAT(self, arg: str) -> None:
        size, _, last = arg.partition(" ")
        self._bdat, self._last = int(size), last.upper() == "LAST"
        self._mode = "bdat"

    def _chunk_done(self) -> None:
        if not self._last:
            self._reply("BDAT", "250 2.0.0 Chunk ok" if self._rcpts else "503 5.5.1 No recipients")
            return
        data, self._chunks = bytes(self._chunks), bytearray()
        self._deliver(data, "BDAT")

    def _deliver(self, data: bytes, command: str) -> None:
        self.ends.append(self.consumed)
        if self._sender is None or not self._rcpts:
            self._reply(command, "554 5.5.1 Error: no valid recipients")
            if command == "BDAT" and self.script.bdat_refusal_keeps_transaction:
                return
        else:
            replies = self.script.end_replies
            count = len(self.ends) - 1
            reply = replies[count] if count < len(replies) else self.script.end_reply
            if reply.startswith("2"):
                self.store.deliveries.append(Delivery(tuple(self._rcpts), data, self.consumed))
            self._reply(command, reply)
            if self.script.extra_after_end:
                self.output += self.script.extra_after_end
                self.produced += len(self.script.extra_after_end)
        self._reset()

    def _do_RSET(self, arg: str) -> None:
        self._reset()
        self._reply("RSET", "250 2.0.0 Ok")

    def _do_NOOP(self, arg: str) -> None:
        self._reply("NOOP", "250 2.0.0 Ok")

    def _do_QUIT(self, arg: str) -> None:
        self._reply("QUIT", "221 2.0.0 Bye")
        self.closed = True
