# Long on purpose (~900 lines): the whole exception tree in one place, so it reads as one.
"""Every way sending mail can fail, as one exception tree.

Each concrete class has one meaning and one severity; categories that cut
across severities (auth, TLS, network, mailbox full, blocklisted...) are bases
you can catch too.  The code (with the command and the enhanced code) gives
the class; what the reply says (its ``reason``) may refine it to a more
specific class of the same severity.  ``*`` marks a category base::

    SMTPError                         .command .reply .code .enhanced .recipient .reason .retryable
    ├── TransientError                4xx and lost connections: a later try may succeed
    │   ├── ServiceUnavailable        421, the server is closing the connection
    │   ├── MailboxBusy               450
    │   ├── Greylisted                4xx that says greylisted: retry after minutes
    │   ├── LocalError                451
    │   ├── InsufficientStorage       452
    │   │   └── TooManyRecipients     452 4.5.3 (and 552 5.5.3 to RCPT)
    │   ├── MailboxFullTemporary      422, 4xx X.2.2, 552 to RCPT        (MailboxFull)
    │   ├── MailboxDisabledTemporary  4xx: account disabled for now      (MailboxDisabled)
    │   ├── DomainOverloaded          431
    │   ├── NoAnswerFromHost          441
    │   ├── ConnectionDropped         442
    │   ├── RoutingLoop               446
    │   ├── NotAcceptingMessages      453, 458, 459
    │   ├── ParametersNotAccommodated 455
    │   ├── SpamFilterDeferred        471, 4xx naming spam               (SpamFiltered)
    │   ├── BlocklistedTemporary      4xx naming a blocklist             (Blocklisted)
    │   ├── BadReputationTemporary    4xx about the sender's reputation  (BadReputation)
    │   ├── RateLimitedTemporary      4xx rate limit: slow down          (RateLimited)
    │   ├── SenderAuthFailedTemporary 4xx SPF/DKIM/DMARC                 (SenderAuthFailed)
    │   ├── RelayDeniedTemporary      4xx relay refused                  (RelayDenied)
    │   ├── PolicyRejectedTemporary   4xx local policy                   (PolicyRejected)
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
    │   ├── DomainNotFound            512, 5xx saying host/domain unknown
    │   ├── HostDoesNotAcceptMail     521, 5xx saying it accepts no mail
    │   ├── MessageTooLarge           523, 552 X.2.3 / X.3.4, 5xx saying so
    │   ├── AuthRequired              530, 5xx saying so                 (AuthError)
    │   ├── AuthMechanismTooWeak      534; or no mechanism smtpx knows   (AuthError)
    │   ├── AuthNotOffered            credentials given, server has no AUTH (AuthError)
    │   ├── AuthFailed                535, 5xx X.7.8 to AUTH             (AuthError)
    │   │   └── OAuthRejected         535 after an OAuth2 error challenge, twice (AuthError)
    │   ├── EncryptionRequired        538                                (AuthError)
    │   ├── SpamRejected              541, 5xx naming spam               (SpamFiltered)
    │   ├── MailboxUnavailable        550
    │   │   └── NoSuchMailbox         550 X.1.1, 5xx saying user unknown
    │   ├── UserNotLocal              551, 5xx saying the mailbox moved
    │   ├── MailboxFullPermanent      552, 5xx saying so                 (MailboxFull)
    │   ├── MailboxDisabledPermanent  5xx: account disabled              (MailboxDisabled)
    │   ├── BlocklistedPermanent      5xx naming a blocklist             (Blocklisted)
    │   ├── BadReputationPermanent    5xx about the sender's reputation  (BadReputation)
    │   ├── RateLimitedPermanent      5xx rate or quota limit            (RateLimited)
    │   ├── SenderAuthFailedPermanent 5xx SPF/DKIM/DMARC failure         (SenderAuthFailed)
    │   ├── RelayDeniedPermanent      5xx relay refused                  (RelayDenied)
    │   ├── PolicyRejectedPermanent   5xx local policy, X.7.x            (PolicyRejected)
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
    ├── OAuthTokenError               the OAuth2 token provider failed   (AuthError)
    ├── DeliveryUnknown               lost after the final "."; maybe delivered (NetworkError)
    ├── ProtocolError                 a reply that is not SMTP: bad code, bad framing
    │   └── UnexpectedReply           a positive code the command does not allow
    ├── UsageError                    refused before sending: bad option or input (also ValueError)
    │   ├── InvalidEnvelope           bad envelope address or parameter  (also ValueError)
    │   ├── InvalidMessage            message bytes that cannot be sent safely (also ValueError)
    │   ├── ExtensionRequired         the message needs SMTPUTF8/8BITMIME the server lacks
    │   └── PlaintextAuthRefused      credentials would cross an unencrypted connection
    └── RecipientsRefused *           every recipient refused; an ExceptionGroup of their errors
        ├── AllRecipientsDeferred     every refusal was transient        (TransientError)
        └── AllRecipientsRejected     at least one refusal was permanent (PermanentError)

``*`` categories: ``AuthError``, ``TLSError``, ``NetworkError``, ``MailboxFull``,
``MailboxDisabled``, ``Blocklisted``, ``BadReputation``, ``RateLimited``,
``SenderAuthFailed``, ``RelayDenied``, ``SpamFiltered``, ``PolicyRejected``,
``RecipientsRefused``.  With a single recipient, ``AllRecipientsDeferred`` and
``AllRecipientsRejected`` are also of that recipient's own class
(``except smtpx.MailboxFull`` catches them).

A 421 stays ``ServiceUnavailable`` whatever its text says (the server is
closing the connection, which decides what smtpx does next); so do the answers
to AUTH and STARTTLS and a 554 greeting: their ``reason`` still says why.

An error raised by ``send()`` also carries ``rejected`` (the recipients refused
before it, each with its own error) and ``undelivered`` (the recipients that did
not get the message because of it), so no refusal is ever lost.

The aiosmtplib, ``ssl`` or ``OSError`` exception behind an error stays
available as ``__cause__``.  No message ever contains credentials.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from smtpx._codes import describe
from smtpx._explain import explain
from smtpx._reasons import Reason

if TYPE_CHECKING:
    from smtpx._commands import Command
    from smtpx._enhanced import EnhancedStatus
    from smtpx._reply import Reply

__all__ = [
    "AllRecipientsDeferred",
    "AllRecipientsRejected",
    "AuthError",
    "AuthFailed",
    "AuthMechanismTooWeak",
    "AuthNotOffered",
    "AuthRequired",
    "AuthUnavailable",
    "BadCommandSequence",
    "BadReputation",
    "BadReputationPermanent",
    "BadReputationTemporary",
    "Blocklisted",
    "BlocklistedPermanent",
    "BlocklistedTemporary",
    "CertificateInvalid",
    "CommandNotImplemented",
    "CommandUnrecognized",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionDropped",
    "ConnectionLost",
    "DeliveryUnknown",
    "DomainDoesNotAcceptMail",
    "DomainNotFound",
    "DomainOverloaded",
    "EncryptionRequired",
    "ExtensionRequired",
    "Greylisted",
    "HostDoesNotAcceptMail",
    "HostNotFound",
    "InsufficientStorage",
    "InvalidAddress",
    "InvalidArguments",
    "InvalidEnvelope",
    "InvalidMessage",
    "LocalError",
    "MailboxBusy",
    "MailboxDisabled",
    "MailboxDisabledPermanent",
    "MailboxDisabledTemporary",
    "MailboxFull",
    "MailboxFullPermanent",
    "MailboxFullTemporary",
    "MailboxNameInvalid",
    "MailboxUnavailable",
    "MessageTooLarge",
    "NetworkError",
    "NoAnswerFromHost",
    "NoSMTPService",
    "NoSuchMailbox",
    "NotAcceptingMessages",
    "OAuthRejected",
    "OAuthTokenError",
    "ParameterNotImplemented",
    "ParametersNotAccommodated",
    "ParametersNotRecognized",
    "PasswordTransitionNeeded",
    "PermanentError",
    "PlaintextAuthRefused",
    "PolicyRejected",
    "PolicyRejectedPermanent",
    "PolicyRejectedTemporary",
    "ProtocolError",
    "RateLimited",
    "RateLimitedPermanent",
    "RateLimitedTemporary",
    "RecipientsRefused",
    "RelayDenied",
    "RelayDeniedPermanent",
    "RelayDeniedTemporary",
    "ResponseTimeout",
    "RoutingLoop",
    "SMTPError",
    "SenderAuthFailed",
    "SenderAuthFailedPermanent",
    "SenderAuthFailedTemporary",
    "ServiceUnavailable",
    "SpamFilterDeferred",
    "SpamFiltered",
    "SpamRejected",
    "TLSError",
    "TLSHandshakeFailed",
    "TLSModeMismatch",
    "TLSNotOffered",
    "TLSUnavailable",
    "TooManyRecipients",
    "TransactionFailed",
    "TransientError",
    "UnexpectedReply",
    "UsageError",
    "UserNotLocal",
]


class SMTPError(Exception):
    """Root of every smtpx error.

    ``command`` is the step that failed, ``reply`` the server's reply (None
    when there was none), ``recipient`` the RCPT address the error belongs to,
    ``unexpected`` is True when the command table does not list the code for
    the command, and ``retryable`` says whether a later try may succeed.
    ``reason`` (a ``Reason``) says why, in the words senders act on: from the
    reply (``smtpx.explain``) when there is one, else the class's own
    ``default_reason`` (``other`` when nothing specific is known); never None.
    """

    retryable: ClassVar[bool] = False
    #: What went wrong, in a few words, when the error came from no reply.
    summary: ClassVar[str] = "SMTP error"
    #: The reason of an error of this class that came from no reply.
    default_reason: ClassVar[Reason] = Reason.OTHER

    def __init__(
        self,
        detail: str | None = None,
        *,
        command: Command | None = None,
        reply: Reply | None = None,
        recipient: str | None = None,
        unexpected: bool = False,
        reason: Reason | None = None,
    ) -> None:
        self.detail = detail
        self.command = command
        self.reply = reply
        self.recipient = recipient
        self.unexpected = unexpected
        if reason is None:
            reason = explain(command, reply) if reply is not None else self.default_reason
        #: Why the server refused (``smtpx.Reason``); ``other`` when nothing specific is known.
        self.reason: Reason = reason
        #: Set by ``send()``: refusals seen before this error, by recipient.
        self.rejected: Mapping[str, SMTPError] = {}
        #: Set by ``send()``: the recipients that did not get the message because of it.
        self.undelivered: tuple[str, ...] = ()
        #: Set by a retrying send that gave up: the error of every failed attempt.
        self.attempts: tuple[SMTPError, ...] = ()
        super().__init__(self._sentence())

    # ``args`` is the sentence of the error as it is now, not as it was made: ``send()``
    # adds the command, the recipient and the refusals after the error exists (see
    # ``enrich``), and loggers, Celery and Sentry read ``args``.  An ``args`` assigned
    # explicitly (the smtplib-shaped ones of the Django backend) stands as given.
    @property
    def args(self) -> tuple[Any, ...]:
        given: tuple[Any, ...] | None = self.__dict__.get("_given_args")
        return given if given is not None else (self._sentence(),)

    @args.setter
    def args(self, value: Iterable[Any]) -> None:
        self.__dict__["_given_args"] = tuple(value)

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

        # Each meaning is said once: one the server's own words already say is left out,
        # and codes that mean the same share it ("535 5.7.8 means ...").
        def words(text: str) -> str:
            return " ".join("".join(c if c.isalnum() else " " for c in text.casefold()).split())

        explained = [(str(reply.code), describe(reply.code, command_name))]
        if reply.enhanced is not None:
            explained.append((str(reply.enhanced), reply.enhanced.title.lower()))
        server_said = words(reply.message)
        labels: dict[str, list[str]] = {}  # meaning -> the codes that mean it, in order
        meanings: dict[str, str] = {}
        for label, meaning in explained:
            if words(meaning) != server_said:
                labels.setdefault(words(meaning), []).append(label)
                meanings.setdefault(words(meaning), meaning)
        if labels:
            said = [f"{' '.join(codes)} means {meanings[key]}" for key, codes in labels.items()]
            sentence += " (" + "; ".join(said) + ")"
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
    return error


_E = TypeVar("_E", bound=SMTPError)
_KEEP: Any = object()  # "leave this attribute as it is"


def enrich(
    error: _E,
    *,
    command: Command | None = _KEEP,
    recipient: str | None = _KEEP,
    rejected: Mapping[str, SMTPError] = _KEEP,
    undelivered: Iterable[str] = _KEEP,
    attempts: Iterable[SMTPError] = _KEEP,
) -> _E:
    """Add to ``error`` what the code around the failure knows: the command and recipient
    it belongs to, the refusals before it, who did not get the message, the attempts.

    The one place an error changes after it is made; ``str(error)`` and ``error.args``
    are computed from these attributes, so they say the final state.  Returns ``error``.
    """
    if command is not _KEEP:
        error.command = command
    if recipient is not _KEEP:
        error.recipient = recipient
    if rejected is not _KEEP:
        error.rejected = dict(rejected)
    if undelivered is not _KEEP:
        error.undelivered = tuple(undelivered)
    if attempts is not _KEEP:
        error.attempts = tuple(attempts)
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

    default_reason = Reason.MAILBOX_FULL


class MailboxDisabled(SMTPError):
    """The recipient's account is disabled, suspended or inactive (transient or permanent)."""

    default_reason = Reason.MAILBOX_DISABLED


