"""Where the connection comes from, end to end over loopback: a bound source address, a
socket connected beforehand, a SOCKS5 proxy (a real one started here, with RFC 1929
auth), a client certificate that the server requires, and verify=False."""

from __future__ import annotations

import logging
import socket
import ssl
import traceback
from pathlib import Path
from typing import Any

import pytest
import trustme
from socks5_server import Socks5Server
from tls_ca import LocalCA

import smtpx
from smtpx.testing import ScriptedServer

MESSAGE = b"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: hi\r\n\r\nHello.\r\n"
PLAIN: dict[str, Any] = {"tls": "none", "local_hostname": "client.test", "timeout": 5}
PROXY_PASSWORD = "pr0xy-SECRET-pw"
WRONG = "wr0ng-" + PROXY_PASSWORD  # a global: a local would show in the test's own frame


# -- source_address ----------------------------------------------------------------------


async def test_source_address_is_the_local_end(server: ScriptedServer) -> None:
    client = smtpx.Client(server.host, server.port, source_address=("127.0.0.1", 0), **PLAIN)
    await client.connect()
    assert client.session is not None
    assert client._connection is not None and client._connection.transport is not None
    local = client._connection.transport.get_extra_info("sockname")
    assert local[0] == "127.0.0.1" and local[1] != 0
    await client.quit()


async def test_source_address_that_cannot_be_bound_is_a_connect_error(
    server: ScriptedServer,
) -> None:
    # 192.0.2.1 (TEST-NET-1, RFC 5737) is not an address of this machine
    client = smtpx.Client(server.host, server.port, source_address=("192.0.2.1", 0), **PLAIN)
    with pytest.raises(smtpx.ConnectError) as info:
        await client.connect()
    assert isinstance(info.value.__cause__, OSError)


@pytest.mark.parametrize(
    "value", ["127.0.0.1", ("127.0.0.1",), ("not-an-ip", 0), ("127.0.0.1", 70000), (1, 2)]
)
def test_a_wrong_source_address_is_a_usage_error(value: object) -> None:
    with pytest.raises(smtpx.UsageError, match="source_address"):
        smtpx.ClientConfig(host="mx.example.com", source_address=value)


# -- sock= ---------------------------------------------------------------------------------


async def test_an_already_connected_socket_is_used(server: ScriptedServer) -> None:
    sock = socket.create_connection((server.host, server.port))
    client = smtpx.Client(server.host, server.port, sock=sock, **PLAIN)
    result = await client.send(MESSAGE)
    await client.quit()
    assert result.accepted == ("bob@example.com",)
    assert server.connections == 1
    # the connection ended with the socket: a second connect says so, typed
    with pytest.raises(smtpx.ConnectError, match="sock="):
        await client.connect()


def test_sock_must_be_a_connected_stream_socket() -> None:
    with pytest.raises(smtpx.UsageError, match="socket"):
        smtpx.ClientConfig(host="mx.example.com", sock="localhost:25")  # type: ignore[arg-type]
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagram,
        pytest.raises(smtpx.UsageError, match="SOCK_STREAM"),
    ):
        smtpx.ClientConfig(host="mx.example.com", sock=datagram)
    with socket.socket() as unconnected, pytest.raises(smtpx.UsageError, match="connected"):
        smtpx.ClientConfig(host="mx.example.com", sock=unconnected)


async def test_sock_with_a_proxy_or_source_address_is_a_usage_error(
    server: ScriptedServer,
) -> None:
    with socket.create_connection((server.host, server.port)) as sock:
        for extra in ({"proxy": "socks5://127.0.0.1:1080"}, {"source_address": ("::1", 0)}):
            with pytest.raises(smtpx.UsageError, match="sock="):
                smtpx.ClientConfig(host="mx.example.com", sock=sock, **extra)


# -- proxy= --------------------------------------------------------------------------------


async def test_send_through_a_socks5_proxy_with_a_password(server: ScriptedServer) -> None:
    async with Socks5Server(username="app", password=PROXY_PASSWORD) as proxy:
        client = smtpx.Client(
            server.host, server.port, proxy=proxy.url("app", PROXY_PASSWORD), **PLAIN
        )
        result = await client.send(MESSAGE)
        await client.quit()
    assert result.accepted == ("bob@example.com",)
    assert proxy.targets == [(server.host, server.port)]  # it went through the proxy
    assert server.received_by("bob@example.com")
    assert PROXY_PASSWORD not in repr(client.config) and PROXY_PASSWORD not in repr(client)


