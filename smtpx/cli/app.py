"""The ``smtpx`` click group: ``send``, ``probe``, ``explain``, ``serve``, ``outbox``."""

from __future__ import annotations

import click

from smtpx.cli._common import EXIT_CODES_HELP, honour_no_color
from smtpx.cli._explain import explain
from smtpx.cli._outbox import outbox
from smtpx.cli._probe import probe
from smtpx.cli._send import send
from smtpx.cli._serve import serve

__all__ = ["cli"]


@click.group(
    epilog=EXIT_CODES_HELP + "\n\nOutput is coloured on a terminal, plain when piped or "
    "when NO_COLOR is set.  Passwords come from $SMTPX_PASSWORD or a prompt, never argv.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="smtpx")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Send mail and know exactly what every server reply meant."""
    honour_no_color(ctx)


cli.add_command(send)
cli.add_command(probe)
cli.add_command(explain)
cli.add_command(serve)
cli.add_command(outbox)
