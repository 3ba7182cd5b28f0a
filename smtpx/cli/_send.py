"""``smtpx send``: one message (or one per recipient of a file), each outcome typed."""

from __future__ import annotations

import sys
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TextIO

import click

from smtpx import errors as e
from smtpx.cli._common import (
    EXIT_CODES_HELP,
    Exit,
    client_options,
    echo,
    exit_code,
    explain_error,
    print_failure,
    print_result,
    timeout_option,
    tls_options,
    tone,
)
from smtpx.cli._url import config_from_url, url_in_use, url_option
from smtpx.results import SendResult
from smtpx.retry import Backoff, RetryPolicy
from smtpx.sync import SyncClient

__all__ = ["send"]

DEFAULT_BODY = "A test message sent by smtpx.\n"

# Failures of the session rather than of one message: a bulk send stops at the first.
_SESSION_ERRORS = (e.AuthError, e.TLSError, e.PlaintextAuthRefused, e.ConnectError)


@click.command(epilog=EXIT_CODES_HELP)
@click.option("--host", help="The SMTP server (or give --url).")
@url_option
@click.option("--port", type=click.IntRange(1, 65535), help="Default: 587, 465 or 25 by --tls.")
@click.option("--from", "sender", metavar="ADDRESS", help="Envelope sender (and From header).")
@click.option(
    "--to",
    "to",
    multiple=True,
    metavar="ADDRESS",
    help="A recipient; repeatable, or several separated by commas (a@x,b@x).",
)
@click.option(
    "--to-file",
    type=click.File("r"),
    help="A file of recipients, one per line: one message each, with a progress bar.",
)
@click.option("--subject", help="Subject header (default: 'smtpx test message').")
@click.option("--body", help="Message text.")
@click.option(
    "--eml",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Send this RFC 5322 file as is; --from/--to then override its envelope.",
)
@tls_options
@click.option("--user", help="Authenticate as USER; password from $SMTPX_PASSWORD or a prompt.")
@click.option("--allow-plaintext-auth", is_flag=True, help="Allow AUTH without TLS.")
@click.option(
    "--retry",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Retry transient failures up to N more times (only to recipients still pending).",
)
@click.option(
    "--retry-wait",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Seconds before the first retry; doubles each time.",
)
@timeout_option(30.0)
@click.option("--local-hostname", metavar="NAME", help="Name to send in EHLO.")
@click.pass_context
def send(
    ctx: click.Context,
    host: str | None,
    url: str | None,
    port: int | None,
    sender: str | None,
    to: tuple[str, ...],
    to_file: TextIO | None,
    subject: str | None,
    body: str | None,
    eml: Path | None,
    tls: str,
    ca_file: Path | None,
    user: str | None,
    allow_plaintext_auth: bool,
    retry: int,
    retry_wait: float,
    timeout: float,
    local_hostname: str | None,
) -> None:
    """Send a message and print what happened to each recipient.

    Without --eml, a text message is built from --from, --to, --subject and --body.
    The password is never taken from the command line: set SMTPX_PASSWORD or type it
    at the prompt.
    """
    to = split_recipients(to)
    if eml is not None and (subject is not None or body is not None):
        raise click.UsageError("--subject and --body do not apply to --eml")
    if to and to_file is not None:
        raise click.UsageError("give --to or --to-file, not both")
    if eml is None and (sender is None or not (to or to_file)):
        raise click.UsageError("without --eml, --from and --to (or --to-file) are required")
    policy = None
    if retry:
        policy = RetryPolicy(attempts=retry + 1, backoff=Backoff(initial=retry_wait))
    if url is not None and url_in_use(ctx, url, host_given=host is not None):
        client = SyncClient(config_from_url(ctx, url))
    elif host is None:
        raise click.UsageError("give --host or --url (or set SMTPX_URL)")
    else:
        options = client_options(tls, ca_file, timeout, local_hostname, allow_plaintext_auth, user)
        client = SyncClient(host, port, **options)

    def build(recipients: tuple[str, ...]) -> bytes | EmailMessage:
        if eml is not None:
            return eml.read_bytes()
        assert sender is not None
        return _message(sender, recipients, subject, body)

    try:
        if to_file is None:
            code = _send_one(client, build(to), sender, to or None, policy)
        else:
            recipients = [line.strip() for line in to_file]
            recipients = [r for r in recipients if r and not r.startswith("#")]
            if not recipients:
                raise click.UsageError(f"no recipients in {to_file.name}")
            code = _send_each(client, build, sender, recipients, policy)
    finally:
        client.quit()
    ctx.exit(code)


