"""A scripted, in-process SMTP server for testing code that sends mail.

:class:`ScriptedServer` runs an `aiosmtpd <https://aiosmtpd.readthedocs.io>`_ server in
the *current* event loop (no threads) on ``127.0.0.1`` and a free port. By default it is
a permissive ESMTP server that accepts every message; rules added with
:meth:`ScriptedServer.on` make it answer any command with a chosen reply, drop the
connection, hang, or send malformed bytes. Messages it accepts and every command line it
receives are recorded. Requires the ``smtpx[testing]`` extra (aiosmtpd)::

    async with ScriptedServer() as server:
        server.on("RCPT", match="bob@", reply="550 5.1.1 No such user")
        server.on("DATA_END", reply="451 4.3.0 Try again later", times=1)
        await send_mail_under_test(host=server.host, port=server.port)
        assert server.received_by("alice@example.com")
"""

from smtpx.testing._assertions import assert_not_sent, assert_sent
from smtpx.testing._oauth import OAuthAccounts
from smtpx.testing._server import COMMANDS, ReceivedMessage, Rule, ScriptedServer
from smtpx.testing._thread import serve_in_thread

__all__ = [
    "COMMANDS",
    "OAuthAccounts",
    "ReceivedMessage",
    "Rule",
    "ScriptedServer",
    "assert_not_sent",
    "assert_sent",
    "serve_in_thread",
]