class Blocklisted(SMTPError):
    """The sending IP address or domain is on a blocklist (DNSBL or the provider's own)."""

    default_reason = Reason.BLOCKLISTED


class BadReputation(SMTPError):
    """The provider distrusts the sender: complaints, volume, poor IP or domain reputation."""

    default_reason = Reason.BAD_REPUTATION


class RateLimited(SMTPError):
    """Too many connections, messages or recipients in too short a time: slow down."""

    default_reason = Reason.RATE_LIMITED


class SenderAuthFailed(SMTPError):
    """The sender's domain failed SPF, DKIM or DMARC checks."""

    default_reason = Reason.SENDER_AUTH_FAILED


class RelayDenied(SMTPError):
    """The server will not relay to that recipient for this client or sender."""

    default_reason = Reason.RELAY_DENIED


class SpamFiltered(SMTPError):
    """The server's spam filter refused the message's content (transient or permanent)."""

    default_reason = Reason.SPAM_CONTENT


class PolicyRejected(SMTPError):
    """Refused by the receiving site's policy, with no more specific reason given."""

    default_reason = Reason.POLICY


# -- transient ----------------------------------------------------------------


class ServiceUnavailable(TransientError):
    """421: the server is shutting the connection; reconnect later."""


class MailboxBusy(TransientError):
    """450: mailbox busy or temporarily blocked."""


