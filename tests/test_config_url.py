"""``ClientConfig.from_url`` and ``from_env``: the URL grammar, every query parameter,
and no password in any error, repr or traceback local, however the URL is malformed."""

from __future__ import annotations

import traceback
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import smtpx
from smtpx.testing import ScriptedServer

SMTPX_DIR = str(Path(smtpx.__file__).parent)


@pytest.mark.parametrize(
    ("url", "tls", "port"),
    [
        ("smtps://smtp.example.com", smtpx.TLSMode.IMPLICIT, 465),
        ("smtp+starttls://smtp.example.com", smtpx.TLSMode.STARTTLS, 587),
        ("smtp://smtp.example.com", smtpx.TLSMode.NONE, 25),
        ("SMTPS://smtp.example.com/", smtpx.TLSMode.IMPLICIT, 465),
        ("smtp://smtp.example.com?tls=opportunistic", smtpx.TLSMode.OPPORTUNISTIC, 25),
        ("smtps://smtp.example.com:2465", smtpx.TLSMode.IMPLICIT, 2465),
        ("smtp+starttls://smtp.example.com:25", smtpx.TLSMode.STARTTLS, 25),
    ],
)
def test_each_scheme_has_its_tls_mode_and_default_port(
    url: str, tls: smtpx.TLSMode, port: int
) -> None:
    config = smtpx.ClientConfig.from_url(url)
    assert (config.host, config.tls, config.port) == ("smtp.example.com", tls, port)
    assert config.credentials is None


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("smtp://[::1]:2525", "::1"),
        ("smtp://[2001:db8::25]", "2001:db8::25"),
        ("smtp://127.0.0.1:2525", "127.0.0.1"),
        ("smtp://u:p@[::1]:2525", "::1"),
    ],
)
def test_ip_address_hosts(url: str, host: str) -> None:
    assert smtpx.ClientConfig.from_url(url).host == host


@settings(max_examples=200, deadline=None)
@given(user=st.text(min_size=1, max_size=30), password=st.text(min_size=1, max_size=30))
def test_user_and_password_are_percent_decoded(user: str, password: str) -> None:
    quote = urllib.parse.quote
    url = f"smtps://{quote(user, safe='')}:{quote(password, safe='')}@smtp.example.com"
    credentials = smtpx.ClientConfig.from_url(url).credentials
    assert isinstance(credentials, smtpx.Credentials)
    assert (credentials.username, credentials.password) == (user, password)


PARAMETERS: list[tuple[str, str, object]] = [
    ("timeout", "12.5", 12.5),
    ("timeout", "3", 3.0),
    ("total_timeout", "60", 60.0),
    ("total_timeout", "none", None),
    ("local_hostname", "client.example.com", "client.example.com"),
    *(
        (flag, text, value)
        for flag in ("allow_plaintext_auth", "transcript", "chunking", "add_missing_headers")
        for text, value in (("true", True), ("0", False), ("YES", True), ("off", False))
    ),
]


@pytest.mark.parametrize(("name", "text", "value"), PARAMETERS)
def test_query_parameters(name: str, text: str, value: object) -> None:
    config = smtpx.ClientConfig.from_url(f"smtp://mx.example.com?{name}={text}")
    assert getattr(config, name) == value


def test_every_scalar_option_is_a_query_parameter() -> None:
    from smtpx._url import _PARAMETERS

    # tls has the scheme; credentials the user info; tls_context and callables no text form
    no_text = {"host", "port", "tls", "credentials", "tls_context", "sink"}
    fields = {a.name for a in smtpx.ClientConfig.__attrs_attrs__} - no_text
    assert set(_PARAMETERS) == fields


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("timeout=0", "timeout"),
        ("timeout=-1", "timeout"),
        ("timeout=nan", "timeout"),
        ("timeout=inf", "timeout"),
        ("timeout=soon", "timeout"),
        ("timeout=", "timeout"),
        ("timeout", "timeout"),
        ("total_timeout=0", "total_timeout"),
        ("chunking=maybe", "chunking"),
        ("transcript=2", "transcript"),
        ("local_hostname=a%20b", "local_hostname"),
        ("local_hostname=h%0d%0aQUIT", "local_hostname"),
        ("timeout=1&timeout=2", "timeout"),
        ("auth=PLAIN", "auth"),
        ("hostname=x", "hostname"),
        ("tls=none", "tls"),
        ("tls=starttls", "tls"),
    ],
)
def test_a_bad_parameter_is_a_usage_error_naming_it(query: str, named: str) -> None:
    with pytest.raises(smtpx.UsageError) as caught:
        smtpx.ClientConfig.from_url(f"smtp://mx.example.com?{query}")
    assert named in str(caught.value)


