"""A ``ClientConfig`` from a URL (``smtps://user:password@host:465?timeout=10``) or from
the environment (``SMTPX_URL``, ``SMTPX_PASSWORD``).

The URL may hold a password, so no error raised here echoes the URL, its port text,
its path or anything urllib said about it (urllib quotes the text it could not read,
which can be a fragment of a password holding an unencoded ``/``, ``?`` or ``#``).
The functions that hold the URL scrub the error on its way out, so that a traceback
formatted with its frames' locals shows no URL either.
"""

from __future__ import annotations

import math
import os
import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from smtpx._secret import Credentials
from smtpx._tls import TLSMode
from smtpx.errors import UsageError

if TYPE_CHECKING:
    from smtpx.config import ClientConfig

__all__ = ["SCHEMES", "config_from_env", "config_from_url"]

# One scheme per TLS mode.  ``smtp://`` is plaintext, as the URL says: upgrading when
# offered is asked for explicitly with ``?tls=opportunistic``.
SCHEMES: Mapping[str, TLSMode] = {
    "smtps": TLSMode.IMPLICIT,
    "smtp+starttls": TLSMode.STARTTLS,
    "smtp": TLSMode.NONE,
}

# Schemes other tools use for the same thing (django-environ, Symfony, lettre), and ours.
_SPELLED_ELSEWHERE = {
    "smtp+ssl": "smtps",
    "smtp+tls": "smtp+starttls",
    "submission": "smtp+starttls",
    "submissions": "smtps",
    "smtp+implicit": "smtps",
}


def _seconds(name: str, text: str, *, optional: bool) -> float | None:
    if optional and text.lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        also = " or none" if optional else ""
        raise UsageError(f"URL parameter {name} must be seconds above 0{also}, not {text!r}")
    return value


def _flag(name: str, text: str) -> bool:
    spelled = text.lower()
    if spelled in ("true", "yes", "on", "1"):
        return True
    if spelled in ("false", "no", "off", "0"):
        return False
    raise UsageError(f"URL parameter {name} must be true or false, not {text!r}")


# The query parameters: the scalar options of ClientConfig, each with its reader.
_PARAMETERS: Mapping[str, Callable[[str, str], object]] = {
    "timeout": lambda name, text: _seconds(name, text, optional=False),
    "total_timeout": lambda name, text: _seconds(name, text, optional=True),
    "local_hostname": lambda name, text: text,
    "allow_plaintext_auth": _flag,
    "transcript": _flag,
    "chunking": _flag,
    "add_missing_headers": _flag,
    "dry_run": _flag,
}


def config_from_url(
    cls: type[ClientConfig], /, url: str, *, password: str | None = None, **overrides: Any
) -> ClientConfig:
    """A ``ClientConfig`` from an SMTP URL (the grammar is in docs/configuration.md).

    ``password`` is used when the URL names a user but no password; ``overrides``
    are ``ClientConfig`` fields that replace what the URL says.  Every mistake is a
    ``UsageError`` that names what is wrong without repeating the URL.
    """
    failure: UsageError
    try:
        return cls.from_options(*_read(url, password, overrides))
    except UsageError as error:
        failure = error
    del url, password, overrides  # secrets: out of this frame's locals in a traceback
    raise _scrubbed(failure)


def config_from_env(
    cls: type[ClientConfig], /, environ: Mapping[str, str] | None = None, **overrides: Any
) -> ClientConfig:
    """A ``ClientConfig`` from ``SMTPX_URL``, with ``SMTPX_PASSWORD`` as the password
    when the URL has none."""
    environ = os.environ if environ is None else environ
    url = environ.get("SMTPX_URL")
    if not url:
        raise UsageError("SMTPX_URL is not set: set it to the server's URL (smtps://host)")
    password = environ.get("SMTPX_PASSWORD") or None
    failure: UsageError
    try:
        return cls.from_options(*_read(url, password, overrides, env=True))
    except UsageError as error:
        failure = error
    del url, password, environ, overrides  # secrets: out of this frame's locals
    raise _scrubbed(failure)


def _scrubbed(error: UsageError) -> UsageError:
    """``error`` without the frames and chained exceptions that led to it: their locals
    (and urllib's messages) may hold the URL or the password."""
    error.__cause__ = error.__context__ = None
    error.__suppress_context__ = True
    return error.with_traceback(None)


