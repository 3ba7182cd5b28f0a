"""The ``smtpx`` command line (``smtpx ...`` or ``python -m smtpx ...``).

Needs the ``cli`` extra (click): ``pip install 'smtpx[cli]'``.  Commands: ``send``,
``probe``, ``explain`` and ``serve``; see ``smtpx --help`` and docs/cli.md.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``) and exit."""
    try:
        from smtpx.cli.app import cli
    except ModuleNotFoundError as exc:
        if exc.name not in ("click", "aiosmtpd"):
            raise
        sys.stderr.write(f"smtpx: the command line needs {exc.name}: pip install 'smtpx[cli]'\n")
        sys.exit(2)
    cli.main(args=list(argv) if argv is not None else None)
