"""A durable outbox: messages on disk until every recipient has an answer.

``await outbox.put(message)`` returns once the message is stored in one SQLite file
(WAL); ``await outbox.run(client_or_pool)`` delivers, recording each recipient's
state after every attempt, and records "the end of the message may leave now" before
it does.  A worker killed at any point, restarted, sends again only to recipients
whose message cannot have reached the server; the others are ``delivery_unknown``
until you decide (``unknown()``, ``release()``).  See docs/outbox.md.
"""

from smtpx.outbox._errors import StorageError
from smtpx.outbox._outbox import DEFAULT_MAX_AGE, DEFAULT_POLICY, INLINE_LIMIT, Outbox
from smtpx.outbox._values import (
    Failure,
    MessageStatus,
    OutboxStats,
    RecipientStatus,
    State,
)

__all__ = [
    "DEFAULT_MAX_AGE",
    "DEFAULT_POLICY",
    "INLINE_LIMIT",
    "Failure",
    "MessageStatus",
    "Outbox",
    "OutboxStats",
    "RecipientStatus",
    "State",
    "StorageError",
]
