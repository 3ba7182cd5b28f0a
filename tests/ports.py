"""Free TCP ports on loopback for the real servers: the tests' Postfix and smtp-sink, and
the benchmark harness (``benchmarks/_harness.py`` imports this file)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

HOST = "127.0.0.1"


class NoFreePort(RuntimeError):
    """No free port was found."""


def _ephemeral_low() -> int:
    try:
        low, _high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low)
    except (OSError, ValueError):
        return 32768


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether a server could listen on *host*:*port*: nothing bound there nor on the
    wildcard address.  Binds with SO_REUSEADDR (as Postfix and smtp-sink do, so leftover
    TIME_WAIT connections do not count) but without SO_REUSEPORT, so a listener that used
    SO_REUSEPORT (as smtp-sink does) still makes the port count as taken."""
    for address in (host, "0.0.0.0"):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, port))
            except OSError:
                return False
    return True


def find_free_ports(count: int, host: str = HOST) -> list[int]:
    """*count* distinct free TCP ports on *host*, taken below the ephemeral range (so
    that outgoing connections do not grab them in the meantime) when possible."""
    low, high = 20000, min(_ephemeral_low(), 32768) - 1
    ports: list[int] = []
    for _ in range(2000):
        if len(ports) == count:
            return ports
        if high - low > 1000:
            port = random.randint(low, high)
        else:  # odd port range: let the kernel pick
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
        if port not in ports and port_is_free(port, host):
            ports.append(port)
    raise NoFreePort(f"could not find {count} free ports on {host}")
