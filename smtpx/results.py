"""Typed success results: one class per positive meaning of the command table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from smtpx._commands import Command
from smtpx._reply import Reply

if TYPE_CHECKING:
    from smtpx.errors import SMTPError

__all__ = [
    "AuthChallenge",
    "Authenticated",
    "CannotVerify",
    "Closing",
    "HelpText",
    "Ok",
    "Ready",
    "SendResult",
    "StartData",
    "Success",
    "SystemStatus",
    "WillForward",
]


@attrs.frozen
class Success:
    """A positive reply to ``command``."""

    command: Command
    reply: Reply

    @property
    def code(self) -> int:
        return self.reply.code


@attrs.frozen
class Ready(Success):
    """220: the server is ready (greeting, or go ahead with TLS after STARTTLS)."""


@attrs.frozen
class Ok(Success):
    """250: requested action completed."""


@attrs.frozen
class WillForward(Success):
    """251: user not local; the server will forward."""


@attrs.frozen
class CannotVerify(Success):
    """252: cannot verify the user, but will accept the message and try."""


@attrs.frozen
class StartData(Success):
    """354: send the message, end with ``<CRLF>.<CRLF>``."""


@attrs.frozen
class AuthChallenge(Success):
    """334: the AUTH exchange continues; the text is the server's challenge."""


@attrs.frozen
class Authenticated(Success):
    """235: authentication succeeded."""


@attrs.frozen
class HelpText(Success):
    """214: a help message."""


@attrs.frozen
class SystemStatus(Success):
    """211: system status."""


@attrs.frozen
class Closing(Success):
    """221: the server is closing the connection."""


SUCCESS_TYPES: dict[int, type[Success]] = {
    211: SystemStatus,
    214: HelpText,
    220: Ready,
    221: Closing,
    235: Authenticated,
    250: Ok,
    251: WillForward,
    252: CannotVerify,
    334: AuthChallenge,
    354: StartData,
}


@attrs.frozen
class SendResult:
    """What ``send()`` achieved: who accepted the message, and why each refusal happened."""

    accepted: tuple[str, ...]
    rejected: Mapping[str, SMTPError]
    reply: Reply  # the server's reply after the final "."
    # True when a dry run (``dry_run=True``) prepared the message and sent it nowhere:
    # every recipient is then listed as accepted, and ``reply`` is a stand-in.
    dry_run: bool = attrs.field(default=False, kw_only=True)

    @property
    def all_accepted(self) -> bool:
        return not self.rejected
