"""``OAuth2``: a user name and where its access tokens come from, for XOAUTH2 and
OAUTHBEARER logins (``smtpx.protocol.oauth``).

The token provider is called at each login (and once more when the server refuses
the token); what it returns becomes a ``Secret`` at once, in single expressions, so
that no frame of smtpx holds the token as a plain ``str`` (tracebacks formatted with
their locals show only redacted values).
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import attrs

from smtpx._secret import Secret
from smtpx.errors import OAuthTokenError, UsageError

__all__ = ["OAuth2"]

#: A callable returning an access token, or an awaitable of one (``async def``).
TokenProvider: TypeAlias = Callable[[], "str | Awaitable[str]"]

# RFC 6750 §2.1 b64token: what a bearer token may be made of (no space, no control
# character: a ^A inside one would end the SASL message early).
_B64TOKEN = re.compile(rb"[A-Za-z0-9\-._~+/]+=*")


class _Sealed(list[Any]):
    """A one-item list whose repr hides the item: it carries a provider's answer from
    the call to ``Secret`` without any frame holding the plain ``str``."""

    def __repr__(self) -> str:
        return "[<redacted>]"


def _call(provider: TokenProvider) -> _Sealed:
    try:
        return _Sealed((provider(),))
    except StopIteration as exc:  # a future cannot carry it: the await would never end
        raise _failed(exc) from exc


def _failed(exc: BaseException) -> OAuthTokenError:
    return OAuthTokenError(f"the token provider raised {type(exc).__name__} (see its __cause__)")


def _checked(token: Secret) -> Secret:
    if not _B64TOKEN.fullmatch(token):
        raise OAuthTokenError(
            "the access token has characters a bearer token cannot have (RFC 6750 §2.1: "
            "letters, digits, -._~+/ and trailing =); strip the newline or quotes around it"
        )
    return token


@attrs.frozen(repr=False, init=False)
class OAuth2:
    """An OAuth2 login (XOAUTH2 or OAUTHBEARER) as ``username``.

    ``token_provider`` is a callable returning a current access token (``str``), an
    ``async`` one, or a token itself (a ``str``, for a short-lived script).  smtpx
    calls it at each login, in a worker thread when it is not ``async`` (a blocking
    HTTP refresh does not stall the event loop), and once more when the server refuses
    the token.  Neither the token nor the provider appears in a repr."""

    username: str
    _provider: TokenProvider | None
    _token: Secret | None

    def __init__(self, username: str, token_provider: TokenProvider | str) -> None:
        static = Secret(token_provider.encode()) if isinstance(token_provider, str) else None
        provider = token_provider if static is None and callable(token_provider) else None
        kind = type(token_provider).__name__
        del token_provider  # a str token: out of this frame's locals before any raise
        if static is None and provider is None:
            raise UsageError(
                f"token_provider must be a callable returning an access token or a str, not {kind}"
            )
        if static is not None:
            try:
                _checked(static)
            except OAuthTokenError as error:
                raise UsageError(error.detail) from None
        if not isinstance(username, str) or not username or not username.isprintable():
            raise UsageError(f"the OAuth2 username must be a printable str, not {username!r}")
        self.__attrs_init__(username, provider, static)

    def __repr__(self) -> str:
        return f"OAuth2(username={self.username!r}, token_provider='***')"

    @property
    def refreshable(self) -> bool:
        """Whether a second call may give another token (a provider, not a fixed token)."""
        return self._provider is not None

    async def token(self) -> Secret:
        """A fresh access token from the provider, as a ``Secret``; ``OAuthTokenError``
        when the provider raises (kept as ``__cause__``) or returns no valid token."""
        if self._token is not None:
            return self._token
        provider = self._provider
        assert provider is not None  # __init__ keeps one of the two
        try:
            if inspect.iscoroutinefunction(provider):
                sealed = _Sealed((await provider(),))
            else:
                sealed = await asyncio.to_thread(_call, provider)
                if inspect.isawaitable(sealed[0]):  # a callable object with async __call__
                    sealed = _Sealed((await sealed.pop(),))
        except OAuthTokenError:
            raise
        except Exception as exc:
            raise _failed(exc) from exc
        if not isinstance(sealed[0], str):
            raise OAuthTokenError(
                f"the token provider returned a {type(sealed.pop()).__name__}, not a str"
            )
        return _checked(Secret(sealed.pop().encode()))
