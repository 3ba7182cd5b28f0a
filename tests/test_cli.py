"""The smtpx command line: explain, send, probe (CliRunner, against a scripted server on
its own thread) and serve (a real subprocess)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from serveprocess import smtpx_serve
from tls_ca import LocalCA

import smtpx
from smtpx.cli._serve import DevServer, parse_fail, parse_fail_every
from smtpx.cli.app import cli
from smtpx.testing import ScriptedServer, serve_in_thread

PASSWORD = "s3cret-Pa55"  # the test server's password: must never be printed
LOCAL = ("--local-hostname", "client.test")


def run(
    *args: str, env: Mapping[str, str | None] | None = None, input: str | None = None
) -> Result:
    return CliRunner().invoke(
        cli, list(args), env=dict(env or {}), input=input, catch_exceptions=False
    )


def both(result: Result) -> str:
    return result.stdout + result.stderr


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    """A plain scripted server in a background thread with its own event loop."""
    with serve_in_thread(credentials={"app": PASSWORD}) as scripted:
        yield scripted


def send(
    server: ScriptedServer,
    *args: str,
    env: Mapping[str, str | None] | None = None,
    input: str | None = None,
) -> Result:
    base = ("send", "--host", server.host, "--port", str(server.port), "--tls", "none", *LOCAL)
    return run(*base, "--from", "app@example.com", *args, env=env, input=input)


# -- explain ---------------------------------------------------------------------------


def test_explain_code_and_enhanced_for_every_listed_command() -> None:
    result = run("explain", "550", "5.1.1")
    assert result.exit_code == 0
    out = result.stdout
    assert "mailbox unavailable" in out
    assert "5.1.1  Bad destination mailbox address" in out
    assert re.search(r"^RCPT\s+NoSuchMailbox\s+permanent\s+no$", out, re.M)
    assert re.search(r"^\(other\)\s+NoSuchMailbox", out, re.M)
    assert "\x1b[" not in out  # not a terminal: plain


def test_explain_for_one_command_uses_its_own_rules() -> None:
    result = run("explain", "552", "--command", "rcpt")
    assert result.exit_code == 0
    assert "class:      MailboxFullTemporary" in result.stdout
    assert "severity:   transient" in result.stdout
    assert "retryable:  yes" in result.stdout
    result = run("explain", "552", "--command", "DATA_END")
    assert "class:      MailboxFullPermanent" in result.stdout
    assert "retryable:  no" in result.stdout


def test_explain_shows_command_specific_classes() -> None:
    out = run("explain", "454").stdout
    assert re.search(r"^STARTTLS\s+TLSUnavailable\s+transient\s+yes$", out, re.M)
    assert re.search(
        r"^AUTH\s+AuthUnavailable\s+transient\s+yes\s+\(not in the table\)", out, re.M
    )


def test_explain_rejects_a_malformed_enhanced_code() -> None:
    result = run("explain", "550", "5.x")
    assert result.exit_code == 2
    assert "not an enhanced status code" in result.stderr
    assert run("explain", "999").exit_code == 2


def test_python_dash_m_smtpx_explain() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "smtpx", "explain", "550", "5.1.1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "NoSuchMailbox" in done.stdout
    assert "Bad destination mailbox address" in done.stdout


# -- send ------------------------------------------------------------------------------


def test_send_all_accepted(server: ScriptedServer) -> None:
    result = send(server, "--to", "alice@example.com", "--subject", "Hi", "--body", "Hello there.")
    assert result.exit_code == 0, both(result)
    assert "accepted  alice@example.com" in result.stdout
    (received,) = server.messages
    assert received.subject == "Hi"
    assert "Hello there." in received.text


def test_send_partial_refusal_exits_1(server: ScriptedServer) -> None:
    server.on("RCPT", match="bob@", reply="550 5.1.1 No such user")
    result = send(server, "--to", "alice@example.com", "--to", "bob@example.com")
    assert result.exit_code == 1
    assert "accepted  alice@example.com" in result.stdout
    assert re.search(
        r"rejected  bob@example.com  NoSuchMailbox 550 5\.1\.1: .*No such user", result.stdout
    )
    assert "Bad destination mailbox address" in result.stdout


@pytest.mark.parametrize(
    ("command", "reply", "code", "kind"),
    [
        ("RCPT", "550 5.7.1 Relaying denied", 3, "AllRecipientsRejected"),
        ("MAIL", "451 4.3.0 Try later", 4, "LocalError"),
        ("RCPT", "450 4.2.0 Greylisted", 4, "AllRecipientsDeferred"),
    ],
)
def test_send_exit_code_by_class(
    server: ScriptedServer, command: str, reply: str, code: int, kind: str
) -> None:
    server.on(command, reply=reply)
    result = send(server, "--to", "alice@example.com")
    assert result.exit_code == code, both(result)
    assert f"failed: {kind}" in result.stdout


def test_send_delivery_unknown_exits_5(server: ScriptedServer) -> None:
    server.on("DATA_END", close=True, record=True)
    result = send(server, "--to", "alice@example.com")
    assert result.exit_code == 5
    assert "DeliveryUnknown" in result.stdout
    assert "may have the message" in result.stdout


def test_send_retries_transient_failures(server: ScriptedServer) -> None:
    server.on("DATA_END", reply="451 4.3.0 Local error", times=2)
    result = send(server, "--to", "alice@example.com", "--retry", "2", "--retry-wait", "0")
    assert result.exit_code == 0, both(result)
    assert len(server.messages) == 1
    server.on("DATA_END", reply="451 4.3.0 Local error", times=2)
    result = send(server, "--to", "alice@example.com", "--retry", "1", "--retry-wait", "0")
    assert result.exit_code == 4
    assert "failed after 2 attempts: LocalError 451 4.3.0" in result.stdout


def test_send_starttls_required_by_default(server: ScriptedServer) -> None:
    result = run(
        "send",
        "--host",
        server.host,
        "--port",
        str(server.port),
        *LOCAL,
        "--from",
        "app@example.com",
        "--to",
        "alice@example.com",
    )
    assert result.exit_code == 6
    assert "TLSNotOffered" in result.stdout
    # the library's advice, put as the CLI flags, and said once
    assert "use --tls implicit for port 465, or choose --tls opportunistic" in result.stdout
    assert "TLSMode" not in result.stdout
    assert result.stdout.count("--tls implicit") == 1


def test_send_password_from_environment_never_printed(server: ScriptedServer) -> None:
    args = ("--to", "alice@example.com", "--user", "app", "--allow-plaintext-auth")
    result = send(server, *args, env={"SMTPX_PASSWORD": PASSWORD})
    assert result.exit_code == 0, both(result)
    wrong = "wrong-" + PASSWORD
    result = send(server, *args, env={"SMTPX_PASSWORD": wrong})
    assert result.exit_code == 6
    assert "AuthFailed 535 5.7.8" in result.stdout
    for output in (result.stdout, result.stderr):
        assert PASSWORD not in output
        assert wrong not in output


def test_send_password_from_a_hidden_prompt(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("smtpx.cli._common._interactive", lambda: True)  # as on a terminal
    args = ("--to", "alice@example.com", "--user", "app", "--allow-plaintext-auth")
    result = send(server, *args, env={"SMTPX_PASSWORD": None}, input=PASSWORD + "\n")
    assert result.exit_code == 0, both(result)
    assert "Password for app" in result.stderr
    assert PASSWORD not in both(result)
    assert len(server.messages) == 1


def test_send_refuses_plaintext_auth_without_the_flag(server: ScriptedServer) -> None:
    result = send(
        server, "--to", "a@example.com", "--user", "app", env={"SMTPX_PASSWORD": PASSWORD}
    )
    assert result.exit_code == 2
    assert "PlaintextAuthRefused" in result.stdout
    assert PASSWORD not in both(result)


def test_send_usage_errors_exit_2(server: ScriptedServer) -> None:
    assert send(server).exit_code == 2  # no --to
    result = send(server, "--to", "a@example.com", "--password", PASSWORD)
    assert result.exit_code == 2
    assert "No such option" in result.stderr
    assert PASSWORD not in both(result)
    result = send(server, "--to", "not an address")
    assert result.exit_code == 2
    assert server.messages == []


def test_send_an_eml_file(server: ScriptedServer, tmp_path: Path) -> None:
    eml = tmp_path / "hello.eml"
    eml.write_bytes(
        b"From: app@example.com\r\nTo: carol@example.com\r\nSubject: From a file\r\n\r\nHi\r\n"
    )
    result = run(
        "send",
        "--host",
        server.host,
        "--port",
        str(server.port),
        "--tls",
        "none",
        *LOCAL,
        "--eml",
        str(eml),
    )
    assert result.exit_code == 0, both(result)
    assert "accepted  carol@example.com" in result.stdout
    assert server.messages[0].subject == "From a file"
    assert send(server, "--eml", str(eml), "--subject", "x").exit_code == 2


def test_send_to_file_one_message_each_with_a_summary(
    server: ScriptedServer, tmp_path: Path
) -> None:
    server.on("RCPT", match="bob@", reply="550 5.1.1 No such user")
    server.on("RCPT", match="dave@", reply="452 4.2.2 Mailbox full")
    listing = tmp_path / "recipients.txt"
    listing.write_text(
        "alice@example.com\nbob@example.com\n# a comment\n\ncarol@example.com\ndave@example.com\n"
    )
    result = send(server, "--to-file", str(listing), "--subject", "Bulk")
    assert result.exit_code == 1
    assert "failed    bob@example.com  NoSuchMailbox 550 5.1.1" in result.stdout
    assert "failed    dave@example.com  MailboxFullTemporary 452 4.2.2" in result.stdout
    assert result.stdout.strip().endswith("2 accepted, 2 failed, 0 not sent, of 4")
    assert [m.rcpt_tos for m in server.messages] == [
        ("alice@example.com",),
        ("carol@example.com",),
    ]
    assert server.connections == 1  # one connection for the whole run


def test_send_to_file_stops_at_an_auth_failure(server: ScriptedServer, tmp_path: Path) -> None:
    listing = tmp_path / "recipients.txt"
    listing.write_text("a@example.com\nb@example.com\nc@example.com\n")
    result = send(
        server,
        "--to-file",
        str(listing),
        "--user",
        "app",
        "--allow-plaintext-auth",
        env={"SMTPX_PASSWORD": "nope"},
    )
    assert result.exit_code == 6
    assert "stopped: AuthFailed 535" in result.stdout
    assert "0 accepted, 1 failed, 2 not sent, of 3" in result.stdout


def test_help_documents_the_exit_codes() -> None:
    for args in (["--help"], ["send", "--help"], ["probe", "--help"]):
        out = run(*args).stdout
        assert "Exit codes:" in out
        assert "4  transient failure" in out
        assert "6  TLS or authentication error" in out
    assert "--password" not in run("send", "--help").stdout


def test_colour_on_a_terminal_and_never_with_no_color(server: ScriptedServer) -> None:
    def explain(env: dict[str, str | None]) -> str:
        return CliRunner().invoke(cli, ["explain", "550"], color=True, env=env).stdout

    assert "\x1b[" in explain({"NO_COLOR": None})
    assert "\x1b[" not in explain({"NO_COLOR": "1"})


# -- probe -----------------------------------------------------------------------------


def test_probe_plaintext(server: ScriptedServer) -> None:
    result = run("probe", f"{server.host}:{server.port}", "--tls", "opportunistic", *LOCAL)
    assert result.exit_code == 0, both(result)
    out = result.stdout
    assert "<<< 220 localhost ESMTP smtpx.testing" in out
    assert "= Ready" in out
    assert ">>> EHLO client.test" in out
    assert "capabilities: " in out and "PIPELINING" in out
    assert "TLS:          none (plaintext)" in out
    assert "AUTH:         LOGIN PLAIN" in out


def test_probe_starttls_certificate_and_auth(ca: LocalCA, tmp_path: Path) -> None:
    ca_file = ca.write_ca_pem(tmp_path)
    with serve_in_thread(tls_context=ca.server_context(), credentials={"app": PASSWORD}) as srv:
        target = f"{srv.host}:{srv.port}"
        args = ("probe", target, "--ca-file", str(ca_file), "--user", "app", *LOCAL)
        result = run(*args, env={"SMTPX_PASSWORD": PASSWORD})
        assert result.exit_code == 0, both(result)
        out = result.stdout
        assert ">>> STARTTLS" in out
        assert re.search(r"^TLS:\s+TLSv1\.[23], \S+ \(\d+-bit\)$", out, re.M)
        assert "certificate:  subject" in out
        assert "names localhost" in out
        assert "valid until" in out
        assert ">>> AUTH PLAIN [redacted]" in out
        assert "authentication: Authenticated 235" in out
        assert PASSWORD not in both(result)

        result = run(*args, env={"SMTPX_PASSWORD": "wrong-" + PASSWORD})
        assert result.exit_code == 6
        assert "= AuthFailed" in result.stdout
        assert "failed: AuthFailed 535" in result.stdout
        assert PASSWORD not in both(result)

        result = run("probe", target, *LOCAL)  # the system CAs do not know this one
        assert result.exit_code == 6
        assert "CertificateInvalid" in result.stdout


def test_probe_implicit_tls(ca: LocalCA, tmp_path: Path) -> None:
    ca_file = ca.write_ca_pem(tmp_path)
    with serve_in_thread(tls_context=ca.server_context(), implicit_tls=True) as srv:
        result = run(
            "probe",
            f"{srv.host}:{srv.port}",
            "--tls",
            "implicit",
            "--ca-file",
            str(ca_file),
            *LOCAL,
        )
    assert result.exit_code == 0, both(result)
    assert "TLS:          TLSv1." in result.stdout
    assert "STARTTLS" not in result.stdout


def test_probe_failures(server: ScriptedServer) -> None:
    result = run("probe", f"{server.host}:{server.port}", *LOCAL)
    assert result.exit_code == 6
    assert "TLSNotOffered" in result.stdout
    server.on("CONNECT", reply="554 5.3.2 No service for you")
    result = run("probe", f"{server.host}:{server.port}", "--tls", "none", *LOCAL)
    assert result.exit_code == 3
    assert "failed: NoSMTPService 554 5.3.2" in result.stdout
    assert run("probe", "host:notaport").exit_code == 2


# -- serve -----------------------------------------------------------------------------


def test_serve_in_a_subprocess_answers_the_scripted_failure(tmp_path: Path) -> None:
    store = tmp_path / "mail"
    with smtpx_serve("--port", "0", "--fail", "RCPT:550:bob@", "--store", str(store)) as served:
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", served.first)
        assert match, served.first
        message = (
            b"From: app@example.com\r\nTo: alice@example.com, bob@example.com\r\n"
            b"Subject: dev\r\n\r\nHello.\r\n"
        )
        result = smtpx.send_sync(
            message,
            host="127.0.0.1",
            port=int(match[1]),
            tls=smtpx.TLSMode.NONE,
            local_hostname="client.test",
            timeout=5.0,
        )
        assert result.accepted == ("alice@example.com",)
        assert isinstance(result.rejected["bob@example.com"], smtpx.MailboxUnavailable)
        assert result.rejected["bob@example.com"].code == 550
    assert served.returncode == 0, served.rest
    assert "RCPT TO:<bob@example.com> -> 550" in served.rest
    assert "#1 from <app@example.com> to <alice@example.com> subject 'dev'" in served.rest
    assert "smtpx serve: stopped" in served.rest
    (stored,) = store.glob("*.eml")
    assert b"Subject: dev" in stored.read_bytes()


def test_serve_fails_every_nth_message() -> None:
    failures = [parse_fail_every("2:DATA_END:451/4.3.0"), parse_fail("RCPT:550:nobody@")]
    dev = DevServer(host="127.0.0.1", port=0, failures=failures, store=None)
    outcomes: list[str] = []
    plain = smtpx.TLSMode.NONE
    with (
        serve_in_thread(dev) as srv,
        smtpx.SyncClient(srv.host, srv.port, tls=plain, local_hostname="client.test") as client,
    ):
        for n in range(4):
            try:
                client.send(f"From: a@example.com\r\nTo: b@example.com\r\nSubject: {n}\r\n\r\nx")
                outcomes.append("ok")
            except smtpx.LocalError as error:
                assert str(error.enhanced) == "4.3.0"
                outcomes.append("451")
    assert outcomes == ["ok", "451", "ok", "451"]
    assert [m.subject for m in srv.messages] == ["0", "2"]


@pytest.mark.parametrize(
    "option",
    [
        "--fail=RCPT",
        "--fail=BOGUS:550",
        "--fail=RCPT:99",
        "--fail-every=0:RCPT:450",
        "--fail-every=2:EHLO:550",
    ],
)
def test_serve_rejects_bad_failure_specs(option: str) -> None:
    result = run("serve", "--port", "0", option)
    assert result.exit_code == 2
    assert "Error" in result.stderr


@pytest.mark.parametrize("mode", ["NONE", "None", "none"])
def test_tls_flag_takes_any_case(server: ScriptedServer, mode: str) -> None:
    base = ("send", "--host", server.host, "--port", str(server.port), "--tls", mode, *LOCAL)
    result = run(*base, "--from", "app@example.com", "--to", "alice@example.com")
    assert result.exit_code == 0, result.output
    assert len(server.messages) == 1


def test_an_unknown_tls_flag_is_refused_before_connecting(server: ScriptedServer) -> None:
    base = ("send", "--host", server.host, "--port", str(server.port), "--tls", "startls")
    result = run(*base, *LOCAL, "--from", "app@example.com", "--to", "alice@example.com")
    assert result.exit_code == 2
    assert "starttls" in result.output
    assert server.connections == 0


# -- explain: reasons ----------------------------------------------------------------------


def test_explain_a_whole_reply_line_says_each_thing_once() -> None:
    line = "550 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org"
    result = run("explain", line, "--command", "RCPT")
    assert result.exit_code == 0, both(result)
    out = result.stdout
    assert "class:      BlocklistedPermanent" in out
    assert re.search(r"^reason:\s+blocklisted: ", out, re.M)
    assert "severity:   permanent" in out
    assert re.search(r"^what to do:\s+\S", out, re.M)
    assert re.search(r"^rule:\s+.*blocked using", out, re.M)  # the rule's source
    for label in ("reason:", "what to do:", "rule:", "class:"):
        assert out.count(label) == 1, label


def test_explain_code_enhanced_and_text_as_separate_words() -> None:
    out = run("explain", "421", "4.7.0", "[TSS04]", "deferred", "due", "to", "user", "complaints")
    assert out.exit_code == 0
    assert re.search(r"^reason:\s+bad_reputation", out.stdout, re.M)
    assert re.search(r"^\(other\)\s+ServiceUnavailable\s+transient\s+yes", out.stdout, re.M)


def test_explain_an_enhanced_code_alone() -> None:
    out = run("explain", "5.1.1").stdout
    assert out.startswith("550  ")
    assert re.search(r"^reason:\s+user_unknown", out, re.M)
    assert re.search(r"^RCPT\s+NoSuchMailbox\s+permanent\s+no$", out, re.M)


def test_explain_a_reply_without_a_known_cause() -> None:
    out = run("explain", "550", "--command", "RCPT").stdout
    assert re.search(r"^reason:\s+other", out, re.M)
    assert "guessed" not in out and "none matched" in out
    assert run("explain", "hello").exit_code == 2


@pytest.mark.parametrize("subject", ["a\nb", "a\r\nBcc: evil@example.com", "x\ry"])
def test_a_subject_with_a_line_break_is_a_usage_error(
    server: ScriptedServer, subject: str
) -> None:
    result = send(server, "--to", "alice@example.com", "--subject", subject)
    assert result.exit_code == 2, both(result)
    assert "--subject" in result.output and "Traceback" not in result.output
    assert server.messages == []


# -- each thing once -------------------------------------------------------------------------


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.casefold()).split())


@pytest.mark.parametrize("echo", ["code", "enhanced", "other"])
def test_a_failure_line_says_each_meaning_once(echo: str) -> None:
    from smtpx.cli._common import explain_error
    from smtpx.codes import REGISTRY

    checked = 0
    for entry in REGISTRY.values():
        for code in (c for c in entry.basic_codes if c >= 400):
            enhanced = f"{code // 100}.{entry.subject}.{entry.detail}"
            meaning, title = smtpx.codes.describe(code), entry.title
            text = {"code": meaning, "enhanced": title, "other": "Go away"}[echo]
            error = smtpx.classify(
                smtpx.Command.MAIL, smtpx.Reply.build(code, f"{enhanced} {text}")
            )
            assert isinstance(error, smtpx.SMTPError)
            line = _words(explain_error(error))
            for phrase in {_words(meaning), _words(title)}:
                assert phrase in line, (explain_error(error), phrase)
                inside_another = any(
                    phrase in other and phrase != other
                    for other in (_words(meaning), _words(title), _words(text))
                )
                if not inside_another:
                    assert line.count(phrase) == 1, explain_error(error)
            checked += 1
    assert checked > 100


def test_a_wrong_password_is_said_once(server: ScriptedServer) -> None:
    result = send(
        server,
        "--to",
        "alice@example.com",
        "--user",
        "app",
        "--allow-plaintext-auth",
        env={"SMTPX_PASSWORD": "wrong"},
    )
    assert result.exit_code == 6
    assert _words(result.stdout).count("authentication credentials invalid") == 1, result.stdout


# -- rough edges -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (("a@example.com",), ("a@example.com",)),
        (("a@example.com,b@example.com",), ("a@example.com", "b@example.com")),
        (("a@example.com, b@example.com,",), ("a@example.com", "b@example.com")),
        (
            ("a@example.com", "b@example.com,c@example.com"),
            ("a@example.com", "b@example.com", "c@example.com"),
        ),
        (('"a,b"@example.com,c@example.com',), ('"a,b"@example.com', "c@example.com")),
        (("Al <a@example.com>, b@example.com",), ("Al <a@example.com>", "b@example.com")),
        ((",",), ()),
    ],
)
def test_to_splits_at_commas_outside_quotes(
    values: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    from smtpx.cli._send import split_recipients

    assert split_recipients(values) == expected


def test_to_with_commas_sends_to_each(server: ScriptedServer) -> None:
    result = send(server, "--to", "alice@example.com,bob@example.com", "--to", "carol@example.com")
    assert result.exit_code == 0, both(result)
    [message] = server.messages
    assert message.rcpt_tos == ("alice@example.com", "bob@example.com", "carol@example.com")
    assert result.stdout.count("accepted") == 3


def test_probe_prints_what_it_learned_before_starttls_fails(server: ScriptedServer) -> None:
    result = run("probe", f"{server.host}:{server.port}", *LOCAL)  # default: STARTTLS
    assert result.exit_code == 6
    out = result.stdout
    for label in ("greeting:     220", "capabilities: ", "TLS:          none", "AUTH:         "):
        assert label in out, out
    assert out.index("capabilities:") < out.index("failed: TLSNotOffered")
    assert out.count("greeting:") == 1


@pytest.mark.parametrize(
    ("host", "port", "shown"),
    [
        ("127.0.0.1", 25, "127.0.0.1:25"),
        ("::1", 8025, "[::1]:8025"),
        ("mx.example", 1, "mx.example:1"),
    ],
)
def test_addresses_are_shown_as_in_a_url(host: str, port: int, shown: str) -> None:
    from smtpx.cli._common import host_port
    from smtpx.cli._probe import parse_target

    assert host_port(host, port) == shown
    assert parse_target(shown) == (host, port)  # what is shown can be typed back


def test_probe_and_serve_show_ipv6_in_brackets() -> None:
    dev = DevServer(host="::1", port=0, failures=[], store=None)
    with serve_in_thread(dev) as srv:
        result = run("probe", f"[::1]:{srv.port}", "--tls", "none", *LOCAL)
    assert result.exit_code == 0, both(result)
    assert f"probing [::1]:{srv.port} (tls=none)" in result.stdout
    with smtpx_serve("--host", "::1", "--port", "0") as served:
        assert re.search(r"listening on \[::1\]:\d+;", served.first), served.first


def _smtpx(
    *args: str, stdin: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    import os

    environment = {k: v for k, v in os.environ.items() if k != "SMTPX_PASSWORD"}
    return subprocess.run(
        [sys.executable, "-m", "smtpx", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        env={**environment, **(env or {})},
        start_new_session=True,  # no controlling terminal: getpass cannot open /dev/tty
    )


def test_user_without_a_terminal_reads_standard_input_without_warnings(
    server: ScriptedServer,
) -> None:
    base = ("send", "--host", server.host, "--port", str(server.port), "--tls", "none", *LOCAL)
    args = (*base, "--from", "app@example.com", "--to", "alice@example.com", "--user", "app")
    done = _smtpx(*args, "--allow-plaintext-auth", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stderr and "echo" not in done.stderr, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert len(server.messages) == 1
    empty = _smtpx(*args, "--allow-plaintext-auth", stdin="")
    assert empty.returncode == 2
    assert "Warning" not in empty.stderr
    assert empty.stderr.count("no password for app") == 1, empty.stderr
    assert server.connections == 1  # asked before connecting


def test_serve_on_a_port_in_use_exits_1_saying_why() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--port", str(port))
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in result.stderr
    assert "--port" in result.stderr and "Traceback" not in both(result)
    elsewhere = run("serve", "--host", "192.0.2.1", "--port", "0")  # TEST-NET-1: not ours
    assert elsewhere.exit_code == 1
    assert (
        "cannot listen on 192.0.2.1:0: the address is not one of this machine's"
        in elsewhere.stderr
    )


@pytest.mark.parametrize(("command", "flag"), [("STARTTLS", "--tls"), ("BDAT", "--chunking")])
def test_serve_fails_only_commands_it_offers(command: str, flag: str) -> None:
    result = run("serve", "--port", "0", "--fail", f"{command}:454")
    assert result.exit_code == 2
    assert f"does not offer {command}; add {flag}" in result.stderr
    assert parse_fail(f"{command}:454", [command]).command == command


def test_serve_with_chunking_fails_bdat() -> None:
    dev = DevServer(
        host="127.0.0.1",
        port=0,
        failures=[parse_fail("BDAT:552/5.3.4", ["BDAT"])],
        store=None,
        chunking=True,
    )
    plain = smtpx.TLSMode.NONE
    with (
        serve_in_thread(dev) as srv,
        smtpx.SyncClient(srv.host, srv.port, tls=plain, local_hostname="client.test") as client,
        pytest.raises(smtpx.MessageTooLarge) as info,
    ):
        client.send("From: a@example.com\r\nTo: b@example.com\r\nSubject: x\r\n\r\nx")
    assert info.value.command is smtpx.Command.BDAT


def test_every_option_has_help() -> None:
    import click

    for name, command in cli.commands.items():
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"smtpx {name} {param.opts[0]} has no help"
    assert "Seconds to wait" in run("send", "--help").stdout
    assert "Seconds to wait" in run("probe", "--help").stdout


def test_library_advice_is_put_as_cli_flags() -> None:
    # Every piece of Python-facing advice in smtpx's messages (string constants naming a
    # TLSMode member or allow_plaintext_auth) reads as a flag once the CLI has put it.
    import ast

    from smtpx.cli._common import for_the_command_line

    package = Path(smtpx.__file__).parent
    texts = []
    for path in package.rglob("*.py"):
        if "cli" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and "\n" not in node.value  # messages, not docstrings
                and re.search(r"TLSMode\.[A-Z]|allow_plaintext_auth=True", node.value)
            ):
                texts.append(node.value)
    assert len(texts) >= 3
    for text in texts:
        put = for_the_command_line(text)
        assert "TLSMode." not in put and "allow_plaintext_auth" not in put, (text, put)
    for mode in smtpx.TLSMode:
        assert for_the_command_line(f"use TLSMode.{mode.name}") == f"use --tls {mode.value}"


def test_tls_mode_mismatch_advice_names_the_flag(server: ScriptedServer) -> None:
    result = send(server, "--to", "alice@example.com", "--tls", "implicit")
    assert result.exit_code == 6, both(result)
    assert "TLSModeMismatch" in result.stdout
    assert "use --tls starttls" in result.stdout and "TLSMode." not in result.stdout


# -- serve with TLS --------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--tls", "--implicit-tls"])
def test_serve_tls_with_a_throwaway_ca_printed_for_ca_file(flag: str) -> None:
    with smtpx_serve("--port", "0", flag) as served:
        assert served.process.stdout is not None
        lines = [served.first, *(served.process.stdout.readline() for _ in range(2))]
        port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", lines[0])[1])  # type: ignore[index]
        ca_match = re.search(r"pass --ca-file (\S+)", lines[1])
        assert ca_match, lines
        ca_file = Path(ca_match[1])
        assert ca_file.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
        mode = "implicit" if flag == "--implicit-tls" else "starttls"
        assert (f"--tls implicit --ca-file {ca_file}" in lines[2]) == (mode == "implicit")
        assert "--tls none" not in lines[2]
        # the printed command line works as printed
        result = run(
            "send", "--host", "127.0.0.1", "--port", str(port), "--tls", mode,
            "--ca-file", str(ca_file), *LOCAL, "--from", "a@example.com", "--to", "b@example.com",
        )  # fmt: skip
        assert result.exit_code == 0, both(result)
        probe = run("probe", f"127.0.0.1:{port}", "--tls", mode, "--ca-file", str(ca_file))
        assert "TLS:          TLSv1." in probe.stdout, probe.stdout
        # without the CA, the certificate does not verify
        assert run("probe", f"127.0.0.1:{port}", "--tls", mode).exit_code == 6
    assert served.returncode == 0, served.rest
    assert "#1 from <a@example.com>" in served.rest
    assert not ca_file.exists()  # the throwaway CA goes with the server


def test_serve_tls_and_implicit_tls_are_exclusive() -> None:
    result = run("serve", "--port", "0", "--tls", "--implicit-tls")
    assert result.exit_code == 2
    assert "not both" in result.stderr


def test_serve_tls_can_fail_starttls(tmp_path: Path) -> None:
    from smtpx.cli._serve import throwaway_tls

    context, ca_file = throwaway_tls("127.0.0.1", tmp_path)
    dev = DevServer(
        host="127.0.0.1",
        port=0,
        failures=[parse_fail("STARTTLS:454/4.7.0", ["STARTTLS"])],
        store=None,
        tls_context=context,
        ca_file=ca_file,
    )
    with serve_in_thread(dev) as srv:
        result = run("probe", f"{srv.host}:{srv.port}", "--ca-file", str(ca_file), *LOCAL)
    assert result.exit_code == 6, both(result)
    assert "TLSUnavailable 454 4.7.0" in result.stdout


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_the_throwaway_certificate_names_the_address_clients_use(
    host: str, tmp_path: Path
) -> None:
    from smtpx.cli._serve import throwaway_tls

    context, ca_file = throwaway_tls(host, tmp_path)
    dev = DevServer(host=host, port=0, failures=[], store=None, tls_context=context)
    with (
        serve_in_thread(dev) as srv,
        smtpx.SyncClient(
            host,
            srv.port,
            tls_context=smtpx.default_context(cafile=str(ca_file)),
            local_hostname="client.test",
        ) as client,
    ):
        client.send("From: a@example.com\r\nTo: b@example.com\r\nSubject: x\r\n\r\nx")
        assert client.encrypted
    assert len(srv.messages) == 1
