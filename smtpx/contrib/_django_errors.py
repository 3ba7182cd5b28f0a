"""What the Django backend raises: each smtpx error, also as the exception Django's own SMTP
backend (smtplib) raises in the same case, so ``except smtplib.SMTPException`` and
``except OSError`` keep working when an app switches backends.

For an smtpx class and the smtplib (or ``ssl``, ``OSError``) classes of the case, one
subclass of both is made on first use and cached. The error keeps every smtpx attribute,
its ``__cause__`` and its traceback, and gains smtplib's attributes (``smtp_code``,
``smtp_error``, ``sender``, ``recipients``); it pickles. Which smtplib class: read from
``smtplib.SMTP.sendmail``, ``connect``, ``ehlo_or_helo_if_needed``, ``starttls``,
``login`` and ``getreply`` (CPython 3.11-3.13), and Django's ``EmailBackend.open``.

Every recipient refused: smtpx raises an ``ExceptionGroup`` (``smtpx.RecipientsRefused``)
and smtplib an ``OSError`` (``SMTPRecipientsRefused``), and Python cannot make one class
both (their instance layouts differ). The backend raises this module's
:class:`AllRecipientsDeferred` / :class:`AllRecipientsRejected` instead: smtpx errors of
the same severity (and, for one recipient, of that recipient's class), with ``rejected``,
``refusal`` and ``exceptions``, and ``SMTPRecipientsRefused`` with ``recipients``; the
smtpx group itself is their ``__cause__``.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from typing import Any, ClassVar

import smtpx

__all__ = ["AllRecipientsDeferred", "AllRecipientsRejected", "RecipientsRefused", "compatible"]

NO_CODE = -1
"""``smtp_code`` when there was no reply (smtplib's own code for a reply it cannot read)."""


class RecipientsRefused(smtpx.SMTPError, smtplib.SMTPRecipientsRefused):
    """Every recipient was refused: ``rejected`` maps each to its smtpx error, and
    ``recipients`` (smtplib's) each to ``(code, message bytes)``."""

    summary = smtpx.RecipientsRefused.summary
    #: The refusals, like an ``ExceptionGroup``'s (``except*`` works on ``__cause__``).
    exceptions: tuple[smtpx.SMTPError, ...] = ()

    @property
    def refusal(self) -> smtpx.SMTPError | None:
        """The lone recipient's own error, when there was one recipient; else None."""
        return next(iter(self.rejected.values())) if len(self.rejected) == 1 else None


class AllRecipientsDeferred(smtpx.TransientError, RecipientsRefused):
    """``smtpx.AllRecipientsDeferred`` as the Django backend raises it: every refusal was
    transient. Also ``smtplib.SMTPRecipientsRefused``."""

    summary = smtpx.AllRecipientsDeferred.summary


class AllRecipientsRejected(smtpx.PermanentError, RecipientsRefused):
    """``smtpx.AllRecipientsRejected`` as the Django backend raises it: at least one refusal
    was permanent. Also ``smtplib.SMTPRecipientsRefused``."""

    summary = smtpx.AllRecipientsRejected.summary


class _Compatible(smtpx.SMTPError):
    """Mixed into each made class: pickles by the classes it was made from."""

    made_from: ClassVar[tuple[type[BaseException], ...]] = ()

    def __reduce__(self) -> tuple[Any, ...]:
        state = dict(self.__dict__)
        if isinstance(self, OSError):
            state["errno"], state["strerror"] = self.errno, self.strerror
        return (_rebuild, (self.made_from, state, self.args))


for _public in (RecipientsRefused, AllRecipientsDeferred, AllRecipientsRejected):
    _public.__module__ = "smtpx.contrib.django"  # where users import them from

_MADE: dict[tuple[type[BaseException], ...], type[smtpx.SMTPError]] = {}


def _made(bases: tuple[type[BaseException], ...]) -> type[smtpx.SMTPError]:
    made = _MADE.get(bases)
    if made is None:
        first = bases[0]
        extra = ", ".join(f"{b.__module__}.{b.__qualname__}" for b in bases[1:])
        made = type(
            first.__name__,  # what programs print: the smtpx name
            (_Compatible, *bases),
            {"made_from": bases, "__module__": first.__module__, "__doc__": first.__doc__},
        )
        made.__qualname__ = f"{first.__qualname__}[{extra}]" if extra else first.__qualname__
        _MADE[bases] = made
    return made


def _instance(bases: tuple[type[BaseException], ...]) -> smtpx.SMTPError:
    kind = _made(bases)
    # OSError's __new__ for OSError subclasses (ValueError's would refuse a mixed class)
    error: smtpx.SMTPError = (OSError if issubclass(kind, OSError) else Exception).__new__(kind)
    return error


def _rebuild(
    bases: tuple[type[BaseException], ...], state: Mapping[str, Any], args: tuple[Any, ...]
) -> smtpx.SMTPError:
    error = _instance(bases)
    state = dict(state)
    os_error = state.pop("errno", None), state.pop("strerror", None)
    error.__dict__.update(state)
    error.args = args
    if isinstance(error, OSError):
        error.errno, error.strerror = os_error
    return error


def compatible(error: smtpx.SMTPError, *, sender: str | None = None) -> smtpx.SMTPError:
    """*error* as the backend raises it: also the smtplib class of the same case.

    Raise it ``from error.__cause__`` (a group: ``from error``) with *error*'s traceback.
    A ``UsageError`` (a ``ValueError``, as Django raises for a bad address) comes back
    unchanged, as does an error already converted.
    """
    if isinstance(error, _Compatible):
        return error
    if isinstance(error, smtpx.RecipientsRefused):
        return _refused(error)
    classes, args, attributes = _smtplib_case(error, sender)
    if not classes:
        return error
    converted = _instance((type(error), *classes))
    converted.__dict__.update(error.__dict__)
    converted.__dict__.update(attributes)
    converted.args = args or (str(error),)
    cause = _os_cause(error)
    if isinstance(converted, OSError) and cause is not None:
        converted.errno, converted.strerror = cause.errno, cause.strerror
    return converted


def _refused(group: smtpx.RecipientsRefused) -> smtpx.SMTPError:
    kind = AllRecipientsDeferred if group.retryable else AllRecipientsRejected
    lone = group.refusal
    bases: tuple[type[BaseException], ...] = (kind,) if lone is None else (kind, type(lone))
    converted = _instance(bases)
    converted.__dict__.update(group.__dict__)
    recipients = {rcpt: _code_and_text(refusal) for rcpt, refusal in group.rejected.items()}
    converted.__dict__.update(recipients=recipients, exceptions=tuple(group.rejected.values()))
    converted.args = (recipients,)
    return converted


def _smtplib_case(
    error: smtpx.SMTPError, sender: str | None
) -> tuple[tuple[type[BaseException], ...], tuple[Any, ...], dict[str, Any]]:
    """The classes smtplib raises for *error*'s case, their ``args`` and attributes."""
    code, text = _code_and_text(error)
    response = {"smtp_code": code, "smtp_error": text}
    if isinstance(error, smtpx.UsageError):
        if isinstance(error, smtpx.ExtensionRequired):  # sendmail: "SMTPUTF8 not supported"
            return (smtplib.SMTPNotSupportedError,), (), {}
        return (), (), {}
    if error.reply is None:
        by_class = _without_reply(error)
        if by_class is not None:
            return by_class, (), response if issubclass(by_class[0], _RESPONSE) else {}
    command = error.command.name if error.command is not None else None
    if command == "MAIL":
        attributes = {**response, "sender": sender or ""}
        return (smtplib.SMTPSenderRefused,), (code, text, sender or ""), attributes
    if command == "RCPT":  # a 421 (or lost connection) at RCPT: sendmail raises this
        recipients = _recipients_of(error)
        return (smtplib.SMTPRecipientsRefused,), (recipients,), {"recipients": recipients}
    kind = _BY_COMMAND.get(command or "", smtplib.SMTPResponseException)
    return (kind,), (code, text), response


_RESPONSE = smtplib.SMTPResponseException

# Which smtplib class the reply (or the malformed reply) to each command raises.
_BY_COMMAND: dict[str, type[smtplib.SMTPResponseException]] = {
    "CONNECT": smtplib.SMTPConnectError,  # connect(): a greeting other than 220
    "EHLO": smtplib.SMTPHeloError,  # ehlo_or_helo_if_needed()
    "HELO": smtplib.SMTPHeloError,
    "AUTH": smtplib.SMTPAuthenticationError,  # login()
    "DATA": smtplib.SMTPDataError,  # sendmail(): the 354 stage and the final reply
    "DATA_END": smtplib.SMTPDataError,
    "BDAT": smtplib.SMTPDataError,
    # STARTTLS (starttls(): a reply other than 220), RSET, QUIT...: the base class
}

# An established connection that the other side closed or reset
_CLOSED = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)
# Where the OSErrors that smtplib lets through are defined (not aiosmtplib's subclasses)
_PYTHONS_OWN = frozenset({"builtins", "socket", "ssl"})