class Greylisted(TransientError):
    """A first delivery attempt deferred on purpose (greylisting): retry after a few minutes."""

    default_reason = Reason.GREYLISTED


class LocalError(TransientError):
    """451: the server hit a local error while processing."""


class InsufficientStorage(TransientError):
    """452: the server lacks storage for now."""


class TooManyRecipients(InsufficientStorage):
    """452 4.5.3: too many recipients in this transaction; send the rest in another."""

    default_reason = Reason.TOO_MANY_RECIPIENTS


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

    default_reason = Reason.NOT_ACCEPTING


class ParametersNotAccommodated(TransientError):
    """455: the server cannot accommodate the MAIL/RCPT parameters now."""


class SpamFilterDeferred(TransientError, SpamFiltered):
    """471, or a 4xx that names spam: the server's spam filter deferred the message."""


class MailboxDisabledTemporary(TransientError, MailboxDisabled):
    """A 4xx saying the recipient's account is disabled or locked for now."""


class BlocklistedTemporary(TransientError, Blocklisted):
    """A 4xx naming a blocklist: deferred while the sending host is listed."""


class BadReputationTemporary(TransientError, BadReputation):
    """A 4xx about the sender's reputation (Yahoo TS deferrals, Outlook 4.7.650)."""


class RateLimitedTemporary(TransientError, RateLimited):
    """A 4xx rate limit: retry later, and more slowly."""


