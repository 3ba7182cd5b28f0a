"""``ClientConfig``: every option of a client connection, checked once, when it is made.

Type hints are not validation: a misspelt TLS mode must never mean plaintext,
and a timeout of zero must never mean "no timeout".  Every public entry point
(``Client``, ``SyncClient``, ``Pool``, ``send``, ``send_sync``, the Django backend,
the CLI) builds one ``ClientConfig``, so a wrong option is a ``UsageError``
before anything connects.
"""

from __future__ import annotations

import ipaddress
import math
import os
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict

import attrs

from smtpx import _connect_options as connect_options
from smtpx._address import check_hostname
from smtpx._envelope import Envelope
from smtpx._hosts import STRATEGIES, Endpoint, parse_endpoint
from smtpx._oauth import OAuth2
from smtpx._proxy_url import ProxyURL, proxy_url
from smtpx._secret import Credentials
from smtpx._tls import TLSMode
from smtpx._url import config_from_env, config_from_url
from smtpx.errors import UsageError

__all__ = ["ClientConfig", "ClientOptions"]


def tls_mode(value: object) -> TLSMode:
    """A ``TLSMode``, or its documented spelling in any case (``"starttls"``, ``"IMPLICIT"``)."""
    if isinstance(value, TLSMode):
        return value
    if isinstance(value, str):
        for mode in TLSMode:
            if value.strip().lower() == mode.value:
                return mode
    allowed = ", ".join(repr(mode.value) for mode in TLSMode)
    raise UsageError(f"tls must be a smtpx.TLSMode or one of {allowed}, not {value!r}")


def credentials_pair(value: object) -> Credentials | OAuth2 | None:
    """``Credentials`` from a ``(username, password)`` pair; the password is never echoed.
    ``Credentials`` and ``OAuth2`` are taken as they are."""
    if value is None or isinstance(value, Credentials | OAuth2):
        return value
    if (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(part, str) for part in value)
    ):
        return Credentials(*value)
    sized = isinstance(value, tuple | list)
    shape = f"a {type(value).__name__}" + (f" of {len(value)}" if sized else "")  # type: ignore[arg-type]
    del value  # it may hold a password: keep it out of this frame's locals in a traceback
    raise UsageError(
        "credentials must be a (username, password) pair of str, smtpx.Credentials or "
        f"smtpx.OAuth2, not {shape}"
    )


