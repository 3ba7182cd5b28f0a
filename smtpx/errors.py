"""Every way sending mail can fail, as one exception tree.

Each concrete class has one meaning and one severity; categories that cut
across severities (auth, TLS, network, mailbox full) are bases you can catch
too.  ``*`` marks a category base::

    SMTPError                         .command .reply .code .enhanced .recipient .retryable
    ├── TransientError                4xx and lost connections: a later try may succeed
    │   ├── ServiceUnavailable        421, the server is closing the connection
    │   ├── MailboxBusy               450
    │   ├── LocalError                451
    │   ├── InsufficientStorage       452
    │   │   └── TooManyRecipients     452 4.5.3 (and 552 5.5.3 to RCPT)
    │   ├── MailboxFullTemporary      422, 4xx X.2.2, 552 to RCPT        (MailboxFull)
    │   ├── DomainOverloaded          431
    │   ├── NoAnswerFromHost          441
    │   ├── ConnectionDropped         442
    │   ├── RoutingLoop               446
    │   ├── NotAcceptingMessages      453, 458, 459
    │   ├── ParametersNotAccommodated 455
    │   ├── SpamFilterDeferred        471
    │   ├── TLSUnavailable            454 to STARTTLS                    (TLSError)
    │   ├── AuthUnavailable           454 to AUTH                        (AuthError)
    │   ├── PasswordTransitionNeeded  432                                (AuthError)
    │   ├── ConnectError              no connection: refused, DNS down (101) (NetworkError)
    │   │   └── ConnectTimeout        no connection or greeting in time
    │   ├── ConnectionLost            closed before a reply arrived      (NetworkError)
    │   └── ResponseTimeout           no reply in time                   (NetworkError)
    ├── PermanentError                5xx and failures no retry will fix
    │   ├── CommandUnrecognized       500
    │   ├── InvalidArguments          501
    │   ├── CommandNotImplemented     502
    │   ├── BadCommandSequence        503
    │   ├── ParameterNotImplemented   504
    │   ├── InvalidAddress            510
    │   ├── DomainNotFound            512
    │   ├── HostDoesNotAcceptMail     521
    │   ├── MessageTooLarge           523, 552 X.2.3 / X.3.4
    │   ├── AuthRequired              530                                (AuthError)
    │   ├── AuthMechanismTooWeak      534; or no mechanism smtpx knows   (AuthError)
    │   ├── AuthNotOffered            credentials given, server has no AUTH (AuthError)
    │   ├── AuthFailed                535, 5xx X.7.8 to AUTH             (AuthError)
    │   ├── EncryptionRequired        538                                (AuthError)
    │   ├── SpamRejected              541
    │   ├── MailboxUnavailable        550
    │   │   └── NoSuchMailbox         550 X.1.1
    │   ├── UserNotLocal              551
    │   ├── MailboxFullPermanent      552                                (MailboxFull)
    │   ├── MailboxNameInvalid        553
    │   ├── TransactionFailed         554
    │   │   └── NoSMTPService         554 as the greeting
    │   ├── ParametersNotRecognized   555
    │   ├── DomainDoesNotAcceptMail   556
    │   ├── TLSNotOffered             TLS required, STARTTLS not offered (TLSError)
    │   ├── TLSHandshakeFailed        handshake failed                   (TLSError)
    │   │   └── CertificateInvalid    certificate not verified
    │   ├── TLSModeMismatch           implicit TLS port vs STARTTLS, or back (TLSError)
    │   └── HostNotFound              the host name does not exist (DNS) (NetworkError)
    ├── DeliveryUnknown               lost after the final "."; maybe delivered (NetworkError)
    ├── ProtocolError                 a reply that is not SMTP: bad code, bad framing
    │   └── UnexpectedReply           a positive code the command does not allow
    ├── UsageError                    refused before sending: bad option or input (also ValueError)
    │   ├── InvalidEnvelope           bad envelope address or parameter  (also ValueError)
    │   ├── InvalidMessage            message bytes that cannot be sent safely (also ValueError)
    │   ├── ExtensionRequired         the message needs SMTPUTF8/8BITMIME the server lacks
    │   └── PlaintextAuthRefused      credentials would cross an unencrypted connection
    └── RecipientsRefused *           every recipient was refused; .rejected holds each error
        ├── AllRecipientsDeferred     every refusal was transient        (TransientError)
        └── AllRecipientsRejected     at least one refusal was permanent (PermanentError)

``*`` categories: ``AuthError``, ``TLSError``, ``NetworkError``, ``MailboxFull``,
``RecipientsRefused``.

An error raised by ``send()`` also carries ``rejected`` (the recipients refused
before it, each with its own error) and ``undelivered`` (the recipients that did
not get the message because of it), so no refusal is ever lost.

The aiosmtplib, ``ssl`` or ``OSError`` exception behind an error stays
available as ``__cause__``.  No message ever contains credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from smtpx._codes import describe

if TYPE_CHECKING:
    from smtpx._commands import Command
    from smtpx._enhanced import EnhancedStatus
    from smtpx._reply import Reply


class SMTPError(Exception):
    """Root of every smtpx error.

    ``command`` is the step that failed, ``reply`` the server's reply (None
    when there was none), ``recipient`` the RCPT address the error belongs to,
    ``unexpected`` is True when the command table does not list the code for
    the command, and ``retryable`` says whether a later try may succeed.
    """

    retryable: ClassVar[bool] = False
    #: What went wrong, in a few words, when the error came from no reply.
    summary: ClassVar[str] = "SMTP error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        command: Command | None = None,
        reply: Reply | None = None,
        recipient: str | None = None,
        unexpected: bool = False,
    ) -> None:
        self.detail = detail
        self.command = command
        self.reply = reply
        self.recipient = recipient
        self.unexpected = unexpected
        #: Set by ``send()``: refusals seen before this error, by recipient.
        self.rejected: Mapping[str, SMTPError] = {}
        #: Set by ``send()``: the recipients that did not get the message because of it.
        self.undelivered: tuple[str, ...] = ()
        #: Set by a retrying send that gave up: the error of every failed attempt.
        self.attempts: tuple[SMTPError, ...] = ()
        super().__init__(self._sentence())

    @property
    def code(self) -> int | None:
        return self.reply.code if self.reply is not None else None

    @property
    def enhanced(self) -> EnhancedStatus | None:
        return self.reply.enhanced if self.reply is not None else None

    def _sentence(self) -> str:
        parts = [self.command.label if self.command is not None else "Sending"]
        if self.recipient is not None:
            parts.append(f"<{self.recipient}>")
        head = " ".join(parts)
        if self.reply is None:
            sentence = f"{head} failed: {self.summary}"
            sentence = f"{sentence}: {self.detail}" if self.detail else sentence
            return sentence + self._refusals()
        reply = self.reply
        enhanced = f" {reply.enhanced}" if reply.enhanced is not None else ""
        sentence = f"{head} failed with {reply.code}{enhanced}"
        if reply.message:
            sentence += f": server said {reply.message!r}"
        command_name = self.command.name if self.command is not None else None
        meanings = [f"{reply.code} means {describe(reply.code, command_name)}"]
        if reply.enhanced is not None:
            meanings.append(f"{reply.enhanced} means {reply.enhanced.title.lower()}")
        sentence += " (" + "; ".join(meanings) + ")"
        if self.unexpected:
            sentence += f"; {reply.code} is not a reply the command table lists for this command"
        if self.detail:
            sentence += f". {self.detail}"
        return sentence + self._refusals()

    def _refusals(self) -> str:
        if not self.rejected:
            return ""
        listed = "; ".join(
            f"<{rcpt}> {err.code or type(err).__name__}" for rcpt, err in self.rejected.items()
        )
        return f" [refused: {listed}]"

    def __str__(self) -> str:
        return self._sentence()

    def __repr__(self) -> str:
        code = f" code={self.code}" if self.reply is not None else ""
        enh = f" enhanced={self.enhanced}" if self.enhanced is not None else ""
        cmd = f" command={self.command.name}" if self.command is not None else ""
        rcpt = f" recipient={self.recipient!r}" if self.recipient is not None else ""
        return f"<{type(self).__name__}{cmd}{code}{enh}{rcpt}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only __init__ arguments break the default pickling, and task
        # queues (Celery, arq) pickle exceptions.
        return (_rebuild, (type(self), dict(self.__dict__)))


def _rebuild(cls: type[SMTPError], state: Mapping[str, Any]) -> SMTPError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, error._sentence())
    return error


# -- severities -------------------------------------------------------------


class TransientError(SMTPError):
    """A 4xx reply or a lost connection: the same request may succeed later."""

    retryable = True
    summary = "temporary failure"


class PermanentError(SMTPError):
    """A 5xx reply, or a failure that retrying unchanged will not fix."""

    summary = "permanent failure"


# -- categories (catch across severities) -----------------------------------


class AuthError(SMTPError):
    """Authentication failed or is needed (transient or permanent)."""


class TLSError(SMTPError):
    """TLS could not be set up (transient or permanent)."""


class NetworkError(SMTPError):
    """No usable reply arrived: no connection, lost connection, time-out."""


class MailboxFull(SMTPError):
    """The recipient's mailbox is over quota (transient or permanent)."""


