"""Log in with an OAuth2 access token (OAUTHBEARER or XOAUTH2) instead of a password.

Run: ``.venv/bin/python examples/oauth2.py``.  The SMTP server is embedded
(``smtpx.testing.ScriptedServer`` on 127.0.0.1): it accepts one access token for
"app@example.com" and refuses any other with an error challenge, as Gmail does.

With a real provider the token provider asks its OAuth library for a current token
(see the "OAuth2 login" page of the documentation for Gmail and Microsoft 365).
"""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from typing import Any

import smtpx
from smtpx.testing import OAuthAccounts, ScriptedServer

CURRENT = "ya29.current-access-token"


class TokenCache:
    """Stands in for an OAuth library: hands out a cached token that has expired on the
    server, then, asked again, a refreshed one."""

    def __init__(self) -> None:
        self.tokens = ["ya29.expired-access-token", CURRENT]
        self.calls = 0

    def __call__(self) -> str:  # smtpx calls it at each login, in a worker thread
        self.calls += 1
        return self.tokens[min(self.calls, len(self.tokens)) - 1]


def build_message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "app@example.com"
    message["To"] = "alice@example.com"
    message["Subject"] = "Signed in with OAuth2"
    message.set_content("No password was sent.\n")
    return message


async def main() -> None:
    accounts = OAuthAccounts({"app@example.com": CURRENT})
    async with ScriptedServer(oauth=accounts) as server:
        options: dict[str, Any] = {
            "host": server.host,
            "port": server.port,
            # Loopback only.  Real servers: keep the default TLS (bearer tokens are
            # credentials) and never opt in to sending them over plaintext.
            "tls": smtpx.TLSMode.NONE,
            "allow_plaintext_auth": True,
            "local_hostname": "example.local",
            "timeout": 10,
        }
        cache = TokenCache()
        credentials = smtpx.OAuth2("app@example.com", cache)
        print(f"credentials: {credentials!r}")
        result = await smtpx.send(build_message(), credentials=credentials, **options)
        mechanisms = ", ".join(mechanism for mechanism, _ in accounts.received)
        print(f"1. sent to {', '.join(result.accepted)} after {cache.calls} token requests")
        print(f"   mechanisms used: {mechanisms}")

        print("2. a token the server never accepts")
        revoked = smtpx.OAuth2("app@example.com", lambda: "ya29.revoked")
        try:
            await smtpx.send(build_message(), credentials=revoked, **options)
        except smtpx.OAuthRejected as error:  # refused twice: a fresh token did not help
            print(f"   OAuthRejected: code={error.code} status={error.status} scope={error.scope}")

        print("3. a token provider that fails")

        def offline() -> str:
            raise ConnectionError("the token endpoint is unreachable")

        try:
            await smtpx.send(
                build_message(), credentials=smtpx.OAuth2("app@example.com", offline), **options
            )
        except smtpx.OAuthTokenError as error:
            print(f"   OAuthTokenError, caused by {type(error.__cause__).__name__}")


if __name__ == "__main__":
    asyncio.run(main())
