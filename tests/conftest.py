"""Shared fixtures: a scripted in-process server, a test CA, and real Postfix and smtp-sink
servers (started once, stopped by PID)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from realservers import postfix_server, smtp_sink  # noqa: F401
from tls_ca import LocalCA

from smtpx.testing import ScriptedServer


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    """A started plaintext :class:`ScriptedServer` that accepts everything until scripted."""
    async with ScriptedServer() as started:
        yield started


@pytest.fixture(scope="session")
def ca() -> LocalCA:
    """One throwaway certificate authority for the session."""
    return LocalCA()
