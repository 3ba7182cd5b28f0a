"""What the commands share: exit codes, styled output, TLS and password options."""

from __future__ import annotations

import enum
import os
import re
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from smtpx import TLSMode, default_context
from smtpx import errors as e
from smtpx.codes import describe
from smtpx.results import SendResult, Success

__all__ = [
    "EXIT_CODES_HELP",
    "Exit",
    "advice",
    "client_options",
    "echo",
    "exit_code",
    "explain_error",
    "honour_no_color",
    "host_port",
    "password_for",
    "print_failure",
    "print_result",
    "timeout_option",
    "tls_context",
    "tls_options",
    "tone",
]

F = TypeVar("F", bound=Callable[..., Any])


class Exit(enum.IntEnum):
    """The exit status of ``smtpx send`` and ``smtpx probe``, by outcome."""

    OK = 0
    PARTIAL = 1
    USAGE = 2
    PERMANENT = 3
    TRANSIENT = 4
    UNKNOWN = 5
    SECURITY = 6


EXIT_CODES_HELP = """\b
Exit codes:
  0  every recipient accepted (probe: every step succeeded)
  1  some recipients accepted, some refused
  2  usage error (bad option, bad address, refused before sending)
  3  permanent failure (5xx): do not retry unchanged
  4  transient failure (4xx, lost connection): retry later
  5  delivery unknown: lost after the message was sent
  6  TLS or authentication error"""


def exit_code(error: e.SMTPError) -> Exit:
    """The exit status for a failure: TLS and auth first, then by severity."""
    if isinstance(error, e.AuthError | e.TLSError):
        return Exit.SECURITY
    if isinstance(error, e.DeliveryUnknown):
        return Exit.UNKNOWN
    if isinstance(error, e.UsageError):
        return Exit.USAGE
    if isinstance(error, e.TransientError):
        return Exit.TRANSIENT
    return Exit.PERMANENT


def honour_no_color(ctx: click.Context) -> None:
    """Colour only on a terminal (click's default), and never when NO_COLOR is set."""
    if os.environ.get("NO_COLOR"):
        ctx.color = False


def echo(text: str = "", *, err: bool = False, **style: Any) -> None:
    click.echo(click.style(text, **style) if style else text, err=err)


def tone(outcome: Success | BaseException | None) -> dict[str, Any]:
    """The style of an outcome: green success, yellow transient, red otherwise."""
    if outcome is None or isinstance(outcome, Success):
        return {"fg": "green"}
    if isinstance(outcome, e.DeliveryUnknown):
        return {"fg": "magenta"}
    if isinstance(outcome, e.SMTPError) and outcome.retryable:
        return {"fg": "yellow"}
    return {"fg": "red"}


def explain_error(error: e.SMTPError) -> str:
    """``NoSuchMailbox 550 5.1.1: meaning; registry title; server said '...'``."""
    head = " ".join(
        part
        for part in (type(error).__name__, str(error.code or ""), str(error.enhanced or ""))
        if part
    )
    reply = error.reply
    if reply is None:
        reason = error.summary + (f": {error.detail}" if error.detail else "")
        return f"{head}: {for_the_command_line(reason)}"
    # each thing once: a meaning the server's words (or the other code) already say is left out
    said = {_words(reply.message)}
    meanings: list[str] = []
    for meaning in (describe(reply.code), reply.enhanced.title if reply.enhanced else None):
        if meaning is not None and _words(meaning) not in said:
            said.add(_words(meaning))
            meanings.append(meaning)
    if reply.message:
        meanings.append(f"server said {reply.message!r}")
    return f"{head}: {'; '.join(meanings)}" if meanings else head


def _words(text: str) -> str:
    """``text`` compared as words: case, punctuation and spacing aside."""
    return " ".join("".join(c if c.isalnum() else " " for c in text.casefold()).split())


# (error class, the CLI flag the hint is about, the hint)
_HINTS: tuple[tuple[type[e.SMTPError], str, str], ...] = (
    (e.TLSNotOffered, "--tls", "use --tls implicit (port 465), or --tls opportunistic or none"),
    (e.TLSModeMismatch, "--tls", "the port speaks the other TLS mode: see --tls"),
    (e.CertificateInvalid, "--ca-file", "a private CA? pass its certificate with --ca-file"),
    (
        e.PlaintextAuthRefused,
        "--allow-plaintext-auth",
        "use TLS, or pass --allow-plaintext-auth (local servers only)",
    ),
    (e.AuthMechanismTooWeak, "", "smtpx implements PLAIN, LOGIN and CRAM-MD5 only"),
    (e.AuthNotOffered, "--user", "drop --user: this server takes no logins (on this port?)"),
)

# The library's messages give Python-facing advice ("use TLSMode.IMPLICIT"); on the
# command line the same advice names the flag.
_PYTHON_TO_FLAGS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\btls=TLSMode\.([A-Z]+)|\bTLSMode\.([A-Z]+)"), "--tls {}"),
    (re.compile(r"\ballow_plaintext_auth=True\b"), "--allow-plaintext-auth"),
)


