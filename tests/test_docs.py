"""Generated documentation stays in step with the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_classification_page_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_docs.py"), "--check"], check=False
    )
    assert result.returncode == 0, "docs/classification.md is stale: run scripts/gen_docs.py"


def test_the_exception_tree_reads_without_scrolling_sideways() -> None:
    # At common window widths the docs show about 80 columns of a code block.
    page = (ROOT / "docs" / "classification.md").read_text("utf-8")
    tree = page.split("## The exception tree", 1)[1].split("```text\n", 1)[1].split("```")[0]
    lines = tree.splitlines()
    assert len(lines) > 60
    assert max(map(len, lines)) <= 80, max(lines, key=len)
    assert "(MailboxFull)" in tree and "HostNotFound" in tree  # wrapped, not cut
