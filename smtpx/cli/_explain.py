"""``smtpx explain``: what a reply means, why the server refused, and how smtpx classifies it.

Takes a whole reply line (``550 5.7.1 ... blocked using zen.spamhaus.org``), a
code with an enhanced code and text, a code alone, or an enhanced code alone
(``5.1.1``).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import click

from smtpx import Command, EnhancedStatus, Reply, classify, severity
from smtpx import errors as e
from smtpx._explain import judge  # which rule decided: shown by this command only
from smtpx._reasons import ABOUT  # each reason's description, for the same page
from smtpx.cli._common import echo, tone
from smtpx.codes import CATALOGUE, TABLE, describe, is_expected
from smtpx.results import Success

__all__ = ["explain"]

_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
_LOOKS_ENHANCED = re.compile(r"\d\.")  # meant as an enhanced code, maybe mistyped
_CODE = re.compile(r"(\d{3})(?:[ -]|$)")


def _parse(words: tuple[str, ...]) -> Reply:
    """The reply the user typed: ``CODE [ENHANCED] [TEXT...]``, a whole reply line (lines
    may be separated by newlines, each with its ``NNN-`` prefix), or ``ENHANCED`` alone."""
    typed = " ".join(words).strip()
    if _ENHANCED.fullmatch(typed):  # 5.1.1 alone: the basic code the registry pairs it with
        status = EnhancedStatus.parse(typed)
        assert status is not None
        entry = status.entry
        usual = [c for c in entry.basic_codes if c // 100 == status.klass] if entry else []
        return Reply.build(usual[0] if usual else status.klass * 100 + 50, typed)
    found = _CODE.match(typed)
    if found is None:
        raise click.BadParameter(f"{typed!r} does not start with a reply code such as 550")
    code = int(found[1])
    if not 100 <= code <= 599:
        raise click.BadParameter(f"{code} is not a reply code (100-599)")
    lines = [_CODE.sub("", line, count=1).strip() for line in typed.splitlines()]
    first = lines[0].split(None, 1)
    if first and _LOOKS_ENHANCED.match(first[0]) and not _ENHANCED.fullmatch(first[0]):
        raise click.BadParameter(f"{first[0]!r} is not an enhanced status code such as 5.1.1")
    return Reply.build(code, "\n".join(lines).strip())


def _listed(command: Command, code: int) -> bool:
    row = TABLE[command]
    return code in row.positive or code in row.negative


def _row(command: Command, reply: Reply) -> tuple[str, ...]:
    code = reply.code
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
@click.argument("reply", nargs=-1, required=True)
@click.option(
    "--command",
    "command_name",
    type=click.Choice([c.name for c in Command], case_sensitive=False),
    help="Classify as the reply to this command only (DATA_END: after the final '.').",
)
def explain(reply: tuple[str, ...], command_name: str | None) -> None:
    """Explain a server REPLY: a whole reply line ("550 5.7.1 ... blocked using
    zen.spamhaus.org", quoted), CODE [ENHANCED] [TEXT], or an ENHANCED code alone
    (5.1.1).  Says what the code means, why the server refused (the reason, what to do
    and the rule's source), and the class smtpx raises, its severity and whether a
    retry may help.

    Without --command, every command whose row of the command table lists the code is
    shown, then what any other command gets.
    """
    try:
        parsed = _parse(reply)
    except click.BadParameter as error:
        error.param_hint = "REPLY"
        raise
    code, enhanced = parsed.code, parsed.enhanced
    command = Command[command_name.upper()] if command_name is not None else None
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
    if 400 <= code <= 599:
        _reason(command, parsed)
    echo()
    if command is not None:
        _one(command, parsed)
    else:
        _every(parsed)


def _reason(command: Command | None, reply: Reply) -> None:
    verdict = judge(command, reply)
    about = ABOUT[verdict.reason]
    echo(f"reason:     {verdict.reason.value}: {about.meaning}", bold=True)
    echo(f"what to do: {about.action}")
    rule = verdict.rule
    if rule is None:
        echo("rule:       none matched the reply", dim=True)
    else:
        how = "" if rule.refines else " (guessed from the command or code: the class stays)"
        echo(f"rule:       {rule.source}{how}", dim=True)


def _one(command: Command, reply: Reply) -> None:
    code = reply.code
    kind, level, retryable = _row(command, reply)
    listed = "yes" if _listed(command, code) else "no"
    if not _listed(command, code) and is_expected(command, code):
        listed = "no, but any command may get it (RFC 5321 §3.8)"
    echo(f"command:    {command.name} ({command.label})")
    echo(f"class:      {_ancestry(kind)}", **_style(kind))
    echo(f"severity:   {level}")
    echo(f"retryable:  {retryable}")
    echo(f"in table:   {listed}")


def _every(reply: Reply) -> None:
    code = reply.code
    rows = {command: _row(command, reply) for command in Command}
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
