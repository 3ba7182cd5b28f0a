"""A throwaway Redis for the task-queue tests (arq, Celery): ``redis-server`` from the
Debian package, on a free loopback port, without persistence, stopped by its pid.

Without the binary the tests skip, unless ``CI=true`` or ``SMTPX_REQUIRE_REAL_SERVERS=1``:
then they fail.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from realservers import real_servers_required


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def start_redis(binary: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    for _ in range(5):  # another process may grab the free port first: pick another
        port = free_port()
        log = workdir / f"redis-{port}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    binary,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                    "--dir",
                    str(workdir),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 5
        while process.poll() is None and time.monotonic() < deadline:
            if answers_ping(port):
                return process, port
            time.sleep(0.02)
        stop(process)
    raise RuntimeError(f"redis-server did not start; its log:\n{log.read_text()}")


def redis_binary() -> str:
    """The redis-server path; skip (fail, in CI) when it is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed (Debian: apt-get install redis-server)"
        if real_servers_required():
            pytest.fail(message + " [CI=true or SMTPX_REQUIRE_REAL_SERVERS=1: not skipping]")
        pytest.skip(message)
    return binary