async def test_a_wrong_proxy_password_is_a_connect_error_without_the_password(
    server: ScriptedServer,
) -> None:
    async with Socks5Server(username="app", password=PROXY_PASSWORD) as proxy:
        client = smtpx.Client(server.host, server.port, proxy=proxy.url("app", WRONG), **PLAIN)
        with pytest.raises(smtpx.ConnectError) as info:
            await client.send(MESSAGE)
    assert proxy.failed_logins == 1 and server.connections == 0
    assert info.value.__cause__ is not None
    assert type(info.value.__cause__).__module__.startswith("python_socks")
    shown = "".join(traceback.format_exception(info.value))
    assert WRONG not in shown and WRONG not in repr(client.config)
    # nor in any frame's locals, python-socks' own included (error trackers print them)
    framed = traceback.TracebackException.from_exception(info.value, capture_locals=True)
    assert WRONG not in "".join(framed.format())
    assert info.value.undelivered == ("bob@example.com",)


async def test_a_proxy_that_cannot_reach_the_server_is_a_connect_error(
    server: ScriptedServer,
) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    async with Socks5Server() as proxy:
        client = smtpx.Client("127.0.0.1", port, proxy=proxy.url(), **PLAIN)
        with pytest.raises(smtpx.ConnectError, match="refused") as info:
            await client.connect()
    assert info.value.__cause__ is not None


async def test_a_proxy_that_is_not_there_is_a_connect_error(server: ScriptedServer) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    client = smtpx.Client(
        server.host,
        server.port,
        proxy=f"socks5://app:{PROXY_PASSWORD}@127.0.0.1:{port}",
        **PLAIN,
    )
    with pytest.raises(smtpx.ConnectError, match="reach the proxy") as info:
        await client.connect()
    assert isinstance(info.value.__cause__, OSError)
    assert PROXY_PASSWORD not in str(info.value)
    assert server.connections == 0


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1:21",
        "socks5://",
        "127.0.0.1:1080",
        "socks5://127.0.0.1:99999",
        "socks5://127.0.0.1:1080/path",
        f"gopher://app:{PROXY_PASSWORD}@127.0.0.1",
        42,
    ],
)
def test_a_wrong_proxy_url_is_a_usage_error_without_the_password(url: object) -> None:
    with pytest.raises(smtpx.UsageError, match="proxy") as info:
        smtpx.ClientConfig(host="mx.example.com", proxy=url)
    assert PROXY_PASSWORD not in str(info.value)


@pytest.mark.parametrize(
    ("url", "scheme", "port"),
    [
        ("socks5://127.0.0.1", "socks5", 1080),
        ("SOCKS4://proxy.example:1081", "socks4", 1081),
        ("http://[::1]:3128", "http", 3128),
    ],
)
def test_proxy_urls_of_each_scheme(url: str, scheme: str, port: int) -> None:
    proxy = smtpx.ClientConfig(host="mx.example.com", proxy=url).proxy
    assert proxy is not None and (proxy.scheme, proxy.port) == (scheme, port)


def test_a_percent_encoded_proxy_password_is_decoded_and_never_shown() -> None:
    config = smtpx.ClientConfig(host="mx.example.com", proxy="socks5://a%40b:p%3Aw%40d@h:1")
    assert config.proxy is not None
    assert (config.proxy.username, config.proxy.password) == ("a@b", "p:w@d")
    assert "p:w@d" not in repr(config) and "p%3Aw" not in repr(config)
    assert "socks5://a%40b:***@h:1" in repr(config)


async def test_without_python_socks_the_error_names_the_extra(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "python_socks", None)  # as if not installed
    client = smtpx.Client(server.host, server.port, proxy="socks5://127.0.0.1:1", **PLAIN)
    with pytest.raises(smtpx.UsageError, match=r"smtpx\[proxy\]"):
        await client.connect()


# -- client certificates -----------------------------------------------------------------


@pytest.fixture
def pki(ca: LocalCA, tmp_path: Path) -> dict[str, Any]:
    """The server's context requiring a client certificate, and the files of one."""
    ca.write_ca_pem(tmp_path)
    ca.write_client_cert(tmp_path)
    return {"server": ca.client_cert_server_context(), "dir": tmp_path}


@pytest.mark.parametrize("presented", [True, False])
@pytest.mark.parametrize("mode", ["starttls", "implicit"])
async def test_a_client_certificate_the_server_requires(
    pki: dict[str, Any], mode: str, presented: bool
) -> None:
    directory = pki["dir"]
    files = {"cert_file": directory / "client.crt", "key_file": directory / "client.key"}
    async with ScriptedServer(
        tls_context=pki["server"], implicit_tls=mode == "implicit"
    ) as server:
        client = smtpx.Client(
            server.host,
            server.port,
            tls=mode,
            ca_file=directory / "ca.pem",
            local_hostname="client.test",
            timeout=5,
            **(files if presented else {}),
        )
        if presented:
            result = await client.send(MESSAGE)
            assert client.encrypted and result.accepted == ("bob@example.com",)
            await client.quit()
        else:
            with pytest.raises(smtpx.SMTPError) as info:
                await client.send(MESSAGE)
            # TLS 1.3: the server's refusal may come after the client's side of the handshake
            refused = smtpx.TLSError | smtpx.ConnectionLost | smtpx.ConnectError
            assert isinstance(info.value, refused) and info.value.__cause__ is not None
    assert len(server.received_by("bob@example.com")) == (1 if presented else 0)


