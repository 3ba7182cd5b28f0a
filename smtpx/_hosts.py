"""Several servers for one client: the ``hosts=`` list, the order to try them in, and
which failures move on to the next one.

``failover`` tries the hosts in the order given, every time; ``round-robin`` starts each
new connection one host further along (shared by every client of the same host list
in the process, so a ``Pool``'s connections spread too), then goes on in order.
Symfony Mailer's failover and round-robin transports are the model.

Moving on is safe only while no server can have taken the message: a failure to
connect, a TLS failure that is not about the certificate (a bad certificate is an
attack or a misconfiguration: trying elsewhere would hide it), a 4xx to the greeting,
EHLO or MAIL.  Once the end of the message was written, the ledger's verdict stands.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

from smtpx import errors as e
from smtpx._commands import Command
from smtpx.errors import UsageError

__all__ = ["STRATEGIES", "Endpoint", "fails_over", "parse_endpoint", "start_of"]

Endpoint = tuple[str, int | None]  # port None: the config's port
STRATEGIES = ("failover", "round-robin")

_SETUP_COMMANDS = frozenset({Command.CONNECT, Command.EHLO, Command.HELO})


def parse_endpoint(value: object) -> Endpoint:
    """``"host"``, ``"host:port"``, ``"[v6]:port"``, a bare IPv6 address, or a
    ``(host, port)`` pair."""
    if isinstance(value, tuple | list) and len(value) == 2:
        host, port = value
        if isinstance(host, str) and (type(port) is int or port is None):
            return host, port  # None: a copy of a parsed entry (attrs.evolve passes those)
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            host, bracket, rest = text[1:].partition("]")
            if bracket and (not rest or (rest.startswith(":") and rest[1:].isdigit())):
                return host, int(rest[1:]) if rest else None
        elif text.count(":") == 1:
            host, _, port_text = text.partition(":")
            if port_text.isdigit():
                return host, int(port_text)
        else:
            return text, None  # a name, an IPv4 address, or a bare IPv6 address
    raise UsageError(
        "each of hosts must be 'host', 'host:port', '[ipv6]:port' or a (host, port) pair, "
        f"not {value!r}"
    )


_rotations: dict[tuple[tuple[str, int], ...], Iterator[int]] = {}
_lock = threading.Lock()  # SyncClient and Pool threads may connect at the same time


def start_of(hosts: tuple[tuple[str, int], ...], strategy: str) -> int:
    """The index of the host a new connection tries first."""
    if strategy != "round-robin" or len(hosts) < 2:
        return 0
    with _lock:
        counter = _rotations.setdefault(hosts, itertools.count())
        return next(counter) % len(hosts)


def fails_over(error: e.SMTPError) -> bool:
    """Whether ``error``, raised before anything of the message went out, lets the next
    host be tried."""
    if isinstance(error, e.CertificateInvalid | e.UsageError):
        return False
    if isinstance(error, e.ConnectError | e.HostNotFound | e.TLSError):
        return True
    if isinstance(error, e.DeliveryUnknown):
        return False
    return isinstance(error, e.TransientError) and (
        error.command in _SETUP_COMMANDS or error.command is Command.MAIL
    )
