"""A Django email backend that sends with smtpx: typed errors, per-recipient results, retry.

Install ``smtpx[django]`` and set::

    EMAIL_BACKEND = "smtpx.contrib.django.EmailBackend"

(with Django's ``MAILERS``: ``"BACKEND": "smtpx.contrib.django.EmailBackend"``, the same
options in ``"OPTIONS"``, in lower case: ``host``, ``port``, ``use_tls``...).

It reads every setting Django's SMTP backend reads (``EMAIL_HOST``, ``EMAIL_PORT``,
``EMAIL_HOST_USER``, ``EMAIL_HOST_PASSWORD``, ``EMAIL_USE_TLS``, ``EMAIL_USE_SSL``,
``EMAIL_TIMEOUT``, ``EMAIL_SSL_CERTFILE``, ``EMAIL_SSL_KEYFILE``; the messages
themselves read ``EMAIL_USE_LOCALTIME`` and ``DEFAULT_CHARSET``), says EHLO with
Django's cached ``DNS_NAME`` as Django does, and these:

``SMTPX_RETRY`` (option ``retry``)
    ``None`` (the default: one attempt), a number of attempts, or a
    :class:`smtpx.RetryPolicy`. Retries resend only to the recipients still pending, and
    block the calling thread while they wait: keep them short in a request.
``SMTPX_TLS`` (option ``tls``)
    A :class:`smtpx.TLSMode` (or its value, ``"opportunistic"``...) that overrides
    ``EMAIL_USE_TLS`` / ``EMAIL_USE_SSL``. Like Django, the backend sends in plain text
    when neither is set; ``EMAIL_USE_TLS`` *requires* STARTTLS (``TLSNotOffered`` when the
    server lacks it) and verifies the certificate.
``SMTPX_ALLOW_PLAINTEXT_AUTH`` (option ``allow_plaintext_auth``)
    ``False`` by default: smtpx refuses to send a password over an unencrypted
    connection (``PlaintextAuthRefused``), even where Django's backend would.
``SMTPX_LOG_LEVEL`` (option ``log_level``)
    The level at which refusals and silenced failures are logged on the
    ``smtpx.contrib.django`` logger, each with its reason (``smtpx.Reason``): a level
    name or number, ``"WARNING"`` by default; ``None`` logs nothing.
``SMTPX_OPTIONS`` (option ``client_options``)
    Other :class:`smtpx.Client` arguments, e.g. ``{"local_hostname": "web1.example.com"}``.
``SMTPX_DRY_RUN`` (option ``dry_run``)
    ``False`` by default. ``True``: every message is prepared and checked as for
    sending, then printed to standard output instead (smtpx's ``dry_run=True``; a
    ``"sink"`` in ``SMTPX_OPTIONS`` takes it elsewhere); nothing connects, and each
    message counts as sent. Django's console backend, with smtpx's checks.
``SMTPX_OUTBOX``
    ``None`` (the default: send inline), or the path of a :class:`smtpx.outbox.Outbox`
    database. Then ``send_messages`` does not connect at all: it stores each message in
    the outbox (on disk before it returns) and a worker, ``smtpx outbox run PATH ...``,
    delivers it, retrying as the outbox does. A ``Message-ID`` you set (in ``headers``)
    is the idempotency key: storing that message twice stores it once.

``send_messages`` returns how many messages at least one recipient accepted (with
``SMTPX_OUTBOX``: how many were stored). A message
some recipients refused still counts; each refusal is logged. With
``fail_silently=False`` a failure raises its typed :class:`smtpx.SMTPError`
(``AuthFailed``, ...), which is also the exception Django's SMTP backend raises in that
case (``smtplib.SMTPAuthenticationError``..., so ``except smtplib.SMTPException`` and
``except OSError`` still work). Every recipient refused raises this module's
:class:`AllRecipientsRejected` or :class:`AllRecipientsDeferred`, also
``smtplib.SMTPRecipientsRefused``. With ``fail_silently=True`` the failure is logged and
the message is not counted.

Django's mail API is synchronous: the backend runs smtpx on a private event loop in a
background thread, for as long as the connection is open, so it works from any thread,
even one that is running an event loop.
"""

from __future__ import annotations

import email.message
import logging
import os
import ssl
import threading
from collections.abc import Sequence
from email.utils import parseaddr
from typing import Any, NoReturn