class SenderAuthFailedTemporary(TransientError, SenderAuthFailed):
    """A 4xx SPF/DKIM/DMARC result (a temporary DNS error in the check, for instance)."""


class RelayDeniedTemporary(TransientError, RelayDenied):
    """A 4xx relay refusal (Postfix defer_unauth_destination)."""


class PolicyRejectedTemporary(TransientError, PolicyRejected):
    """A 4xx refusal by local policy."""


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
    """512, or a reply saying the domain or host is unknown: the recipient's domain does not
    resolve."""

    default_reason = Reason.HOST_UNKNOWN


class HostDoesNotAcceptMail(PermanentError):
    """521: this host does not accept mail (RFC 7504)."""

    default_reason = Reason.NOT_ACCEPTING


class MessageTooLarge(PermanentError):
    """523, 552 with X.2.3/X.3.4, or a reply saying so: the message exceeds a size limit."""

    default_reason = Reason.MESSAGE_TOO_LARGE


class AuthRequired(PermanentError, AuthError):
    """530, or a 5xx saying so: authentication required (often after STARTTLS)."""

    default_reason = Reason.AUTH_REQUIRED


class AuthMechanismTooWeak(PermanentError, AuthError):
    """534: the server wants a stronger AUTH mechanism."""


class AuthNotOffered(PermanentError, AuthError):
    """Credentials were given but the server offers no AUTH (after TLS, if any)."""

    summary = "the server offers no authentication"


