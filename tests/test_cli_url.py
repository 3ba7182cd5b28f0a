"""``--url`` (and ``SMTPX_URL``) for ``smtpx send`` and ``smtpx probe``, against a scripted
server on its own thread; a password on the command line is refused, never echoed."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest
from click.testing import CliRunner, Result

from smtpx.cli.app import cli
from smtpx.testing import ScriptedServer, serve_in_thread

PASSWORD = "Url-s3cret-QX9"
MESSAGE = ("--from", "app@example.com", "--to", "alice@example.com")


def run(*args: str, env: Mapping[str, str | None] | None = None) -> Result:
    environment = {"SMTPX_URL": None, "SMTPX_PASSWORD": None, **(env or {})}
    return CliRunner().invoke(cli, list(args), env=environment, catch_exceptions=False)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with serve_in_thread(credentials={"app": PASSWORD}) as scripted:
        yield scripted


def url(server: ScriptedServer, userinfo: str = "", query: str = "") -> str:
    at = f"{userinfo}@" if userinfo else ""
    return f"smtp://{at}{server.host}:{server.port}?local_hostname=client.test{query}"


def test_send_with_url(server: ScriptedServer) -> None:
    result = run("send", "--url", url(server), *MESSAGE)
    assert result.exit_code == 0, result.output
    assert server.messages[0].rcpt_tos == ("alice@example.com",)
    assert b"EHLO client.test" in server.transcript


def test_send_with_url_and_a_user_takes_the_password_from_the_environment(
    server: ScriptedServer,
) -> None:
    address = url(server, "app", "&allow_plaintext_auth=true")
    result = run("send", "--url", address, *MESSAGE, env={"SMTPX_PASSWORD": PASSWORD})
    assert result.exit_code == 0, result.output
    assert any(line.startswith(b"AUTH") for line in server.transcript)
    assert PASSWORD not in result.output


def test_a_password_in_url_on_the_command_line_is_refused(server: ScriptedServer) -> None:
    result = run("send", "--url", url(server, f"app:{PASSWORD}"), *MESSAGE)
    assert result.exit_code == 2
    assert "visible to every user" in result.output
    assert "SMTPX_URL" in result.output
    assert PASSWORD not in result.output
    assert server.connections == 0


def test_a_password_in_smtpx_url_is_used(server: ScriptedServer) -> None:
    address = url(server, f"app:{PASSWORD}", "&allow_plaintext_auth=true")
    result = run("send", *MESSAGE, env={"SMTPX_URL": address})
    assert result.exit_code == 0, result.output
    assert any(line.startswith(b"AUTH") for line in server.transcript)
    assert PASSWORD not in result.output


def test_an_explicit_host_wins_over_smtpx_url(server: ScriptedServer) -> None:
    host = ("--host", server.host, "--port", str(server.port), "--tls", "none")
    env = {"SMTPX_URL": "smtps://nowhere.invalid"}
    result = run("send", *host, "--local-hostname", "client.test", *MESSAGE, env=env)
    assert result.exit_code == 0, result.output
    assert len(server.messages) == 1


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (("--host", "mx.example.com"), "--host"),
        (("--port", "25"), "--port"),
        (("--tls", "none"), "--tls"),
        (("--user", "app"), "--user"),
    ],
)
def test_url_and_the_flags_it_replaces_clash(
    server: ScriptedServer, extra: tuple[str, ...], says: str
) -> None:
    result = run("send", "--url", url(server), *extra, *MESSAGE)
    assert result.exit_code == 2
    assert f"drop {says}" in result.output
    assert server.connections == 0


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("smtp+tls://mx.example.com", "smtp+starttls://"),
        ("smtps://mx.example.com?bogus=1", "bogus"),
        ("smtps://mx.example.com:0", "port"),
    ],
)
def test_a_bad_url_is_a_usage_error_naming_the_option(address: str, says: str) -> None:
    result = run("send", "--url", address, *MESSAGE)
    assert result.exit_code == 2
    assert "--url" in result.output
    assert says in result.output


def test_no_host_and_no_url() -> None:
    result = run("send", *MESSAGE)
    assert result.exit_code == 2
    assert "give --host or --url" in result.output
    result = run("probe")
    assert result.exit_code == 2
    assert "HOST[:PORT] or --url" in result.output


def test_a_given_option_replaces_the_urls(server: ScriptedServer) -> None:
    result = run("send", "--url", url(server), "--local-hostname", "other.test", *MESSAGE)
    assert result.exit_code == 0, result.output
    assert b"EHLO other.test" in server.transcript
    assert b"EHLO client.test" not in server.transcript


def test_probe_with_url(server: ScriptedServer) -> None:
    address = url(server, "app", "&allow_plaintext_auth=true")
    result = run("probe", "--url", address, env={"SMTPX_PASSWORD": PASSWORD})
    assert result.exit_code == 0, result.output
    assert "authentication: Authenticated" in result.output
    assert PASSWORD not in result.output


def test_probe_refuses_a_password_in_url(server: ScriptedServer) -> None:
    result = run("probe", "--url", url(server, f"app:{PASSWORD}"))
    assert result.exit_code == 2
    assert PASSWORD not in result.output
    assert server.connections == 0
