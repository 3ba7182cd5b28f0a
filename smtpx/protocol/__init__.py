"""``smtpx.protocol``: the SMTP client session as pure code, without any I/O.

A ``Session`` turns intents into octets to write and octets received into classified
replies, each paired with the command it answers; its ledger records what has been
written of every command and payload; ``verdict`` says what an interruption means
for each recipient.  Flows (``SetupFlow``, ``MailFlow``, ``AuthFlow``, ``ReplyFlow``)
hold the decisions of whole exchanges (``MailBatch``: messages back to back, each
transaction pipelined behind the one before) (``prepare`` builds the ``Envelope`` a
``MailFlow`` sends), so that any pump — asyncio, a blocking
socket, trio — only moves octets.  Standard library and attrs only: no sockets, no
event loop, no clock.

The names are loaded on first use, so that the reply parser can read
``smtpx.protocol.limits`` without importing the session.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smtpx._envelope import Envelope
    from smtpx._message import prepare
    from smtpx.protocol.batch import MailBatch
    from smtpx.protocol.flow import Action, Flow, ReplyFlow, StepsFlow
    from smtpx.protocol.framing import ReplyFramer
    from smtpx.protocol.interruptions import Fate, Interruption, Verdict, verdict
    from smtpx.protocol.ledger import Entry, Ledger, Transaction, WriteState
    from smtpx.protocol.lines import command_line
    from smtpx.protocol.mail import CHUNK_IN_PIPELINE, MailFlow, mail_options, rcpt_options
    from smtpx.protocol.oauth import Bearer
    from smtpx.protocol.session import Session
    from smtpx.protocol.setup import AuthFlow, SetupFlow, StartTLS
    from smtpx.protocol.states import Intent, SessionStateError, State

_WHERE = {
    "Envelope": "smtpx._envelope",
    "prepare": "smtpx._message",
    "MailBatch": "batch",
    "Action": "flow",
    "Flow": "flow",
    "ReplyFlow": "flow",
    "StepsFlow": "flow",
    "ReplyFramer": "framing",
    "Entry": "ledger",
    "Ledger": "ledger",
    "Transaction": "ledger",
    "WriteState": "ledger",
    "command_line": "lines",
    "CHUNK_IN_PIPELINE": "mail",
    "MailFlow": "mail",
    "mail_options": "mail",
    "rcpt_options": "mail",
    "Session": "session",
    "Bearer": "oauth",
    "AuthFlow": "setup",
    "SetupFlow": "setup",
    "StartTLS": "setup",
    "Intent": "states",
    "SessionStateError": "states",
    "State": "states",
    "Fate": "interruptions",
    "Interruption": "interruptions",
    "Verdict": "interruptions",
    "verdict": "interruptions",
}

__all__ = [
    "CHUNK_IN_PIPELINE",
    "Action",
    "AuthFlow",
    "Bearer",
    "Entry",
    "Envelope",
    "Fate",
    "Flow",
    "Intent",
    "Interruption",
    "Ledger",
    "MailBatch",
    "MailFlow",
    "ReplyFlow",
    "ReplyFramer",
    "Session",
    "SessionStateError",
    "SetupFlow",
    "StartTLS",
    "State",
    "StepsFlow",
    "Transaction",
    "Verdict",
    "WriteState",
    "command_line",
    "mail_options",
    "prepare",
    "rcpt_options",
    "verdict",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    path = module if module.startswith("smtpx.") else f"{__name__}.{module}"
    value = getattr(importlib.import_module(path), name)
    globals()[name] = value
    return value
