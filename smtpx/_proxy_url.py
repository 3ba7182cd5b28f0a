"""``ProxyURL``: a proxy to connect through, parsed from ``socks5://user:pass@host:port``.

Pure (no I/O): ``ClientConfig`` checks the URL when it is made, and the edge
(``smtpx._proxy``) connects through it.  The password never shows in a repr, a
``str`` or an error message: a proxy URL is often copied from a settings file whole.
"""

from __future__ import annotations

import urllib.parse

import attrs

from smtpx.errors import UsageError

__all__ = ["PROXY_SCHEMES", "ProxyURL", "proxy_url"]

#: The schemes smtpx connects through, and each one's default port (the ports the
#: protocols' registrations name: SOCKS 1080, RFC 1928; HTTP proxies commonly 8080).
PROXY_SCHEMES = {"socks5": 1080, "socks4": 1080, "http": 8080}


@attrs.frozen(repr=False)
class ProxyURL:
    """A SOCKS5, SOCKS4 or HTTP CONNECT proxy; ``password`` is never shown."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"ProxyURL({self.redacted()!r})"

    __str__ = __repr__

    def redacted(self) -> str:
        """The URL with the password replaced by ``***``."""
        user = ""
        if self.username is not None:
            user = urllib.parse.quote(self.username, safe="")
            user += ":***@" if self.password is not None else "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{user}{host}:{self.port}"


def proxy_url(value: object) -> ProxyURL | None:
    """A ``ProxyURL`` from its URL string (or one already made); None stays None."""
    if value is None or isinstance(value, ProxyURL):
        return value
    if not isinstance(value, str):
        raise UsageError(
            f"proxy must be a URL such as 'socks5://user:password@127.0.0.1:1080', "
            f"not {type(value).__name__}"
        )
    try:
        parts = urllib.parse.urlsplit(value.strip())
        port = parts.port
        host = parts.hostname
        username, password = parts.username, parts.password
    except ValueError:
        port = host = username = password = None
        parts = None
    schemes = ", ".join(f"{scheme}://" for scheme in PROXY_SCHEMES)
    if parts is None or parts.scheme.lower() not in PROXY_SCHEMES or not host:
        scheme = parts.scheme if parts is not None else ""
        del value, password  # the URL may hold a password: keep it out of the locals
        raise UsageError(
            f"proxy must be a URL of scheme {schemes} with a host and an optional port "
            f"(for example 'socks5://user:password@127.0.0.1:1080'), not one of scheme "
            f"{scheme!r}"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        del value, password
        raise UsageError("a proxy URL has no path, query or fragment: scheme://host:port")
    scheme = parts.scheme.lower()
    return ProxyURL(
        scheme=scheme,
        host=host,
        port=port if port is not None else PROXY_SCHEMES[scheme],
        username=urllib.parse.unquote(username) if username is not None else None,
        password=urllib.parse.unquote(password) if password is not None else None,
    )