def split_recipients(values: tuple[str, ...]) -> tuple[str, ...]:
    """Each ``--to`` value split at its commas, except inside quotes or angle brackets
    (``"a,b"@example.com`` is one address); empty parts are dropped."""
    recipients: list[str] = []
    for value in values:
        part, quoted, bracketed = "", False, False
        for char in value:
            if char == '"':
                quoted = not quoted
            elif char in "<>" and not quoted:
                bracketed = char == "<"
            elif char == "," and not (quoted or bracketed):
                recipients.append(part)
                part = ""
                continue
            part += char
        recipients.append(part)
    return tuple(r.strip() for r in recipients if r.strip())


def _message(
    sender: str, recipients: tuple[str, ...], subject: str | None, body: str | None
) -> EmailMessage:
    # Date and Message-ID are added when the message is sent.
    message = EmailMessage()
    for name, value in (
        ("From", sender),
        ("To", ", ".join(recipients)),
        ("Subject", subject if subject is not None else "smtpx test message"),
    ):
        try:
            message[name] = value
        except ValueError as exc:  # a CR or LF in the value (EmailMessage refuses it)
            option = "--from" if name == "From" else "--to" if name == "To" else "--subject"
            raise click.BadParameter(str(exc), param_hint=option) from exc
    message.set_content(body if body is not None else DEFAULT_BODY)
    return message


def _send_one(
    client: SyncClient,
    message: bytes | EmailMessage,
    sender: str | None,
    recipients: tuple[str, ...] | None,
    policy: RetryPolicy | None,
) -> Exit:
    try:
        result = client.send(message, sender=sender, recipients=recipients, retry=policy)
    except e.SMTPError as error:
        print_failure(error, recipients or ())
        return exit_code(error)
    print_result(result)
    return Exit.OK if result.all_accepted else Exit.PARTIAL


def _send_each(
    client: SyncClient,
    build: Callable[[tuple[str, ...]], bytes | EmailMessage],
    sender: str | None,
    recipients: list[str],
    policy: RetryPolicy | None,
) -> Exit:
    """One message per recipient; failures are listed after the bar, then a summary."""
    outcomes: dict[str, SendResult | e.SMTPError] = {}
    stopped: e.SMTPError | None = None
    # on stderr, so that stdout holds only the outcomes; no bar when it is not a terminal
    bar_options: dict[str, Any] = {"file": sys.stderr, "hidden": not sys.stderr.isatty()}
    with click.progressbar(recipients, label="Sending", **bar_options) as bar:
        for recipient in bar:
            try:
                outcomes[recipient] = client.send(
                    build((recipient,)), sender=sender, recipients=(recipient,), retry=policy
                )
            except e.SMTPError as error:
                outcomes[recipient] = error
                if isinstance(error, _SESSION_ERRORS):
                    stopped = error
                    break
    accepted = refused = 0
    codes: list[Exit] = []
    for recipient, outcome in outcomes.items():
        if isinstance(outcome, SendResult) and outcome.all_accepted:
            accepted += 1
            continue
        refused += 1
        if isinstance(outcome, SendResult):
            refusal = outcome.rejected[recipient]
        else:
            refusal = outcome.rejected.get(recipient, outcome)
        codes.append(exit_code(refusal))
        echo(f"  failed    {recipient}  {explain_error(refusal)}", **tone(refusal))
    not_sent = len(recipients) - len(outcomes)
    if stopped is not None:
        echo(f"stopped: {explain_error(stopped)}", **tone(stopped))
    summary = f"{accepted} accepted, {refused} failed, {not_sent} not sent, of {len(recipients)}"
    echo(summary, bold=True)
    if accepted == len(recipients):
        return Exit.OK
    if accepted:
        return Exit.PARTIAL
    return max(codes, default=Exit.USAGE)
