"""SyncClient and send_sync against a scripted server running on its own thread and loop."""

from __future__ import annotations

import gc
import inspect
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import smtpx
from smtpx import RetryPolicy, SyncClient, VirtualClock, send_sync
from smtpx.testing import ScriptedServer, serve_in_thread

PLAIN: dict[str, Any] = {
    "tls": smtpx.TLSMode.NONE,
    "local_hostname": "client.test",
    "timeout": 2.0,
}


def message(subject: str, to: str = "alice@example.com, bob@example.com") -> bytes:
    return (f"From: app@example.com\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nHello.\r\n").encode()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    """A scripted server answering from a background thread with its own event loop."""
    with serve_in_thread(credentials={"app": "s3cret"}) as scripted:
        yield scripted


def client_for(server: ScriptedServer, **options: Any) -> SyncClient:
    return SyncClient(server.host, server.port, **{**PLAIN, **options})


def smtpx_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("smtpx-sync")]


def test_several_threads_share_one_connection(server: ScriptedServer) -> None:
    results: list[smtpx.SendResult] = []
    errors: list[BaseException] = []

    with client_for(server) as client:

        def worker(n: int) -> None:
            try:
                for i in range(5):
                    results.append(client.send(message(f"thread {n} message {i}")))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    assert errors == []
    assert len(results) == 20
    assert all(r.accepted == ("alice@example.com", "bob@example.com") for r in results)
    assert server.connections == 1
    subjects = {m.subject for m in server.messages}
    assert subjects == {f"thread {n} message {i}" for n in range(4) for i in range(5)}
    # each send was a whole transaction: 20 MAILs, 20 final dots, none interleaved
    verbs = [line.split(b" ")[0].upper() for line in server.transcript]
    assert verbs.count(b"MAIL") == 20
    assert verbs[-1] == b"QUIT"


def test_a_refused_recipient_is_reported_in_the_result(server: ScriptedServer) -> None:
    server.on("RCPT", match="bob@", reply="550 5.1.1 No such user")
    with client_for(server) as client:
        result = client.send(message("partial"))
    assert result.accepted == ("alice@example.com",)
    refusal = result.rejected["bob@example.com"]
    assert isinstance(refusal, smtpx.NoSuchMailbox)
    assert (refusal.code, str(refusal.enhanced)) == (550, "5.1.1")


def test_errors_are_the_async_clients_own_not_wrapped(server: ScriptedServer) -> None:
    client = client_for(server, credentials=("app", "wrong"), allow_plaintext_auth=True)
    with pytest.raises(smtpx.AuthFailed) as info:
        client.send(message("auth"))
    assert type(info.value) is smtpx.AuthFailed
    assert info.value.code == 535
    assert "wrong" not in str(info.value)
    client.close()
    assert server.messages == []


def test_every_recipient_refused_raises(server: ScriptedServer) -> None:
    server.on("RCPT", reply="550 5.7.1 Relaying denied")
    with client_for(server) as client, pytest.raises(smtpx.AllRecipientsRejected) as info:
        client.send(message("nobody"))
    assert set(info.value.rejected) == {"alice@example.com", "bob@example.com"}


def test_retry_resends_after_transient_failures(server: ScriptedServer) -> None:
    server.on("DATA_END", reply="451 4.3.0 Local error", times=2)
    clock = VirtualClock()
    with client_for(server) as client:
        result = client.send(message("retried"), retry=RetryPolicy.for_testing(clock))
    assert result.all_accepted
    assert len(clock.sleeps) == 2
    assert len(server.messages) == 1


def test_a_lost_connection_is_reopened_by_the_next_send(server: ScriptedServer) -> None:
    server.on("DATA_END", reply="421 4.3.2 Shutting down", close=True, times=1)
    with client_for(server) as client:
        with pytest.raises(smtpx.ServiceUnavailable):
            client.send(message("first"))
        assert not client.connected
        assert client.send(message("second")).all_accepted
    assert server.connections == 2
    assert [m.subject for m in server.messages] == ["second"]


