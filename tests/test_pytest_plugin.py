"""The pytest plugin (smtpx.pytest_plugin), run the way a user runs it: through pytester."""

from __future__ import annotations

import asyncio
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

import pytest

import smtpx
from smtpx.testing import ScriptedServer, assert_not_sent, assert_sent

if TYPE_CHECKING:  # imported by pytest_plugins below, not before (assertion rewriting)
    from smtpx.pytest_plugin import ServerFactory

# Once smtpx is installed with its pytest11 entry point, pytest loads the plugin itself,
# and naming it here too would register the module twice (a ValueError): only ask for
# it while the entry point is missing (a source checkout not yet reinstalled).
_INSTALLED = any(ep.value == "smtpx.pytest_plugin" for ep in entry_points(group="pytest11"))
pytest_plugins = ["pytester"] if _INSTALLED else ["pytester", "smtpx.pytest_plugin"]
# the same for the user test runs below
PLUGIN: tuple[str, ...] = () if _INSTALLED else ("-p", "smtpx.pytest_plugin")

MESSAGE = b"From: app@example.com\r\nTo: alice@example.com\r\nSubject: Welcome\r\n\r\nHi!\r\n"

# A user's test module: their "app" is a sync function that sends with smtpx.
USER_TESTS = '''
import asyncio

import pytest

import smtpx
from smtpx.pytest_plugin import assert_not_sent, assert_sent

MESSAGE = b"From: app@example.com\\r\\nTo: alice@example.com\\r\\nSubject: Welcome\\r\\n\\r\\nHi"


def signup(server, password="password"):
    """The app under test: sends a welcome mail, says what happened."""
    try:
        asyncio.run(smtpx.send(
            MESSAGE, host=server.host, port=server.port, tls=smtpx.TLSMode.NONE,
            credentials=("user", password), allow_plaintext_auth=True, timeout=2,
        ))
    except smtpx.AuthFailed:
        return "misconfigured"
    except smtpx.TransientError:
        return "queued"
    return "sent"


def test_sent(smtp_server):
    assert signup(smtp_server) == "sent"
    assert_sent(smtp_server, to="alice@example.com", subject="Welcome", count=1)


def test_535(smtp_server):
    smtp_server.on("AUTH", reply="535 5.7.8 Authentication credentials invalid")
    assert signup(smtp_server) == "misconfigured"
    assert_not_sent(smtp_server)


def test_450(smtp_server):
    smtp_server.on("RCPT", reply="450 4.2.0 Greylisted, try again later")
    assert signup(smtp_server) == "queued"


def test_421(smtp_server):
    smtp_server.on("MAIL", reply="421 4.3.2 Shutting down", close=True)
    assert signup(smtp_server) == "queued"


def test_real_password_check(smtp_server):
    assert signup(smtp_server, password="wrong") == "misconfigured"


@pytest.mark.asyncio
async def test_from_async_code(smtp_server):
    smtp_server.on("RCPT", reply="450 4.2.0 Greylisted, try again later")
    with pytest.raises(smtpx.AllRecipientsDeferred):
        await smtpx.send(MESSAGE, host=smtp_server.host, port=smtp_server.port,
                         tls=smtpx.TLSMode.NONE, timeout=2)


@pytest.mark.smtp_server(size_limit=10)
def test_marker_configures_the_server(smtp_server):
    with pytest.raises(smtpx.MessageTooLarge):
        asyncio.run(smtpx.send(MESSAGE, host=smtp_server.host, port=smtp_server.port,
                               tls=smtpx.TLSMode.NONE, timeout=2))


def test_factory(smtp_server_factory):
    a = smtp_server_factory()
    b = smtp_server_factory(credentials=None)
    assert a.port != b.port
    assert a.credentials is None and b.credentials is None


def test_fails_readably(smtp_server):
    smtp_server.on("RCPT", reply="450 4.2.0 Greylisted, try again later")
    signup(smtp_server)
    assert_sent(smtp_server, to="alice@example.com", subject="Welcome")
'''

INI = "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
# Inner runs share this process: hush the "already imported, cannot rewrite" warnings,
# and leave out hypothesis's plugin (its terminal summary alone takes a second).
QUIET = (
    "-p",
    "no:cacheprovider",
    "-p",
    "no:hypothesispytest",
    "-W",
    "ignore::pytest.PytestWarning",
)


def test_user_tests_through_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest(*QUIET, *PLUGIN, "-p", "asyncio")
    result.assert_outcomes(passed=8, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*expected at least 1 message(s) to <alice@example.com> with subject 'Welcome',"
            " found 0;",
            "*the server accepted 0 message(s)",
            "*scripted replies sent:",
            "*RCPT: '450 4.2.0 Greylisted, try again later' x1",
        ]
    )


