"""``smtpx serve`` in a subprocess, as a user runs it: its first line (where it listens),
then, once stopped with SIGTERM, the rest of its output and its exit status."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

import attrs


@attrs.define
class Served:
    process: subprocess.Popen[str]
    first: str  # "smtpx serve: listening on ..."
    rest: str = ""  # what it printed after the first line, up to its exit
    returncode: int | None = None


@contextlib.contextmanager
def smtpx_serve(*args: str) -> Iterator[Served]:
    process = subprocess.Popen(
        [sys.executable, "-m", "smtpx", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        served = Served(process, process.stdout.readline())
        yield served
    finally:
        process.terminate()
        served.rest, _ = process.communicate(timeout=10)
        served.returncode = process.returncode