def test_an_encrypted_key_with_its_password(pki: dict[str, Any]) -> None:
    from cryptography.hazmat.primitives import serialization

    directory = pki["dir"]
    key = serialization.load_pem_private_key((directory / "client.key").read_bytes(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"k3y-SECRET"),
    )
    (directory / "locked.key").write_bytes(encrypted)
    options: dict[str, Any] = {
        "cert_file": str(directory / "client.crt"),
        "key_file": str(directory / "locked.key"),
    }
    good = smtpx.Client("mx.example.com", key_password="k3y-SECRET", **options)
    assert isinstance(good._context(), ssl.SSLContext)
    assert "k3y-SECRET" not in repr(good.config)
    bad = smtpx.Client("mx.example.com", key_password="wr0ng-k3y", **options)
    with pytest.raises(smtpx.UsageError, match="key_file") as info:
        bad._context()
    assert "wr0ng-k3y" not in str(info.value)


def test_a_missing_certificate_file_is_a_usage_error(tmp_path: Path) -> None:
    client = smtpx.Client("mx.example.com", cert_file=tmp_path / "nope.crt")
    with pytest.raises(smtpx.UsageError, match=r"nope\.crt"):
        client._context()


@pytest.mark.parametrize(
    "options",
    [
        {"key_file": "client.key"},
        {"key_password": "pw"},
        {"cert_file": "c.crt", "tls_context": ssl.create_default_context()},
        {"ca_file": "ca.pem", "tls_context": ssl.create_default_context()},
        {"verify": False, "tls_context": ssl.create_default_context()},
        {"cert_file": 42},
        {"key_password": b"pw", "cert_file": "c.crt"},
    ],
)
def test_certificate_options_that_cannot_go_together(options: dict[str, Any]) -> None:
    with pytest.raises(smtpx.UsageError):
        smtpx.ClientConfig(host="mx.example.com", **options)


# -- verify=False --------------------------------------------------------------------------


async def test_verify_false_connects_and_warns_on_every_connection(
    pki: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("localhost").configure_cert(context)  # a CA nobody trusts
    async with ScriptedServer(tls_context=context) as server:
        client = smtpx.Client(server.host, server.port, verify=False, timeout=5)
        with caplog.at_level(logging.WARNING, logger="smtpx"):
            for _ in range(2):
                await client.connect()
                assert client.encrypted
                await client.quit()
    warnings = [r for r in caplog.records if "verify=False" in r.getMessage()]
    assert len(warnings) == 2 and all(r.levelno == logging.WARNING for r in warnings)


def test_verify_false_with_credentials_needs_allow_insecure_auth() -> None:
    with pytest.raises(smtpx.UsageError, match="allow_insecure_auth") as info:
        smtpx.ClientConfig(host="mx.example.com", verify=False, credentials=("u", "s3cret-pw"))
    assert "s3cret-pw" not in str(info.value)
    config = smtpx.ClientConfig(
        host="mx.example.com",
        verify=False,
        credentials=("u", "s3cret-pw"),
        allow_insecure_auth=True,
    )
    assert not config.verify
    # allow_plaintext_auth is about no TLS at all: it does not stand in for this one
    with pytest.raises(smtpx.UsageError, match="allow_insecure_auth"):
        smtpx.ClientConfig(
            host="mx.example.com",
            verify=False,
            credentials=("u", "pw"),
            allow_plaintext_auth=True,
        )


@pytest.mark.parametrize("option", ["verify", "allow_insecure_auth"])
def test_the_flags_are_bools(option: str) -> None:
    with pytest.raises(smtpx.UsageError, match=option):
        smtpx.ClientConfig(host="mx.example.com", **{option: "no"})  # type: ignore[arg-type]


async def test_login_with_credentials_under_verify_false_needs_allow_insecure_auth(
    server: ScriptedServer,
) -> None:
    client = smtpx.Client(server.host, server.port, verify=False, **PLAIN)
    with pytest.raises(smtpx.UsageError, match="allow_insecure_auth") as info:
        await client.login(("u", "s3cret-pw"))
    assert "s3cret-pw" not in str(info.value)
    assert server.connections == 0  # refused before anything connected


async def test_a_pool_refuses_sock(server: ScriptedServer) -> None:
    with (
        socket.create_connection((server.host, server.port)) as sock,
        pytest.raises(smtpx.UsageError, match="Pool"),
    ):
        smtpx.Pool(server.host, server.port, sock=sock, **PLAIN)