def test_tls_opportunistic_only_with_the_plaintext_scheme() -> None:
    with pytest.raises(smtpx.UsageError, match="tls"):
        smtpx.ClientConfig.from_url("smtps://mx.example.com?tls=opportunistic")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mx.example.com", "must start with"),
        ("smtp:mx.example.com", "must start with"),
        ("http://mx.example.com", "unknown URL scheme 'http'"),
        ("smtp+tls://mx.example.com", "smtp+starttls://"),
        ("smtp+ssl://mx.example.com", "smtps://"),
        ("smtps://", "no host"),
        ("smtps://:465", "no host"),
        ("smtps://mx.example.com:0", "port"),
        ("smtps://mx.example.com:65536", "port"),
        ("smtps://mx.example.com:x", "port"),
        ("smtps://mx.example.com/inbox", "no path"),
        ("smtps://mx.example.com#top", "no path"),
        ("smtps://[::1", "host"),
        ("smtps://exa mple.com", "host"),
        (" smtps://mx.example.com", "spaces"),
        ("smtps://mx.example.com\r\n", "control"),
        ("smtps://user@mx.example.com", "no password"),
        ("smtps://:pw@mx.example.com", "no user"),
        ("smtps://user:%ff@mx.example.com", "UTF-8"),
    ],
)
def test_malformed_urls_are_usage_errors(url: str, says: str) -> None:
    with pytest.raises(smtpx.UsageError, match=None) as caught:
        smtpx.ClientConfig.from_url(url)
    assert says in str(caught.value)


def test_a_url_that_is_not_a_str() -> None:
    with pytest.raises(smtpx.UsageError, match="str"):
        smtpx.ClientConfig.from_url(b"smtps://mx.example.com")  # type: ignore[arg-type]


def test_password_argument_fills_a_url_without_one() -> None:
    config = smtpx.ClientConfig.from_url("smtps://app@mx.example.com", password="pw")
    assert config.credentials == smtpx.Credentials("app", "pw")
    with pytest.raises(smtpx.UsageError, match="give one"):
        smtpx.ClientConfig.from_url("smtps://app:pw@mx.example.com", password="other")
    with pytest.raises(smtpx.UsageError, match="no user"):
        smtpx.ClientConfig.from_url("smtps://mx.example.com", password="pw")


def test_overrides_replace_what_the_url_says_and_are_checked() -> None:
    config = smtpx.ClientConfig.from_url("smtps://mx.example.com?timeout=5", timeout=9, port=2465)
    assert (config.timeout, config.port) == (9, 2465)
    with pytest.raises(smtpx.UsageError, match="hostname"):
        smtpx.ClientConfig.from_url("smtps://mx.example.com", hostname="x")
    with pytest.raises(smtpx.UsageError, match="timeout"):
        smtpx.ClientConfig.from_url("smtps://mx.example.com", timeout=0)


def test_from_env_reads_the_url_and_the_password() -> None:
    env = {"SMTPX_URL": "smtp+starttls://app@mx.example.com", "SMTPX_PASSWORD": "pw"}
    config = smtpx.ClientConfig.from_env(env)
    assert config.credentials == smtpx.Credentials("app", "pw")
    assert (config.tls, config.port) == (smtpx.TLSMode.STARTTLS, 587)
    # the URL's own password wins; SMTPX_PASSWORD is for a URL without one
    env["SMTPX_URL"] = "smtps://app:inurl@mx.example.com"
    assert smtpx.ClientConfig.from_env(env).credentials == smtpx.Credentials("app", "inurl")
    # without a user, SMTPX_PASSWORD is left alone (it may serve the CLI's --user)
    env["SMTPX_URL"] = "smtps://mx.example.com"
    assert smtpx.ClientConfig.from_env(env).credentials is None
    assert smtpx.ClientConfig.from_env(env, timeout=3).timeout == 3


def test_from_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTPX_URL", "smtps://app@mx.example.com")
    monkeypatch.setenv("SMTPX_PASSWORD", "pw")
    assert smtpx.ClientConfig.from_env().host == "mx.example.com"
    monkeypatch.delenv("SMTPX_PASSWORD")
    with pytest.raises(smtpx.UsageError, match="SMTPX_PASSWORD"):
        smtpx.ClientConfig.from_env()
    monkeypatch.delenv("SMTPX_URL")
    with pytest.raises(smtpx.UsageError, match="SMTPX_URL is not set"):
        smtpx.ClientConfig.from_env()


# -- the password never shows ------------------------------------------------------------

