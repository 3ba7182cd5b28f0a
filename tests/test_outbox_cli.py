"""``smtpx outbox run|status|release`` against a scripted server on its own thread."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from smtpx.cli.app import cli
from smtpx.outbox import Outbox, State
from smtpx.testing import ScriptedServer, serve_in_thread

MESSAGE = b"From: app@example.com\r\nTo: a@example.com\r\nSubject: s\r\n\r\nhello\r\n"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"NO_COLOR": "1"}, catch_exceptions=False)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with serve_in_thread() as scripted:
        yield scripted


def put(db: Path, *recipients: list[str]) -> list[int]:
    async def store() -> list[int]:
        with Outbox(db) as outbox:
            return [await outbox.put(MESSAGE, recipients=r) for r in recipients]

    return asyncio.run(store())


def deliver(db: Path, server: ScriptedServer) -> Result:
    return run(
        "outbox", "run", str(db), "--host", server.host, "--port", str(server.port),
        "--tls", "none", "--until-idle", "--local-hostname", "client.test",
    )  # fmt: skip


def test_run_delivers_and_status_counts(server: ScriptedServer, tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    server.on("RCPT", match="gone@", reply="550 5.1.1 No such user")
    put(db, ["a@example.com", "gone@example.com"], ["b@example.com"])
    result = deliver(db, server)
    assert result.exit_code == 0, result.output
    assert sorted(r for m in server.messages for r in m.rcpt_tos) == [
        "a@example.com",
        "b@example.com",
    ]
    assert "accepted          2" in result.output
    assert "refused           1" in result.output
    shown = json.loads(run("outbox", "status", str(db), "--json").output)
    assert shown["messages"] == 2
    assert shown["recipients"]["accepted"] == 2 and shown["recipients"]["refused"] == 1
    assert shown["delivery_unknown"] == []


def test_unknown_is_listed_and_released_on_request(server: ScriptedServer, tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    server.on("DATA_END", close=True, record=True, times=1)
    (message_id,) = put(db, ["a@example.com"])
    assert deliver(db, server).exit_code == 0
    status = run("outbox", "status", str(db))
    assert "delivery_unknown  1" in status.output
    assert f"message {message_id}  a@example.com" in status.output
    released = run("outbox", "release", str(db), str(message_id))
    assert f"released 1 recipient(s) of message {message_id}" in released.output
    assert deliver(db, server).exit_code == 0
    with Outbox(db) as outbox:
        status_now = outbox.status(message_id)
    assert status_now is not None
    assert [r.state for r in status_now.recipients] == [State.ACCEPTED]
    assert len(server.messages) == 2  # the copy whose reply was lost, and the released one


def test_status_of_a_missing_database_is_a_usage_error(tmp_path: Path) -> None:
    result = run("outbox", "status", str(tmp_path / "nope.db"))
    assert result.exit_code == 2
    assert "does not exist" in result.output
    assert not (tmp_path / "nope.db").exists()


def test_a_database_that_is_not_an_outbox_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    path.write_bytes(b"not sqlite at all" * 100)
    result = run("outbox", "status", str(path))
    assert result.exit_code == 2
    assert "outbox storage failed" in result.output
