"""``--url`` for ``smtpx send`` and ``smtpx probe``: the server as one URL (or ``SMTPX_URL``).

A password in ``--url`` itself is refused: every user of the machine can read a
command line (``ps``, shell history), which is why the CLI never takes a password
from argv.  A URL in ``SMTPX_URL`` may hold one; a URL without one takes it from
``SMTPX_PASSWORD`` or a hidden prompt, as ``--user`` does.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from smtpx import errors as e
from smtpx.cli._common import password_for, tls_context
from smtpx.config import ClientConfig

__all__ = ["config_from_url", "url_in_use", "url_option"]

F = TypeVar("F", bound=Callable[..., Any])

# What the URL says, so these flags are refused beside it.
_SAID_BY_THE_URL = ("host", "port", "tls", "user")


def url_option(function: F) -> F:
    """``--url``, also read from ``SMTPX_URL``."""
    return click.option(
        "--url",
        envvar="SMTPX_URL",
        metavar="URL",
        help="The server as smtps://user@host:port, smtp+starttls://… or smtp://… "
        "(default: $SMTPX_URL); no password here: set SMTPX_PASSWORD.",
    )(function)


def given(ctx: click.Context, name: str) -> bool:
    """Whether the option ``name`` was set by the user (command line or environment)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source is not ParameterSource.DEFAULT


def url_in_use(ctx: click.Context, url: str | None, *, host_given: bool) -> bool:
    """Whether the command connects by its URL: one given on the command line, or one in
    SMTPX_URL when no host is given (an explicit host wins over the environment)."""
    if url is None:
        return False
    from_argv = ctx.get_parameter_source("url") is ParameterSource.COMMANDLINE
    if not from_argv and host_given:
        return False
    clashing = [
        f"--{name}" for name in _SAID_BY_THE_URL if name in ctx.params and given(ctx, name)
    ]
    if host_given:
        clashing.insert(0, "--host")
    if clashing:
        where = "--url" if from_argv else "SMTPX_URL"
        raise click.UsageError(
            f"{where} says the host, port, TLS mode and user: drop {', '.join(clashing)}"
        )
    return True


def config_from_url(ctx: click.Context, url: str) -> ClientConfig:
    """The ``ClientConfig`` of ``url``; the command's connection options that the user
    set (``--timeout``, ``--local-hostname``, ``--allow-plaintext-auth``, ``--ca-file``)
    replace the URL's."""
    overrides: dict[str, Any] = {
        name: ctx.params[name]
        for name in ("timeout", "local_hostname", "allow_plaintext_auth")
        if given(ctx, name)
    }
    ca_file: Path | None = ctx.params.get("ca_file")
    if ca_file is not None:
        overrides["tls_context"] = tls_context(ca_file)
    from_argv = ctx.get_parameter_source("url") is ParameterSource.COMMANDLINE
    try:
        parts = urllib.parse.urlsplit(url)
        user, has_password = parts.username, parts.password is not None
    except ValueError:  # from_url says what is wrong, without repeating the URL
        user, has_password = None, False
    if has_password and from_argv:
        del url, parts  # it holds the password
        raise click.BadParameter(
            "a password on the command line is visible to every user of this machine "
            "(ps, shell history): leave it out and set SMTPX_PASSWORD, or put the whole "
            "URL in SMTPX_URL",
            param_hint="--url",
        )
    password = password_for(urllib.parse.unquote(user)) if user and not has_password else None
    try:
        return ClientConfig.from_url(url, password=password, **overrides)
    except e.UsageError as error:
        failure = error
    del url, password  # secrets: out of this frame's locals in a traceback
    raise click.BadParameter(failure.detail or str(failure), param_hint="--url") from None