from django.conf import settings  # type: ignore[import-untyped]
from django.core.mail.backends.base import BaseEmailBackend  # type: ignore[import-untyped]
from django.core.mail.utils import DNS_NAME  # type: ignore[import-untyped]

import smtpx
from smtpx.config import tls_mode
from smtpx.contrib._django_errors import (
    AllRecipientsDeferred,
    AllRecipientsRejected,
    RecipientsRefused,
    compatible,
)
from smtpx.loopthread import LoopThread
from smtpx.outbox import Outbox, StorageError

__all__ = ["AllRecipientsDeferred", "AllRecipientsRejected", "EmailBackend", "RecipientsRefused"]

logger = logging.getLogger("smtpx.contrib.django")


def _tls_mode(use_tls: bool, use_ssl: bool, override: object) -> smtpx.TLSMode:
    if override is not None:
        return tls_mode(override)
    if use_ssl:
        return smtpx.TLSMode.IMPLICIT
    return smtpx.TLSMode.STARTTLS if use_tls else smtpx.TLSMode.NONE


def _retry_policy(setting: object) -> smtpx.RetryPolicy | None:
    if setting is None or isinstance(setting, smtpx.RetryPolicy):
        return setting
    if isinstance(setting, int) and not isinstance(setting, bool) and setting >= 1:
        return smtpx.RetryPolicy(attempts=setting) if setting > 1 else None
    raise smtpx.UsageError(
        f"SMTPX_RETRY must be None, a number of attempts or a RetryPolicy: {setting!r}"
    )


def _outbox_path(setting: object) -> str | None:
    if setting is None or isinstance(setting, str | os.PathLike):
        return None if setting is None else os.fspath(setting)
    raise smtpx.UsageError(f"SMTPX_OUTBOX must be None or a database path, not {setting!r}")


def _log_level(setting: object) -> int | None:
    if setting is None:
        return None
    if isinstance(setting, str) and isinstance(logging.getLevelName(setting.upper()), int):
        level: int = logging.getLevelName(setting.upper())
        return level
    if isinstance(setting, int) and not isinstance(setting, bool) and setting >= 0:
        return setting
    raise smtpx.UsageError(
        f'SMTPX_LOG_LEVEL must be a logging level ("WARNING", 30) or None: {setting!r}'
    )


def _address(value: object) -> str:
    """The bare address of ``"Name <a@example.com>"`` (Django allows display names)."""
    return parseaddr(str(value))[1] or str(value)


def _content(message: Any) -> bytes | email.message.Message:
    built = message.message()
    if isinstance(built, email.message.EmailMessage):
        return built  # Django 6+: a standard-library EmailMessage; smtpx serialises it
    # Django 5 and earlier: SafeMIME* classes, whose as_bytes takes a line separator
    data: bytes = built.as_bytes(linesep="\r\n")
    return data


