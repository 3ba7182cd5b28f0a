"""``smtpx probe``: what a server says at each step, and what each reply means."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click

from smtpx import Command, Credentials, OAuth2, Reply, TLSMode
from smtpx import errors as e
from smtpx.cli._common import (
    EXIT_CODES_HELP,
    Exit,
    advice,
    echo,
    exit_code,
    explain_error,
    host_port,
    password_for,
    timeout_option,
    tls_context,
    tls_options,
    tone,
)
from smtpx.cli._url import config_from_url, url_in_use, url_option
from smtpx.client import Client
from smtpx.results import SUCCESS_TYPES

__all__ = ["probe"]


def parse_target(target: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[::1]:port`` or a bare IPv6 address."""
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        port = rest.removeprefix(":") or None
    elif target.count(":") == 1:
        host, port = target.split(":")
    else:
        host, port = target, None
    if not host or (port is not None and not (port.isdigit() and 0 < int(port) < 65536)):
        raise click.BadParameter(f"{target!r} is not HOST[:PORT]", param_hint="HOST[:PORT]")
    return host, int(port) if port is not None else None


class _Printer(logging.Handler):
    """Prints the client's transcript: each line sent, each reply and its classification."""

    def emit(self, record: logging.LogRecord) -> None:
        fields: Mapping[str, Any] = getattr(record, "smtpx", {})
        reply = record.args[0] if isinstance(record.args, tuple) and record.args else None
        if fields.get("direction") == "<<<" and isinstance(reply, Reply):
            kind = str(fields.get("classification", ""))
            lines = reply.lines or ("",)
            for number, line in enumerate(lines, 1):
                separator = " " if number == len(lines) else "-"
                echo(f"<<< {reply.code}{separator}{line}".rstrip())
            style: dict[str, Any] = {"fg": "green" if kind in _SUCCESS_NAMES else "red"}
            if reply.code // 100 == 4:
                style = {"fg": "yellow"}
            echo(f"    = {kind}", **style)
        else:
            echo(record.getMessage(), dim=True)


_SUCCESS_NAMES = {cls.__name__ for cls in SUCCESS_TYPES.values()}


@contextlib.contextmanager
def _transcript() -> Iterator[None]:
    logger = logging.getLogger("smtpx.transcript")
    handler, level = _Printer(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _name(parts: Any) -> str:
    """An X.509 name as ``CN=localhost, O=Example`` from ``getpeercert()`` tuples."""
    short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU"}
    short |= {"countryName": "C", "localityName": "L", "stateOrProvinceName": "ST"}
    return ", ".join(f"{short.get(k, k)}={v}" for rdn in parts or () for k, v in rdn) or "-"


def _print_tls(client: Client) -> None:
    tls = client.ssl_object
    if tls is None:
        echo("TLS:          none (plaintext)", fg="yellow")
        return
    cipher = tls.cipher()
    suite = f"{cipher[0]} ({cipher[2]}-bit)" if cipher else "?"
    echo(f"TLS:          {tls.version()}, {suite}", fg="green")
    cert: dict[str, Any] | None = tls.getpeercert()
    if not cert:
        echo("certificate:  (not verified, details unavailable)", fg="yellow")
        return
    names = ", ".join(value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS")
    echo(f"certificate:  subject {_name(cert.get('subject'))}")
    if names:
        echo(f"              names {names}")
    echo(f"              issuer {_name(cert.get('issuer'))}")
    echo(f"              valid until {cert.get('notAfter', '?')}")


def _print_learned(client: Client) -> None:
    echo()
    echo(f"greeting:     {client.greeting}")
    extensions = [f"{k.upper()} {v}".rstrip() for k, v in client.extensions.items()]
    echo(f"capabilities: {', '.join(extensions) or '(none: HELO only)'}")
    _print_tls(client)
    echo(f"AUTH:         {' '.join(client.auth_mechanisms) or '(not offered)'}")


async def _probe(
    host: str, port: int, mode: TLSMode, credentials: Credentials | None, options: dict[str, Any]
) -> Exit:
    # The client connects in plain text (or implicit TLS) and this probe takes each
    # further step itself, so that every reply is shown in order.
    plain = TLSMode.IMPLICIT if mode is TLSMode.IMPLICIT else TLSMode.NONE
    client = Client(host, port, tls=plain, transcript=True, **options)
    echo(f"probing {host_port(host, client.port)} (tls={mode.value})", bold=True)
    learned = False  # whether the summary of the session so far has been printed
    try:
        with _transcript():
            await client.connect()
            if mode in (TLSMode.STARTTLS, TLSMode.OPPORTUNISTIC):
                if "starttls" in client.extensions:
                    await client.starttls()
                elif mode is TLSMode.STARTTLS:
                    raise e.TLSNotOffered(command=Command.STARTTLS)
        _print_learned(client)
        learned = True
        if credentials is not None:
            echo()
            with _transcript():
                result = await client.login(credentials)
            echo(f"authentication: {type(result).__name__} {result.reply}", fg="green")
    except e.SMTPError as error:
        if not learned and client.greeting is not None:
            _print_learned(client)  # what the server said before the failure
        echo()
        echo(f"failed: {explain_error(error)}", **tone(error))
        echo(f"  ({advice(error)})", dim=True)
        return exit_code(error)
    finally:
        await client.quit()
    return Exit.OK


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("target", metavar="HOST[:PORT]", required=False)
@url_option
@tls_options
@click.option("--user", help="Also try AUTH as USER; password from $SMTPX_PASSWORD or a prompt.")
@click.option("--allow-plaintext-auth", is_flag=True, help="Allow AUTH without TLS.")
@timeout_option(10.0)
@click.option("--local-hostname", metavar="NAME", help="Name to send in EHLO.")
@click.pass_context
def probe(
    ctx: click.Context,
    target: str | None,
    url: str | None,
    tls: str,
    ca_file: Path | None,
    user: str | None,
    allow_plaintext_auth: bool,
    timeout: float,
    local_hostname: str | None,
) -> None:
    """Connect and show the greeting, EHLO capabilities, TLS session and certificate,
    AUTH mechanisms, and (with --user) the outcome of AUTH, each reply classified.

    Nothing is sent beyond EHLO, STARTTLS, AUTH and QUIT.
    """
    if url is not None and url_in_use(ctx, url, host_given=target is not None):
        config = config_from_url(ctx, url)
        given = {
            "tls_context": config.tls_context,
            "timeout": config.timeout,
            "local_hostname": config.local_hostname,
            "allow_plaintext_auth": config.allow_plaintext_auth,
        }
        credentials = config.credentials
        assert not isinstance(credentials, OAuth2)  # a URL holds a password, never a token
        probing = _probe(config.host, config.port, config.tls, credentials, given)
        ctx.exit(asyncio.run(probing))
    if target is None:
        raise click.UsageError("give HOST[:PORT] or --url (or set SMTPX_URL)")
    host, port = parse_target(target)
    mode = TLSMode(tls)
    # asked before connecting, so that the server does not wait on the prompt
    credentials = Credentials(user, password_for(user)) if user is not None else None
    options: dict[str, Any] = {
        "tls_context": tls_context(ca_file),
        "timeout": timeout,
        "local_hostname": local_hostname,
        "allow_plaintext_auth": allow_plaintext_auth,
    }
    port = port if port is not None else mode.default_port
    ctx.exit(asyncio.run(_probe(host, port, mode, credentials, options)))