def for_the_command_line(text: str) -> str:
    """``text`` with Python options as CLI flags: ``TLSMode.IMPLICIT`` -> ``--tls implicit``."""
    for pattern, flag in _PYTHON_TO_FLAGS:

        def put(match: re.Match[str], flag: str = flag) -> str:
            value = next((group for group in match.groups() if group), "")
            return flag.format(value.lower())

        text = pattern.sub(put, text)
    return text


def advice(error: e.SMTPError) -> str:
    """What the failure means for the next try, and a hint for the command line (unless
    the error's own words already name that flag)."""
    said = explain_error(error)
    hint = next(
        (
            f"; {text}"
            for kind, flag, text in _HINTS
            if isinstance(error, kind) and not (flag and flag in said)
        ),
        "",
    )
    return _outlook(error) + hint


def _outlook(error: e.SMTPError) -> str:
    if isinstance(error, e.DeliveryUnknown):
        return "delivery unknown: the server may have the message; check before resending"
    if error.retryable:
        return "transient: try again later"
    return "permanent: do not retry unchanged"


def print_result(result: SendResult) -> None:
    for recipient in result.accepted:
        echo(f"  accepted  {recipient}", fg="green")
    for recipient, refusal in result.rejected.items():
        echo(f"  rejected  {recipient}  {explain_error(refusal)}", **tone(refusal))
    echo(f"  server    {result.reply}", dim=True)


def print_failure(error: e.SMTPError, recipients: tuple[str, ...] = ()) -> None:
    """A failed send: the error, then each recipient's own refusal or 'not sent'."""
    attempts = f" after {len(error.attempts)} attempts" if len(error.attempts) > 1 else ""
    echo(f"failed{attempts}: {explain_error(error)}", **tone(error))
    echo(f"  ({advice(error)})", dim=True)
    listed = set()
    for recipient, refusal in error.rejected.items():
        listed.add(recipient)
        echo(f"  rejected  {recipient}  {explain_error(refusal)}", **tone(refusal))
    for recipient in (*error.undelivered, *recipients):
        if recipient not in listed:
            listed.add(recipient)
            echo(f"  not sent  {recipient}  ({type(error).__name__})", **tone(error))


def tls_options(function: F) -> F:
    """``--tls`` and ``--ca-file``."""
    function = click.option(
        "--ca-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Trust the CA certificates in this PEM file instead of the system's.",
    )(function)
    return click.option(
        "--tls",
        "tls",
        type=click.Choice([mode.value for mode in TLSMode], case_sensitive=False),
        default=TLSMode.STARTTLS.value,
        show_default=True,
        help="starttls: upgrade, required; implicit: TLS from the first byte (port 465); "
        "opportunistic: upgrade if offered; none: plaintext.",
    )(function)


def timeout_option(default: float) -> Callable[[F], F]:
    """``--timeout`` with this default."""
    return click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=default,
        show_default=True,
        help="Seconds to wait for the connection and for each reply.",
    )


def tls_context(ca_file: Path | None) -> ssl.SSLContext | None:
    if ca_file is None:
        return None
    try:
        return default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise click.BadParameter(f"cannot load {ca_file}: {exc}", param_hint="--ca-file") from exc


def host_port(host: str, port: int) -> str:
    """``127.0.0.1:8025``, ``[::1]:8025``: an IPv6 address in brackets, as in a URL."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def client_options(
    tls: str,
    ca_file: Path | None,
    timeout: float,
    local_hostname: str | None,
    allow_plaintext_auth: bool,
    user: str | None,
) -> dict[str, Any]:
    """The ``Client`` keyword arguments that a command's connection options make (in the
    order the commands declare them)."""
    options: dict[str, Any] = {
        "tls": TLSMode(tls),
        "tls_context": tls_context(ca_file),
        "timeout": timeout,
        "local_hostname": local_hostname,
        "allow_plaintext_auth": allow_plaintext_auth,
    }
    if user is not None:
        options["credentials"] = (user, password_for(user))
    return options


def password_for(user: str) -> str:
    """From $SMTPX_PASSWORD; else a hidden prompt on a terminal; else the first line of
    standard input (``... | smtpx send --user app``); never from argv.

    Without a terminal nothing is prompted or echoed, so getpass's warning that the input
    "may be echoed" would be false: standard input is read directly instead.
    """
    password = os.environ.get("SMTPX_PASSWORD")
    if password:
        return password
    if _interactive():
        try:
            typed: str = click.prompt(f"Password for {user}", hide_input=True, err=True)
        except click.Abort:
            raise click.UsageError(f"no password typed for {user}") from None
        return typed
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise click.UsageError(
            f"no password for {user}: set SMTPX_PASSWORD, pipe it on standard input, "
            "or run in a terminal"
        )
    return line


def _interactive() -> bool:
    """Whether standard input is a terminal (where a hidden prompt works)."""
    return sys.stdin is not None and sys.stdin.isatty()
