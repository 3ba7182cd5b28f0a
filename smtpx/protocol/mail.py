"""The mail transaction as a flow: MAIL, a RCPT per recipient, DATA or BDAT → ``SendResult``.

Lock-step, or with PIPELINING (RFC 2920) MAIL, every RCPT and DATA in one write;
with CHUNKING (RFC 3030) a message up to ``CHUNK_IN_PIPELINE`` octets goes in that
write too as ``BDAT <size> LAST``, a larger one once a recipient accepted.  A
recipient refused while the session stays usable is recorded and the message still
goes to the others; every other failure ends the transaction and is raised with
``rejected`` (refusals so far) and ``undelivered`` (who did not get the message)
filled in, then RSET puts the session back in step.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from smtpx import errors as e
from smtpx._address import check_address
from smtpx._commands import Command
from smtpx._envelope import Envelope
from smtpx._reply import Reply
from smtpx.protocol.flow import Flow, Steps, ok
from smtpx.protocol.ledger import Entry, Transaction
from smtpx.protocol.session import Session
from smtpx.protocol.states import SessionStateError
from smtpx.results import SendResult, StartData, Success

__all__ = ["CHUNK_IN_PIPELINE", "MailFlow", "mail_options", "rcpt_options"]

# Up to this size, the message goes in the same write as MAIL and RCPT (one round
# trip in all) even though every recipient might refuse it; above, sending it takes
# longer than a round trip anyway, so it waits for the RCPT replies.
CHUNK_IN_PIPELINE = 256 * 1024

# Failures after which the session is unusable: they end the transaction, no RSET.
_FATAL = (e.NetworkError, e.ServiceUnavailable, e.ProtocolError)


def mail_options(
    extensions: Mapping[str, str], envelope: Envelope, *, encrypted: bool = False
) -> list[str]:
    """MAIL FROM parameters, checked against the server's extensions (and, for
    REQUIRETLS, that the session is ``encrypted``) before sending."""
    options: list[str] = []
    if envelope.require_tls:
        # RFC 8689 §4.1: only on a TLS session, to a server that offers it
        if not encrypted:
            raise e.ExtensionRequired(
                "require_tls=True needs a TLS session; this one is not encrypted",
                command=Command.MAIL,
            )
        if "requiretls" not in extensions:
            raise e.ExtensionRequired(
                "require_tls=True, and the server does not offer REQUIRETLS (RFC 8689)",
                command=Command.MAIL,
            )
    if _asks_for_dsn(extensions, envelope):
        assert envelope.dsn is not None
        options += envelope.dsn.mail_parameters()
    if "size" in extensions:
        size = envelope.size  # RFC 1870: CRLF line ends, before dot-stuffing
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
    if envelope.require_tls:
        options.append("REQUIRETLS")
    return options


def _asks_for_dsn(extensions: Mapping[str, str], envelope: Envelope) -> bool:
    """Whether the DSN parameters go out: asked for and offered; asked for, required
    and not offered is ``ExtensionRequired``."""
    if envelope.dsn is None:
        return False
    if "dsn" in extensions:
        return True
    if envelope.dsn_required:
        raise e.ExtensionRequired(
            "delivery status notifications were asked for and the server does not offer "
            "DSN (RFC 3461); pass dsn_required=False to send without them",
            command=Command.MAIL,
        )
    return False


def rcpt_options(extensions: Mapping[str, str], envelope: Envelope, recipient: str) -> list[str]:
    """RCPT TO parameters for ``recipient``: NOTIFY and ORCPT when DSN goes out."""
    if envelope.dsn is None or "dsn" not in extensions:
        return []
    return envelope.dsn.rcpt_parameters(recipient)


class MailFlow(Flow[SendResult]):
    """One transaction for ``envelope`` on ``session`` (greeted, EHLO'd, no transaction).

    ``pipelining`` and ``chunking`` allow the extensions when the server offers them.
    """

    def __init__(
        self,
        session: Session,
        envelope: Envelope,
        *,
        pipelining: bool = True,
        chunking: bool = True,
    ) -> None:
        self.envelope = envelope
        self.pipelining = pipelining and session.pipelining
        self.chunking = chunking and session.chunking
        self.accepted: list[str] = []
        self.rejected: dict[str, e.SMTPError] = {}
        self._transaction: Transaction | None = None
        super().__init__(session)

    @property
    def transaction(self) -> Transaction | None:
        """The ledger's record of this transaction, once its MAIL is queued."""
        return self._transaction

    def stopped(self) -> e.SMTPError:
        session = self.session
        transaction = self._transaction
        if transaction is not None and (verdict := session.verdict_for(transaction)):
            return verdict.error()  # judged on this transaction's own ledger entries
        verdict = session.verdict
        if verdict is not None:  # closed before this transaction's MAIL was queued
            nothing = attrs.evolve(
                verdict, recipients=(), safe_to_retry=(), unknown=(), answered={}
            )
            error = nothing.error()
        else:
            error = super().stopped()
        undelivered = (r for r in self.envelope.recipients if r not in self.rejected)
        return e.enrich(error, rejected=self.rejected, undelivered=undelivered)

    def steps(self) -> Steps[SendResult]:
        session, envelope = self.session, self.envelope
        mail: Entry | None = None
        try:
            options = mail_options(session.extensions, envelope, encrypted=session.encrypted)
            for recipient in envelope.recipients:  # every address, before anything is queued
                check_address(recipient, role="recipient")
            mail = session.mail(envelope.sender, options, recipients=envelope.recipients)
            self._transaction = session.ledger.transaction
            if self.pipelining:
                reply = yield from self._pipelined(mail)
            else:
                yield mail
                ok(mail.result)
                for recipient in envelope.recipients:
                    rcpt = session.rcpt(recipient, self._rcpt_options(recipient))
                    yield rcpt
                    self._record(recipient, rcpt.result)
                self._check_someone_accepted()
                reply = yield from self._message()
        except e.SMTPError as error:
            e.enrich(
                error,
                rejected={**self.rejected, **error.rejected},
                undelivered=(r for r in envelope.recipients if r not in self.rejected),
            )
            if mail is not None and not session.closed and not isinstance(error, _FATAL):
                transaction = self._transaction
                assert transaction is not None
                end = transaction.end
                if end is None or not end.answered or not transaction.closes_at_end:
                    yield from self._reset(error)
                # else the end's reply closed the server's transaction: nothing to reset
            raise
        return SendResult(tuple(self.accepted), self.rejected, reply)

    def _rcpt_options(self, recipient: str) -> list[str]:
        return rcpt_options(self.session.extensions, self.envelope, recipient)

    def _record(self, recipient: str, result: Success | e.SMTPError | None) -> None:
        if isinstance(result, e.SMTPError):
            if isinstance(result, _FATAL):
                raise result
            self.rejected[recipient] = result
        else:
            self.accepted.append(recipient)

    def _check_someone_accepted(self) -> None:
        if not self.accepted:
            raise e.recipients_refused(self.rejected, command=Command.RCPT)

    def _message(self) -> Steps[Reply]:
        """The message itself, once a recipient has accepted: BDAT when offered, else DATA."""
        session, envelope = self.session, self.envelope
        if self.chunking:
            end = session.bdat(envelope.parts, last=True, normalized=True)
        else:
            data = session.data()
            yield data
            ok(data.result)
            end = session.data_payload(envelope.parts, normalized=True)
        yield end
        return ok(end.result).reply

    def _pipelined(self, mail: Entry) -> Steps[Reply]:
        """MAIL, every RCPT and DATA (or a small message's BDAT) in one write; each reply
        judged on its own."""
        session, envelope = self.session, self.envelope
        rcpts = [session.rcpt(r, self._rcpt_options(r)) for r in envelope.recipients]
        final: Entry | None = None
        if not self.chunking:
            final = session.data()
        elif envelope.size <= CHUNK_IN_PIPELINE:
            final = session.bdat(envelope.parts, last=True, normalized=True)
        group = (mail, *rcpts, *((final,) if final is not None else ()))
        yield group  # every reply, or up to a 421 or a reply that is not SMTP (closed)
        if not isinstance(
            mail.result, e.SMTPError
        ):  # after a refused MAIL, RCPT replies mean nothing
            for recipient, rcpt in zip(envelope.recipients, rcpts, strict=True):
                if rcpt.result is None or isinstance(rcpt.result, _FATAL):
                    break
                self._record(recipient, rcpt.result)
        for entry in group:  # a 421 or a garbled reply ends the exchange: raise it first
            if isinstance(entry.result, _FATAL):
                raise entry.result
        last = final.result if final is not None else None
        if isinstance(last, StartData) and not self.accepted:
            # RFC 2920 §3.1: DATA was accepted with nothing to send; end it empty.
            end = session.data_payload(b"", encoded=True)
            yield end
        ok(mail.result)
        self._check_someone_accepted()
        if final is None:  # a large message, sent now that someone accepted
            return (yield from self._message())
        result = ok(last)
        if isinstance(result, StartData):
            end = session.data_payload(envelope.parts, normalized=True)
            yield end
            return ok(end.result).reply
        return result.reply  # BDAT's: the message went with the commands

    def _reset(self, error: e.SMTPError) -> Steps[None]:
        """RSET after a failed transaction so the session can carry the next one."""
        self.decided = error
        session = self.session
        try:
            rset = session.rset()
        except SessionStateError:
            session.close()
            return
        yield rset
        if isinstance(rset.result, e.SMTPError):
            session.close()
