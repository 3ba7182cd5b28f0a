"""``smtpx serve``: a local development server that prints or stores what it receives,
and fails on request."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import errno
import re
import signal
import socket
import ssl
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import click

from smtpx.cli._common import echo, host_port, password_for
from smtpx.testing import COMMANDS, ReceivedMessage, Rule, ScriptedServer

__all__ = ["serve"]

# "550", "550/5.1.1" or "550 5.1.1"
_CODE = re.compile(r"([2-5]\d\d)(?:[/ ]([245]\.\d{1,3}\.\d{1,3}))?")
# every Nth transaction can fail at one of these (counted at MAIL FROM)
_PER_MESSAGE = ("MAIL", "RCPT", "DATA", "DATA_END")


@attrs.frozen
class Failure:
    """Answer ``reply`` to ``command``: for ``pattern`` only, or every ``every`` message."""

    command: str
    reply: str
    pattern: str | None = None
    every: int | None = None

    @property
    def closes(self) -> bool:
        return self.reply.startswith("421")  # the server is shutting the channel


def _reply_for(text: str) -> str:
    match = _CODE.fullmatch(text.strip())
    if match is None:
        raise click.BadParameter(f"{text!r} is not a reply code such as 550 or 550/5.1.1")
    code, enhanced = int(match[1]), match[2]
    return " ".join(part for part in (str(code), enhanced, "scripted by smtpx serve") if part)


def _command(name: str, allowed: Sequence[str]) -> str:
    command = name.strip().upper()
    if command not in allowed:
        raise click.BadParameter(f"{name!r} is not one of {', '.join(sorted(allowed))}")
    return command


# commands a client sends only when the server offers them, and the flag that does
_OFFERED_BY = {"STARTTLS": "--tls", "BDAT": "--chunking"}


def parse_fail(value: str, offered: Sequence[str] = ()) -> Failure:
    """``CMD:CODE[:PATTERN]``; STARTTLS and BDAT only when in *offered* (a client never
    sends them to a server that does not offer them, so the rule could never apply)."""
    parts = value.split(":", 2)
    if len(parts) < 2:
        raise click.BadParameter(f"{value!r} is not CMD:CODE[:PATTERN]", param_hint="--fail")
    pattern = parts[2] if len(parts) == 3 and parts[2] else None
    command = _command(parts[0], sorted(COMMANDS))
    if command in _OFFERED_BY and command not in offered:
        raise click.BadParameter(
            f"{value!r}: this server does not offer {command}; add {_OFFERED_BY[command]}",
            param_hint="--fail",
        )
    return Failure(command, _reply_for(parts[1]), pattern)


def parse_fail_every(value: str) -> Failure:
    """``N:CMD:CODE``."""
    parts = value.split(":")
    if len(parts) != 3 or not parts[0].isdigit() or int(parts[0]) < 1:
        raise click.BadParameter(f"{value!r} is not N:CMD:CODE", param_hint="--fail-every")
    command = _command(parts[1], _PER_MESSAGE)
    return Failure(command, _reply_for(parts[2]), every=int(parts[0]))


class _Announced(list[ReceivedMessage]):
    """The server's message list, calling back on each message it receives."""

    def __init__(self, on_message: Callable[[int, ReceivedMessage], None]) -> None:
        super().__init__()
        self._on_message = on_message

    def append(self, message: ReceivedMessage, /) -> None:
        super().append(message)
        self._on_message(len(self), message)


