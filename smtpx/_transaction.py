"""One mail transaction: MAIL, RCPT per recipient, DATA (or BDAT) → ``SendResult``.

A recipient refused with the connection still usable is recorded and the
message still goes to the others; every other failure ends the transaction
and is raised with ``rejected`` (refusals so far) and ``undelivered`` (who did
not get the message) filled in, so nothing is dropped silently.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smtpx import errors as e
from smtpx._commands import Command
from smtpx._message import Envelope
from smtpx._reply import Reply
from smtpx.results import SendResult, StartData, Success

if TYPE_CHECKING:
    from smtpx.client import Client

# Refusals after which the session is unusable: they end the transaction.
_FATAL = (e.NetworkError, e.ServiceUnavailable, e.ProtocolError)


def mail_options(client: Client, envelope: Envelope) -> list[str]:
    """MAIL FROM parameters, checked against the server's extensions before sending."""
    extensions = client.extensions
    options: list[str] = []
    if "size" in extensions:
        size = len(envelope.data)  # RFC 1870: CRLF line ends, before dot-stuffing
        options.append(f"SIZE={size}")
        limit = extensions["size"].strip()
        if limit.isdigit() and 0 < int(limit) < size:
            raise e.MessageTooLarge(
                f"the message is {size} octets; the server's SIZE limit is {limit}",
                command=Command.MAIL,
            )
    if envelope.smtputf8:
        if "smtputf8" not in extensions:
            raise e.ExtensionRequired(
                "the message has non-ASCII addresses or headers, which need SMTPUTF8; "
                "the server does not offer it",
                command=Command.MAIL,
            )
        options.append("SMTPUTF8")
    if envelope.eight_bit:
        if "8bitmime" not in extensions:
            raise e.ExtensionRequired(
                "the message has 8-bit content and the server does not offer 8BITMIME; "
                "send an EmailMessage with a 7-bit Content-Transfer-Encoding",
                command=Command.MAIL,
            )
        options.append("BODY=8BITMIME")
    return options


async def run(client: Client, envelope: Envelope) -> SendResult:
    """Send ``envelope`` over ``client``'s open session (the caller holds its lock)."""
    rejected: dict[str, e.SMTPError] = {}
    accepted: list[str] = []
    try:
        options = mail_options(client, envelope)
        if client.pipelining:
            reply = await _pipelined(client, envelope, options, accepted, rejected)
        else:
            await client.mail(envelope.sender, options)
            for recipient in envelope.recipients:
                try:
                    await client.rcpt(recipient)
                except _FATAL:
                    raise
                except e.SMTPError as refusal:
                    rejected[recipient] = refusal
                else:
                    accepted.append(recipient)
            _check_someone_accepted(accepted, rejected)
            reply = (await _send(client, envelope, tuple(accepted))).reply
    except e.SMTPError as error:
        error.rejected = {**rejected, **error.rejected}
        error.undelivered = tuple(r for r in envelope.recipients if r not in rejected)
        if client.connected and not isinstance(error, _FATAL):
            await _reset(client)
        raise
    return SendResult(tuple(accepted), rejected, reply)


def _check_someone_accepted(accepted: list[str], rejected: dict[str, e.SMTPError]) -> None:
    if not accepted:
        every_transient = all(err.retryable for err in rejected.values())
        error = e.AllRecipientsDeferred if every_transient else e.AllRecipientsRejected
        raise error(command=Command.RCPT)


async def _send(client: Client, envelope: Envelope, to: tuple[str, ...]) -> Success:
    """The message itself, once a recipient (``to``) has accepted: BDAT when offered, else
    DATA."""
    if client.uses_chunking:
        return await client._bdat(envelope.data, to)
    return await client._data_encoded(envelope.payload, to)


# Up to this size, the message goes in the same write as MAIL and RCPT (one round
# trip in all) even though every recipient might refuse it; above, sending it takes
# longer than a round trip anyway, so it waits for the RCPT replies.
CHUNK_IN_PIPELINE = 256 * 1024


async def _pipelined(
    client: Client,
    envelope: Envelope,
    options: list[str],
    accepted: list[str],
    rejected: dict[str, e.SMTPError],
) -> Reply:
    """MAIL, every RCPT and DATA in one write (RFC 2920); each reply judged on its own.

    With CHUNKING, a small message goes in that write too, as ``BDAT <size>
    LAST`` in place of DATA; a large one follows once a recipient accepted.
    """
    final: tuple[Command, tuple[bytes, ...]] | None = (Command.DATA, (b"DATA",))
    chunk = b""
    if client.uses_chunking:
        if len(envelope.data) <= CHUNK_IN_PIPELINE:
            final, chunk = (Command.BDAT, client.bdat_args(envelope.data)), envelope.data
        else:
            final = None
    steps: list[tuple[Command, tuple[bytes, ...], str | None]] = [
        (Command.MAIL, client.mail_args(envelope.sender, options), None),
        *((Command.RCPT, client.rcpt_args(r), r) for r in envelope.recipients),
        *([(*final, None)] if final is not None else []),
    ]
    results = await client.pipeline(steps, chunk=chunk)
    for result in results:  # a 421 or a garbled reply ends the exchange: raise it first
        if isinstance(result, _FATAL):
            raise result
    mail, rcpts = results[0], results[1 : 1 + len(envelope.recipients)]
    last = results[-1] if final is not None else None
    if not isinstance(mail, e.SMTPError):  # after a refused MAIL, RCPT replies mean nothing
        for recipient, result in zip(envelope.recipients, rcpts, strict=True):
            if isinstance(result, e.SMTPError):
                rejected[recipient] = result
            else:
                accepted.append(recipient)
    if isinstance(last, StartData) and not accepted:
        # RFC 2920 §3.1: DATA was accepted with nothing to send; end it empty.
        await client._send_payload(b"")
    if isinstance(mail, e.SMTPError):
        raise mail
    _check_someone_accepted(accepted, rejected)
    if isinstance(last, e.SMTPError):
        raise last
    if last is None:  # a large message, sent now that someone accepted
        return (await _send(client, envelope, tuple(accepted))).reply
    if isinstance(last, StartData):
        return (await client._send_payload(envelope.payload, tuple(accepted))).reply
    return last.reply  # BDAT's: the message went with the commands


async def _reset(client: Client) -> None:
    """RSET after a failed transaction so the session can carry the next one."""
    try:
        await client.rset()
    except e.SMTPError:
        client.close()
