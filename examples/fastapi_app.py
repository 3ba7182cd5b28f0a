"""FastAPI sending through one shared ``smtpx.Pool``, with smtpx errors mapped to HTTP.

Run the demo: ``.venv/bin/python examples/fastapi_app.py`` (needs ``pip install fastapi
httpx``): it embeds an SMTP server and calls the endpoint in-process with httpx. Serve it for real
with ``uvicorn examples.fastapi_app:app`` and ``SMTP_HOST``, ``SMTP_PORT``, ``SMTP_USER``,
``SMTP_PASSWORD`` in the environment.

Status codes:

======  ===========================================================================
200     sent; ``rejected`` lists any recipient refused (with the server's reason)
503     transient (4xx, 421, lost connection): ``Retry-After`` = smtpx's suggested delay
422     the recipients were refused for good (550 ...), or an invalid address
413     the message is too large for the server
502     authentication or TLS with the mail server failed, or another permanent refusal
504     the connection was lost after the message was sent: it may have been delivered
======  ===========================================================================
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

import smtpx


class Mail(BaseModel):
    to: list[str]
    subject: str
    body: str


class Sent(BaseModel):
    accepted: list[str]
    rejected: dict[str, str]  # recipient -> why


def retry_after(error: smtpx.SMTPError) -> int:
    """Seconds until a retry may succeed: smtpx's suggested delay, which honours a hint in
    the server's reply ("try again in 5 minutes"). When every recipient was deferred, the
    hints are in the per-recipient refusals: take the longest."""
    hinted = [e for e in (error, *error.rejected.values()) if smtpx.server_hint(e) is not None]
    source = max(hinted, key=lambda e: smtpx.server_hint(e) or 0.0) if hinted else error
    return math.ceil(smtpx.suggested_delay(source, attempt=1))


def http_status(error: smtpx.SMTPError) -> tuple[int, dict[str, str]]:
    """The HTTP status (and headers) that tell the API's caller what happened."""
    if smtpx.is_retryable(error):  # every TransientError: try again later
        return 503, {"Retry-After": str(retry_after(error))}
    if isinstance(error, smtpx.DeliveryUnknown):
        return 504, {}
    if isinstance(error, smtpx.AuthError | smtpx.TLSError):
        return 502, {}  # our credentials or TLS setup: not the caller's fault
    if isinstance(error, smtpx.MessageTooLarge):
        return 413, {}
    if isinstance(error, smtpx.RecipientsRefused | smtpx.InvalidEnvelope):
        return 422, {}
    if error.recipient is not None:
        return 422, {}
    return 502, {}


def create_app(host: str, port: int | None = None, **pool_options: Any) -> FastAPI:
    """The app, sending through a pool to ``host``; ``pool_options`` go to ``smtpx.Pool``."""
    sender = pool_options.pop("sender", "app@example.com")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One pool for the whole process, closed (QUIT on every connection) at shutdown.
        async with smtpx.Pool(host, port, **pool_options) as pool:
            app.state.pool = pool
            yield

    app = FastAPI(title="smtpx example", lifespan=lifespan)

    @app.exception_handler(smtpx.SMTPError)
    async def smtp_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, smtpx.SMTPError)
        status, headers = http_status(exc)
        body = {
            "error": type(exc).__name__,
            "code": exc.code,
            "enhanced": str(exc.enhanced) if exc.enhanced is not None else None,
            "retryable": exc.retryable,
            "detail": str(exc),
        }
        return JSONResponse(body, status_code=status, headers=headers)

    @app.post("/send")
    async def send(mail: Mail, request: Request) -> Sent:
        message = EmailMessage()
        message["From"] = sender
        message["To"] = ", ".join(mail.to)
        message["Subject"] = mail.subject
        message.set_content(mail.body)
        pool: smtpx.Pool = request.app.state.pool
        result = await pool.send(message)
        rejected = {rcpt: str(error) for rcpt, error in result.rejected.items()}
        return Sent(accepted=list(result.accepted), rejected=rejected)

    return app


def _from_environment() -> FastAPI:
    user, password = os.environ.get("SMTP_USER"), os.environ.get("SMTP_PASSWORD", "")
    return create_app(
        os.environ.get("SMTP_HOST", "localhost"),
        int(os.environ.get("SMTP_PORT", "587")),
        credentials=(user, password) if user else None,
    )


app = _from_environment()  # for: uvicorn examples.fastapi_app:app


async def main() -> None:
    import httpx

    from smtpx.testing import ScriptedServer

    async with ScriptedServer() as server:
        demo = create_app(server.host, server.port, tls=smtpx.TLSMode.NONE)
        transport = httpx.ASGITransport(app=demo)
        async with (
            demo.router.lifespan_context(demo),  # what uvicorn does at start and stop
            httpx.AsyncClient(transport=transport, base_url="http://demo") as client,
        ):
            mail = {"to": ["alice@example.com"], "subject": "Hi", "body": "Hello."}
            response = await client.post("/send", json=mail)
            print(response.status_code, response.json())

            server.on("RCPT", reply="450 4.2.0 Greylisted, try again in 5 minutes", times=1)
            response = await client.post("/send", json=mail)
            print(response.status_code, response.json()["error"], response.headers["Retry-After"])

            server.on("RCPT", reply="550 5.1.1 No such user", times=1)
            response = await client.post("/send", json=mail)
            print(response.status_code, response.json()["error"])


if __name__ == "__main__":
    import asyncio

    asyncio.run(main())
