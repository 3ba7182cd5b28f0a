"""Every option of every public entry point is checked when it is called.

A misspelt TLS mode must never mean plaintext; a wrong option is a ``UsageError``
(never a silent default, never an ``AttributeError`` from deep inside).
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from rawserver import RawServer

import smtpx
from smtpx.config import ClientOptions

PASSWORD = "s3cret-Pa55"

GOOD_TLS = {
    "starttls": smtpx.TLSMode.STARTTLS,
    "STARTTLS": smtpx.TLSMode.STARTTLS,
    "StartTLS": smtpx.TLSMode.STARTTLS,
    "implicit": smtpx.TLSMode.IMPLICIT,
    "IMPLICIT": smtpx.TLSMode.IMPLICIT,
    "none": smtpx.TLSMode.NONE,
    "None": smtpx.TLSMode.NONE,
    "opportunistic": smtpx.TLSMode.OPPORTUNISTIC,
    "Opportunistic": smtpx.TLSMode.OPPORTUNISTIC,
}
for _mode in smtpx.TLSMode:
    GOOD_TLS[_mode] = _mode  # type: ignore[index]

BAD_OPTIONS: list[tuple[str, object]] = [
    *(("tls", v) for v in ["bogus", "ssl", "tls", "start_tls", "", "plain", 1, True, None]),
    *(("port", v) for v in [0, -1, 65536, 10**6, "587", 587.0, True, False, "smtp"]),
    *(("timeout", v) for v in [0, -1, 0.0, math.nan, math.inf, "30", True, None, [30]]),
    *(("total_timeout", v) for v in [0, -5, math.nan, math.inf, "600", False]),
    *(
        ("credentials", v)
        for v in [
            ("user",),
            ("user", PASSWORD, "x"),
            f"user:{PASSWORD}",
            ("user", 1234),
            (b"user", PASSWORD.encode()),
            {"user": PASSWORD},
            ("user", None),
        ]
    ),
    *(
        (flag, v)
        for flag in ("allow_plaintext_auth", "transcript", "chunking", "add_missing_headers")
        for v in ["yes", 1, 0, None, "False"]
    ),
    *(("local_hostname", v) for v in [1, b"host.example", "a b", "", "h\r\nQUIT"]),
    *(("tls_context", v) for v in ["ctx", True, ssl.create_default_context]),
]


def _kw(*pairs: Any) -> dict[str, Any]:
    """Keyword arguments of any type, as a caller who ignores the hints would pass them."""
    return dict(zip(pairs[::2], pairs[1::2], strict=True))


def _bad_id(case: tuple[str, object]) -> str:
    return f"{case[0]}={case[1]!r}"[:40]


@pytest.mark.parametrize("tls", list(GOOD_TLS), ids=repr)
def test_documented_tls_spellings_are_accepted_in_any_case(tls: Any) -> None:
    config = smtpx.ClientConfig(host="mail.example.com", tls=tls)
    assert config.tls is GOOD_TLS[tls]
    assert config.port == GOOD_TLS[tls].default_port
    assert smtpx.Client("mail.example.com", tls=tls).tls is GOOD_TLS[tls]


def test_tls_none_without_a_port_gets_port_25() -> None:
    assert smtpx.Client("mail.example.com", tls="none").port == 25
    assert smtpx.Client("mail.example.com", tls="implicit").port == 465
    assert smtpx.Client("mail.example.com").port == 587


# Every public constructor and function that takes client options.
ENTRY_POINTS: dict[str, Callable[..., object]] = {
    "ClientConfig": lambda **kw: smtpx.ClientConfig(host="mail.example.com", **kw),
    "Client": lambda **kw: smtpx.Client("mail.example.com", **kw),
    "SyncClient": lambda **kw: smtpx.SyncClient("mail.example.com", **kw),
    "Pool": lambda **kw: smtpx.Pool("mail.example.com", **kw),
    "send_sync": lambda **kw: smtpx.send_sync(b"x", host="mail.example.com", **kw),
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("case", BAD_OPTIONS, ids=_bad_id)
def test_a_wrong_option_is_a_usage_error_at_every_entry_point(
    entry: str, case: tuple[str, object]
) -> None:
    name, value = case
    with pytest.raises(smtpx.UsageError, match=name) as info:
        ENTRY_POINTS[entry](**_kw(name, value))
    assert isinstance(info.value, ValueError)
    assert PASSWORD not in str(info.value) and PASSWORD not in repr(info.value.args)


@pytest.mark.parametrize("case", BAD_OPTIONS, ids=_bad_id)
async def test_send_checks_its_options_before_connecting(case: tuple[str, object]) -> None:
    name, value = case
    async with RawServer() as server:
        with pytest.raises(smtpx.UsageError, match=name):
            await smtpx.send(b"x", host=server.host, **_kw("port", server.port, name, value))
        if name != "port":
            with pytest.raises(smtpx.UsageError, match=name):
                smtpx.Client(server.host, server.port, **_kw(name, value))
    assert server.received == b""  # not even a connection was made


def test_tls_error_lists_the_allowed_values() -> None:
    with pytest.raises(smtpx.UsageError) as info:
        smtpx.Client("mail.example.com", tls="startls")
    for mode in smtpx.TLSMode:
        assert repr(mode.value) in str(info.value)


async def test_a_string_tls_mode_really_requires_starttls() -> None:
    # the hole this guards: tls="starttls" once sent everything in plaintext
    async with RawServer() as server:  # offers no STARTTLS
        client = smtpx.Client(server.host, server.port, tls="starttls")
        with pytest.raises(smtpx.TLSNotOffered):
            await client.send(b"From: a@example.com\r\nTo: b@example.com\r\n\r\nhi\r\n")
    assert b"MAIL" not in server.received


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("hostname", "host"),
        ("username", "credentials"),
        ("password", "credentials"),
        ("start_tls", "tls"),
        ("use_tls", "tls"),
        ("validate_certs", "tls_context"),
        ("cert_bundle", "ca_file"),
        ("local_addr", "source_address"),
        ("ssl_certfile", "cert_file"),
        ("bogus_option", "smtpx's client options"),
    ],
)
@pytest.mark.parametrize("entry", ["Client", "SyncClient", "Pool", "send_sync"])
def test_unknown_options_name_the_smtpx_option(entry: str, name: str, meant: str) -> None:
    with pytest.raises(smtpx.UsageError, match=meant) as info:
        ENTRY_POINTS[entry](**_kw(name, PASSWORD))
    assert PASSWORD not in str(info.value)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("size", 0),
        ("size", -1),
        ("size", "8"),
        ("size", True),
        ("size", 2.5),
        ("max_messages", 0),
        ("max_messages", None),
        ("idle_timeout", -1),
        ("idle_timeout", math.nan),
        ("idle_timeout", "60"),
        ("check_after", -0.5),
        ("check_after", math.inf),
        ("rate_limit", "fast"),
        ("rate_limit", 0),
        ("rate_limit", -3),
        ("rate_limit", math.nan),
        ("rate_limit", True),
    ],
)
def test_pool_options_are_checked(option: str, value: object) -> None:
    with pytest.raises(smtpx.UsageError, match=option.split("_")[0]):
        smtpx.Pool("mail.example.com", **_kw(option, value))


@pytest.mark.parametrize(
    ("rate", "burst"), [(0, 1), (-1, 1), (math.nan, 1), (math.inf, 1), (1, 0), (1, 1.5), ("1", 1)]
)
def test_rate_limiter_arguments_are_checked(rate: Any, burst: Any) -> None:
    with pytest.raises(smtpx.UsageError):
        smtpx.RateLimiter(rate, burst)


def test_credentials_pair_becomes_credentials_with_a_hidden_password() -> None:
    config = smtpx.ClientConfig(host="mail.example.com", credentials=["app", PASSWORD])
    assert config.credentials == smtpx.Credentials("app", PASSWORD)
    assert PASSWORD not in repr(config)
    assert PASSWORD not in repr(smtpx.Client(config))


def test_a_config_or_options_not_both() -> None:
    config = smtpx.ClientConfig(host="mail.example.com", tls="none")
    assert smtpx.Client(config).config is config
    assert smtpx.Client(config=config).port == 25
    assert smtpx.SyncClient(config).port == 25
    assert smtpx.Pool(config=config).host == "mail.example.com"
    with pytest.raises(smtpx.UsageError, match="not both"):
        smtpx.Client(config, timeout=3)
    with pytest.raises(smtpx.UsageError, match="not both"):
        smtpx.Client("other.example.com", config=config)
    with pytest.raises(smtpx.UsageError, match="ClientConfig"):
        smtpx.Client(config="mail.example.com")  # type: ignore[arg-type]
    with pytest.raises(smtpx.UsageError, match="host"):
        smtpx.Client()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.port = 26  # type: ignore[misc]


def test_client_options_name_every_config_field_but_host_and_port() -> None:
    fields = {field.name for field in attrs.fields(smtpx.ClientConfig)}
    assert set(ClientOptions.__annotations__) == fields - {"host", "port"}
