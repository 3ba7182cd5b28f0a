"""Plumbing for ``benchmarks/run.py``: servers on loopback, worker subprocesses, statistics.

Everything here talks to 127.0.0.1 only.  Every process started is tracked by
:class:`Processes` and stopped by PID when the run ends, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))  # the tests' free-port finder, shared

from ports import NoFreePort, find_free_ports, port_is_free  # noqa: E402

SMTP_SINK = Path("/usr/sbin/smtp-sink")
SINK_USER = "nobody"  # smtp-sink refuses to run as root without -u
SENDER = "bench@example.com"
RECIPIENT = "sink@example.net"


class HarnessError(RuntimeError):
    """A server could not be started, or a worker failed."""


# ---------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------


def make_message(size: int) -> bytes:
    """An RFC 5322 message of exactly ``size`` octets: CRLF lines of at most 78 octets,
    no line starting with a dot, From/To matching ``SENDER``/``RECIPIENT``."""
    head = (
        f"From: Bench <{SENDER}>\r\n"
        f"To: Sink <{RECIPIENT}>\r\n"
        "Subject: smtpx benchmark message\r\n"
        "Message-ID: <bench.0@example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
    ).encode("ascii")
    line = b"The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnop.\r\n"
    room = size - len(head)
    if room < len(line):
        raise ValueError(f"a message needs at least {len(head) + len(line)} octets")
    full, rest = divmod(room, len(line))
    if rest == 0:
        body = line * full
    elif rest >= 3:  # one short last line
        body = line * full + b"x" * (rest - 2) + b"\r\n"
    else:  # too little room for a line of its own: lengthen the last one
        body = line * (full - 1) + b"x" * (len(line) - 2 + rest) + b"\r\n"
    message = head + body
    assert len(message) == size, (len(message), size)
    return message


def message_file(directory: Path, size: int = 1024) -> Path:
    """``make_message(size)`` written to ``directory`` (once per size)."""
    path = directory / f"message-{size}.eml"
    if not path.exists():
        path.write_bytes(make_message(size))
    return path


# ---------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------


def stop_process(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """Stop one process we started, by its PID: SIGTERM, then SIGKILL after ``grace``."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(grace)


@dataclass
class Processes:
    """The servers and proxies of a run; ``stop_all()`` ends each one by its PID."""

    running: list[subprocess.Popen[Any]] = field(default_factory=list)

    def add(self, proc: subprocess.Popen[Any]) -> subprocess.Popen[Any]:
        self.running.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[Any]) -> None:
        stop_process(proc)
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        while self.running:
            self.stop(self.running[-1])


def install_signal_handlers() -> None:
    """SIGINT (also when inherited as ignored), SIGTERM and SIGHUP unwind like Ctrl-C, so
    every ``finally`` stops its servers."""

    def _raise(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise)


# ---------------------------------------------------------------------------------------
# Ports and servers
# ---------------------------------------------------------------------------------------


def free_port() -> int:
    """A free port below the ephemeral range (so no client connection can hold it)."""
    try:
        return find_free_ports(1, HOST)[0]
    except NoFreePort as exc:
        raise HarnessError(str(exc)) from exc


def read_greeting(port: int, timeout: float = 2.0) -> bytes:
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        greeting = sock.recv(512)
        with contextlib.suppress(OSError):
            sock.sendall(b"QUIT\r\n")
            sock.recv(512)
        return greeting


