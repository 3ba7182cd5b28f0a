"""Drive ``smtpx.protocol`` flows against the in-memory server, with one injected fault.

``Pump`` is a synchronous I/O pump over a simulated transport.  A ``Fault`` fires at
one step (one client write, one read of server output, or the TLS handshake) after
``offset`` octets of it went through: the connection is cut, stalls until the read
or the total time-out, is cancelled, or fails in TLS.  ``run_shape`` runs a whole
session (setup, each message, QUIT) and returns what happened, so that a test can
replay a fault-free run at every step and offset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
from memory_server import Mailstore, MemoryServer, Script

from smtpx import errors as e
from smtpx._envelope import Envelope
from smtpx._message import prepare
from smtpx._secret import Credentials
from smtpx.protocol import (
    Action,
    Flow,
    Interruption,
    MailBatch,
    MailFlow,
    ReplyFlow,
    Session,
    SetupFlow,
    StartTLS,
    Transaction,
)
from smtpx.results import SendResult


@attrs.frozen
class Fault:
    step: int
    offset: int
    what: Interruption
    precise: bool = True  # whether the edge can tell how much is still unsent


@attrs.frozen
class Step:
    kind: str  # "send", "receive" or "tls"
    flow: int  # -1 setup, 0.. the messages, len(messages) QUIT
    client: int  # client octets handed before the step
    server: int  # server octets delivered before the step
    size: int  # octets in the step
    encrypted: bool


class Deadlock(AssertionError):
    """The flow waits for a reply the server will never send: a bug."""


class Pump:
    """Moves octets between a session and a ``MemoryServer``; decides nothing."""

    def __init__(self, session: Session, server: MemoryServer, fault: Fault | None) -> None:
        self.session, self.server, self.fault = session, server, fault
        self.steps: list[Step] = []
        self.handed = 0  # client octets handed to the transport
        self.delivered = 0  # client octets that reached the server
        self.received = 0  # server octets that reached the client
        self.faulted = False
        self.decided_at: list[int] = []  # per flow: server octets received when it decided
        self.flow_index = -1

    def _step(self, kind: str, size: int) -> int | None:
        """Record the step; the octets that go through if the fault fires here."""
        index = len(self.steps)
        self.steps.append(
            Step(kind, self.flow_index, self.handed, self.received, size, self.session.encrypted)
        )
        fault = self.fault
        if fault is not None and fault.step == index:
            return min(fault.offset, size)
        return None

    def _interrupt(self, unsent: int) -> None:
        assert self.fault is not None
        self.faulted = True
        self.session.interrupt(self.fault.what, unsent=unsent if self.fault.precise else None)

    def run(self, flow: Flow[Any]) -> Action:
        session, server = self.session, self.server
        decided = None
        while True:
            action = flow.next_action()
            if decided is None and (flow.decided is not None or action in _OVER):
                decided = self.received
            if action is Action.SEND:
                out = bytes(session.data_to_send())
                through = self._step("send", len(out))
                session.wrote(len(out))
                self.handed += len(out)
                if through is not None:
                    server.receive(out[:through])
                    self.delivered += through
                    self._interrupt(len(out) - through)
                    continue
                server.receive(out)
                self.delivered += len(out)
            elif action is Action.RECEIVE:
                data = server.take_output()
                if not data:
                    raise Deadlock(f"{flow!r} waits, the server has nothing to say")
                through = self._step("receive", len(data))
                if through is not None:
                    session.receive_data(data[:through])
                    self.received += through
                    self._interrupt(0)
                    continue
                session.receive_data(data)
                self.received += len(data)
            elif action is Action.START_TLS:
                if self._step("tls", 0) is not None:
                    self._interrupt(0)
                    continue
                server.start_tls()
                session.tls_established()
            else:
                self.decided_at.append(decided if decided is not None else self.received)
                return action


_OVER = (Action.DONE, Action.FAILED)


@attrs.frozen
class Shape:
    """One kind of session: the server's script, how the client sets up, the messages."""

    name: str
    script: Script
    messages: tuple[Envelope, ...]
    starttls: StartTLS = StartTLS.NEVER
    secret: Credentials | None = None
    pipelining: bool = True
    chunking: bool = True


Outcome = SendResult | e.SMTPError | None


@attrs.define
class Run:
    shape: Shape
    outcomes: list[Outcome]
    session: Session
    server: MemoryServer
    store: Mailstore
    pump: Pump
    transactions: list[Transaction | None] = attrs.field(factory=list)  # run_batch's
    left: int = 0  # run_batch: messages never started


def _set_up(shape: Shape, fault: Fault | None) -> tuple[Run, bool]:
    """A session set up as ``shape`` says (the run, and whether the setup succeeded)."""
    store = Mailstore()
    server = MemoryServer(shape.script, store)
    session = Session("client.test")
    pump = Pump(session, server, fault)
    run = Run(shape, [None] * len(shape.messages), session, server, store, pump)
    setup = SetupFlow(
        session, starttls=shape.starttls, secret=shape.secret, allow_plaintext_auth=True
    )
    if pump.run(setup) is Action.FAILED:
        assert setup.error is not None
        setup.error.undelivered = shape.messages[0].recipients  # as the client reports it
        run.outcomes[0] = setup.error
        return run, False
    return run, True