class AuthFailed(PermanentError, AuthError):
    """535 (or 5xx X.7.8 to AUTH): the credentials were rejected."""

    default_reason = Reason.AUTH_FAILED


class OAuthRejected(AuthFailed):
    """An OAuth2 access token refused twice (the second a fresh one from the token
    provider): the server's error challenge (RFC 7628 §3.2.2), decoded.

    ``status`` (``"invalid_token"``, or an HTTP code such as ``"401"`` from Gmail),
    ``scope`` (the scope the token needs) and ``schemes`` are None when the server did
    not say; ``oauth_status`` holds every string member of its JSON."""

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: Mapping[str, str] | None = None,
        **context: Any,
    ) -> None:
        self.oauth_status: Mapping[str, str] = dict(status or {})
        said = ", ".join(f"{k}={v!r}" for k, v in self.oauth_status.items())
        if detail is None:
            detail = f"the access token was refused ({said})" if said else None
        super().__init__(detail, **context)

    @property
    def status(self) -> str | None:
        return self.oauth_status.get("status")

    @property
    def scope(self) -> str | None:
        return self.oauth_status.get("scope")

    @property
    def schemes(self) -> str | None:
        return self.oauth_status.get("schemes")


class OAuthTokenError(AuthError):
    """The OAuth2 token provider raised (its exception is the ``__cause__``) or returned
    something that is not a bearer token; nothing was sent with it."""

    summary = "no OAuth2 access token"


class EncryptionRequired(PermanentError, AuthError):
    """538: the AUTH mechanism needs an encrypted connection."""

    default_reason = Reason.TLS_REQUIRED


class SpamRejected(PermanentError, SpamFiltered):
    """541, or a 5xx that names spam: rejected by the spam filter."""


class MailboxUnavailable(PermanentError):
    """550: mailbox unavailable (not found, or refused by policy)."""


class NoSuchMailbox(MailboxUnavailable):
    """550 X.1.1, or a 5xx saying the user is unknown: the mailbox does not exist."""

    default_reason = Reason.USER_UNKNOWN


class UserNotLocal(PermanentError):
    """551, or a 5xx saying the mailbox has moved: user not local; the server may name
    another path."""

    default_reason = Reason.HAS_MOVED


class MailboxFullPermanent(PermanentError, MailboxFull):
    """552 outside RCPT, or a 5xx saying so: exceeded storage allocation."""


class MailboxDisabledPermanent(PermanentError, MailboxDisabled):
    """A 5xx saying the recipient's account is disabled, suspended or inactive."""


class BlocklistedPermanent(PermanentError, Blocklisted):
    """A 5xx naming a blocklist (Spamhaus, Outlook's banned IPs...): get delisted first."""


class BadReputationPermanent(PermanentError, BadReputation):
    """A 5xx about the sender's reputation (Gmail 'very low reputation')."""


class RateLimitedPermanent(PermanentError, RateLimited):
    """A 5xx rate or quota limit (a daily sending quota): this message is refused."""


class SenderAuthFailedPermanent(PermanentError, SenderAuthFailed):
    """A 5xx SPF/DKIM/DMARC failure (Gmail 5.7.26, Outlook 5.7.509)."""


class RelayDeniedPermanent(PermanentError, RelayDenied):
    """A 5xx relay refusal (Postfix 'Relay access denied')."""


class PolicyRejectedPermanent(PermanentError, PolicyRejected):
    """A 5xx refusal by local policy (X.7.x with no more specific reason)."""


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

    default_reason = Reason.NOT_ACCEPTING


class TLSNotOffered(PermanentError, TLSError):
    """TLS is required but the server does not offer STARTTLS: no plaintext fallback."""

    summary = "TLS is required but the server does not offer STARTTLS"
    default_reason = Reason.TLS_REQUIRED


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


