"""Docs speak to users about the product: no page, README or docstring refers to internal
work items ("issue 7", "#12", "PR 3") or to how the work was organised ("this round").
Commit messages may cite issues; what users read may not."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# anywhere, code blocks included: an issue number is never sample output
INTERNAL = [
    re.compile(r"\bissues?\s*#?\s*\d+", re.IGNORECASE),
    re.compile(r"\b(?:PR|pull request|ticket|work item)\s*#?\s*\d+", re.IGNORECASE),
    re.compile(r"\bthis round\b|\blead engineer\b|\bwork items?\b", re.IGNORECASE),
    re.compile(r"\b(?:the|this|that) issue[\'\u2019]s\b", re.IGNORECASE),  # "the figure"
]
# a bare "#12" outside code (sample output such as "#1 from <...>" may show counters);
# not an HTML entity (&#123;), a URL fragment (/#12) or a link anchor (](#12-...))
BARE_NUMBER = re.compile(r"(?<![\w&/#])(?<!\]\()#\d+\b")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def internal_references(text: str, *, markdown: bool = True) -> list[str]:
    """Every internal reference in ``text``, as found."""
    found = [m.group(0) for pattern in INTERNAL for m in pattern.finditer(text)]
    prose = INLINE_CODE.sub("", FENCE.sub("", text)) if markdown else text
    found += [m.group(0) for m in BARE_NUMBER.finditer(prose)]
    return found


def pages() -> list[Path]:
    found = [ROOT / "README.md", ROOT / "benchmarks" / "README.md"]
    found += sorted((ROOT / "docs").rglob("*.md"))
    found += sorted((ROOT / "examples").rglob("*.md"))
    return found


def docstrings() -> list[tuple[str, str]]:
    """(where, docstring) of every module, class and function of the package; they are
    what the reference pages show."""
    found = []
    for path in sorted((ROOT / "smtpx").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(
                node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
            ):
                doc = ast.get_docstring(node, clean=False)
                if doc:
                    where = getattr(node, "name", "module")
                    found.append((f"{path.relative_to(ROOT)}:{where}", doc))
    return found


def test_the_pages_and_docstrings_are_found() -> None:
    assert len(pages()) >= 10 and all(p.is_file() for p in pages())
    assert len(docstrings()) > 100


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_page_has_no_internal_reference(page: Path) -> None:
    assert internal_references(page.read_text()) == []


def test_docstrings_have_no_internal_reference() -> None:
    bad = [(where, internal_references(doc, markdown=False)) for where, doc in docstrings()]
    assert [(where, refs) for where, refs in bad if refs] == []


def test_benchmark_output_has_no_internal_reference() -> None:
    """What benchmarks/*.py prints (their string literals) is shown to users too."""
    bad = []
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                refs = internal_references(node.value, markdown=False)
                if refs:
                    bad.append((path.name, refs))
    assert bad == []


@pytest.mark.parametrize(
    "text",
    [
        "what they mean against issue 7's targets",
        "| target (issue 7) | measured |",
        "see Issue #12 for details",
        "as issues 3 and 4 asked",
        "Credentials never a plain local (#12 item 6)",
        "fixed in #45.",
        "merged as PR 3",
        "done in this round",
        "the issue's ~10,000 msg/s figure",
        "This issue\u2019s targets",
        "```sh\n# the fix for issue 9\n```",
    ],
)
def test_internal_references_are_found(text: str) -> None:
    assert internal_references(text) != []


@pytest.mark.parametrize(
    "text",
    [
        "```\n[10:02:11] #1 from <me@example.com> to <you@example.com>\n```",
        "the message counter (`#1`) in the log",
        "see [Caveats](#caveats) and [the first step](#1-connect)",
        "an entity &#123; and a URL https://example.com/#12",
        "RFC 5321 §4.5.3.1.10 says 552 to RCPT is transient",
        "issues with TLS are TLSError; 4 issues at most",
        "one round trip per message",
        "the issue is that the server drops the connection",
    ],
)
def test_product_text_is_not_mistaken_for_a_reference(text: str) -> None:
    assert internal_references(text) == []