def wait_for_greeting(port: int, proc: subprocess.Popen[Any], deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    last: Exception | None = None
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise HarnessError(f"server on port {port} exited with status {proc.returncode}")
        try:
            if read_greeting(port).startswith(b"220"):
                return
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise HarnessError(f"no SMTP greeting on port {port} within {deadline}s: {last}")


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[Any]  # the SMTP server (whose CPU time is read)
    pipelining: bool
    helper: subprocess.Popen[Any] | None = None  # a proxy in front of it, if any

    def cpu_seconds(self) -> float | None:
        """User+system CPU of the server process (and proxy) so far, or None."""
        server = process_cpu_seconds(self.proc.pid)
        if server is None or self.helper is None:
            return server
        return server + (process_cpu_seconds(self.helper.pid) or 0.0)


def process_cpu_seconds(pid: int) -> float | None:
    """User+system CPU of one process so far (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def system_busy_seconds() -> float | None:
    """CPU seconds all processes on the machine have used so far (user, nice, system; not
    irq/softirq, where the kernel does much of our own loopback traffic), or None."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system = (int(f) for f in fields[:3])
    return (user + nice + system) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def background_load(seconds: float = 2.0) -> float | None:
    """CPU used by other processes over ``seconds``, in % of one core."""
    before = system_busy_seconds()
    own = resource.getrusage(resource.RUSAGE_SELF)
    time.sleep(seconds)
    after = system_busy_seconds()
    if before is None or after is None:
        return None
    mine = resource.getrusage(resource.RUSAGE_SELF)
    used = (mine.ru_utime + mine.ru_stime) - (own.ru_utime + own.ru_stime)
    return max(0.0, (after - before - used) / seconds * 100)


def wait_until_quiet(limit: float, threshold: float = 10.0) -> float | None:
    """Wait (at most ``limit`` seconds) until other processes use under ``threshold``% of
    a core; returns the last load seen."""
    end = time.monotonic() + limit
    while True:
        load = background_load()
        if load is None or load < threshold or time.monotonic() > end:
            return load
        print(f"  the machine is busy ({load:.0f}% of a core used by others): waiting", flush=True)


def smtp_sink_missing() -> str | None:
    if not os.access(SMTP_SINK, os.X_OK):
        return f"{SMTP_SINK} not found (Debian package postfix)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SINK_USER)
        except KeyError:
            return f"user {SINK_USER!r} missing (smtp-sink needs -u as root)"
    return None


def start_smtp_sink(processes: Processes, *, pipelining: bool) -> Server:
    """``smtp-sink`` on a free 127.0.0.1 port; ``pipelining=False`` adds ``-p``
    (man 1 smtp-sink: "Do not announce support for ESMTP command pipelining")."""
    missing = smtp_sink_missing()
    if missing:
        raise HarnessError(missing)
    for _ in range(5):
        port = free_port()
        args = [str(SMTP_SINK)]
        if os.geteuid() == 0:
            args += ["-u", SINK_USER]
        if not pipelining:
            args.append("-p")
        # -t: a stuck session is dropped after 30 s; backlog 1000 for the pools' bursts
        args += ["-t", "30", f"{HOST}:{port}", "1000"]
        proc = processes.add(
            subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        )
        try:
            wait_for_greeting(port, proc)
        except HarnessError:
            processes.stop(proc)
            if port_is_free(port):
                raise
            continue  # someone took the port between the check and the bind: try another
        name = "smtp-sink" if pipelining else "smtp-sink -p"
        return Server(name, port, proc, pipelining)
    raise HarnessError("could not start smtp-sink in 5 tries")


def _start_python_helper(processes: Processes, script: str, *args: str) -> tuple[Any, int]:
    """Start ``benchmarks/<script>``; it prints ``PORT <n>`` once listening and exits when
    its stdin closes (so it cannot outlive us even if we are killed)."""
    proc = processes.add(
        subprocess.Popen(
            [sys.executable, str(HERE / script), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the helper prints its port within a second or exits
    if not line.startswith("PORT "):
        processes.stop(proc)
        raise HarnessError(f"{script} did not start: {line!r}")
    return proc, int(line.split()[1])


def start_aiosmtpd(processes: Processes) -> Server:
    """aiosmtpd (pure Python, no PIPELINING) discarding every message, in a subprocess."""
    proc, port = _start_python_helper(processes, "aiosmtpd_sink.py")
    wait_for_greeting(port, proc)
    return Server("aiosmtpd", port, proc, pipelining=False)


def start_aiosmtpd_chunking(processes: Processes) -> Server:
    """aiosmtpd with PIPELINING and CHUNKING (``smtpx.testing.ScriptedServer``)."""
    proc, port = _start_python_helper(processes, "aiosmtpd_sink.py", "--chunking")
    wait_for_greeting(port, proc)
    return Server("aiosmtpd +CHUNKING", port, proc, pipelining=True)


def start_proxy(processes: Processes, target: Server, rtt_ms: float) -> Server:
    """A delaying TCP proxy in front of ``target``: each chunk waits rtt/2 each way."""
    proc, port = _start_python_helper(
        processes, "proxy.py", "--target-port", str(target.port), "--delay-ms", str(rtt_ms / 2)
    )
    wait_for_greeting(port, proc)
    name = f"{target.name} via proxy {rtt_ms:g} ms"
    return Server(name, port, target.proc, target.pipelining, helper=proc)


def measure_rtt(port: int, samples: int = 21) -> float:
    """Median milliseconds for a NOOP round trip on ``port`` (one SMTP session)."""
    times: list[float] = []
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb")
        reader.readline()  # greeting
        for _ in range(samples):
            start = time.perf_counter()
            sock.sendall(b"NOOP\r\n")
            reader.readline()
            times.append((time.perf_counter() - start) * 1000)
        sock.sendall(b"QUIT\r\n")
        reader.readline()
    return statistics.median(times)


# ---------------------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------------------


@dataclass
class Run:
    """One measurement by one client in its own process."""

    client: str
    messages: int
    seconds: float
    cpu_seconds: float
    server_cpu_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu_seconds / self.messages * 1e6


def node_missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if shutil.which("npm") is None and not (HERE / "node" / "node_modules").is_dir():
        return "npm is not installed"
    return None


def ensure_nodemailer() -> str | None:
    """Install nodemailer into benchmarks/node (npm ci, pinned by package-lock.json) when
    missing; returns why the node peer must be skipped, or None."""
    missing = node_missing()
    if missing:
        return missing
    node_dir = HERE / "node"
    if (node_dir / "node_modules" / "nodemailer" / "package.json").exists():
        return None
    print("installing nodemailer into benchmarks/node (npm ci) ...", flush=True)
    try:
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=node_dir,
            check=True,
            timeout=300,
            stdout=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"npm ci failed: {exc}"
    return None


def run_worker(
    argv: Sequence[str],
    *,
    time_limit: float,
    server: Server | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run one worker process; it prints one JSON object on its last stdout line."""
    before = server.cpu_seconds() if server is not None else None
    busy0, children0, t0 = system_busy_seconds(), children_cpu_seconds(), time.monotonic()
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=time_limit + 60,
            check=False,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:  # run() has killed it
        raise HarnessError(f"{argv[1:3]} exceeded {time_limit + 60:.0f}s") from exc
    after = server.cpu_seconds() if server is not None else None
    busy1, children1, t1 = system_busy_seconds(), children_cpu_seconds(), time.monotonic()
    lines = done.stdout.strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        result = {"error": f"no result (exit {done.returncode}): {done.stderr.strip()[-400:]}"}
    if done.returncode != 0 and "error" not in result:
        result["error"] = f"exit {done.returncode}: {done.stderr.strip()[-400:]}"
    server_cpu = after - before if before is not None and after is not None else 0.0
    if before is not None and after is not None:
        result["server_cpu_seconds"] = server_cpu
    if busy0 is not None and busy1 is not None:
        # whatever else ran meanwhile (a test suite, ...): our numbers are only clean if ~0
        others = (busy1 - busy0) - (children1 - children0) - server_cpu
        result["background_cpu_pct"] = max(0.0, others / (t1 - t0) * 100)
    return result


def python_worker(*args: str) -> list[str]:
    return [sys.executable, str(HERE / "worker.py"), *args]


def node_worker(*args: str) -> list[str]:
    return ["node", str(HERE / "node" / "bench.js"), *args]


# ---------------------------------------------------------------------------------------
# Statistics and tables
# ---------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:,.{digits}f}"


def _is_number(cell: str) -> bool:
    return cell == "-" or cell.rstrip("x%").replace(",", "").replace(".", "").isdigit()


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (readable as plain text too); numeric columns right-aligned."""
    columns = range(len(headers))
    widths = [max(len(headers[i]), *(len(row[i]) for row in rows)) for i in columns]
    right = [bool(rows) and all(_is_number(row[i]) for row in rows) for i in columns]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cells[i].rjust(widths[i]) if right[i] else cells[i].ljust(widths[i]) for i in columns
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "| " + " | ".join("-" * (widths[i] - 1) + (":" if right[i] else "-") for i in columns)
    return "\n".join([line(headers), rule + " |", *(line(row) for row in rows)])


@contextlib.contextmanager
def section(title: str) -> Iterator[None]:
    print(f"\n## {title}\n", flush=True)
    start = time.monotonic()
    yield
    print(f"\n({title}: {time.monotonic() - start:.0f} s)", flush=True)