class RecipientsRefused(SMTPError, ExceptionGroup):
    """Every recipient was refused; ``rejected`` maps each to its own error.

    It is also an ``ExceptionGroup`` of those refusals, so ``except*`` picks them
    apart: ``except* smtpx.NoSuchMailbox`` gets the unknown addresses,
    ``except* smtpx.TransientError`` the whole group when every refusal was
    transient.  (Python does not let ``except*`` name an exception group class
    itself: catch ``RecipientsRefused`` with a plain ``except``.)

    When there was a single recipient, the error is also an instance of that
    recipient's own error class, so ``except smtpx.MailboxFull`` catches a lone
    recipient's full mailbox; ``refusal`` is then that error.  ``reason`` is the
    refusals' reason when they share one, else ``other``.
    """

    summary = "every recipient was refused"

    def __new__(
        cls,
        detail: str | None = None,
        *,
        refusals: Mapping[str, SMTPError] | None = None,
        **_: Any,
    ) -> RecipientsRefused:
        errors = list((refusals or {}).values()) or [SMTPError("no refusal was recorded")]
        return super().__new__(cls, cls.summary, errors)

    def __init__(
        self,
        detail: str | None = None,
        *,
        refusals: Mapping[str, SMTPError] | None = None,
        command: Command | None = None,
        **options: Any,
    ) -> None:
        refusals = dict(refusals or {})
        reasons = {error.reason for error in refusals.values()}
        options.setdefault("reason", reasons.pop() if len(reasons) == 1 else Reason.OTHER)
        super().__init__(detail, command=command, **options)
        enrich(self, rejected=refusals)

    @property
    def refusal(self) -> SMTPError | None:
        """The lone recipient's own error, when there was one recipient; else None."""
        return next(iter(self.rejected.values())) if len(self.rejected) == 1 else None

    def __reduce__(self) -> tuple[Any, ...]:
        kind = type(self)
        spec = (kind.__bases__[0], kind.__bases__[1]) if kind.__dict__.get("lone") else (kind,)
        return (_rebuild_refused, (spec, dict(self.__dict__), list(self.exceptions)))


def _rebuild_refused(
    spec: tuple[type[Any], ...], state: Mapping[str, Any], errors: list[SMTPError]
) -> RecipientsRefused:
    kind = _lone_class(*spec) if len(spec) == 2 else spec[0]
    error: RecipientsRefused = BaseExceptionGroup.__new__(kind, kind.summary, errors)
    error.__dict__.update(state)
    return error


class AllRecipientsDeferred(TransientError, RecipientsRefused):
    """Every recipient was refused, all temporarily: the whole message may be retried."""

    summary = "every recipient was refused temporarily"


class AllRecipientsRejected(PermanentError, RecipientsRefused):
    """Every recipient was refused, at least one permanently."""

    summary = "every recipient was refused, at least one permanently"


def recipients_refused(
    refusals: Mapping[str, SMTPError], *, command: Command | None = None
) -> RecipientsRefused:
    """The error for a transaction in which every recipient was refused.

    ``AllRecipientsDeferred`` when every refusal was transient, else
    ``AllRecipientsRejected``; for a single recipient, of a class that is also
    that recipient's own error class.
    """
    transient = all(error.retryable for error in refusals.values())
    kind: type[RecipientsRefused] = AllRecipientsDeferred if transient else AllRecipientsRejected
    if len(refusals) == 1:
        (refusal,) = refusals.values()
        kind = _lone_class(kind, type(refusal))
    return kind(refusals=refusals, command=command)


_LONE: dict[tuple[type[RecipientsRefused], type[SMTPError]], type[RecipientsRefused]] = {}


def _lone_class(
    kind: type[RecipientsRefused], refusal: type[SMTPError]
) -> type[RecipientsRefused]:
    # One class per (group, refusal class) pair, made on first use: named like the group
    # (what programs print), qualified with the refusal class (what tracebacks show).
    if issubclass(refusal, RecipientsRefused):
        return kind
    lone = _LONE.get((kind, refusal))
    if lone is None:
        lone = type(kind.__name__, (kind, refusal), {"lone": True, "__module__": __name__})
        lone.__qualname__ = f"{kind.__name__}[{refusal.__name__}]"
        lone.__doc__ = kind.__doc__
        _LONE[kind, refusal] = lone
    return lone
