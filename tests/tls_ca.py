"""A throwaway certificate authority for TLS tests (a thin wrapper around trustme).

``LocalCA().server_context()`` gives a server context with a certificate for localhost
and 127.0.0.1; ``client_context()`` one that trusts only this CA and checks hostnames;
``wrong_host_server_context()`` and ``expired_server_context()`` certificates that such a
client must reject.
"""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import trustme

DEFAULT_IDENTITIES = ("localhost", "127.0.0.1")
WRONG_HOST = "wrong-host.invalid"


class LocalCA:
    """A fresh CA; each call issues a new leaf certificate signed by it."""

    def __init__(self) -> None:
        self._ca = trustme.CA()

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate, PEM-encoded."""
        return bytes(self._ca.cert_pem.bytes())

    def write_ca_pem(self, directory: Path) -> Path:
        """Write the CA certificate to ``directory/ca.pem`` and return the path."""
        path = directory / "ca.pem"
        path.write_bytes(self.ca_pem)
        return path

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA only and checks hostnames."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self._ca.configure_trust(context)
        return context

    def server_context(
        self,
        *identities: str,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> ssl.SSLContext:
        """A server context with a certificate for *identities* (default: localhost and
        127.0.0.1) valid from *not_before* to *not_after* (default: now to far ahead)."""
        cert = self._ca.issue_cert(
            *(identities or DEFAULT_IDENTITIES), not_before=not_before, not_after=not_after
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        return context

    def wrong_host_server_context(self) -> ssl.SSLContext:
        """A valid certificate, but for :data:`WRONG_HOST`, not localhost/127.0.0.1."""
        return self.server_context(WRONG_HOST)

    def expired_server_context(self) -> ssl.SSLContext:
        """A certificate for localhost/127.0.0.1 that expired yesterday."""
        now = datetime.datetime.now(datetime.UTC)
        return self.server_context(
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        )

    def client_cert_server_context(self) -> ssl.SSLContext:
        """A server context (localhost/127.0.0.1) that requires a client certificate
        signed by this CA: without one, no session."""
        context = self.server_context()
        context.verify_mode = ssl.CERT_REQUIRED
        self._ca.configure_trust(context)
        return context

    def write_client_cert(self, directory: Path) -> tuple[Path, Path]:
        """A client certificate signed by this CA, written as ``client.crt`` (the chain)
        and ``client.key``; returns both paths."""
        issued = self._ca.issue_cert("client@example.com")
        cert, key = directory / "client.crt", directory / "client.key"
        cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
        key.write_bytes(issued.private_key_pem.bytes())
        return cert, key
