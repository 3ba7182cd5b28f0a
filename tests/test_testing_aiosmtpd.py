"""ScriptedServer's use of aiosmtpd's private names: all in one module, listed, and each
present on the installed aiosmtpd (CI runs this on the lowest and newest releases)."""

from __future__ import annotations

import asyncio
import pathlib
import re

from aiosmtpd.smtp import SMTP

import smtpx.testing
from smtpx.testing import _aiosmtpd
from smtpx.testing._aiosmtpd import PRIVATE_NAMES

TESTING = pathlib.Path(smtpx.testing.__file__).parent
SOURCE = (TESTING / "_aiosmtpd.py").read_text()


class _Handler:
    pass


def test_each_class_name_exists() -> None:
    missing = [name for name in PRIVATE_NAMES["class"] if not callable(getattr(SMTP, name, None))]
    assert missing == []


async def test_each_instance_and_connection_name_exists() -> None:
    made: list[SMTP] = []

    def protocol() -> SMTP:
        made.append(SMTP(_Handler(), loop=asyncio.get_running_loop()))
        return made[-1]

    server = await asyncio.get_running_loop().create_server(protocol, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        fresh = SMTP(_Handler(), loop=asyncio.get_running_loop())
        assert [n for n in PRIVATE_NAMES["instance"] if not hasattr(fresh, n)] == []
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert (await reader.readline()).startswith(b"220 ")  # connected and greeted
            (connected,) = made
            assert [n for n in PRIVATE_NAMES["connection"] if not hasattr(connected, n)] == []
        finally:
            writer.close()
            await writer.wait_closed()
    finally:
        server.close()
        for protocol_ in made:
            if protocol_.transport is not None:
                protocol_.transport.close()
        await server.wait_closed()


def test_the_list_names_every_private_name_the_module_uses() -> None:
    # Every ``._name`` the module reads that it does not define itself is aiosmtpd's.
    used = set(re.findall(r"(?<!smtpx\.testing)\.(_[a-z][a-z_]*)\b", SOURCE))
    defined = set(re.findall(r"(?:def |self\.)(_[a-z][a-z_]*)\s*(?:\(|[:=] )", SOURCE))
    defined |= {name for name in dir(_aiosmtpd) if name.startswith("_")}
    listed = {name for names in PRIVATE_NAMES.values() for name in names}
    assert used - defined - listed == set()
    mentioned = set(re.findall(r"\b(_[a-z][a-z_]*)\b", SOURCE.split("\nTake = ")[1]))
    assert listed <= mentioned  # each still used (read, or overridden)


def test_no_other_testing_module_imports_aiosmtpd() -> None:
    others = [
        path.name
        for path in TESTING.glob("*.py")
        if path.name != "_aiosmtpd.py"
        and re.search(r"^\s*(from|import) aiosmtpd\b", path.read_text(), re.MULTILINE)
    ]
    assert others == []
