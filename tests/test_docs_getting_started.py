"""docs/getting-started.md, followed as written: its local steps run, against a real
`smtpx serve`, and print what the page shows."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from serveprocess import smtpx_serve

PAGE = Path(__file__).resolve().parents[1] / "docs" / "getting-started.md"
STEP_2 = PAGE.read_text("utf-8").split("## 2.", 1)[1].split("## 3.", 1)[0]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


@pytest.fixture
def serve() -> Iterator[int]:
    """``smtpx serve`` as the page starts it, on a free port instead of 8025."""
    [console, *_] = blocks(STEP_2, "console")
    command = console.splitlines()[0].removeprefix("$ ")
    assert command == "smtpx serve"
    with smtpx_serve(*shlex.split(command)[2:], "--port", "0") as served:
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", served.first)
        assert match, served.first
        assert served.first.replace(match[1], "8025") == console.splitlines()[1] + "\n"
        yield int(match[1])


def test_the_command_line_step_prints_what_the_page_shows(serve: int) -> None:
    console = blocks(STEP_2, "console")[1]
    command, shown = console.split("\n", 1)
    command = command.removeprefix("$ ").replace(" \\", "")
    lines = shown.splitlines()
    command += " " + lines[0].strip()  # the continued line
    words = shlex.split(command.replace("8025", str(serve)))
    assert words[0] == "smtpx"
    done = subprocess.run(
        [sys.executable, "-m", "smtpx", *words[1:]],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == lines[1:]


def test_the_python_step_prints_what_its_comment_says(serve: int) -> None:
    [code] = blocks(STEP_2, "python")
    expected = re.search(r"print\(result\.accepted\)  # (.*)", code)
    assert expected
    done = subprocess.run(
        [sys.executable, "-c", code.replace("port=8025", f"port={serve}")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected[1]


def test_the_page_names_every_extra_there_is() -> None:
    import tomllib

    pyproject = tomllib.loads((PAGE.parents[1] / "pyproject.toml").read_text("utf-8"))
    extras = set(pyproject["project"]["optional-dependencies"]) - {
        "test",
        "docs",
        "bench",
        "mutate",
    }
    page = PAGE.read_text("utf-8")
    for extra in extras:
        assert f"`{extra}`" in page, extra
