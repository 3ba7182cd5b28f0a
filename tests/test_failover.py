"""Several hosts: failover and round-robin, against real scripted servers on loopback.

Every failure class that may move on (no listener, 421 greeting, 4xx to EHLO, 4xx to
MAIL, a TLS failure that is not the certificate) is put at every position of the list
before a good server; the classes that must not move on (a bad certificate, a refused
login, a permanent refusal, and a lost reply after the message's end) stop at once,
and no second server ever gets the message then.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from tls_ca import LocalCA

import smtpx
from smtpx.testing import ScriptedServer

Script = Callable[[ScriptedServer], object]  # scripts the server's rules
MESSAGE = b"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: hi\r\n\r\nHello.\r\n"
PLAIN: dict[str, Any] = {"tls": "none", "local_hostname": "client.test", "timeout": 5}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# Each way a host can fail such that the next one is tried.  A ``None`` script is a
# closed port (no server at all).
MOVES_ON: dict[str, Script | None] = {
    "closed port": None,
    "421 greeting": lambda s: s.on("CONNECT", reply="421 4.3.2 too busy, try another"),
    "451 greeting": lambda s: s.on("CONNECT", reply="451 4.3.0 local problem"),
    "closed at greeting": lambda s: s.on("CONNECT", close=True),
    "421 to EHLO": lambda s: s.on("EHLO", reply="421 4.3.2 shutting down"),
    "451 to EHLO and HELO": lambda s: (
        s.on("EHLO", reply="451 4.3.0 try later"),
        s.on("HELO", reply="451 4.3.0 try later"),
    ),
    "451 to MAIL": lambda s: s.on("MAIL", reply="451 4.3.0 queue full"),
    "421 to MAIL": lambda s: s.on("MAIL", reply="421 4.3.2 going down"),
}


@contextlib.asynccontextmanager
async def servers(*scripts: Script | None, chunking: bool = False) -> AsyncIterator[Any]:
    """Start one server per script (None: a closed port); yield (hosts, servers)."""
    async with contextlib.AsyncExitStack() as stack:
        hosts: list[str] = []
        started: list[ScriptedServer | None] = []
        for script in scripts:
            if script is None:
                hosts.append(f"127.0.0.1:{closed_port()}")
                started.append(None)
                continue
            server = await stack.enter_async_context(ScriptedServer(chunking=chunking))
            script(server)
            hosts.append(f"{server.host}:{server.port}")
            started.append(server)
        yield hosts, started


def good(server: ScriptedServer) -> None:
    """A server that accepts everything."""


def received(server: ScriptedServer | None) -> int:
    return 0 if server is None else len(server.received_by("bob@example.com"))


@pytest.mark.parametrize("failure", list(MOVES_ON))
@pytest.mark.parametrize("position", [0, 1, 2])
async def test_each_failure_at_each_position_moves_on_to_the_good_host(
    failure: str, position: int
) -> None:
    # `position` failing hosts of this kind before the good one (0: the good one is first)
    scripts = [MOVES_ON[failure]] * position + [good]
    async with servers(*scripts) as (hosts, started):
        result = await smtpx.send(MESSAGE, hosts=hosts, **PLAIN)
    good_host, good_port = hosts[-1].rsplit(":", 1)
    assert (result.host, result.port) == (good_host, int(good_port))
    assert result.accepted == ("bob@example.com",)
    assert [received(server) for server in started] == [0] * position + [1]


async def test_every_host_failing_raises_the_last_hosts_error() -> None:
    async with servers(MOVES_ON["closed port"], MOVES_ON["421 greeting"]) as (hosts, started):
        with pytest.raises(smtpx.ServiceUnavailable) as info:
            await smtpx.send(MESSAGE, hosts=hosts, **PLAIN)
    assert info.value.undelivered == ("bob@example.com",)
    assert started[1] is not None and started[1].connections == 1


@pytest.mark.parametrize(
    ("name", "script", "error"),
    [
        (
            "550 to MAIL",
            lambda s: s.on("MAIL", reply="550 5.7.1 sender refused"),
            smtpx.PermanentError,
        ),
        (
            "554 greeting",
            lambda s: s.on("CONNECT", reply="554 5.7.1 no service"),
            smtpx.PermanentError,
        ),
        (
            "450 to RCPT",
            lambda s: s.on("RCPT", reply="450 4.2.0 greylisted"),
            smtpx.TransientError,
        ),
        (
            "451 to the end",
            lambda s: s.on("DATA_END", reply="451 4.3.0 try later"),
            smtpx.TransientError,
        ),
        ("451 to BDAT", lambda s: s.on("BDAT", reply="451 4.3.0 try later"), smtpx.TransientError),
    ],
)
async def test_failures_that_do_not_move_on(name: str, script: Any, error: type) -> None:
    async with servers(script, good, chunking=name.endswith("BDAT")) as (hosts, started):
        with pytest.raises(error):
            await smtpx.send(MESSAGE, hosts=hosts, **PLAIN)
        assert started[1] is not None and started[1].connections == 0


@pytest.mark.parametrize("end", ["DATA_END", "BDAT"])
async def test_no_failover_after_the_end_of_the_message_was_written(end: str) -> None:
    # The first server takes the message and drops the connection before its reply:
    # delivery is unknown, and no other server may be sent it.
    def takes_it_and_drops(server: ScriptedServer) -> None:
        server.on(end, close=True, record=True)

    async with servers(takes_it_and_drops, good, chunking=end == "BDAT") as (hosts, started):
        with pytest.raises(smtpx.DeliveryUnknown):
            await smtpx.send(MESSAGE, hosts=hosts, chunking=end == "BDAT", **PLAIN)
    assert [received(server) for server in started] == [1, 0]
    assert started[1] is not None and started[1].connections == 0


async def test_delivery_unknown_is_not_retried_elsewhere_with_a_retry_policy() -> None:
    async with servers(lambda s: s.on("DATA_END", close=True, record=True), good) as (
        hosts,
        started,
    ):
        with pytest.raises(smtpx.DeliveryUnknown):
            await smtpx.send(
                MESSAGE,
                hosts=hosts,
                chunking=False,
                retry=smtpx.RetryPolicy.for_testing(),
                **PLAIN,
            )
    assert [received(server) for server in started] == [1, 0]


async def test_a_bad_certificate_does_not_move_on(ca: LocalCA) -> None:
    async with (
        ScriptedServer(tls_context=ca.wrong_host_server_context()) as bad,
        ScriptedServer(tls_context=ca.server_context()) as fine,
    ):
        client = smtpx.Client(
            hosts=[f"{bad.host}:{bad.port}", f"{fine.host}:{fine.port}"],
            tls_context=ca.client_context(),
            local_hostname="client.test",
            timeout=5,
        )
        with pytest.raises(smtpx.CertificateInvalid):
            await client.connect()
    assert fine.connections == 0


async def test_a_tls_failure_that_is_not_the_certificate_moves_on(ca: LocalCA) -> None:
    # The first host does not offer STARTTLS (TLS required): the second does.
    async with ScriptedServer() as plain, ScriptedServer(tls_context=ca.server_context()) as fine:
        client = smtpx.Client(
            hosts=[f"{plain.host}:{plain.port}", f"{fine.host}:{fine.port}"],
            tls_context=ca.client_context(),
            local_hostname="client.test",
            timeout=5,
        )
        result = await client.send(MESSAGE)
        assert client.encrypted
        await client.quit()
    assert result.port == fine.port and fine.received_by("bob@example.com")


async def test_a_refused_login_does_not_move_on() -> None:
    async with ScriptedServer(credentials={"u": "right"}) as first, ScriptedServer() as second:
        client = smtpx.Client(
            hosts=[f"{first.host}:{first.port}", f"{second.host}:{second.port}"],
            credentials=("u", "wrong"),
            allow_plaintext_auth=True,
            **PLAIN,
        )
        with pytest.raises(smtpx.AuthFailed):
            await client.connect()
    assert second.connections == 0


# -- round-robin ---------------------------------------------------------------------------


async def test_round_robin_rotates_the_start_host() -> None:
    async with servers(good, good, good) as (hosts, started):
        client = smtpx.Client(hosts=hosts, strategy="round-robin", **PLAIN)
        answered: list[int] = []
        for _ in range(6):
            port = (await client.send(MESSAGE)).port
            assert port is not None
            answered.append(port)
            client.close()  # the next send connects anew
        await client.quit()
    ports = [int(host.rsplit(":", 1)[1]) for host in hosts]
    start = ports.index(answered[0])
    assert answered == [ports[(start + i) % 3] for i in range(6)]
    assert [received(server) for server in started] == [2, 2, 2]


async def test_round_robin_skips_a_failing_host_in_order() -> None:
    async with servers(good, MOVES_ON["421 greeting"], good) as (hosts, started):
        client = smtpx.Client(hosts=hosts, strategy="round-robin", **PLAIN)
        for _ in range(6):
            await client.send(MESSAGE)
            client.close()
    assert received(started[1]) == 0
    assert received(started[0]) + received(started[2]) == 6
    assert received(started[0]) >= 2 and received(started[2]) >= 2


async def test_failover_always_starts_at_the_first_host() -> None:
    async with servers(good, good) as (hosts, started):
        client = smtpx.Client(hosts=hosts, strategy="failover", **PLAIN)
        for _ in range(3):
            await client.send(MESSAGE)
            client.close()
    assert [received(server) for server in started] == [3, 0]


async def test_a_pool_fails_over_too() -> None:
    async with (
        servers(MOVES_ON["closed port"], good) as (hosts, started),
        smtpx.Pool(hosts=hosts, size=2, **PLAIN) as pool,
    ):
        results = [await pool.send(MESSAGE) for _ in range(3)]
    assert {result.port for result in results} == {int(hosts[1].rsplit(":", 1)[1])}
    assert received(started[1]) == 3


# -- options -------------------------------------------------------------------------------


def test_host_and_hosts_together_is_a_usage_error() -> None:
    with pytest.raises(smtpx.UsageError, match="not both"):
        smtpx.Client("a.example.com", hosts=["b.example.com"])
    with pytest.raises(smtpx.UsageError, match="not both"):
        smtpx.ClientConfig(host="a.example.com", hosts=["b.example.com"])


@pytest.mark.parametrize(
    "hosts",
    ["smtp.example.com", [], ["bad host"], ["h:0"], ["h:99999"], [("h", "25")], [42], ["[::1"]],
)
def test_a_wrong_hosts_list_is_a_usage_error(hosts: Any) -> None:
    with pytest.raises(smtpx.UsageError):
        smtpx.ClientConfig(hosts=hosts)


def test_hosts_entries_and_their_ports() -> None:
    config = smtpx.ClientConfig(
        hosts=["smtp1.example.com", "smtp2.example.com:2525", "[::1]:26", "::1", ("h", 27)],
        port=2587,
    )
    assert config.host == "smtp1.example.com"
    assert config.endpoints == (
        ("smtp1.example.com", 2587),
        ("smtp2.example.com", 2525),
        ("::1", 26),
        ("::1", 2587),
        ("h", 27),
    )
    assert smtpx.ClientConfig(hosts=["a.example.com"]).endpoints == (("a.example.com", 587),)


def test_strategy_is_checked() -> None:
    with pytest.raises(smtpx.UsageError, match="round-robin"):
        smtpx.ClientConfig(hosts=["a.example.com"], strategy="random")


def test_a_changed_copy_of_a_hosts_config_keeps_its_hosts() -> None:
    import attrs

    config = smtpx.ClientConfig(hosts=["a.example.com", "b.example.com"])
    copy = attrs.evolve(config, timeout=5)
    assert copy.endpoints == config.endpoints


@pytest.mark.parametrize(
    ("first", "second"),
    list(itertools.permutations(["closed port", "421 greeting", "421 to EHLO", "451 to MAIL"], 2)),
)
async def test_two_different_failures_before_the_good_host(first: str, second: str) -> None:
    async with servers(MOVES_ON[first], MOVES_ON[second], good) as (hosts, started):
        result = await smtpx.send(MESSAGE, hosts=hosts, **PLAIN)
    assert result.port == int(hosts[2].rsplit(":", 1)[1])
    assert [received(server) for server in started] == [0, 0, 1]


@pytest.mark.parametrize("chunking", [False, True])
async def test_a_connection_lost_at_mail_moves_on_only_if_the_end_was_not_written(
    chunking: bool,
) -> None:
    # With CHUNKING and PIPELINING the whole message goes in one write with MAIL: the
    # ledger then says its end was written, so a drop at MAIL leaves delivery unknown.
    # Without, DATA waits for 354: nothing of the end was written, the next host is safe.
    async with servers(lambda s: s.on("MAIL", close=True), good, chunking=chunking) as (
        hosts,
        started,
    ):
        if chunking:
            with pytest.raises(smtpx.DeliveryUnknown):
                await smtpx.send(MESSAGE, hosts=hosts, **PLAIN)
        else:
            result = await smtpx.send(MESSAGE, hosts=hosts, **PLAIN)
            assert result.port == int(hosts[1].rsplit(":", 1)[1])
    assert received(started[1]) == (0 if chunking else 1)
    assert started[1] is not None and started[1].connections == (0 if chunking else 1)


async def test_sync_client_and_send_sync_fail_over() -> None:
    import asyncio

    async with servers(MOVES_ON["421 greeting"], good) as (hosts, started):
        good_port = int(hosts[1].rsplit(":", 1)[1])

        def blocking() -> tuple[int | None, int | None]:
            with smtpx.SyncClient(hosts=hosts, **PLAIN) as client:
                first = client.send(MESSAGE).port
            return first, smtpx.send_sync(MESSAGE, hosts=hosts, **PLAIN).port

        assert await asyncio.to_thread(blocking) == (good_port, good_port)
    assert received(started[1]) == 2


async def test_with_a_retry_policy_the_result_names_the_host_that_answered() -> None:
    async with servers(MOVES_ON["421 greeting"], good) as (hosts, started):
        result = await smtpx.send(
            MESSAGE, hosts=hosts, retry=smtpx.RetryPolicy.for_testing(), **PLAIN
        )
    assert f"{result.host}:{result.port}" == hosts[1]
    assert received(started[1]) == 1
