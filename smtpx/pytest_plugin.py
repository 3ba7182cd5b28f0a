"""pytest plugin: a scripted SMTP server per test, and assertions on what it received.

Installed with ``smtpx[testing]`` and loaded automatically (entry point ``smtpx`` in the
``pytest11`` group); disable with ``-p no:smtpx``. Fixtures:

``smtp_server`` -> :class:`~smtpx.testing.ScriptedServer`
    A started server on ``127.0.0.1`` (plain, no TLS) that accepts every message, runs in
    a background thread (so synchronous code and any event loop can talk to it), and is
    stopped when the test ends. It advertises AUTH and accepts :data:`USERNAME` /
    :data:`PASSWORD`. Configure it with the ``smtp_server`` marker, whose keyword
    arguments are those of :class:`~smtpx.testing.ScriptedServer`::

        @pytest.mark.smtp_server(size_limit=1000, credentials=None)
        def test_big_attachment(smtp_server): ...

``smtp_server_factory`` -> ``(**kwargs) -> ScriptedServer``
    Starts another server with those arguments (for tests that need several); each is
    stopped when the test ends.

Three lines per failure mode::

    def test_signup_survives_greylisting(smtp_server):
        smtp_server.on("RCPT", reply="450 4.2.0 Greylisted, try again later")
        assert signup("alice@example.com", smtp=(smtp_server.host, smtp_server.port)) == "queued"

Assertions (also importable from :mod:`smtpx.testing`): :func:`assert_sent`,
:func:`assert_not_sent`.

The servers run on their own loop in a background thread, so the fixtures serve
synchronous tests and async ones alike, whichever plugin runs the latter:
pytest-asyncio (in the ``testing`` extra; ``@pytest.mark.asyncio`` or
``asyncio_mode = auto``) or anyio's (``@pytest.mark.anyio``, on asyncio or trio).

pytest loads this module for everyone who installs smtpx, so it imports aiosmtpd (the
``testing`` extra) only when a fixture or assertion is used: without it, your test
session still starts and only the tests that use these fixtures fail, saying why.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from smtpx.testing import ReceivedMessage, ScriptedServer

__all__ = [
    "PASSWORD",
    "USERNAME",
    "ServerFactory",
    "assert_not_sent",
    "assert_sent",
    "smtp_server",
    "smtp_server_factory",
]

USERNAME = "user"
"""The user name the ``smtp_server`` fixture accepts (with :data:`PASSWORD`)."""
PASSWORD = "password"  # noqa: S105 - a fixed test credential, documented as such

_MARKER = "smtp_server"


class ServerFactory(Protocol):
    """The type of the ``smtp_server_factory`` fixture."""

    def __call__(self, **kwargs: Any) -> ScriptedServer: ...


def _testing() -> Any:
    try:
        import smtpx.testing
    except ImportError as exc:  # aiosmtpd missing
        raise pytest.UsageError(
            f"the smtpx pytest fixtures need the testing extra: pip install 'smtpx[testing]' "
            f"({exc})"
        ) from exc
    return smtpx.testing


def assert_sent(
    server: ScriptedServer,
    *,
    to: str | Iterable[str] | None = None,
    sender: str | None = None,
    subject: str | None = None,
    contains: str | None = None,
    count: int | None = None,
) -> list[ReceivedMessage]:
    """See :func:`smtpx.testing.assert_sent`."""
    __tracebackhide__ = True
    found: list[ReceivedMessage] = _testing().assert_sent(
        server, to=to, sender=sender, subject=subject, contains=contains, count=count
    )
    return found


def assert_not_sent(
    server: ScriptedServer,
    *,
    to: str | Iterable[str] | None = None,
    sender: str | None = None,
    subject: str | None = None,
    contains: str | None = None,
) -> None:
    """See :func:`smtpx.testing.assert_not_sent`."""
    __tracebackhide__ = True
    _testing().assert_not_sent(server, to=to, sender=sender, subject=subject, contains=contains)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(**kwargs): ScriptedServer arguments for the smtp_server fixture "
        "(hostname, credentials, size_limit, smtputf8, pipelining, ...)",
    )


@pytest.fixture
def smtp_server_factory() -> Iterator[ServerFactory]:
    """Start scripted SMTP servers in background threads; all stop when the test ends."""
    with contextlib.ExitStack() as stack:

        def start(**kwargs: Any) -> ScriptedServer:
            server: ScriptedServer = stack.enter_context(_testing().serve_in_thread(**kwargs))
            return server

        yield start


@pytest.fixture
def smtp_server(
    request: pytest.FixtureRequest, smtp_server_factory: ServerFactory
) -> ScriptedServer:
    """A started, accept-everything scripted SMTP server on 127.0.0.1, one per test."""
    kwargs: dict[str, Any] = {"credentials": {USERNAME: PASSWORD}}
    marker = request.node.get_closest_marker(_MARKER)
    if marker is not None:
        if marker.args:
            raise pytest.UsageError(f"@pytest.mark.{_MARKER} takes keyword arguments only")
        kwargs.update(marker.kwargs)
    return smtp_server_factory(**kwargs)