def test_loads_through_the_entry_point(pytester: pytest.Pytester) -> None:
    """With smtpx installed, a user's tests need nothing but the fixture's name; and the
    plugin can be turned off with -p no:smtpx."""
    dist = pytester.mkdir("smtpx_entry_point_probe-0.dist-info")
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: smtpx-entry-point-probe\nVersion: 0\n"
    )
    (dist / "entry_points.txt").write_text("[pytest11]\nsmtpx = smtpx.pytest_plugin\n")
    pytester.makeini(INI)
    pytester.makepyfile(
        test_probe="""
        def test_uses_fixture(smtp_server):
            assert smtp_server.port
        """
    )
    pytester.syspathinsert()  # importlib.metadata finds the dist-info on sys.path
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(passed=1)
    result = pytester.runpytest(*QUIET, "-p", "no:smtpx")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'smtp_server' not found*"])


# -- the fixtures and assertions used directly ----------------------------------------------


def send(server: ScriptedServer, message: bytes = MESSAGE) -> smtpx.SendResult:
    return asyncio.run(
        smtpx.send(message, host=server.host, port=server.port, tls=smtpx.TLSMode.NONE, timeout=2)
    )


def test_fixture_serves_synchronous_code(smtp_server: ScriptedServer) -> None:
    result = send(smtp_server)
    assert result.accepted == ("alice@example.com",)
    [received] = assert_sent(smtp_server, to="ALICE@example.com", sender="app@example.com")
    assert received.subject == "Welcome"
    assert received.text.strip() == "Hi!"
    assert smtp_server.credentials == {"user": "password"}


async def test_fixture_serves_async_code(smtp_server: ScriptedServer) -> None:
    smtp_server.on("DATA_END", reply="451 4.3.0 Try again", times=1)
    clock = smtpx.VirtualClock()
    result = await smtpx.send(
        MESSAGE,
        host=smtp_server.host,
        port=smtp_server.port,
        tls=smtpx.TLSMode.NONE,
        timeout=2,
        retry=smtpx.RetryPolicy.for_testing(clock),
    )
    assert result.accepted == ("alice@example.com",)
    assert len(clock.sleeps) == 1
    assert_sent(smtp_server, count=1)


def test_assert_sent_criteria(smtp_server: ScriptedServer) -> None:
    send(smtp_server)
    assert_sent(smtp_server, contains="Hi!")
    with pytest.raises(AssertionError, match=r"expected 2 message\(s\) to <alice@example.com>"):
        assert_sent(smtp_server, to="alice@example.com", count=2)
    with pytest.raises(AssertionError, match=r"from <other@example\.com>"):
        assert_sent(smtp_server, sender="other@example.com")
    with pytest.raises(AssertionError, match="containing 'Bye'"):
        assert_sent(smtp_server, contains="Bye")
    assert_not_sent(smtp_server, subject="Other")
    with pytest.raises(AssertionError, match=r"expected no message at all, found 1;\n"):
        assert_not_sent(smtp_server)


def test_assert_sent_on_empty_server(smtp_server: ScriptedServer) -> None:
    assert_sent(smtp_server, count=0)
    with pytest.raises(AssertionError, match=r"the server accepted 0 message\(s\)$"):
        assert_sent(smtp_server)


def test_factory_servers_are_independent(
    smtp_server_factory: ServerFactory,
) -> None:
    plain = smtp_server_factory(credentials=None)
    refusing = smtp_server_factory()
    refusing.on("RCPT", reply="550 5.1.1 No such user")
    send(plain)
    with pytest.raises(smtpx.AllRecipientsRejected):
        send(refusing)
    assert_sent(plain, count=1)
    assert_not_sent(refusing)


# -- async tests, whatever runs their event loop -------------------------------------------

ASYNC_SEND = """
import pytest

import smtpx

MESSAGE = b"From: app@example.com\\r\\nTo: alice@example.com\\r\\nSubject: Welcome\\r\\n\\r\\nHi"


async def send_through(server):
    return await smtpx.send(
        MESSAGE, host=server.host, port=server.port, tls=smtpx.TLSMode.NONE,
        credentials=("user", "password"), allow_plaintext_auth=True, timeout=2,
    )
"""

PYTEST_ASYNCIO_TESTS = (
    ASYNC_SEND
    + """

@pytest.mark.asyncio
async def test_marked(smtp_server):
    result = await send_through(smtp_server)
    assert result.accepted == ("alice@example.com",)


@pytest.mark.asyncio
async def test_marked_greylisted(smtp_server):
    smtp_server.on("RCPT", reply="450 4.2.0 Greylisted, try again later")
    with pytest.raises(smtpx.AllRecipientsDeferred):
        await send_through(smtp_server)
"""
)

