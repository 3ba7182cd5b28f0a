"""Present a client certificate to a server that requires one, from a chosen local address.

Run: ``.venv/bin/python examples/client_certificate.py`` (needs trustme, in the ``cli``
extra).  A throwaway CA (trustme) signs the embedded server's certificate and the
client's; the server (``smtpx.testing.ScriptedServer`` on 127.0.0.1, STARTTLS) refuses
any session without a client certificate signed by that CA.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
from pathlib import Path
from typing import Any

import trustme

import smtpx
from smtpx.testing import ScriptedServer

MESSAGE = b"""\
From: billing@example.com
To: alice@example.com
Subject: Invoice

Attached.
"""


def server_requiring_client_certificates(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    context.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(context)
    return context


async def main() -> None:
    ca = trustme.CA()
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        ca.cert_pem.write_to_path(str(directory / "ca.pem"))
        mine = ca.issue_cert("billing@example.com")
        mine.cert_chain_pems[0].write_to_path(str(directory / "client.crt"))
        mine.private_key_pem.write_to_path(str(directory / "client.key"))

        async with ScriptedServer(tls_context=server_requiring_client_certificates(ca)) as server:
            options: dict[str, Any] = {"local_hostname": "example.local", "timeout": 10}
            client = smtpx.Client(
                server.host,
                server.port,
                ca_file=directory / "ca.pem",  # the private CA that signed the server
                cert_file=directory / "client.crt",
                key_file=directory / "client.key",
                source_address=("127.0.0.1", 0),  # send from this local address
                **options,
            )
            result = await client.send(MESSAGE)
            print(f"1. with the certificate: accepted {', '.join(result.accepted)}")
            print(f"   encrypted: {client.encrypted}")
            await client.quit()

            without = smtpx.Client(
                server.host, server.port, ca_file=directory / "ca.pem", **options
            )
            try:
                await without.send(MESSAGE)
            except smtpx.SMTPError as error:
                print(f"2. without it: {type(error).__name__}, nothing sent")
            print(f"the server received {len(server.received_by('alice@example.com'))} message(s)")


if __name__ == "__main__":
    asyncio.run(main())
