"""``smtpx explain``: what a reply code means, and how smtpx classifies it per command."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import click

from smtpx import errors as e
from smtpx._classify import classify, severity
from smtpx._codes import CATALOGUE, describe
from smtpx._commands import Command
from smtpx._enhanced import EnhancedStatus
from smtpx._reply import Reply
from smtpx._table import TABLE, is_expected
from smtpx.cli._common import echo, tone
from smtpx.results import Success

_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")


def _enhanced(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> EnhancedStatus | None:
    if value is None:
        return None
    status = EnhancedStatus.parse(value) if _ENHANCED.fullmatch(value) else None
    if status is None:
        raise click.BadParameter(f"{value!r} is not an enhanced status code such as 5.1.1")
    return status


def _listed(command: Command, code: int) -> bool:
    row = TABLE[command]
    return code in row.positive or code in row.negative


def _row(command: Command, code: int, enhanced: EnhancedStatus | None) -> tuple[str, ...]:
    reply = Reply.build(code, str(enhanced) if enhanced is not None else "")
    outcome = classify(command, reply)
    kind = type(outcome).__name__
    retryable = "-" if isinstance(outcome, Success) else ("yes" if outcome.retryable else "no")
    # a protocol error (out of step, or not an SMTP code) has no severity of its own
    level = "-" if isinstance(outcome, e.ProtocolError) else severity(command, code).value
    return (kind, level, retryable)


def _ancestry(name: str) -> str:
    """``NoSuchMailbox < MailboxUnavailable < PermanentError`` (categories in brackets)."""
    cls = getattr(e, name, None)
    if cls is None or not isinstance(cls, type):
        return name
    chain = [
        c.__name__ for c in cls.__mro__ if issubclass(c, e.SMTPError) and c is not e.SMTPError
    ]
    return " < ".join(chain)


@click.command()
@click.argument("code", type=click.IntRange(100, 599))
@click.argument("enhanced", required=False, callback=_enhanced)
@click.option(
    "--command",
    "command_name",
    type=click.Choice([c.name for c in Command], case_sensitive=False),
    help="Classify as the reply to this command only (DATA_END: after the final '.').",
)
def explain(code: int, enhanced: EnhancedStatus | None, command_name: str | None) -> None:
    """Explain reply CODE (and ENHANCED status, such as 5.1.1): its meaning, the class
    smtpx raises or returns for it, its severity and whether a retry may help.

    Without --command, every command whose row of the command table lists CODE is
    shown, then what any other command gets.
    """
    info = CATALOGUE.get(code)
    source = f"  [{info.source}]" if info is not None else ""
    echo(f"{code}  {describe(code)}{source}", bold=True)
    if enhanced is not None:
        entry = enhanced.entry
        reference = f"  [{entry.reference}]" if entry is not None and entry.reference else ""
        echo(f"{enhanced}  {enhanced.title}{reference}", bold=True)
        if enhanced.klass != code // 100:
            echo(
                f"  note: class {enhanced.klass} disagrees with {code}; smtpx goes by the "
                "basic code for severity",
                fg="yellow",
            )
    if code == 101:
        echo("  note: servers never send 101; smtpx raises ConnectError (transient) when it")
        echo("  cannot connect.  As a reply, 101 would be a ProtocolError.")
    echo()
    if command_name is not None:
        _one(Command[command_name.upper()], code, enhanced)
    else:
        _every(code, enhanced)


def _one(command: Command, code: int, enhanced: EnhancedStatus | None) -> None:
    kind, level, retryable = _row(command, code, enhanced)
    listed = "yes" if _listed(command, code) else "no"
    if not _listed(command, code) and is_expected(command, code):
        listed = "no, but any command may get it (RFC 5321 §3.8)"
    echo(f"command:    {command.name} ({command.label})")
    echo(f"class:      {_ancestry(kind)}", **_style(kind))
    echo(f"severity:   {level}")
    echo(f"retryable:  {retryable}")
    echo(f"in table:   {listed}")


def _every(code: int, enhanced: EnhancedStatus | None) -> None:
    rows = {command: _row(command, code, enhanced) for command in Command}
    listed = [command for command in Command if _listed(command, code)]
    # "any other command": the outcome most of the unlisted commands share
    common = Counter(rows[c] for c in Command if c not in listed).most_common(1)
    default = common[0][0] if common else None
    shown = listed + [c for c in Command if c not in listed and rows[c] != default]
    echo(f"{'command':<10}  {'class':<26}  {'severity':<9}  retryable", bold=True)
    for command in shown:
        kind, level, retryable = rows[command]
        note = "" if command in listed else "  (not in the table)"
        echo(f"{command.name:<10}  {kind:<26}  {level:<9}  {retryable}{note}", **_style(kind))
    if default is not None:
        kind, level, retryable = default
        line = f"{'(other)':<10}  {kind:<26}  {level:<9}  {retryable}  (not in the table)"
        echo(line, **_style(kind))
    if not listed:
        echo(f"no command's row of the command table lists {code}", dim=True)


def _style(kind: str) -> dict[str, Any]:
    cls = getattr(e, kind, None)
    if isinstance(cls, type) and issubclass(cls, e.SMTPError):
        return tone(cls())
    return tone(None)
