"""Send one message with ``smtpx.protocol`` over a plain blocking socket: no asyncio.

The session and its flows decide everything (what to send, what each reply means,
what a lost connection means for each recipient); the loop in ``drive()`` only moves
octets.  Run: ``.venv/bin/python examples/blocking_session.py``.  The SMTP server is
embedded (``smtpx.testing.ScriptedServer`` in a background thread), so the example
needs no network.
"""

from __future__ import annotations

import socket
import ssl
from typing import TypeVar

from smtpx.protocol import (
    Action,
    Flow,
    Interruption,
    MailFlow,
    ReplyFlow,
    Session,
    SetupFlow,
    StartTLS,
    prepare,
)
from smtpx.testing import serve_in_thread

T = TypeVar("T")

MESSAGE = (
    b"From: shop@example.com\r\n"
    b"To: alice@example.com, nobody@example.com\r\n"
    b"Subject: Your order has shipped\r\n"
    b"\r\n"
    b"It is on its way.\r\n"
)


def drive(flow: Flow[T], sock: socket.socket, host: str) -> T:
    """Run ``flow`` over ``sock``: write, read, hand over, report what happened."""
    session = flow.session
    while True:
        action = flow.next_action()
        try:
            if action is Action.SEND:
                view = memoryview(session.data_to_send())
                while view:
                    sent = sock.send(view)
                    session.wrote(sent)  # the kernel has these octets now
                    view = view[sent:]
            elif action is Action.RECEIVE:
                data = sock.recv(65536)
                if not data:
                    session.interrupt(Interruption.CONNECTION_LOST)
                else:
                    session.receive_data(data)
            elif action is Action.START_TLS:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
                session.tls_established()
            elif action is Action.DONE:
                assert flow.result is not None
                return flow.result
            else:
                assert flow.error is not None
                raise flow.error
        except TimeoutError:
            session.interrupt(Interruption.READ_TIMEOUT)
        except ssl.SSLError:
            session.interrupt(Interruption.TLS_ERROR)
        except OSError:
            session.interrupt(Interruption.CONNECTION_LOST)


def main() -> None:
    with serve_in_thread(pipelining=True, chunking=True) as server:
        server.on("RCPT", match="nobody@", reply="550 5.1.1 No such user")
        envelope = prepare(MESSAGE)
        with socket.create_connection((server.host, server.port), timeout=10) as sock:
            session = Session("example.local")
            # Loopback only: against a real server require STARTTLS (the default).
            drive(SetupFlow(session, starttls=StartTLS.NEVER), sock, server.host)
            result = drive(MailFlow(session, envelope), sock, server.host)
            ledger = list(session.ledger.entries)
            drive(ReplyFlow(session, session.quit()), sock, server.host)

        print(f"accepted: {', '.join(result.accepted)}")
        for recipient, error in result.rejected.items():
            print(f"refused: {recipient}: {type(error).__name__} ({error.code} {error.enhanced})")
        print(f"server said: {result.reply.code} {result.reply.message}")
        print("ledger:")
        for entry in ledger:
            code = entry.reply.code if entry.reply is not None else "-"
            print(f"  {entry.command.label}: {entry.write_state.value}, reply {code}")
        (received,) = server.messages
        print(f"the server got {received.subject!r} for {', '.join(received.rcpt_tos)}")


if __name__ == "__main__":
    main()
