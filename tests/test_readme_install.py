"""README and the docs install smtpx in ways that work from this repository, and README
names every Debian package the test command installs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text("utf-8")
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def apt_packages() -> list[str]:
    script = (ROOT / "scripts" / "install-test-deps.sh").read_text("utf-8")
    match = re.search(r"^PACKAGES=\(([^)]*)\)", script, re.MULTILINE)
    assert match, "install-test-deps.sh lists its packages in PACKAGES=(...)"
    return match[1].split()


def installs_of_smtpx() -> list[tuple[str, str, str]]:
    """(page, argument, line) for every smtpx a ``pip install`` in a code block names."""
    found = []
    for page in PAGES:
        for block in FENCE.findall(page.read_text("utf-8")):
            for line in block.splitlines():
                if "pip install" not in line:
                    continue
                command = line.split("#", 1)[0].split("pip install", 1)[1]
                for word in command.split():
                    word = word.strip("'\"")
                    if word.startswith((".", "smtpx")):
                        found.append((page.name, word, line))
    return found


def test_the_test_command_installs_packages() -> None:
    assert "postfix" in apt_packages()


@pytest.mark.parametrize("package", apt_packages())
def test_readme_names_each_apt_package(package: str) -> None:
    assert f"`{package}`" in README


def test_installs_are_found() -> None:
    pages = {page for page, _, _ in installs_of_smtpx()}
    assert {"README.md", "index.md", "getting-started.md"} <= pages


@pytest.mark.parametrize(("page", "argument", "line"), installs_of_smtpx())
def test_each_install_works_from_the_repository(page: str, argument: str, line: str) -> None:
    # a checkout (".", ".[cli]") or a git URL: the index name alone finds nothing yet
    checkout = re.fullmatch(r"\.(\[[a-z,]+\])?", argument)
    git = re.fullmatch(r"smtpx(\[[a-z,]+\])?", argument) and "@ git+" in line
    assert checkout or git, f"{page}: {line}"
