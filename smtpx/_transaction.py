"""One mail transaction: MAIL, RCPT per recipient, DATA → ``SendResult``.

A recipient refused with the connection still usable is recorded and the
message still goes to the others; every other failure ends the transaction
and is raised with ``rejected`` (refusals so far) and ``undelivered`` (who did
not get the message) filled in, so nothing is dropped silently.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smtpx import errors as e
from smtpx._message import Envelope
from smtpx.results import SendResult

if TYPE_CHECKING:
    from smtpx.client import Client

# Refusals after which the session is unusable: they end the transaction.
_FATAL = (e.NetworkError, e.ServiceUnavailable, e.ProtocolError)


def mail_options(client: Client, envelope: Envelope) -> list[str]:
    """MAIL FROM parameters, checked against the server's extensions before sending."""
    extensions = client.extensions
    options: list[str] = []
    if "size" in extensions:
        options.append(f"SIZE={len(envelope.payload)}")
        limit = extensions["size"].strip()
        if limit.isdigit() and 0 < int(limit) < len(envelope.payload):
            size = len(envelope.payload)
            raise e.MessageTooLarge(
                f"the message is {size} octets; the server's SIZE limit is {limit}"
            )
    if envelope.smtputf8:
        if "smtputf8" not in extensions:
            raise e.ExtensionRequired(
                "the message has non-ASCII addresses or headers, which need SMTPUTF8; "
                "the server does not offer it"
            )
        options.append("SMTPUTF8")
    if envelope.eight_bit:
        if "8bitmime" not in extensions:
            raise e.ExtensionRequired(
                "the message has 8-bit content and the server does not offer 8BITMIME; "
                "send an EmailMessage with a 7-bit Content-Transfer-Encoding"
            )
        options.append("BODY=8BITMIME")
    return options


async def run(client: Client, envelope: Envelope) -> SendResult:
    """Send ``envelope`` over ``client``'s open session (the caller holds its lock)."""
    rejected: dict[str, e.SMTPError] = {}
    accepted: list[str] = []
    try:
        await client.mail(envelope.sender, mail_options(client, envelope))
        for recipient in envelope.recipients:
            try:
                await client.rcpt(recipient)
            except _FATAL:
                raise
            except e.SMTPError as refusal:
                rejected[recipient] = refusal
            else:
                accepted.append(recipient)
        if not accepted:
            every_transient = all(err.retryable for err in rejected.values())
            cls = e.AllRecipientsDeferred if every_transient else e.AllRecipientsRejected
            raise cls()
        reply = (await client._data_encoded(envelope.payload)).reply
    except e.SMTPError as error:
        error.rejected = {**rejected, **error.rejected}
        error.undelivered = tuple(r for r in envelope.recipients if r not in rejected)
        if client.connected and not isinstance(error, _FATAL):
            await _reset(client)
        raise
    return SendResult(tuple(accepted), rejected, reply)


async def _reset(client: Client) -> None:
    """RSET after a failed transaction so the session can carry the next one."""
    try:
        await client.rset()
    except e.SMTPError:
        client.close()
