"""CRAM-MD5 (RFC 2195) against a server that checks the digest, over loopback.

aiosmtpd and the test Postfix offer PLAIN and LOGIN only, so this server is
written here: it sends a challenge, checks the HMAC-MD5 of it keyed with the
password, and records every line it gets.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
from collections.abc import AsyncIterator
from typing import Any

import pytest

import smtpx

USER, PASSWORD = "alice", "tanstaaftanstaaf"
CHALLENGE = b"<1896.697170952@postoffice.example.net>"  # RFC 2195's example
PLAIN_AUTH: dict[str, Any] = {
    "tls": smtpx.TLSMode.NONE,
    "local_hostname": "client.test",
    "allow_plaintext_auth": True,
}


class CramServer:
    def __init__(self, challenge: bytes = base64.b64encode(CHALLENGE)) -> None:
        self.challenge = challenge
        self.lines: list[bytes] = []
        self.port = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 cram.test ESMTP\r\n")
        while line := await reader.readline():
            self.lines.append(line)
            if line.startswith(b"EHLO"):
                writer.write(b"250-cram.test\r\n250-AUTH CRAM-MD5 PLAIN\r\n250 8BITMIME\r\n")
            elif line.startswith(b"AUTH CRAM-MD5"):
                writer.write(b"334 " + self.challenge + b"\r\n")
                answer = await reader.readline()
                self.lines.append(answer)
                digest = hmac.new(PASSWORD.encode(), CHALLENGE, "md5").hexdigest()
                good = base64.b64encode(f"{USER} {digest}".encode()) + b"\r\n"
                writer.write(b"235 2.7.0 ok\r\n" if answer == good else b"535 5.7.8 no\r\n")
            elif line.startswith(b"QUIT"):
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"502 5.5.2 not here\r\n")
        writer.close()


@pytest.fixture
async def cram() -> AsyncIterator[CramServer]:
    server = CramServer()
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield server


async def test_cram_md5_is_preferred_without_tls_and_authenticates(cram: CramServer) -> None:
    client = smtpx.Client("127.0.0.1", cram.port, credentials=(USER, PASSWORD), **PLAIN_AUTH)
    async with client:
        assert client.connected
    assert b"AUTH CRAM-MD5\r\n" in cram.lines  # not PLAIN: the password stays off the wire
    assert not any(PASSWORD.encode() in line for line in cram.lines)


async def test_a_wrong_password_is_auth_failed(cram: CramServer) -> None:
    client = smtpx.Client("127.0.0.1", cram.port, credentials=(USER, "wrong"), **PLAIN_AUTH)
    with pytest.raises(smtpx.AuthFailed) as caught:
        await client.connect()
    assert caught.value.code == 535 and not client.connected


async def test_a_challenge_that_is_not_base64_is_a_protocol_error(cram: CramServer) -> None:
    cram.challenge = b"not base64!"
    client = smtpx.Client("127.0.0.1", cram.port, credentials=(USER, PASSWORD), **PLAIN_AUTH)
    with pytest.raises(smtpx.ProtocolError, match="not base64") as caught:
        await client.connect()
    assert caught.value.command is smtpx.Command.AUTH
    assert not client.connected