def run_shape(shape: Shape, fault: Fault | None = None) -> Run:
    run, ready = _set_up(shape, fault)
    if not ready:
        return run
    session, pump, outcomes = run.session, run.pump, run.outcomes
    for index, envelope in enumerate(shape.messages):
        if session.closed and index:
            break  # the next send() would reconnect; the first one is under way
        pump.flow_index = index
        flow = MailFlow(session, envelope, pipelining=shape.pipelining, chunking=shape.chunking)
        pump.run(flow)
        outcomes[index] = flow.result if flow.error is None else flow.error
    if not session.closed:
        pump.flow_index = len(shape.messages)
        pump.run(ReplyFlow(session, session.quit()))
    return run


def envelope(recipients: Sequence[str], body: bytes = b"Hello.\r\n") -> Envelope:
    head = b"From: a@example.com\r\nTo: " + ", ".join(recipients).encode() + b"\r\n\r\n"
    prepared = prepare(
        head + body, sender="a@example.com", recipients=list(recipients), add_missing_headers=False
    )
    # the header lines apart, as prepare() keeps the lines it adds: the entry carrying
    # the message then has several parts, and every fault offset spans their boundaries
    return attrs.evolve(prepared, data=body, head=head)


ONE = ("bob@example.com",)
THREE = ("bob@example.com", "nobody@example.com", "dave@example.com")
REFUSE = {"nobody@example.com": "550 5.1.1 No such user"}
LARGE = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n" * 4200
SECRET = Credentials("user", "s3cret")


def shapes() -> list[Shape]:
    """Every transaction shape the exhaustive test runs."""
    plain = Script(pipelining=False)
    piped = Script(pipelining=True)
    bdat = Script(pipelining=True, chunking=True)
    bdat_lock = Script(pipelining=False, chunking=True)
    tls = {"starttls": True, "auth": ("PLAIN", "LOGIN"), "credentials": {"user": "s3cret"}}
    result = []
    for count, rcpts in (("1", ONE), ("3", THREE)):
        refuse = REFUSE if count == "3" else {}
        result += [
            Shape(
                f"lock-step DATA {count}", attrs.evolve(plain, refuse=refuse), (envelope(rcpts),)
            ),
            Shape(
                f"pipelined DATA {count}", attrs.evolve(piped, refuse=refuse), (envelope(rcpts),)
            ),
            Shape(
                f"pipelined BDAT small {count}",
                attrs.evolve(bdat, refuse=refuse),
                (envelope(rcpts),),
            ),
            Shape(
                f"BDAT large {count}",
                attrs.evolve(bdat, refuse=refuse),
                (envelope(rcpts, LARGE),),
            ),
            Shape(
                f"lock-step BDAT {count}",
                attrs.evolve(bdat_lock, refuse=refuse),
                (envelope(rcpts),),
            ),
        ]
    result += [
        Shape("pipelined DATA large 1", piped, (envelope(ONE, LARGE),)),
        Shape(
            "STARTTLS + AUTH PLAIN, pipelined DATA 3",
            Script(pipelining=True, refuse=REFUSE, **tls),  # type: ignore[arg-type]
            (envelope(THREE),),
            starttls=StartTLS.REQUIRE,
            secret=SECRET,
        ),
        Shape(
            "STARTTLS + AUTH LOGIN, lock-step BDAT 1",
            Script(pipelining=False, chunking=True, **{**tls, "auth": ("LOGIN",)}),  # type: ignore[arg-type]
            (envelope(ONE),),
            starttls=StartTLS.REQUIRE,
            secret=SECRET,
        ),
        Shape(
            "two messages back to back, pipelined BDAT",
            attrs.evolve(bdat, refuse=REFUSE),
            (envelope(ONE), envelope(THREE)),
        ),
        Shape(
            "two messages back to back, lock-step DATA",
            attrs.evolve(plain, refuse=REFUSE),
            (envelope(THREE), envelope(ONE)),
        ),
        Shape(
            "every recipient refused, pipelined BDAT",
            attrs.evolve(bdat, refuse={ONE[0]: "550 5.1.1 No"}),
            (envelope(ONE),),
        ),
        Shape(
            "MAIL refused, pipelined DATA",
            attrs.evolve(piped, mail_reply="553 5.1.8 Bad sender", careless_data=True),
            (envelope(THREE),),
        ),
    ]
    return result


def run_batch(shape: Shape, fault: Fault | None = None) -> Run:
    """``run_shape`` with the messages sent as one ``MailBatch``: each transaction
    pipelined behind the end of the one before where the session allows it."""
    run, ready = _set_up(shape, fault)
    if not ready:
        return run
    session, pump, outcomes = run.session, run.pump, run.outcomes
    batch = MailBatch(session, shape.messages, chunking=shape.chunking)
    index = 0
    while (flow := batch.next_flow()) is not None:
        pump.flow_index = index
        pump.run(flow)
        outcomes[index] = flow.result if flow.error is None else flow.error
        mail = flow.flow
        run.transactions.append(mail.transaction if isinstance(mail, MailFlow) else None)
        index += 1
    run.left = len(list(batch.left()))
    if not session.closed:
        pump.flow_index = len(shape.messages)
        pump.run(ReplyFlow(session, session.quit()))
    return run