# -- transient ----------------------------------------------------------------


class ServiceUnavailable(TransientError):
    """421: the server is shutting the connection; reconnect later."""


class MailboxBusy(TransientError):
    """450: mailbox busy or temporarily blocked (also greylisting)."""


class LocalError(TransientError):
    """451: the server hit a local error while processing."""


class InsufficientStorage(TransientError):
    """452: the server lacks storage for now."""


class TooManyRecipients(InsufficientStorage):
    """452 4.5.3: too many recipients in this transaction; send the rest in another."""


class MailboxFullTemporary(TransientError, MailboxFull):
    """422, 4xx X.2.2, or 552 to RCPT (RFC 5321 §4.5.3.1.10): mailbox full for now."""


class DomainOverloaded(TransientError):
    """431: too many messages to this domain."""


class NoAnswerFromHost(TransientError):
    """441: the next server did not answer."""


class ConnectionDropped(TransientError):
    """442: the server reports a dropped connection."""


class RoutingLoop(TransientError):
    """446: a mail loop was detected."""


class NotAcceptingMessages(TransientError):
    """453/458/459: the system is not accepting network messages now."""


class ParametersNotAccommodated(TransientError):
    """455: the server cannot accommodate the MAIL/RCPT parameters now."""


class SpamFilterDeferred(TransientError):
    """471: the server's spam filter deferred the message."""


