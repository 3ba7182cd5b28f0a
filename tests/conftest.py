"""Shared fixtures: a scripted in-process server, a test CA, and real Postfix and smtp-sink
servers (started once, stopped by PID)."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import AsyncIterator, Iterator

import pytest
from realservers import postfix_server, smtp_sink  # noqa: F401
from tls_ca import LocalCA

from smtpx.testing import ScriptedServer


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    """A started plaintext :class:`ScriptedServer` that accepts everything until scripted."""
    async with ScriptedServer() as started:
        yield started


@pytest.fixture(params=[True, False], ids=["pipelined", "one-by-one"])
async def mx(request: pytest.FixtureRequest) -> AsyncIterator[ScriptedServer]:
    """Like ``server``, with and without PIPELINING: ``send()`` takes a path for each."""
    async with ScriptedServer(pipelining=request.param) as started:
        yield started


@pytest.fixture(scope="session")
def ca() -> LocalCA:
    """One throwaway certificate authority for the session."""
    return LocalCA()


def _client_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("smtpx-sync-")}


@pytest.fixture(autouse=True)
def _no_client_thread_left_behind() -> Iterator[None]:
    """A SyncClient a test forgets keeps its loop thread until the garbage collector
    finds it, which may be tests later, where it breaks their count of threads: each
    test ends with the clients it started closed."""
    before = _client_threads()
    yield
    left = _client_threads() - before
    for thread in left:
        thread.join(timeout=2)  # closing is asynchronous for a client dropped at the end
    if alive := sorted(t.name for t in left if t.is_alive()):
        pytest.fail(f"the test left SyncClient threads running: {alive}")


@pytest.fixture(autouse=True)
def _fresh_caches_under_mutation() -> Iterator[None]:
    """Under mutmut (scripts/mutate), clear smtpx's memo caches before each test: a
    result cached from the unmutated code would hide the mutant."""
    if os.environ.get("MUTANT_UNDER_TEST"):
        for name, module in list(sys.modules.items()):
            if name.startswith("smtpx"):
                for value in list(vars(module).values()):
                    clear = getattr(value, "cache_clear", None)
                    if callable(clear):
                        clear()
    yield