class DevServer(ScriptedServer):
    """A ScriptedServer that fails every Nth message on request and reports what it
    receives and each scripted reply it sends. ``ca_file``: the CA certificate that
    signed its TLS certificate, for clients to trust."""

    def __init__(
        self,
        *,
        failures: Sequence[Failure],
        store: Path | None,
        ca_file: Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.store = store
        self.ca_file = ca_file
        self.transactions = 0
        self._every = [f for f in failures if f.every is not None]
        for failure in failures:
            if failure.every is None:
                self.on(
                    failure.command,
                    reply=failure.reply,
                    match=failure.pattern,
                    close=failure.closes,
                )
        self.messages = _Announced(self._received)

    def _take(self, command: str, argument: str) -> Rule | None:
        if command == "MAIL":
            self.transactions += 1
        rule: Rule | None = None
        for failure in self._every:
            assert failure.every is not None
            if failure.command == command and self.transactions % failure.every == 0:
                rule = Rule(command, failure.reply, close=failure.closes, hits=1)
                break
        else:
            rule = super()._take(command, argument)
        if rule is not None:
            shown = "" if command in ("DATA_END", "CONNECT", "DATA") else f" {argument}"
            echo(f"  {command}{shown} -> {rule.reply or '(scripted)'}", fg="yellow")
        return rule

    def _received(self, number: int, message: ReceivedMessage) -> None:
        stamp = datetime.datetime.now().strftime("%H:%M:%S")
        size = len(message.data)
        echo(f"[{stamp}] #{number} {message.describe()} ({size} bytes)", fg="green")
        if self.store is not None:
            path = self.store / f"{datetime.datetime.now():%Y%m%d-%H%M%S}-{number:04d}.eml"
            path.write_bytes(message.data)
            echo(f"  stored {path}", dim=True)


class CannotListen(click.ClickException):
    """The address or port cannot be listened on: exit status 1, with the reason."""

    exit_code = 1


def _bind_errno(host: str, port: int) -> int | None:
    """Why binding failed, when asyncio's error does not say (Python 3.13 reports "could
    not bind on any address" without an errno): try the bind once more, plainly."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.bind(address)
    except OSError as exc:
        return exc.errno
    return None


def _cannot_listen(host: str, port: int, exc: OSError) -> CannotListen:
    where = host_port(host, port)
    code = exc.errno if exc.errno is not None else _bind_errno(host, port)
    if code == errno.EADDRINUSE:
        why = "the port is in use; choose another with --port (0 picks a free one)"
    elif code == errno.EACCES:
        why = "permission denied (ports below 1024 need root); choose another with --port"
    elif code == errno.EADDRNOTAVAIL:
        why = "the address is not one of this machine's; see --host"
    else:
        why = exc.strerror or str(exc)
    return CannotListen(f"cannot listen on {where}: {why}")


async def _run(server: DevServer) -> None:
    try:
        await server.start()
    except OSError as exc:
        raise _cannot_listen(server.host, server.port, exc) from exc
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows
            loop.add_signal_handler(sig, stop.set)
    where = host_port(server.host, server.port)
    echo(f"smtpx serve: listening on {where}; Ctrl-C to stop", bold=True)
    if server.ca_file is not None:
        kind = "implicit TLS" if server.implicit_tls else "STARTTLS"
        echo(f"  {kind} with a throwaway CA: pass --ca-file {server.ca_file}")
    hint = f"  try: smtpx send {_send_options(server)} --from me@example.com --to you@example.com"
    echo(hint, dim=True)
    try:
        await stop.wait()
    finally:
        await server.stop()
        echo("smtpx serve: stopped")


def _send_options(server: DevServer) -> str:
    """The ``smtpx send`` options that reach this server."""
    options = [f"--host {server.host} --port {server.port}"]
    if server.ca_file is None:
        options.append("--tls none")
    elif server.implicit_tls:
        options.append(f"--tls implicit --ca-file {server.ca_file}")
    else:
        options.append(f"--ca-file {server.ca_file}")
    if server.credentials:
        (user,) = server.credentials
        options.append(f"--user {user}")
        if server.ca_file is None:
            options.append("--allow-plaintext-auth")
    return " ".join(options)


SERVE_EXIT_HELP = """\b
Exit codes:
  0  stopped by Ctrl-C or SIGTERM
  1  cannot listen on --host/--port (in use, not this machine's address, no permission)
  2  usage error (bad option, a --fail for a command not offered)"""


@click.command(epilog=SERVE_EXIT_HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8025,
    show_default=True,
    help="Port to listen on; 0 picks a free one (printed at start).",
)
@click.option(
    "--fail",
    "fails",
    multiple=True,
    metavar="CMD:CODE[:PATTERN]",
    help="Answer CODE (e.g. 550 or 550/5.1.1) to CMD, for arguments containing PATTERN "
    "(e.g. RCPT:550:bob@).  Repeatable; the first match applies.",
)
@click.option(
    "--fail-every",
    "every",
    multiple=True,
    metavar="N:CMD:CODE",
    help="Answer CODE to CMD (MAIL, RCPT, DATA or DATA_END) in every Nth message.",
)
@click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also store each message received as an .eml file in this directory.",
)
@click.option(
    "--user",
    help="Offer AUTH and accept USER (password from $SMTPX_PASSWORD or a prompt).",
)
@click.option("--size-limit", type=click.IntRange(min=1), help="Advertise and enforce SIZE.")
@click.option("--chunking", is_flag=True, help="Advertise CHUNKING and accept BDAT.")
@click.option(
    "--tls",
    "starttls",
    is_flag=True,
    help="Offer STARTTLS, with a certificate from a throwaway CA (its path is printed: "
    "give it to clients as --ca-file).",
)
@click.option(
    "--implicit-tls",
    is_flag=True,
    help="Speak TLS from the first byte (as port 465 does), with a throwaway CA as for --tls.",
)
def serve(
    host: str,
    port: int,
    fails: tuple[str, ...],
    every: tuple[str, ...],
    store: Path | None,
    user: str | None,
    size_limit: int | None,
    chunking: bool,
    starttls: bool,
    implicit_tls: bool,
) -> None:
    """Run a local SMTP server for development: plain SMTP (STARTTLS with --tls, TLS
    from the first byte with --implicit-tls), accepts every message and prints it (or
    stores it), unless told to fail.  Runs until Ctrl-C.

    \b
    Examples:
      smtpx serve --fail RCPT:550/5.1.1:bob@        bob@... does not exist
      smtpx serve --fail DATA_END:451               every message deferred
      smtpx serve --fail-every 3:RCPT:452/4.2.2     every 3rd message: mailbox full
      smtpx serve --fail AUTH:535 --user app        authentication always fails
      smtpx serve --tls --fail STARTTLS:454         TLS unavailable for now
    """
    if starttls and implicit_tls:
        raise click.UsageError("give --tls (STARTTLS) or --implicit-tls, not both")
    offered = ["BDAT"] * chunking + ["STARTTLS"] * starttls
    failures = [parse_fail(f, offered) for f in fails] + [parse_fail_every(f) for f in every]
    if store is not None:
        store.mkdir(parents=True, exist_ok=True)
    credentials = {user: password_for(user)} if user is not None else None
    with contextlib.ExitStack() as stack:
        tls: dict[str, Any] = {}
        if starttls or implicit_tls:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="smtpx-")))
            context, ca_file = throwaway_tls(host, directory)
            tls = {"tls_context": context, "implicit_tls": implicit_tls, "ca_file": ca_file}
        server = DevServer(
            host=host,
            port=port,
            failures=failures,
            store=store,
            credentials=credentials,
            size_limit=size_limit,
            chunking=chunking,
            **tls,
        )
        try:
            asyncio.run(_run(server))
        except KeyboardInterrupt:  # pragma: no cover - where signal handlers are unavailable
            echo("smtpx serve: stopped")


def throwaway_tls(host: str, directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context whose certificate a fresh CA signed, for *host* and the loopback
    names, and that CA's certificate written to *directory* (for clients' --ca-file)."""
    try:
        import trustme
    except ImportError as exc:  # pragma: no cover - trustme comes with the cli extra
        raise click.UsageError(f"TLS needs trustme: pip install 'smtpx[cli]' ({exc})") from exc
    names = ["localhost", "127.0.0.1", "::1"]
    if host not in ("", "0.0.0.0", "::", *names):  # noqa: S104 - names, not a bind
        names.insert(0, host)
    authority = trustme.CA(organization_name="smtpx serve (throwaway)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(*names).configure_cert(context)
    ca_file = directory / "smtpx-serve-ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    return context, ca_file