def test_state_is_readable_from_the_calling_thread(server: ScriptedServer) -> None:
    client = client_for(server)
    assert not client.connected
    assert client.extensions == {}
    ready = client.connect()
    try:
        assert ready.code == 220
        assert client.connected
        assert not client.encrypted
        assert client.greeting == ready.reply
        assert "pipelining" in client.extensions
        assert "PLAIN" in client.auth_mechanisms
    finally:
        client.quit()
    assert not client.connected


def test_quit_and_close_stop_the_thread_and_the_client_can_be_reused(
    server: ScriptedServer,
) -> None:
    before = set(threading.enumerate())
    client = client_for(server)
    client.send(message("one"))
    assert len(smtpx_threads()) == 1
    client.quit()
    assert smtpx_threads() == []
    client.send(message("two"))  # a new connection, on a new thread
    client.close()
    client.close()  # idempotent
    assert smtpx_threads() == []
    assert set(threading.enumerate()) <= before
    assert server.connections == 2
    assert server.transcript.count(b"QUIT") == 1  # close() drops without QUIT


def test_a_forgotten_client_does_not_leave_its_thread(server: ScriptedServer) -> None:
    client = client_for(server)
    client.send(message("forgotten"))
    (thread,) = smtpx_threads()
    del client
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()


async def test_calling_from_an_event_loop_raises_usage_error(server: ScriptedServer) -> None:
    client = client_for(server)
    with pytest.raises(smtpx.UsageError, match="running an event loop"):
        client.send(message("from async"))
    with pytest.raises(smtpx.UsageError, match="await"):
        send_sync(message("from async"), host=server.host, port=server.port, **PLAIN)
    assert smtpx_threads() == []  # refused before anything started
    assert server.connections == 0


def test_send_sync_from_several_threads(server: ScriptedServer) -> None:
    results: list[smtpx.SendResult] = []

    def worker(n: int) -> None:
        results.append(
            send_sync(message(f"one-shot {n}"), host=server.host, port=server.port, **PLAIN)
        )

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 5 and all(r.all_accepted for r in results)
    assert server.connections == 5  # one connection per call, each closed with QUIT
    assert server.transcript.count(b"QUIT") == 5
    assert {m.subject for m in server.messages} == {f"one-shot {n}" for n in range(5)}


def test_send_sync_raises_typed_errors_and_retries(server: ScriptedServer) -> None:
    server.on("RCPT", reply="450 4.2.0 Greylisted", times=2)
    clock = VirtualClock()
    result = send_sync(
        message("greylisted", to="alice@example.com"),
        host=server.host,
        port=server.port,
        retry=RetryPolicy.for_testing(clock),
        **PLAIN,
    )
    assert result.accepted == ("alice@example.com",)
    assert len(clock.sleeps) == 2
    server.on("MAIL", reply="553 5.1.8 Sender address rejected")
    with pytest.raises(smtpx.MailboxNameInvalid):
        send_sync(message("refused"), host=server.host, port=server.port, **PLAIN)


def test_send_sync_connect_failure() -> None:
    started = time.monotonic()
    with pytest.raises(smtpx.ConnectError):
        send_sync(message("nowhere"), host="127.0.0.1", port=1, **PLAIN)
    assert time.monotonic() - started < 5


def test_constructor_mirrors_client() -> None:
    sync = inspect.signature(SyncClient.__init__).parameters
    async_ = inspect.signature(smtpx.Client.__init__).parameters
    assert [(p.name, p.kind, p.default) for p in sync.values()] == [
        (p.name, p.kind, p.default) for p in async_.values()
    ]


def test_repr_hides_the_password() -> None:
    client = SyncClient("smtp.example.com", credentials=("app", "hunter2"))
    assert "hunter2" not in repr(client)
    assert "app" in repr(client)
