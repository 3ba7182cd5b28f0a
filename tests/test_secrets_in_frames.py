"""No frame of smtpx ever holds a credential as a plain local.

Error trackers (Sentry, rich) format tracebacks with every frame's locals.  Two
checks, for every AUTH mechanism, succeeding and failing: a trace function looks
at the locals of every smtpx and aiosmtplib frame at every line while the client
logs in and sends; and the tracebacks of the errors that follow are formatted with
``capture_locals=True``.  Neither may show the password or any encoding of it.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import aiosmtplib
import pytest

import smtpx

USER, PASSWORD = "mailer", "Pa55-w0rd-SECRET-in-frames"
NONCE = b"<4711.1234567890@auth.test>"
DIGEST = hmac.new(PASSWORD.encode(), NONCE, "md5").hexdigest()
MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5")


def _forms() -> list[str]:
    """Every way the password could show in a repr: itself, and each AUTH encoding."""
    b64 = base64.b64encode
    encoded = [
        b64(f"\0{USER}\0{PASSWORD}".encode()),
        b64(PASSWORD.encode()),
        b64(f"{USER} {DIGEST}".encode()),
    ]
    return [PASSWORD, repr(PASSWORD.encode()), DIGEST, *(e.decode() for e in encoded)]


FORMS = _forms()


class AuthServer:
    """Offers one AUTH mechanism, checks the answer, then takes MAIL (or refuses it)."""

    def __init__(self, mechanism: str, *, accept: bool, refuse_mail: bool = False) -> None:
        self.mechanism = mechanism
        self.accept = accept
        self.refuse_mail = refuse_mail
        self.port = 0
        self.authenticated = False

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 auth.test ESMTP\r\n")
        while line := await reader.readline():
            verb = line.split(b" ")[0].strip().upper()
            if verb == b"EHLO":
                writer.write(f"250-auth.test\r\n250 AUTH {self.mechanism}\r\n".encode())
            elif verb == b"AUTH":
                writer.write(await self._auth(line, reader, writer))
            elif verb == b"MAIL":
                writer.write(b"550 5.7.1 not you\r\n" if self.refuse_mail else b"250 ok\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"250 ok\r\n")
        writer.close()

    async def _auth(
        self, line: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bytes:
        b64 = base64.b64encode
        if self.mechanism == "PLAIN":
            good = line.split(b" ")[2].strip() == b64(f"\0{USER}\0{PASSWORD}".encode())
        elif self.mechanism == "LOGIN":
            writer.write(b"334 VXNlcm5hbWU6\r\n")
            user = (await reader.readline()).strip()
            writer.write(b"334 UGFzc3dvcmQ6\r\n")
            password = (await reader.readline()).strip()
            good = (user, password) == (b64(USER.encode()), b64(PASSWORD.encode()))
        else:
            writer.write(b"334 " + b64(NONCE) + b"\r\n")
            good = (await reader.readline()).strip() == b64(f"{USER} {DIGEST}".encode())
        self.authenticated = good and self.accept
        return b"235 2.7.0 ok\r\n" if self.authenticated else b"535 5.7.8 bad credentials\r\n"


@pytest.fixture
def start() -> Iterator[Any]:
    servers: list[asyncio.Server] = []

    async def start(server: AuthServer) -> AuthServer:
        listener = await asyncio.start_server(server.serve, "127.0.0.1", 0)
        server.port = listener.sockets[0].getsockname()[1]
        servers.append(listener)
        return server

    yield start
    for listener in servers:
        listener.close()


WATCHED = (str(Path(smtpx.__file__).parent), str(Path(aiosmtplib.__file__).parent))
SERVER_SIDE = str(Path(smtpx.__file__).parent / "testing")  # ScriptedServer reads tokens


class LocalsWatch:
    """A trace function noting every smtpx/aiosmtplib frame local whose repr shows a form."""

    def __init__(self, forms: list[str] = FORMS) -> None:
        self.forms = forms
        self.leaks: list[str] = []
        self.frames = 0

    def _look(self, frame: FrameType) -> None:
        self.frames += 1
        for name, value in frame.f_locals.items():
            try:
                shown = repr(value)
            except Exception:  # a half-built object: nothing it could show
                continue
            for form in self.forms:
                if form in shown:
                    where = f"{frame.f_code.co_filename}:{frame.f_lineno}"
                    self.leaks.append(f"{where} {frame.f_code.co_name}: {name}")

    def trace(self, frame: FrameType, event: str, arg: object) -> Any:
        filename = frame.f_code.co_filename
        if not filename.startswith(WATCHED) or filename.startswith(SERVER_SIDE):
            return None
        self._look(frame)
        return self._local

    def _local(self, frame: FrameType, event: str, arg: object) -> Any:
        self._look(frame)
        return self._local

    def __enter__(self) -> LocalsWatch:
        sys.settrace(self.trace)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.settrace(None)


def assert_hidden(error: BaseException, forms: list[str] = FORMS) -> None:
    """Format ``error`` with its locals: no smtpx or aiosmtplib frame may show a form (the
    caller's own frames hold what the caller passed)."""
    stack = traceback.TracebackException.from_exception(error, capture_locals=True).stack
    ours = [f for f in stack if f.filename.startswith(WATCHED) or "attrs generated" in f.filename]
    assert ours and all(f.locals for f in ours)  # the locals really were captured
    for frame in ours:
        shown = "".join(f"{k} = {v}\n" for k, v in (frame.locals or {}).items())
        for form in forms:
            assert form not in shown, f"{frame.filename}:{frame.lineno} {frame.name}"


def client(server: AuthServer, password: str = PASSWORD, **options: Any) -> smtpx.Client:
    return smtpx.Client(
        "127.0.0.1",
        server.port,
        tls="none",
        credentials=smtpx.Credentials(USER, password),  # a tuple is the caller's own local
        allow_plaintext_auth=True,
        local_hostname="client.test",
        timeout=5,
        **options,
    )


MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\n\r\nhi\r\n"


@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_a_successful_login_leaves_no_credential_in_any_frame(
    start: Any, mechanism: str
) -> None:
    server = await start(AuthServer(mechanism, accept=True, refuse_mail=True))
    with LocalsWatch() as watching:
        c = client(server, transcript=True)
        with pytest.raises(smtpx.MailboxUnavailable) as info:
            await c.send(MESSAGE)  # logs in, then MAIL is refused
        await c.quit()
    assert server.authenticated
    assert watching.frames > 100 and watching.leaks == []
    assert_hidden(info.value)


@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_a_failed_login_leaves_no_credential_in_any_frame(
    start: Any, mechanism: str
) -> None:
    server = await start(AuthServer(mechanism, accept=False))
    with LocalsWatch() as watching, pytest.raises(smtpx.AuthFailed) as info:
        await client(server).send(MESSAGE)
    assert not server.authenticated
    assert watching.frames > 100 and watching.leaks == []
    assert_hidden(info.value)


@pytest.mark.parametrize(
    "wrong", [{"timeout": 0}, {"tls": "bogus"}, {"port": 0}, {"hostname": "x"}], ids=repr
)
def test_a_wrong_option_beside_credentials_shows_no_password(wrong: dict[str, Any]) -> None:
    for make in (smtpx.Client, smtpx.SyncClient, smtpx.Pool):
        options: dict[str, Any] = {"credentials": (USER, PASSWORD), "port": 587, **wrong}
        with pytest.raises(smtpx.UsageError) as info:
            make("mail.example.com", **options)
        assert_hidden(info.value)


@pytest.mark.parametrize("shape", [(USER,), (USER, PASSWORD, "x"), (USER, PASSWORD.encode())])
def test_malformed_credentials_are_not_echoed(shape: tuple[Any, ...]) -> None:
    with pytest.raises(smtpx.UsageError) as info:
        smtpx.Client("mail.example.com", credentials=shape)
    assert_hidden(info.value)
    assert PASSWORD not in str(info.value)


def test_secret_bytes_are_redacted_but_still_bytes() -> None:
    from smtpx._secret import Secret

    secret = Secret(PASSWORD.encode())
    assert PASSWORD not in repr(secret) and PASSWORD not in str(secret)
    assert PASSWORD not in repr((b"AUTH", secret)) and PASSWORD not in f"{secret}"
    assert bytes(secret) == PASSWORD.encode() and isinstance(secret, bytes)


# -- OAuth2 access tokens --------------------------------------------------------------

TOKEN, STALE = "ya29.Frames-SECRET-token", "ya29.Frames-SECRET-stale"


def token_forms(port: int) -> list[str]:
    forms = []
    for token in (TOKEN, STALE):
        for sasl in (
            f"user={USER}\x01auth=Bearer {token}\x01\x01",
            f"n,a={USER},\x01host=127.0.0.1\x01port={port}\x01auth=Bearer {token}\x01\x01",
        ):
            forms += [base64.b64encode(sasl.encode()).decode(), repr(sasl.encode())[2:-1]]
        forms += [token, repr(token.encode())]
    return forms


def _stale_then_fresh() -> Any:
    tokens = iter([STALE, TOKEN])
    return lambda: next(tokens)


async def _async_stale() -> str:
    return STALE


@pytest.mark.parametrize("mechanism", ["OAUTHBEARER", "XOAUTH2"])
@pytest.mark.parametrize("provider", ["sync, refused once", "async, always refused"])
async def test_an_oauth2_login_leaves_no_token_in_any_frame(mechanism: str, provider: str) -> None:
    from smtpx.testing import OAuthAccounts, ScriptedServer

    accounts = OAuthAccounts({USER: TOKEN}, mechanisms=(mechanism,))
    async with ScriptedServer(oauth=accounts) as server:
        forms = token_forms(server.port)
        make = _stale_then_fresh() if provider.startswith("sync") else _async_stale
        with LocalsWatch(forms) as watching:
            c = smtpx.Client(
                server.host,
                server.port,
                tls="none",
                credentials=smtpx.OAuth2(USER, make),
                allow_plaintext_auth=True,
                local_hostname="client.test",
                timeout=5,
                transcript=True,
            )
            server.on("MAIL", reply="550 5.7.1 not you")  # logged in: an error with frames
            with pytest.raises(smtpx.SMTPError) as info:
                await c.send(MESSAGE)
        await c.quit()
    assert len(accounts.received) == 2
    assert watching.frames > 100 and watching.leaks == []
    assert_hidden(info.value, forms)
