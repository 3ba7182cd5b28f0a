"""Dry runs (``dry_run=True``): every entry point prepares and checks the message as for
sending, hands it to the sink (standard output by default), never connects, and says
``SendResult.dry_run``; invalid input raises the same typed error as a real send."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import smtpx
from smtpx.testing import ScriptedServer, serve_in_thread

PLAIN: dict[str, Any] = {"tls": "none", "local_hostname": "client.example.com", "timeout": 5}
MESSAGE = (
    b"From: shop@example.com\r\nTo: alice@example.com\r\nBcc: archive@example.com\r\n"
    b"Subject: Hi\r\n\r\nHello.\r\n"
)
RECIPIENTS = ("alice@example.com", "archive@example.com")


def dry(server: ScriptedServer, sink: Callable[[smtpx.Envelope], object]) -> dict[str, Any]:
    """Options pointing at a live server, so that a connection would show in its count."""
    return {"host": server.host, "port": server.port, **PLAIN, "dry_run": True, "sink": sink}


def check(result: smtpx.SendResult, sent: list[smtpx.Envelope], server: ScriptedServer) -> None:
    assert result.dry_run is True
    assert result.accepted == RECIPIENTS
    assert result.rejected == {}
    (envelope,) = sent
    assert envelope.sender == "shop@example.com"
    assert envelope.recipients == RECIPIENTS
    assert b"Bcc" not in envelope.data  # prepared exactly as for sending
    assert b"\r\nMessage-ID: " in b"\r\n" + envelope.data
    assert b"\r\nDate: " in b"\r\n" + envelope.data
    assert server.connections == 0
    assert server.messages == []


async def test_client(server: ScriptedServer) -> None:
    sent: list[smtpx.Envelope] = []
    options = dry(server, sent.append)
    async with smtpx.Client(options.pop("host"), options.pop("port"), **options) as client:
        assert not client.connected
        check(await client.send(MESSAGE), sent, server)


async def test_client_with_retry(server: ScriptedServer) -> None:
    sent: list[smtpx.Envelope] = []
    options = dry(server, sent.append)
    client = smtpx.Client(options.pop("host"), options.pop("port"), **options)
    check(await client.send(MESSAGE, retry=smtpx.RetryPolicy()), sent, server)


async def test_send(server: ScriptedServer) -> None:
    sent: list[smtpx.Envelope] = []
    check(await smtpx.send(MESSAGE, **dry(server, sent.append)), sent, server)


async def test_pool(server: ScriptedServer) -> None:
    sent: list[smtpx.Envelope] = []
    options = dry(server, sent.append)
    async with smtpx.Pool(options.pop("host"), options.pop("port"), **options) as pool:
        check(await pool.send(MESSAGE), sent, server)
        assert pool.stats.connections_opened == 0


def test_sync_client_and_send_sync() -> None:
    with serve_in_thread() as server:
        sent: list[smtpx.Envelope] = []
        options = dry(server, sent.append)
        with smtpx.SyncClient(options.pop("host"), options.pop("port"), **options) as client:
            check(client.send(MESSAGE), sent, server)
        sent.clear()
        check(smtpx.send_sync(MESSAGE, **dry(server, sent.append)), sent, server)


async def test_a_config_and_a_url_say_dry_run(server: ScriptedServer) -> None:
    sent: list[smtpx.Envelope] = []
    url = f"smtp://{server.host}:{server.port}?dry_run=true&local_hostname=client.example.com"
    config = smtpx.ClientConfig.from_url(url, sink=sent.append)
    assert config.dry_run
    check(await smtpx.Client(config).send(MESSAGE), sent, server)


async def test_the_default_sink_prints_the_envelope_and_message(
    server: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    options = {**dry(server, print), "sink": None}
    result = await smtpx.send(
        smtpx.compose(
            "shop@example.com",
            "zoë@example.com",
            "Grüße",
            text="Hello.",
            bcc="archive@example.com",
        ),
        **options,
    )
    out = capsys.readouterr().out
    assert "smtpx dry run (not sent)" in out
    assert (
        "MAIL FROM:<shop@example.com>\nRCPT TO:<zoë@example.com>\nRCPT TO:<archive@example.com>"
        in out
    )
    assert "Subject: Grüße" in out  # the message as sent: UTF-8 headers with SMTPUTF8
    assert "\r" not in out
    assert result.dry_run and server.connections == 0


async def test_a_real_send_is_not_a_dry_run(server: ScriptedServer) -> None:
    result = await smtpx.send(MESSAGE, host=server.host, port=server.port, **PLAIN)
    assert result.dry_run is False
    assert server.connections == 1


async def test_commands_other_than_send_are_refused_in_a_dry_run(server: ScriptedServer) -> None:
    options = dry(server, print)
    client = smtpx.Client(options.pop("host"), options.pop("port"), **options)
    ready = await client.connect()  # a stand-in: nothing connects
    assert "dry run" in ready.reply.message
    for command in (client.ehlo, client.noop, client.rset):
        with pytest.raises(smtpx.UsageError, match="dry-run"):
            await command()
    with pytest.raises(smtpx.UsageError, match="dry-run"):
        await client.mail("a@example.com")
    assert server.connections == 0


# -- invalid input: the same typed error, dry or not ----------------------------------

BAD: list[tuple[str, dict[str, Any]]] = [
    ("no recipients", {"message": b"From: a@example.com\r\nSubject: x\r\n\r\nx\r\n"}),
    ("no sender", {"message": b"To: b@example.com\r\n\r\nx\r\n"}),
    ("CRLF in a recipient", {"message": MESSAGE, "recipients": ["b@example.com\r\nDATA"]}),
    ("NUL in the message", {"message": MESSAGE + b"\x00\r\n"}),
    ("over-long line", {"message": MESSAGE + b"x" * 1200 + b"\r\n"}),
    ("lone surrogate", {"message": MESSAGE.decode() + "\ud800\r\n"}),
    ("not a message", {"message": 42}),
    ("recipients as one str", {"message": MESSAGE, "recipients": "b@example.com"}),
    ("bad sender", {"message": MESSAGE, "sender": "a b@example.com"}),
    ("a message and shortcuts", {"message": MESSAGE, "to": "b@example.com"}),
]


@pytest.mark.parametrize(("case", "arguments"), BAD, ids=[case for case, _ in BAD])
async def test_invalid_input_raises_the_same_error_dry_or_not(
    server: ScriptedServer, case: str, arguments: dict[str, Any]
) -> None:
    errors = []
    for dry_run in (False, True):
        sent: list[smtpx.Envelope] = []
        options = (
            dry(server, sent.append)
            if dry_run
            else {"host": server.host, "port": server.port, **PLAIN}
        )
        with pytest.raises(smtpx.UsageError) as caught:
            await smtpx.send(**arguments, **options)
        errors.append((type(caught.value), str(caught.value)))
        assert sent == []
    assert errors[0] == errors[1]
    assert server.messages == []


@pytest.mark.parametrize(
    "options",
    [
        {"dry_run": "yes"},
        {"dry_run": 1},
        {"sink": print},  # a sink is for a dry run
        {"dry_run": True, "sink": "stdout"},
    ],
)
def test_bad_dry_run_options(options: dict[str, Any]) -> None:
    with pytest.raises(smtpx.UsageError):
        smtpx.ClientConfig(host="mx.example.com", **options)
    with pytest.raises(smtpx.UsageError):
        smtpx.Client("mx.example.com", **options)
