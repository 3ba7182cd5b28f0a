"""A throwaway Redis on a free 127.0.0.1 port, for the arq task and the shared limits.

Redis comes from the Debian package ``redis-server``.  Without it the tests that need it
skip, unless ``CI=true`` or ``SMTPX_REQUIRE_REAL_SERVERS=1``: then they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ports import find_free_ports
from realservers import real_servers_required


def answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def redis_binary() -> str:
    """The redis-server path; skip (fail, in CI) when it is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed (Debian: apt-get install redis-server)"
        if real_servers_required():
            pytest.fail(message + " [CI=true or SMTPX_REQUIRE_REAL_SERVERS=1: not skipping]")
        pytest.skip(message)
    return binary


@contextlib.contextmanager
def running_redis(workdir: Path) -> Iterator[int]:
    """``with running_redis(dir) as port:`` -- started, then stopped by PID."""
    binary = redis_binary()
    for _ in range(5):  # another process may grab the free port first: pick another
        (port,) = find_free_ports(1)
        log = workdir / f"redis-{port}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--dir", str(workdir)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 5
        while process.poll() is None and time.monotonic() < deadline:
            if answers_ping(port):
                try:
                    yield port
                finally:
                    _stop(process)
                return
            time.sleep(0.02)
        _stop(process)
    raise RuntimeError(f"redis-server did not start; its log:\n{log.read_text()}")