class TLSUnavailable(TransientError, TLSError):
    """454 to STARTTLS: TLS is not available for a temporary reason."""


class AuthUnavailable(TransientError, AuthError):
    """454 to AUTH: temporary authentication failure (RFC 4954)."""


class PasswordTransitionNeeded(TransientError, AuthError):
    """432: the user must change password through another channel (RFC 4954)."""


class ConnectError(TransientError, NetworkError):
    """Could not connect: refused, unreachable, or DNS failure (the table's 101)."""

    summary = "could not connect to the server"


class ConnectTimeout(ConnectError):
    """No connection or no greeting within the time-out."""

    summary = "timed out connecting to the server"


class ConnectionLost(TransientError, NetworkError):
    """The connection closed before the reply arrived; nothing was delivered."""

    summary = "the connection was lost before the server replied"


class ResponseTimeout(TransientError, NetworkError):
    """No reply within the time-out; the connection has been closed."""

    summary = "timed out waiting for the server's reply"


# -- permanent ----------------------------------------------------------------


class CommandUnrecognized(PermanentError):
    """500: the server did not recognise the command (or the line was too long)."""


class InvalidArguments(PermanentError):
    """501: syntax error in parameters or arguments."""


class CommandNotImplemented(PermanentError):
    """502: the server does not implement the command."""


class BadCommandSequence(PermanentError):
    """503: bad sequence of commands."""


class ParameterNotImplemented(PermanentError):
    """504: a command parameter is not implemented."""


class InvalidAddress(PermanentError):
    """510: invalid email address."""


class DomainNotFound(PermanentError):
    """512: the recipient's domain does not resolve."""


class HostDoesNotAcceptMail(PermanentError):
    """521: this host does not accept mail (RFC 7504)."""


class MessageTooLarge(PermanentError):
    """523, or 552 with X.2.3/X.3.4: the message exceeds a size limit."""


class AuthRequired(PermanentError, AuthError):
    """530: authentication required (often after STARTTLS)."""


class AuthMechanismTooWeak(PermanentError, AuthError):
    """534: the server wants a stronger AUTH mechanism."""


class AuthNotOffered(PermanentError, AuthError):
    """Credentials were given but the server offers no AUTH (after TLS, if any)."""

    summary = "the server offers no authentication"


class AuthFailed(PermanentError, AuthError):
    """535 (or 5xx X.7.8 to AUTH): the credentials were rejected."""


class EncryptionRequired(PermanentError, AuthError):
    """538: the AUTH mechanism needs an encrypted connection."""


class SpamRejected(PermanentError):
    """541: rejected by the spam filter."""


class MailboxUnavailable(PermanentError):
    """550: mailbox unavailable (not found, or refused by policy)."""


