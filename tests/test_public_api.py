"""The public surface: ``smtpx``'s names are exactly its modules' ``__all__``, all documented.

Each module says what it offers in its own ``__all__``; ``smtpx/__init__.py`` re-exports
some of those modules whole (``from m import *`` plus ``__all__ += m.__all__``) and lists
no name itself.  These tests hold that shape for every module and every name, so a name
added to a module shows up here (documented or failing), and nothing private leaks.
"""

from __future__ import annotations

import ast
import importlib
import pathlib
import re
import types

import pytest

import smtpx
import smtpx.codes

ROOT = pathlib.Path(smtpx.__file__).parent
DOCS = ROOT.parent / "docs"


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES = {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _reexported(module: str) -> list[str]:
    """The modules whose ``__all__`` ``module``'s ``__init__`` adds to its own, in order."""
    tree = ast.parse(SOURCES[module].read_text())
    added = [
        node.value.value.id
        for node in tree.body
        if isinstance(node, ast.AugAssign)
        and isinstance(node.target, ast.Name)
        and node.target.id == "__all__"
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "__all__"
        and isinstance(node.value.value, ast.Name)
    ]
    starred = {
        node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and [a.name for a in node.names] == ["*"]
    }
    package = module if SOURCES[module].name == "__init__.py" else module.rpartition(".")[0]
    full = [f"{package}.{name}" for name in added]
    # each module added to __all__ is also star-imported, and nothing else is
    assert starred == set(full), module
    return full


TOP = _reexported("smtpx")


def test_every_module_declares_all() -> None:
    missing = [
        name
        for name, path in SOURCES.items()
        if not any(
            isinstance(node, ast.Assign | ast.AnnAssign)
            and "__all__" in ast.unparse(node).split("=")[0]
            for node in ast.parse(path.read_text()).body
        )
    ]
    assert missing == []


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_module_all_names_exist_once(name: str) -> None:
    module = importlib.import_module(name)
    names = list(module.__all__)
    assert len(names) == len(set(names)), name
    assert [n for n in names if not hasattr(module, n)] == []
    assert [n for n in names if n.startswith("_")] == []


def test_top_level_is_the_union_of_the_reexported_modules() -> None:
    union: list[str] = []
    for name in TOP:
        union += importlib.import_module(name).__all__
    assert len(union) == len(set(union)), "a name exported by two modules"
    assert smtpx.__all__ == union
    for name in TOP:
        module = importlib.import_module(name)
        for attr in module.__all__:
            assert getattr(smtpx, attr) is getattr(module, attr), (name, attr)


def test_codes_is_the_union_of_its_modules() -> None:
    union: list[str] = []
    for name in _reexported("smtpx.codes"):
        union += importlib.import_module(name).__all__
    assert smtpx.codes.__all__ == union
    for table in ("TABLE", "Row", "is_expected", "CATALOGUE", "CodeInfo", "describe"):
        assert table in smtpx.codes.__all__
    assert {"REGISTRY", "RegistryEntry"} <= set(smtpx.codes.__all__)


def test_nothing_else_is_reachable_from_the_top_level() -> None:
    """Every public attribute of ``smtpx`` is in ``__all__`` or is a public submodule."""
    extra = [
        name
        for name in dir(smtpx)
        # (pytest's assertion rewriting adds names that are not identifiers)
        if name.isidentifier() and not name.startswith("_") and name not in smtpx.__all__
        if not (
            isinstance(getattr(smtpx, name), types.ModuleType)
            and getattr(smtpx, name).__name__ == f"smtpx.{name}"
        )
    ]
    assert extra == []


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_no_name_outside_a_modules_all_leaks_to_the_top(name: str) -> None:
    """What a module keeps out of its ``__all__`` (tables, helpers) is not ``smtpx.X``."""
    module = importlib.import_module(name)
    for attr, value in vars(module).items():
        kind = type(value)  # not isinstance: it would wake lazy objects (Django's settings)
        if attr.startswith("_") or attr in module.__all__ or kind is types.ModuleType:
            continue
        if (issubclass(kind, type) or kind is types.FunctionType) and value.__module__ != name:
            continue  # imported from elsewhere: judged in its own module
        assert getattr(smtpx, attr, None) is not value or attr in smtpx.__all__, (name, attr)


@pytest.mark.parametrize(
    "internal",
    ["TABLE", "Row", "RegistryEntry", "REGISTRY", "CATALOGUE", "CodeInfo", "Secret", "judge"],
)
def test_known_internals_are_not_top_level(internal: str) -> None:
    assert not hasattr(smtpx, internal)


def _documented() -> set[str]:
    """Names ``::: smtpx.X`` renders, directly or as a member of a rendered module."""
    targets: set[str] = set()
    for page in DOCS.glob("*.md"):
        targets |= set(re.findall(r"^::: (smtpx\S*)", page.read_text(), re.MULTILINE))
    names: set[str] = set()
    for target in targets:
        parent, _, last = target.rpartition(".")
        if parent == "smtpx":
            names.add(last)
        if target in SOURCES:
            names |= set(importlib.import_module(target).__all__)
    return names


def _tree_classes() -> set[str]:
    """The classes the errors docstring draws: the tree and its list of categories."""
    doc = smtpx.errors.__doc__ or ""
    tree = set(re.findall(r"[├└]── (\w+)", doc)) | {"SMTPError"}
    return tree | set(re.findall(r"``(\w+)``", doc.split("categories:")[-1]))


@pytest.mark.parametrize("name", smtpx.__all__)
def test_every_top_level_name_is_documented(name: str) -> None:
    value = getattr(smtpx, name)
    if isinstance(value, type) and issubclass(value, smtpx.SMTPError):
        assert name in _tree_classes(), name
    else:
        assert name in _documented(), f"smtpx.{name} is on no docs page (::: smtpx.{name})"


def test_the_errors_tree_lists_every_error_class() -> None:
    listed = _tree_classes()
    classes = {n for n in smtpx.errors.__all__ if issubclass(getattr(smtpx, n), Exception)}
    assert classes - listed == set()
