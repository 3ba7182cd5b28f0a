"""Small modules of one concern: none much over 400 lines unless its first line says why."""

from __future__ import annotations

import pathlib

import smtpx

SOURCE = pathlib.Path(smtpx.__file__).parent
LIMIT = 420  # "about 400"
REASON = "# Long on purpose"


def test_no_module_is_long_without_a_stated_reason() -> None:
    long = {
        str(path.relative_to(SOURCE)): lines
        for path in sorted(SOURCE.rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > LIMIT
        and not path.read_text().startswith(REASON)
    }
    assert long == {}