class EmailBackend(BaseEmailBackend):  # type: ignore[misc]  # Django is untyped
    """Django email backend on smtpx. Arguments override the settings of the same name;
    created by Django's ``MAILERS`` (an ``alias`` is given), it reads its ``OPTIONS``
    only, as Django's SMTP backend does."""

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool | None = None,
        fail_silently: bool = False,
        use_ssl: bool | None = None,
        timeout: float | None = None,
        ssl_keyfile: str | None = None,
        ssl_certfile: str | None = None,
        retry: int | smtpx.RetryPolicy | None = None,
        tls: smtpx.TLSMode | str | None = None,
        allow_plaintext_auth: bool | None = None,
        log_level: int | str | None = None,
        client_options: dict[str, Any] | None = None,
        dry_run: bool | None = None,
        **kwargs: Any,
    ) -> None:
        # Django 6.1 and later take fail_silently here, not in the base class (which warns
        # about it); Django 5 sets it in the base class. This works with both.
        super().__init__(**kwargs)
        self.fail_silently = fail_silently
        self.alias: str | None = kwargs.get("alias")  # Django 6.1+'s base sets it too
        if self.alias is None:  # settings.EMAIL_*, as before MAILERS
            self.host: str = host or settings.EMAIL_HOST
            self.port: int = port or settings.EMAIL_PORT
            self.username: str = settings.EMAIL_HOST_USER if username is None else username
            self.password: str = settings.EMAIL_HOST_PASSWORD if password is None else password
            self.use_tls: bool = settings.EMAIL_USE_TLS if use_tls is None else use_tls
            self.use_ssl: bool = settings.EMAIL_USE_SSL if use_ssl is None else use_ssl
            self.timeout: float | None = settings.EMAIL_TIMEOUT if timeout is None else timeout
            self.ssl_keyfile = settings.EMAIL_SSL_KEYFILE if ssl_keyfile is None else ssl_keyfile
            self.ssl_certfile = (
                settings.EMAIL_SSL_CERTFILE if ssl_certfile is None else ssl_certfile
            )
        else:  # MAILERS: the OPTIONS only; the port by TLS mode, as Django's backend
            if host is None:
                raise smtpx.UsageError(f"MAILERS[{self.alias!r}]: OPTIONS must define 'host'")
            self.host, self.username, self.password = host, username or "", password or ""
            self.use_tls, self.use_ssl = bool(use_tls), bool(use_ssl)
            self.timeout, self.ssl_keyfile, self.ssl_certfile = timeout, ssl_keyfile, ssl_certfile
            self.port = port or (465 if self.use_ssl else 587 if self.use_tls else 25)
        if self.use_ssl and self.use_tls:
            raise smtpx.UsageError(
                "EMAIL_USE_TLS/EMAIL_USE_SSL are mutually exclusive, so only set "
                "one of those settings to True."
            )
        self.tls = _tls_mode(self.use_tls, self.use_ssl, _setting(tls, "SMTPX_TLS"))
        self.retry = _retry_policy(_setting(retry, "SMTPX_RETRY"))
        self.allow_plaintext_auth = bool(
            _setting(allow_plaintext_auth, "SMTPX_ALLOW_PLAINTEXT_AUTH", False)
        )
        self.log_level = _log_level(_setting(log_level, "SMTPX_LOG_LEVEL", "WARNING"))
        self.options: dict[str, Any] = dict(_setting(client_options, "SMTPX_OPTIONS") or {})
        self.dry_run = _setting(dry_run, "SMTPX_DRY_RUN", False)
        if not isinstance(self.dry_run, bool):
            raise smtpx.UsageError(f"SMTPX_DRY_RUN must be True or False, not {self.dry_run!r}")
        self.config = self._config()  # a wrong setting fails here, not at the first send
        self.outbox_path = _outbox_path(getattr(settings, "SMTPX_OUTBOX", None))
        self.outbox: Outbox | None = None
        self.client: smtpx.Client | None = None
        self._loop = LoopThread("smtpx-django")
        self._lock = threading.RLock()

    def _config(self) -> smtpx.ClientConfig:
        options: dict[str, Any] = {
            "tls": self.tls,
            "allow_plaintext_auth": self.allow_plaintext_auth,
        }
        if self.dry_run:
            options["dry_run"] = True
        if "local_hostname" not in self.options:
            # Django's backend says EHLO with its cached FQDN (one getfqdn() a process)
            options["local_hostname"] = str(DNS_NAME)
        if self.username:
            options["credentials"] = smtpx.Credentials(self.username, self.password)
        if self.timeout is not None:
            options["timeout"] = self.timeout
        if self.ssl_certfile or self.ssl_keyfile:
            context = smtpx.default_context()
            try:
                context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
            except (OSError, ssl.SSLError) as exc:
                raise smtpx.UsageError(
                    f"EMAIL_SSL_CERTFILE / EMAIL_SSL_KEYFILE could not be loaded: {exc}"
                ) from exc
            options["tls_context"] = context
        options.update(self.options)
        port = self.port
        if isinstance(port, str) and port.strip().isdigit():
            port = int(port)  # settings read from the environment are strings
        return smtpx.ClientConfig.from_options(self.host, port, options)

    def _make_client(self) -> smtpx.Client:
        return smtpx.Client(config=self.config)

    def open(self) -> bool | None:
        """Connect (and authenticate). True if a new connection was opened, False if one
        was open already, None if connecting failed silently."""
        if self.outbox_path is not None:
            return self._open_outbox()
        if self.client is not None:
            return False
        client = self._make_client()
        try:
            self._loop.run(client.connect())
        except smtpx.SMTPError as error:
            self._loop.stop()
            if not self.fail_silently:
                _raise(error)
            self._log("could not connect to %s:%s: %s", self.host, self.port, error)
            return None
        self.client = client
        return True

    def close(self) -> None:
        """QUIT and stop the background loop."""
        client, self.client = self.client, None
        outbox, self.outbox = self.outbox, None
        try:
            if client is not None:
                self._loop.run(client.quit())
            if outbox is not None:
                self._loop.run(_close(outbox))
        finally:
            self._loop.stop()

    def _open_outbox(self) -> bool | None:
        if self.outbox is not None:
            return False
        assert self.outbox_path is not None
        try:
            # made on the loop thread, which alone uses its SQLite connection
            self.outbox = self._loop.run(_open(self.outbox_path))
        except StorageError as error:
            self._loop.stop()
            if not self.fail_silently:
                raise
            logger.warning("could not open the outbox %s: %s", self.outbox_path, error)
            return None
        return True

    def send_messages(self, email_messages: Sequence[Any]) -> int:
        """Send each message; return how many at least one recipient accepted."""
        if not email_messages:
            return 0
        with self._lock:
            new_connection = self.open()
            if new_connection is None or (self.client or self.outbox) is None:
                return 0
            sent = 0
            try:
                for message in email_messages:
                    if self.outbox is not None:
                        sent += self._store(self.outbox, message)
                    elif self.client is not None:
                        sent += self._send(self.client, message)
            finally:
                if new_connection:
                    self.close()
        return sent

    def _send(self, client: smtpx.Client, message: Any) -> bool:
        recipients = [_address(r) for r in message.recipients()]
        if not recipients:
            return False
        sender = _address(message.from_email)
        try:
            result = self._loop.run(
                client.send(
                    _content(message), sender=sender, recipients=recipients, retry=self.retry
                )
            )
        except smtpx.SMTPError as error:
            if not self.fail_silently:
                _raise(error, sender=sender)
            self._log("message %r not sent: %s: %s", message.subject, error.reason.value, error)
            return False
        for recipient, refusal in result.rejected.items():
            self._log(
                "message %r refused for <%s>: %s: %s",
                message.subject,
                recipient,
                refusal.reason.value,
                refusal,
                error=refusal,
            )
        return True

    def _store(self, outbox: Outbox, message: Any) -> bool:
        recipients = [_address(r) for r in message.recipients()]
        if not recipients:
            return False
        # A Message-ID the caller set is the key; Django makes a new one on every build.
        headers = getattr(message, "extra_headers", None) or {}
        key = next((str(v) for k, v in headers.items() if k.lower() == "message-id"), None)
        try:
            self._loop.run(
                outbox.put(
                    _content(message),
                    sender=_address(message.from_email),
                    recipients=recipients,
                    key=key.strip() if key else None,
                )
            )
        except (smtpx.SMTPError, StorageError) as error:
            if not self.fail_silently:
                raise
            logger.warning("message %r not stored in the outbox: %s", message.subject, error)
            return False
        return True

    def _log(self, text: str, *args: Any, error: smtpx.SMTPError | None = None) -> None:
        if self.log_level is None:
            return
        found = error or next((a for a in args if isinstance(a, smtpx.SMTPError)), None)
        extra = {}
        if found is not None:  # for log aggregation: the reason, recipient, class
            extra = {
                "smtpx_reason": found.reason.value,
                "smtpx_recipient": found.recipient,
                "smtpx_error": type(found).__name__,
            }
        logger.log(self.log_level, text, *args, extra=extra)


def _setting(given: object, name: str, default: object = None) -> Any:
    """An option given to the backend, else the setting *name*, else *default*."""
    return given if given is not None else getattr(settings, name, default)


def _raise(error: smtpx.SMTPError, *, sender: str | None = None) -> NoReturn:
    """Raise *error* as also the exception Django's SMTP backend raises in its case."""
    converted = compatible(error, sender=sender)
    if converted is error:
        raise error
    cause = error if isinstance(error, smtpx.RecipientsRefused) else error.__cause__
    raise converted.with_traceback(error.__traceback__) from cause


async def _open(path: str) -> Outbox:
    return Outbox(path)


async def _close(outbox: Outbox) -> None:
    outbox.close()
