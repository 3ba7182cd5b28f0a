"""``smtpx outbox run|status|release``: work a durable outbox from the command line."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import signal
from pathlib import Path
from typing import Any

import click

from smtpx import errors as e
from smtpx.cli._common import client_options, echo, tls_options
from smtpx.outbox import Outbox, OutboxStats, RecipientStatus, State, StorageError
from smtpx.pool import Pool

__all__ = ["outbox"]

_DB = click.argument("database", type=click.Path(dir_okay=False, path_type=Path))
_STATE_STYLE: dict[State, dict[str, Any]] = {
    State.ACCEPTED: {"fg": "green"},
    State.DEFERRED: {"fg": "yellow"},
    State.DELIVERY_UNKNOWN: {"fg": "magenta"},
    State.REFUSED: {"fg": "red"},
    State.EXPIRED: {"fg": "red"},
}


@click.group()
def outbox() -> None:
    """A durable outbox in one SQLite file: deliver it, look at it, decide."""


def _open(database: Path, **options: Any) -> Outbox:
    try:
        return Outbox(database, **options)
    except (e.UsageError, StorageError) as exc:
        raise click.UsageError(str(exc)) from exc


@outbox.command()
@_DB
@click.option("--host", required=True, help="The SMTP server.")
@click.option("--port", type=click.IntRange(1, 65535), help="Default: 587, 465 or 25 by --tls.")
@tls_options
@click.option("--user", help="Authenticate as USER; password from $SMTPX_PASSWORD or a prompt.")
@click.option("--allow-plaintext-auth", is_flag=True, help="Allow AUTH without TLS.")
@click.option("--connections", type=click.IntRange(1, 100), default=4, show_default=True)
@click.option("--until-idle", is_flag=True, help="Exit once nothing is left to send.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=30.0)
@click.option("--local-hostname", metavar="NAME", help="Name to send in EHLO.")
def run(
    database: Path,
    host: str,
    port: int | None,
    tls: str,
    ca_file: Path | None,
    user: str | None,
    allow_plaintext_auth: bool,
    connections: int,
    until_idle: bool,
    timeout: float,
    local_hostname: str | None,
) -> None:
    """Deliver DATABASE's messages until stopped (SIGTERM, Ctrl-C) or, with
    --until-idle, until none is left to send.  Safe to kill at any moment."""
    options = client_options(tls, ca_file, timeout, local_hostname, allow_plaintext_auth, user)
    with _open(database) as box:
        try:
            asyncio.run(_run(box, Pool(host, port, size=connections, **options), until_idle))
        except (e.UsageError, StorageError) as exc:
            raise click.UsageError(str(exc)) from exc
        _print_stats(box.stats())


async def _run(box: Outbox, pool: Pool, until_idle: bool) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, box.stop)
    async with pool:
        await box.run(pool, until_idle=until_idle)


@outbox.command()
@_DB
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(database: Path, as_json: bool) -> None:
    """Counts per recipient state, and every recipient whose delivery is unknown."""
    if not database.exists():
        raise click.UsageError(f"{database} does not exist")
    with _open(database) as box:
        stats, unknown = box.stats(), box.unknown()
    if as_json:
        click.echo(json.dumps(_stats_json(stats, unknown), indent=2))
        return
    _print_stats(stats)
    if unknown:
        echo(f"delivery unknown ({len(unknown)}): decide, then `smtpx outbox release`")
        for recipient in unknown:
            echo(f"  message {recipient.message_id}  {recipient.address}", fg="magenta")


@outbox.command()
@_DB
@click.argument("message_id", type=click.IntRange(min=1))
@click.option("--to", "to", multiple=True, metavar="ADDRESS", help="Only this recipient.")
def release(database: Path, message_id: int, to: tuple[str, ...]) -> None:
    """Send MESSAGE_ID again to its delivery-unknown recipients (you checked: they did
    not get it).  The next `run` sends it."""
    with _open(database) as box:
        count = box.release(message_id, to or None)
    echo(f"released {count} recipient(s) of message {message_id}")


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat(timespec="seconds")


def _print_stats(stats: OutboxStats) -> None:
    echo(f"messages   {stats.messages}")
    for state in State:
        count = stats.count(state)
        style = _STATE_STYLE.get(state, {}) if count else {"dim": True}
        echo(f"{state.value:<17} {count}", **style)
    echo(f"in flight  {stats.in_flight}   next due {_when(stats.next_due)}", dim=True)


def _stats_json(stats: OutboxStats, unknown: list[RecipientStatus]) -> dict[str, Any]:
    return {
        "messages": stats.messages,
        "recipients": {state.value: stats.count(state) for state in State},
        "in_flight": stats.in_flight,
        "next_due": stats.next_due,
        "oldest": stats.oldest,
        "delivery_unknown": [
            {"message_id": r.message_id, "address": r.address, "since": r.updated} for r in unknown
        ],
    }
