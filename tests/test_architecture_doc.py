"""docs/architecture.md names real code: every ``smtpx.`` path in it resolves, and its
drawing of the layers shows every module the layers contract places."""

from __future__ import annotations

import configparser
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "docs" / "architecture.md").read_text()


def _resolve(path: str) -> object:
    """The object at a dotted path: the longest importable module, then attributes."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            found = getattr(found, name)
        return found
    raise ImportError(path)


NAMED = sorted(set(re.findall(r"`(smtpx(?:\.\w+)+)`", PAGE)))


def test_the_page_names_code() -> None:
    assert len(NAMED) > 20


@pytest.mark.parametrize("path", NAMED)
def test_each_named_function_exists(path: str) -> None:
    _resolve(path)


def _layer_modules() -> set[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    layers = config["importlinter:contract:layers"]["layers"]
    return {name for name in re.split(r"[\s|:]+", layers) if name}


def test_the_drawing_shows_every_layer_module() -> None:
    drawing = PAGE.split("```")[1]
    # the core's leaf modules are many; the drawing shows the ones a reader meets first
    leaves = {"_data", "_headers", "_end_of_message", "_secret", "_table", "_enhanced"}
    leaves |= {"_registry", "_reason_rules", "_codes", "_severity", "_commands"}
    for module in _layer_modules() - leaves:
        assert re.search(rf"(?<![\w.]){re.escape(module)}(?![\w])", drawing), module