def _read(
    url: object,
    password: str | None,
    overrides: dict[str, Any],
    *,
    env: bool = False,
) -> tuple[str, int | None, dict[str, Any]]:
    """Host, port and options from ``url``, with ``overrides`` on top."""
    if not isinstance(url, str):
        raise UsageError(f"the URL must be a str, not {type(url).__name__}")
    if not url.isprintable() or url != url.strip():
        raise UsageError("the URL holds spaces at its ends or control characters (CR, LF, tab)")
    if password is not None and not isinstance(password, str):
        raise UsageError(f"password must be a str, not {type(password).__name__}")
    scheme, separator, _ = url.partition("://")
    if not separator:
        raise UsageError("the URL must start with smtps://, smtp+starttls:// or smtp://")
    tls = _tls(scheme.lower())
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise UsageError(
            "the URL's host is not readable (an IPv6 address goes in [brackets]; "
            "percent-encode '[', ']', '/', '?', '#' and '@' in the user name or password)"
        ) from None
    if "@" in url[len(scheme) + 3 + len(parts.netloc) :]:
        # RFC 3986: the authority ends at the first "/", "?" or "#"; an "@" after it is
        # most likely a password holding one of them, unencoded.
        raise UsageError(
            "the URL has an '@' after its host: percent-encode '/', '?', '#' and '@' "
            "in the user name or password (urllib.parse.quote(password, safe=''))"
        )
    if parts.path not in ("", "/") or parts.fragment:
        raise UsageError("an SMTP URL has no path or fragment: scheme://user:password@host:port")
    host = parts.hostname
    if not host:
        raise UsageError("the URL names no host")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise UsageError("the URL's port is not a number from 1 to 65535")
    options: dict[str, Any] = {"tls": tls, **_query(parts.query, tls)}
    credentials = _credentials(parts, password, env=env)
    if credentials is not None:
        options["credentials"] = credentials
    overrides = dict(overrides)
    host = overrides.pop("host", urllib.parse.unquote(host))
    port = overrides.pop("port", port)
    options.update(overrides)
    return host, port, options


def _tls(scheme: str) -> TLSMode:
    if scheme in SCHEMES:
        return SCHEMES[scheme]
    schemes = ", ".join(f"{name}://" for name in SCHEMES)
    meant = _SPELLED_ELSEWHERE.get(scheme)
    if meant is not None:
        raise UsageError(f"unknown URL scheme {scheme!r}: use {meant}://")
    shown = f" {scheme!r}" if scheme.isascii() and scheme.replace("+", "").isalnum() else ""
    raise UsageError(f"unknown URL scheme{shown}: smtpx reads {schemes}")


def _query(query: str, tls: TLSMode) -> dict[str, object]:
    options: dict[str, object] = {}
    if not query:
        return options
    for item in query.split("&"):
        name, equals, text = item.partition("=")
        name, text = urllib.parse.unquote(name), urllib.parse.unquote_plus(text)
        if name in options or (name == "tls" and "tls" in options):
            raise UsageError(f"URL parameter {name} is given twice")
        if name == "tls":
            if tls is not TLSMode.NONE or text.lower() != TLSMode.OPPORTUNISTIC.value:
                raise UsageError(
                    "URL parameter tls takes only 'opportunistic', with smtp:// "
                    "(the scheme says the rest: smtps://, smtp+starttls://)"
                )
            options["tls"] = TLSMode.OPPORTUNISTIC
            continue
        reader = _PARAMETERS.get(name)
        if reader is None:
            known = ", ".join(sorted({*_PARAMETERS, "tls"}))
            raise UsageError(f"unknown URL parameter {name!r}; smtpx reads {known}")
        if not equals or not text:
            raise UsageError(f"URL parameter {name} has no value")
        options[name] = reader(name, text)
    return options


def _credentials(
    parts: urllib.parse.SplitResult, given: str | None, *, env: bool
) -> Credentials | None:
    """The URL's user and password; ``given`` is ``password=`` or SMTPX_PASSWORD (``env``)."""
    raw_user, raw_password = parts.username, parts.password
    if raw_user is None and raw_password is None:
        if given is not None and not env:
            raise UsageError("password= was given, but the URL names no user")
        return None
    try:
        user = urllib.parse.unquote(raw_user or "", errors="strict")
        password = (
            urllib.parse.unquote(raw_password, errors="strict")
            if raw_password is not None
            else None
        )
    except UnicodeDecodeError:
        raise UsageError("the URL's user name or password is not percent-encoded UTF-8") from None
    if not user:
        raise UsageError("the URL has a password but no user name: scheme://user:password@host")
    if password is not None and given is not None and not env:
        raise UsageError("the URL has a password, and password= was given too: give one")
    password = password if password is not None else given
    if not password:
        where = "SMTPX_PASSWORD" if env else "password="
        raise UsageError(
            f"the URL names user {user!r} but no password: put it in the URL "
            f"(percent-encoded) or in {where}"
        )
    return Credentials(user, password)