class NoSuchMailbox(MailboxUnavailable):
    """550 X.1.1: the mailbox does not exist."""


class UserNotLocal(PermanentError):
    """551: user not local; the server names another path."""


class MailboxFullPermanent(PermanentError, MailboxFull):
    """552 outside RCPT: exceeded storage allocation."""


class MailboxNameInvalid(PermanentError):
    """553: mailbox name not allowed."""


class TransactionFailed(PermanentError):
    """554: the transaction failed."""


class NoSMTPService(TransactionFailed):
    """554 as the greeting: no SMTP service here."""


class ParametersNotRecognized(PermanentError):
    """555: MAIL/RCPT parameters not recognised or not implemented."""


class DomainDoesNotAcceptMail(PermanentError):
    """556: the recipient's domain does not accept mail (null MX, RFC 7504)."""


class TLSNotOffered(PermanentError, TLSError):
    """TLS is required but the server does not offer STARTTLS: no plaintext fallback."""

    summary = "TLS is required but the server does not offer STARTTLS"


class TLSHandshakeFailed(PermanentError, TLSError):
    """The TLS handshake failed."""

    summary = "the TLS handshake failed"


class CertificateInvalid(TLSHandshakeFailed):
    """The server's certificate could not be verified (issuer, host name or dates)."""

    summary = "the server's certificate could not be verified"


class TLSModeMismatch(PermanentError, TLSError):
    """The port speaks the other TLS mode: implicit TLS (465) where STARTTLS or plaintext
    was asked for, or plaintext SMTP where implicit TLS was; the message says which."""

    summary = "the server's port uses another TLS mode"


class HostNotFound(PermanentError, NetworkError):
    """The host name does not exist in DNS (EAI_NONAME): no retry will find it.

    A resolver that could not answer (EAI_AGAIN) is a ``ConnectError`` instead."""

    summary = "the host name does not exist"


# -- neither severity --------------------------------------------------------


class DeliveryUnknown(NetworkError):
    """The connection was lost or timed out after the final ``.`` of DATA.

    The server may have accepted the message, so smtpx does not retry it by
    default: a retry could deliver it twice.
    """

    summary = "lost after the message was sent; the server may have accepted it"


class ProtocolError(SMTPError):
    """The server sent something that is not a valid SMTP reply.

    ``raw`` holds the offending bytes when there were any.
    """

    summary = "malformed reply"

    def __init__(
        self,
        detail: str | None = None,
        *,
        raw: bytes | None = None,
        command: Command | None = None,
        reply: Reply | None = None,
        recipient: str | None = None,
        unexpected: bool = False,
    ) -> None:
        self.raw = raw
        super().__init__(
            detail, command=command, reply=reply, recipient=recipient, unexpected=unexpected
        )

    def _sentence(self) -> str:
        sentence = super()._sentence()
        if self.reply is None and self.raw is not None:
            sentence += f" (received {self.raw[:200]!r})"
        return sentence


class UnexpectedReply(ProtocolError):
    """A positive code the command does not allow (354 to RCPT): the session is out of step."""

    summary = "unexpected positive reply"


class UsageError(SMTPError, ValueError):
    """smtpx refused the request before sending anything: a wrong option or input.

    Also a ``ValueError``, as Python's own checks of arguments are."""

    summary = "invalid request"


class InvalidEnvelope(UsageError, ValueError):
    """An envelope address or parameter is malformed or unsafe (CR, LF, NUL, ...)."""

    summary = "invalid envelope"


class ExtensionRequired(UsageError):
    """The message needs an extension (SMTPUTF8, 8BITMIME, SIZE) the server does not offer."""

    summary = "the server lacks an extension this message needs"


class InvalidMessage(UsageError, ValueError):
    """The message content cannot be sent safely (a NUL byte, an over-long line)."""

    summary = "invalid message"


class PlaintextAuthRefused(UsageError):
    """Credentials would be sent over an unencrypted connection; opt in to allow it."""

    summary = "refusing to authenticate over an unencrypted connection"


class RecipientsRefused(SMTPError):
    """Every recipient was refused; ``rejected`` maps each to its own error."""

    summary = "every recipient was refused"


class AllRecipientsDeferred(TransientError, RecipientsRefused):
    """Every recipient was refused, all temporarily: the whole message may be retried."""

    summary = "every recipient was refused temporarily"


class AllRecipientsRejected(PermanentError, RecipientsRefused):
    """Every recipient was refused, at least one permanently."""

    summary = "every recipient was refused, at least one permanently"
