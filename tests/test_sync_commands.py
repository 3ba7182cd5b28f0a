"""SyncClient offers every coroutine method of Client, with its signature, and each one
does over the wire what Client's does (a real scripted server answers both)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from tls_ca import LocalCA

import smtpx
from smtpx import Command, SyncClient, prepare
from smtpx.testing import ScriptedServer, serve_in_thread

#: Client's public coroutine methods: the surface SyncClient must offer, blocking.
COROUTINE_METHODS = sorted(
    name
    for name, member in inspect.getmembers(smtpx.Client, inspect.iscoroutinefunction)
    if not name.startswith("_")
)

MESSAGE = b"From: app@example.com\r\nTo: alice@example.com\r\nSubject: sync\r\n\r\nHello.\r\n"
Call = tuple[str, tuple[Any, ...], dict[str, Any]]
TRANSACTION: list[Call] = [
    ("mail", ("app@example.com",), {}),
    ("rcpt", ("alice@example.com",), {}),
]

PIPELINE = [
    (Command.MAIL, smtpx.Client.mail_args("app@example.com"), None),
    (Command.RCPT, smtpx.Client.rcpt_args("alice@example.com"), "alice@example.com"),
]

#: For each method: the calls that set the session up for it, then its own arguments.
CASES: dict[str, tuple[list[Call], tuple[Any, ...], dict[str, Any]]] = {
    "connect": ([], (), {}),
    "send": ([], (MESSAGE,), {"retry": None}),
    "send_envelope": ([], (prepare(MESSAGE, add_missing_headers=False),), {}),
    "ehlo": ([], (), {}),
    "helo": ([], (), {}),
    "starttls": ([], (), {}),
    "login": ([], (("app", "s3cret"),), {}),
    "mail": ([], ("app@example.com",), {"options": ["BODY=8BITMIME"]}),
    "rcpt": (TRANSACTION[:1], ("alice@example.com",), {}),
    "data": (TRANSACTION, (MESSAGE,), {}),
    "bdat": (TRANSACTION, (MESSAGE,), {}),
    "rset": (TRANSACTION[:1], (), {}),
    "noop": ([], (), {}),
    "vrfy": ([], ("alice@example.com",), {}),
    "expn": ([], ("staff",), {}),
    "help": ([], (), {"topic": "MAIL"}),
    "pipeline": ([], (PIPELINE,), {"chunk": b""}),
    "command": ([], (Command.NOOP, b"NOOP"), {}),
    "quit": ([], (), {}),
}


@pytest.fixture(scope="module")
def ca() -> LocalCA:
    return LocalCA()


@pytest.fixture
def server(ca: LocalCA) -> Iterator[ScriptedServer]:
    with serve_in_thread(
        tls_context=ca.server_context(), credentials={"app": "s3cret"}, chunking=True
    ) as scripted:
        scripted.on("EXPN", reply="250 Alice <alice@example.com>")
        scripted.on("HELP", reply="214 2.0.0 See RFC 5321")  # aiosmtpd says 250, or 501
        yield scripted


def config(server: ScriptedServer, ca: LocalCA) -> smtpx.ClientConfig:
    return smtpx.ClientConfig(
        host=server.host,
        port=server.port,
        tls=smtpx.TLSMode.NONE,  # starttls() is called explicitly
        tls_context=ca.client_context(),
        allow_plaintext_auth=True,
        local_hostname="client.test",
        add_missing_headers=False,
        timeout=5.0,
    )


def outcome(value: object) -> object:
    """What a call came to, comparable across the two clients: result types and codes."""
    if isinstance(value, list):
        return [outcome(item) for item in value]
    if isinstance(value, smtpx.SendResult):
        return ("SendResult", value.accepted, tuple(value.rejected))
    return (type(value).__name__, getattr(value, "code", None))


def test_the_surface_is_every_coroutine_method_and_each_has_a_case() -> None:
    assert {"connect", "send", "noop", "pipeline", "command", "quit"} <= set(COROUTINE_METHODS)
    assert sorted(CASES) == COROUTINE_METHODS


@pytest.mark.parametrize("name", COROUTINE_METHODS)
def test_same_signature_as_client(name: str) -> None:
    blocking = getattr(SyncClient, name)
    assert not inspect.iscoroutinefunction(blocking)
    assert inspect.signature(blocking) == inspect.signature(getattr(smtpx.Client, name))
    if name != "quit":  # which also stops the thread, and says so
        assert blocking.__doc__ == getattr(smtpx.Client, name).__doc__


@pytest.mark.parametrize("name", COROUTINE_METHODS)
def test_does_what_client_does(name: str, server: ScriptedServer, ca: LocalCA) -> None:
    setup, args, kwargs = CASES[name]

    def run_sync() -> object:
        client = SyncClient(config=config(server, ca))
        try:
            if name != "connect":
                client.connect()
            for step, step_args, step_kwargs in setup:
                getattr(client, step)(*step_args, **step_kwargs)
            return outcome(getattr(client, name)(*args, **kwargs))
        finally:
            client.quit()

    async def run_async() -> object:
        client = smtpx.Client(config=config(server, ca))
        try:
            if name != "connect":
                await client.connect()
            for step, step_args, step_kwargs in setup:
                await getattr(client, step)(*step_args, **step_kwargs)
            return outcome(await getattr(client, name)(*args, **kwargs))
        finally:
            await client.quit()

    sync_outcome = run_sync()
    sync_lines = list(server.transcript)
    sync_messages = list(server.messages)
    server.transcript.clear()
    server.messages.clear()

    async_outcome = asyncio.run(run_async())
    assert sync_outcome == async_outcome
    assert sync_outcome != ("NoneType", None) or name == "quit"
    # the very same commands went over the wire, and the same messages arrived
    assert sync_lines == server.transcript
    assert sync_messages == server.messages
    assert server.connections == 2