def _without_reply(error: smtpx.SMTPError) -> tuple[type[BaseException], ...] | None:
    """The classes of a failure that had no reply, by its smtpx class; None: by command."""
    if isinstance(error, smtpx.TLSNotOffered | smtpx.AuthNotOffered):
        return (smtplib.SMTPNotSupportedError,)  # "STARTTLS/SMTP AUTH extension not supported"
    if isinstance(error, smtpx.AuthMechanismTooWeak):
        return (smtplib.SMTPException,)  # login(): "No suitable authentication method found."
    if isinstance(error, smtpx.CertificateInvalid):
        return (ssl.SSLCertVerificationError,)
    if isinstance(error, smtpx.TLSError):
        return (ssl.SSLError,)  # a failed handshake, or TLS spoken to the wrong port
    if isinstance(error, smtpx.ConnectTimeout):
        # smtplib: TimeoutError from connecting, SMTPServerDisconnected from a greeting
        # that did not come in time; smtpx does not tell the two apart
        return (smtplib.SMTPConnectError, smtplib.SMTPServerDisconnected, TimeoutError)
    if isinstance(error, smtpx.ConnectError | smtpx.HostNotFound):
        cause = _os_cause(error)
        seen = (type(cause),) if cause is not None else ()
        if cause is None or isinstance(cause, _CLOSED):
            # connected, then closed before the greeting: getreply() says disconnected
            return (smtplib.SMTPConnectError, smtplib.SMTPServerDisconnected, *seen)
        # refused, unreachable, no such host: smtplib lets the OSError through
        return (smtplib.SMTPConnectError, *seen)
    if isinstance(error, smtpx.NetworkError):
        # ConnectionLost, ResponseTimeout, DeliveryUnknown: getreply() turns a closed
        # connection and a read time-out alike into this
        return (smtplib.SMTPServerDisconnected,)
    if error.command is None:
        return (smtplib.SMTPException,)
    return None


def _os_cause(error: BaseException) -> OSError | None:
    """The first of Python's own OSErrors (ConnectionRefusedError, socket.gaierror...) in
    *error*'s chain of causes, if any."""
    seen: set[int] = set()
    cause = error.__cause__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, OSError) and type(cause).__module__ in _PYTHONS_OWN:
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def _code_and_text(error: smtpx.SMTPError) -> tuple[int, bytes]:
    """smtplib's ``(code, message)`` for *error*: the reply's lines joined by newlines, as
    getreply() joins them, or :data:`NO_CODE` and the error's sentence."""
    reply = error.reply
    if reply is None:
        return NO_CODE, str(error).encode("utf-8", "replace")
    return reply.code, "\n".join(reply.lines).encode("utf-8", "surrogateescape")


def _recipients_of(error: smtpx.SMTPError) -> dict[str, tuple[int, bytes]]:
    """smtplib's ``recipients`` for a failure at RCPT: those refused before it with their
    own replies, then the rest with its reply."""
    recipients = {rcpt: _code_and_text(refusal) for rcpt, refusal in error.rejected.items()}
    for rcpt in (error.recipient, *error.undelivered):
        if rcpt is not None:
            recipients.setdefault(rcpt, _code_and_text(error))
    return recipients