AUTO_MODE_TESTS = (
    ASYNC_SEND
    + """

async def test_unmarked(smtp_server):
    result = await send_through(smtp_server)
    assert result.accepted == ("alice@example.com",)
"""
)


def _anyio_backends() -> list[str]:
    """asyncio, and trio where the installed trio is one anyio's trio backend accepts (its
    ``trio`` extra's floor: older trios fail inside anyio, whatever the test does)."""
    from importlib.metadata import PackageNotFoundError, requires, version

    from packaging.requirements import Requirement

    try:
        wanted = [Requirement(r) for r in requires("anyio") or () if 'extra == "trio"' in r]
        installed = version("trio")
    except PackageNotFoundError:
        return ["asyncio"]
    fits = all(r.specifier.contains(installed, prereleases=True) for r in wanted)
    return ["asyncio", "trio"] if fits else ["asyncio"]


ANYIO_BACKENDS = _anyio_backends()
ANYIO_TESTS = (
    ASYNC_SEND
    + f"""
import anyio


@pytest.fixture(params={ANYIO_BACKENDS!r})
def anyio_backend(request):
    return request.param


@pytest.mark.anyio
async def test_raw_greeting_on_any_backend(smtp_server):
    smtp_server.on("CONNECT", reply="220 scripted.example ESMTP")
    async with await anyio.connect_tcp(smtp_server.host, smtp_server.port) as stream:
        greeting = await stream.receive()
    assert greeting.startswith(b"220 scripted.example")


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # smtpx.Client runs on asyncio
async def test_smtpx_under_anyio(smtp_server, anyio_backend):
    result = await send_through(smtp_server)
    assert result.accepted == ("alice@example.com",)
    assert len(smtp_server.messages) == 1
"""
)

LOGIN_THEN_FAIL = (
    ASYNC_SEND
    + """

@pytest.mark.asyncio
async def test_logs_in_then_fails(smtp_server):
    await send_through(smtp_server)
    raise AssertionError("on purpose: pytest then shows the test's captured logs")
"""
)


@pytest.mark.parametrize(
    ("mode", "tests", "plugins"),
    [
        ("strict", PYTEST_ASYNCIO_TESTS, ("-p", "asyncio", "-p", "no:anyio")),
        ("auto", AUTO_MODE_TESTS, ("-p", "asyncio", "-p", "no:anyio")),
        ("strict", ANYIO_TESTS, ("-p", "anyio", "-p", "no:asyncio")),
        ("strict", PYTEST_ASYNCIO_TESTS + ANYIO_TESTS, ("-p", "asyncio", "-p", "anyio")),
    ],
    ids=["pytest-asyncio", "pytest-asyncio-auto", "anyio", "both"],
)
def test_async_tests_with_either_plugin(
    pytester: pytest.Pytester, mode: str, tests: str, plugins: tuple[str, ...]
) -> None:
    pytester.makeini(f"[pytest]\nasyncio_mode = {mode}\n")
    pytester.makepyfile(test_async=tests)
    result = pytester.runpytest(*QUIET, *PLUGIN, *plugins)
    anyio = len(ANYIO_BACKENDS) + 1
    expected = {PYTEST_ASYNCIO_TESTS: 2, AUTO_MODE_TESTS: 1, ANYIO_TESTS: anyio}.get(
        tests, 2 + anyio
    )
    result.assert_outcomes(passed=expected)


def test_async_tests_without_a_plugin_say_which_to_install(pytester: pytest.Pytester) -> None:
    # What docs/testing.md says happens when neither plugin runs the test.
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_async=AUTO_MODE_TESTS)
    result = pytester.runpytest(*QUIET, *PLUGIN, "-p", "no:asyncio", "-p", "no:anyio", "-rs")
    outcomes = result.parseoutcomes()
    # pytest 8.4 and later fail such a test ("async def functions are not natively
    # supported"); earlier versions skip it ("async def function and no async plugin
    # installed")
    assert outcomes.get("failed", 0) + outcomes.get("skipped", 0) == 1, outcomes
    assert "passed" not in outcomes
    result.stdout.fnmatch_lines(["*async def function*"])


def test_no_aiosmtpd_deprecation_warning_in_a_users_logs(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_mode = strict\nlog_level = DEBUG\n")
    pytester.makepyfile(test_login=LOGIN_THEN_FAIL)
    result = pytester.runpytest(*QUIET, *PLUGIN, "-p", "asyncio")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "Captured log call" in output  # the logs are shown ...
    assert "AUTH" in output or "mail.log" in output
    assert "deprecated" not in output and "login_data" not in output  # ... without it