def _port(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not int or not 1 <= value <= 65535:
        raise UsageError(f"port must be an int from 1 to 65535, not {value!r}")


def _seconds(name: str, *, optional: bool) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and optional:
            return
        valid = (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value > 0
        )
        if not valid:
            also = " or None" if optional else ""
            raise UsageError(f"{name} must be a number of seconds above 0{also}, not {value!r}")

    return check


def _flag(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise UsageError(f"{attribute.name} must be True or False, not {value!r}")


def _host(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value or not value.isprintable() or " " in value:
        raise UsageError(f"host must be a host name or address (one word), not {value!r}")
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        try:  # what the resolver will do with it (labels of 1-63 octets, IDNA)
            value.encode("idna")
        except UnicodeError as exc:
            raise UsageError(f"host {value!r} is not a valid host name: {exc}") from None


def _local_hostname(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise UsageError(f"local_hostname must be a str or None, not {type(value).__name__}")
    check_hostname(value)


def _tls_context(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, ssl.SSLContext):
        raise UsageError(f"tls_context must be an ssl.SSLContext, not {type(value).__name__}")


def _endpoints(value: object) -> tuple[Endpoint, ...]:
    if isinstance(value, str) or not isinstance(value, tuple | list):
        raise UsageError(
            "hosts must be a list such as ['smtp1.example.com', 'smtp2.example.com:2525'], "
            f"not {value!r}"
        )
    return tuple(parse_endpoint(entry) for entry in value)


def _first_host(config: ClientConfig) -> str:
    if not config.hosts:
        raise UsageError("give the server's host name (host=, or hosts= for several)")
    return config.hosts[0][0]


def _strategy(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in STRATEGIES:
        allowed = " or ".join(repr(name) for name in STRATEGIES)
        raise UsageError(f"strategy must be {allowed}, not {value!r}")


def _sink(instance: ClientConfig, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not callable(value):
        raise UsageError(f"sink must be a callable taking an Envelope, not {value!r}")
    if value is not None and not instance.dry_run:
        raise UsageError("sink= is where a dry run puts messages: give dry_run=True with it")


def _default_port(config: ClientConfig) -> int:
    return config.tls.default_port


@attrs.frozen(kw_only=True, repr=False)
class ClientConfig:
    """How to reach and talk to one SMTP server.  Frozen; checked when made.

    ``port`` defaults to the mode's port (465 for ``IMPLICIT``, 587 for
    ``STARTTLS``, else 25).  ``tls`` takes a ``TLSMode`` or its value in any case.
    ``credentials`` take a ``(username, password)`` pair.  See ``Client`` for what
    each option does.
    """

    # Several servers: hosts= (each "host" or "host:port"), tried per strategy; host is
    # then the first of them.  Declared first: host's default is read from it.
    hosts: tuple[Endpoint, ...] = attrs.field(default=(), converter=_endpoints)
    host: str = attrs.field(default=attrs.Factory(_first_host, takes_self=True), validator=_host)
    tls: TLSMode = attrs.field(default=TLSMode.STARTTLS, converter=tls_mode)
    port: int = attrs.field(default=attrs.Factory(_default_port, takes_self=True), validator=_port)
    credentials: Credentials | OAuth2 | None = attrs.field(
        default=None, converter=credentials_pair
    )
    timeout: float = attrs.field(default=30.0, validator=_seconds("timeout", optional=False))
    total_timeout: float | None = attrs.field(
        default=600.0, validator=_seconds("total_timeout", optional=True)
    )
    local_hostname: str | None = attrs.field(default=None, validator=_local_hostname)
    tls_context: ssl.SSLContext | None = attrs.field(default=None, validator=_tls_context)
    allow_plaintext_auth: bool = attrs.field(default=False, validator=_flag)
    transcript: bool = attrs.field(default=False, validator=_flag)
    chunking: bool = attrs.field(default=True, validator=_flag)
    add_missing_headers: bool = attrs.field(default=True, validator=_flag)
    # Where the connection comes from, and the client's own certificate.
    source_address: tuple[str, int] | None = attrs.field(
        default=None, converter=connect_options.source_address
    )
    sock: socket.socket | None = attrs.field(default=None, validator=connect_options.sock)
    proxy: ProxyURL | None = attrs.field(default=None, converter=proxy_url)
    ca_file: str | None = attrs.field(default=None, converter=connect_options.path)
    cert_file: str | None = attrs.field(default=None, converter=connect_options.path)
    key_file: str | None = attrs.field(default=None, converter=connect_options.path)
    key_password: str | None = attrs.field(
        default=None, converter=connect_options.key_password, metadata={"secret": True}
    )
    verify: bool = attrs.field(default=True, validator=_flag)
    allow_insecure_auth: bool = attrs.field(default=False, validator=_flag)
    strategy: str = attrs.field(default="failover", validator=_strategy)
    dry_run: bool = attrs.field(default=False, validator=_flag)
    sink: Callable[[Envelope], object] | None = attrs.field(default=None, validator=_sink)

    def __attrs_post_init__(self) -> None:
        connect_options.check_origin(self)
        _check_hosts(self)

    @property
    def endpoints(self) -> tuple[tuple[str, int], ...]:
        """Every server to try, as ``(host, port)``: ``hosts``, or ``host`` and ``port``."""
        if not self.hosts:
            return ((self.host, self.port),)
        return tuple((host, self.port if port is None else port) for host, port in self.hosts)

    def __repr__(self) -> str:
        # Also while __init__ is still checking (a traceback's locals show it then).
        fields = (
            f"{a.name}={_shown(a, getattr(self, a.name, '?'))!r}" for a in attrs.fields(type(self))
        )
        return f"ClientConfig({', '.join(fields)})"

    @classmethod
    def from_options(
        cls, host: object, port: object = None, options: Mapping[str, object] | None = None
    ) -> ClientConfig:
        """A config from ``Client``-style arguments; an unknown name is a ``UsageError``
        that names the smtpx option meant (``hostname=`` → ``host``)."""
        options = dict(
            _credentials_first(options) if options and "credentials" in options else options or {}
        )
        unknown = sorted(set(options) - _OPTION_NAMES)
        if unknown:
            raise UsageError(_unknown_options(unknown))
        if port is not None:
            options["port"] = port
        if "hosts" in options:
            if host is not None:
                raise UsageError("give host= or hosts=, not both (hosts= lists every server)")
            return cls(**options)  # type: ignore[arg-type]  # validated here
        return cls(host=host, **options)  # type: ignore[arg-type]  # validated here

    # ``ClientConfig.from_url("smtps://user:password@host")`` and ``from_env()`` (SMTPX_URL,
    # SMTPX_PASSWORD): the functions themselves, so that no frame of ours but theirs
    # holds the URL (they scrub what they raise).  The grammar: smtpx._url.
    from_url = classmethod(config_from_url)
    from_env = classmethod(config_from_env)


def _shown(field: attrs.Attribute[Any], value: object) -> object:
    return "***" if field.metadata.get("secret") and value is not None else value


def _check_hosts(config: ClientConfig) -> None:
    if not config.hosts:
        return
    if config.host != config.hosts[0][0]:
        raise UsageError("give host= or hosts=, not both (hosts= lists every server)")
    for host, port in config.hosts:
        _host(config, _HOST_FIELD, host)
        if port is not None:
            _port(config, _HOST_FIELD, port)
    if config.sock is not None:
        raise UsageError("sock= is one connection already made: it cannot fail over to hosts=")


class ClientOptions(TypedDict, total=False):
    """The keyword options of ``Client``, ``SyncClient``, ``Pool``, ``send`` and ``send_sync``:
    the fields of ``ClientConfig`` but ``host`` and ``port`` (a test keeps them in step)."""

    tls: TLSMode | str
    credentials: tuple[str, str] | Credentials | OAuth2 | None
    timeout: float
    total_timeout: float | None
    local_hostname: str | None
    tls_context: ssl.SSLContext | None
    allow_plaintext_auth: bool
    transcript: bool
    chunking: bool
    add_missing_headers: bool
    source_address: tuple[str, int] | None
    sock: socket.socket | None
    proxy: str | ProxyURL | None
    ca_file: str | os.PathLike[str] | None
    cert_file: str | os.PathLike[str] | None
    key_file: str | os.PathLike[str] | None
    key_password: str | None
    verify: bool
    allow_insecure_auth: bool
    hosts: Sequence[str | tuple[str, int]]
    strategy: str
    dry_run: bool
    sink: Callable[[Envelope], object] | None


_OPTION_NAMES = frozenset(ClientOptions.__annotations__)
_HOST_FIELD = attrs.fields(ClientConfig).host

# Names other SMTP libraries use (aiosmtplib, smtplib, Django), and smtpx's for them.
_SPELLED_ELSEWHERE = {
    "hostname": "host",
    "username": "credentials=(username, password)",
    "password": "credentials=(username, password)",
    "user": "credentials=(username, password)",
    "start_tls": "tls=TLSMode.STARTTLS",
    "use_tls": "tls=TLSMode.IMPLICIT (TLS from the first byte) or tls=TLSMode.STARTTLS",
    "use_ssl": "tls=TLSMode.IMPLICIT",
    "ssl": "tls=TLSMode.IMPLICIT",
    "validate_certs": "tls_context=ssl.create_default_context() (verification is on by default)",
    "cert_bundle": "ca_file",
    "ssl_context": "tls_context",
    "context": "tls_context",
    "timeout_total": "total_timeout",
    "local_addr": "source_address",
    "certfile": "cert_file",
    "keyfile": "key_file",
    "ssl_certfile": "cert_file",
    "ssl_keyfile": "key_file",
    "verify_ssl": "verify",
    "proxy_url": "proxy",
}


def _unknown_options(names: list[str]) -> str:
    parts = []
    for name in names:
        meant = _SPELLED_ELSEWHERE.get(name)
        parts.append(f"{name!r} (use {meant})" if meant else repr(name))
    allowed = ", ".join(sorted(_OPTION_NAMES))
    return f"unknown option {', '.join(parts)}; smtpx's client options are host, port, {allowed}"


def resolve_config(
    host: object, port: object, config: ClientConfig | None, options: Mapping[str, object]
) -> ClientConfig:
    """The config of ``Client(host, port, **options)``, ``Client(config)`` or
    ``Client(config=config)``; giving both a config and options is a ``UsageError``."""
    if isinstance(host, ClientConfig):
        config, host = host, None
    if "credentials" in options:
        # First of all: a (user, password) tuple left in the options would show in the
        # locals of every frame of a traceback raised below.
        options = _credentials_first(options)  # our own **options dict: changed in place
    if config is None:
        if host is None and "hosts" not in options:
            raise UsageError("give the server's host name (or a smtpx.ClientConfig)")
        return ClientConfig.from_options(host, port, options)
    if not isinstance(config, ClientConfig):
        raise UsageError(f"config must be a smtpx.ClientConfig, not {type(config).__name__}")
    if host is not None or port is not None or options:
        raise UsageError(
            "give either a ClientConfig or host and options, not both "
            "(attrs.evolve(config, ...) makes a changed copy)"
        )
    return config


def _credentials_first(options: Mapping[str, object]) -> dict[str, object]:
    """``options``, changed in place, with its credentials made ``Credentials`` (their
    repr hides the password); the pair is out of the dict before it is checked."""
    options = options if isinstance(options, dict) else dict(options)
    options["credentials"] = credentials_pair(options.pop("credentials"))
    return options


class Configured:
    """The server a ``ClientConfig`` names, read from ``self.config``: for the classes
    that take one (``Client``, ``SyncClient``, ``Pool``)."""

    config: ClientConfig

    @property
    def host(self) -> str:
        return self.config.host

    @property
    def port(self) -> int:
        return self.config.port

    @property
    def tls(self) -> TLSMode:
        return self.config.tls
