"""Connecting through a SOCKS5, SOCKS4 or HTTP CONNECT proxy, with python-socks.

python-socks is an optional dependency (``pip install 'smtpx[proxy]'``), imported
when the first proxied connection is made.  Its failures become smtpx errors of the
``ConnectError`` family here, each with python-socks' exception as ``__cause__`` and
no proxy password in any message.
"""

from __future__ import annotations

import socket
from typing import Any

from smtpx import errors as e
from smtpx._commands import Command
from smtpx._proxy_url import ProxyURL

__all__ = ["connect_through"]


def _python_socks() -> Any:
    try:
        from python_socks import ProxyType
        from python_socks.async_.asyncio import Proxy
    except ImportError as exc:
        raise e.UsageError(
            "proxy= needs python-socks: install the extra with pip install 'smtpx[proxy]'"
        ) from exc
    return Proxy, ProxyType


async def connect_through(
    proxy: ProxyURL,
    host: str,
    port: int,
    timeout: float,
    source_address: tuple[str, int] | None = None,
) -> socket.socket:
    """A socket connected to ``host:port`` through ``proxy``; a ``ConnectError`` otherwise."""
    proxy_class, proxy_type = _python_socks()
    import python_socks

    kinds = {
        "socks5": proxy_type.SOCKS5,
        "socks4": proxy_type.SOCKS4,
        "http": proxy_type.HTTP,
    }
    through = proxy_class(
        kinds[proxy.scheme],
        proxy.host,
        proxy.port,
        username=proxy.username,
        password=proxy.password,
    )
    via = f"through the proxy {proxy.redacted()}"
    where = f"{host} on port {port}"
    try:
        if source_address is not None:
            connected: socket.socket = await through.connect(
                host, port, timeout=timeout, local_addr=source_address
            )
        else:
            connected = await through.connect(host, port, timeout=timeout)
    except python_socks.ProxyTimeoutError as exc:
        error: e.SMTPError = e.ConnectTimeout(
            f"Timed out connecting to {where} {via}", command=Command.CONNECT
        )
        raise error from _without_frames(exc)
    except python_socks.ProxyConnectionError as exc:
        error = e.ConnectError(
            f"Could not reach the proxy {proxy.redacted()} to connect to {where}: "
            f"{_scrub(exc, proxy)}",
            command=Command.CONNECT,
        )
        raise error from _without_frames(exc)
    except python_socks.ProxyError as exc:
        error = e.ConnectError(
            f"The proxy {proxy.redacted()} refused to connect to {where}: {_scrub(exc, proxy)}",
            command=Command.CONNECT,
        )
        raise error from _without_frames(exc)
    return connected


def _without_frames(exc: BaseException) -> BaseException:
    """``exc`` and the exceptions chained to it, with their tracebacks dropped: python-socks'
    own frames hold the proxy password as locals (its RFC 1929 request), which error
    trackers print.  The exceptions, with their types and messages, stay as the cause."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__
    return exc


def _scrub(exc: BaseException, proxy: ProxyURL) -> str:
    """The exception's message, with the proxy password (if it somehow got in) masked."""
    text = str(exc) or type(exc).__name__
    if proxy.password:
        text = text.replace(proxy.password, "***")
    return text