# A secret made of tokens no error message contains (each has a Q, X, Z or J and a digit),
# joined by the characters that break a URL when left unencoded.
TOKEN = st.text(alphabet="QXZJ0123456789", min_size=6, max_size=8).filter(
    lambda t: any(c in "QXZJ" for c in t) and any(c.isdigit() for c in t)
)
SECRETS = st.lists(TOKEN, min_size=1, max_size=3).flatmap(
    lambda tokens: st.lists(
        st.sampled_from(["/", "?", "#", "@", ":", "[", "]", "%", " ", "%zz", "&", "="]),
        min_size=len(tokens) - 1,
        max_size=len(tokens) - 1,
    ).map(
        lambda seps: (
            tokens,
            tokens[0] + "".join(s + t for s, t in zip(seps, tokens[1:], strict=True)),
        )
    )
)
# The password where it belongs (user info), unencoded or encoded, with every other part
# of the URL right or wrong.
TEMPLATES = [
    "smtps://user:{p}@mx.example.com",
    "smtps://user:{p}@mx.example.com:465",
    "smtps://user:{p}@mx.example.com:99999",
    "smtps://user:{p}@mx.example.com:x",
    "smtps://user:{p}@[::1",
    "smtps://user:{p}@[::1]:2525",
    "smtps://user:{p}@mx.example.com/inbox",
    "smtps://user:{p}@mx.example.com?timeout=0",
    "smtps://user:{p}@mx.example.com?bogus=1",
    "smtps://user:{p}@exa mple.com",
    "smtps://user:{p}@",
    "smtp+tls://user:{p}@mx.example.com",
    "http://user:{p}@mx.example.com",
    "smtps:/user:{p}@mx.example.com",
    "user:{p}@mx.example.com",
    "smtps://user:{p}@mx.example.com\n",
    " smtps://user:{p}@mx.example.com",
]


def _shown(error: BaseException) -> str:
    """Everything an error tracker could show: str, repr, chained errors, and the locals
    of every smtpx frame of the traceback."""
    seen, texts = set(), []
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args)]
        tb = current.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename.startswith(SMTPX_DIR):
                texts += [f"{name}={value!r}" for name, value in tb.tb_frame.f_locals.items()]
            tb = tb.tb_next
        current = current.__cause__ or current.__context__
    return "\n".join(texts)


@settings(max_examples=300, deadline=None)
@given(secret=SECRETS, template=st.sampled_from(TEMPLATES), encode=st.booleans())
def test_no_error_from_a_url_shows_its_password(
    secret: tuple[list[str], str], template: str, encode: bool
) -> None:
    tokens, password = secret
    text = urllib.parse.quote(password, safe="") if encode else password
    url = template.replace("{p}", text)
    calls: list[Callable[[], smtpx.ClientConfig]] = [
        lambda: smtpx.ClientConfig.from_url(url),
        lambda: smtpx.ClientConfig.from_url(url, password="other"),
        lambda: smtpx.ClientConfig.from_env({"SMTPX_URL": url, "SMTPX_PASSWORD": password}),
    ]
    for call in calls:
        try:
            config = call()
        except smtpx.UsageError as error:
            shown = _shown(error)
            # the formatted traceback too, with locals (our frames only: the test holds it)
            shown += "".join(traceback.format_exception_only(error))
        else:
            shown = repr(config) + str(config)
        for token in tokens:
            assert token not in shown, (template, shown)


def test_the_traceback_of_from_env_holds_no_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTPX_URL", "smtps://user:QX12ZJ/34@mx.example.com")
    with pytest.raises(smtpx.UsageError) as caught:
        smtpx.ClientConfig.from_env()
    formatted = "".join(
        traceback.TracebackException.from_exception(caught.value, capture_locals=True).format()
    )
    assert "QX12ZJ" not in formatted


# -- end to end ---------------------------------------------------------------------------


async def test_a_config_from_a_url_sends_and_logs_in() -> None:
    server = ScriptedServer(credentials={"app@example.com": "p@ss/w:rd"})
    async with server:
        url = (
            f"smtp://app%40example.com:p%40ss%2Fw%3Ard@{server.host}:{server.port}"
            "?allow_plaintext_auth=true&local_hostname=client.example.com&timeout=5"
        )
        config = smtpx.ClientConfig.from_url(url)
        async with smtpx.Client(config) as client:
            result = await client.send(
                b"From: a@example.com\r\nTo: b@example.com\r\nSubject: x\r\n\r\nhi\r\n"
            )
    assert result.accepted == ("b@example.com",)
    assert server.messages[0].rcpt_tos == ("b@example.com",)
    assert any(line.upper().startswith(b"AUTH") for line in server.transcript)
    assert b"EHLO client.example.com" in server.transcript


async def test_an_ipv6_url_connects() -> None:
    try:
        server = ScriptedServer(host="::1")
        await server.start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        options: dict[str, Any] = {"local_hostname": "client.example.com"}
        config = smtpx.ClientConfig.from_url(f"smtp://[::1]:{server.port}", **options)
        async with smtpx.Client(config) as client:
            result = await client.send(b"From: a@example.com\r\nTo: b@example.com\r\n\r\nhi\r\n")
        assert result.accepted == ("b@example.com",)
    finally:
        await server.stop()
