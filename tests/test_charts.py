"""The benchmark's charts: the performance page links every chart and every link resolves;
the committed SVGs stay small and deterministic; the chart code draws a fixture run (no
benchmark is run here).  Rendering needs matplotlib (the ``bench`` extra, also in
``test``): without it those tests skip, except in CI, where they fail."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "performance.md"
IMG = ROOT / "docs" / "img"
FIXTURE = Path(__file__).parent / "data" / "bench-run.json"
REASONS = Path(__file__).parent / "data" / "reasons-recall.json"
SVG = "{http://www.w3.org/2000/svg}"


def _load_charts() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "smtpx_bench_charts", ROOT / "benchmarks" / "charts.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


charts = _load_charts()  # imports matplotlib only when drawing


def _linked_images(text: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(img/([^)\s]+)\)", text)


# ---------------------------------------------------------------------------------------
# The page and the committed files
# ---------------------------------------------------------------------------------------


def test_every_chart_the_page_links_exists() -> None:
    linked = _linked_images(PAGE.read_text())
    assert linked, "docs/performance.md links no chart"
    missing = [name for name in linked if not (IMG / name).is_file()]
    assert missing == []


def test_the_page_links_every_chart_the_benchmark_draws_above_the_tables() -> None:
    text = PAGE.read_text()
    linked = _linked_images(text)
    assert sorted(set(charts.CHARTS)) == sorted(n for n in set(linked) if n in charts.CHARTS)
    first_table = min(m.start() for m in re.finditer(r"^\|", text, re.MULTILINE))
    for name in charts.CHARTS:
        assert text.index(f"](img/{name})") < first_table, f"{name} is not above the tables"


def test_every_committed_chart_is_linked() -> None:
    """A chart left in docs/img that no page shows is stale."""
    pages = "".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    unlinked = [p.name for p in IMG.glob("*.svg") if f"img/{p.name}" not in pages]
    assert unlinked == []


@pytest.mark.parametrize("name", sorted(charts.CHARTS))
def test_committed_chart_is_small_text_svg_without_date(name: str) -> None:
    data = (IMG / name).read_bytes()
    assert len(data) < 120_000, f"{name}: {len(data)} bytes"
    root = ET.fromstring(data)
    assert root.tag == f"{SVG}svg"
    text = data.decode()
    assert "<dc:date>" not in text and "Matplotlib v" not in text
    assert 'id="DejaVu' not in text, "glyphs embedded: svg.fonttype must be none"
    assert root.findall(f".//{SVG}text"), "no text elements: fonttype none keeps text as text"
    assert "Run of " in text and " UTC" in text, "the caption naming the run is missing"


# ---------------------------------------------------------------------------------------
# Drawing from the fixture run
# ---------------------------------------------------------------------------------------


def _texts(path: Path) -> str:
    root = ET.fromstring(path.read_bytes())
    return "\n".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str | None]]:
    """The fixture run drawn once (rendering is the slow part)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("matplotlib is missing in CI: it is in the test extra")
        pytest.skip("matplotlib not installed (pip install -e '.[bench]')")
    out = tmp_path_factory.mktemp("charts")
    return out, charts.draw(json.loads(FIXTURE.read_text()), out)


def test_fixture_run_draws_every_chart_with_its_caption(
    drawn: tuple[Path, dict[str, str | None]],
) -> None:
    out, done = drawn
    assert done == dict.fromkeys(charts.CHARTS)
    for name in charts.CHARTS:
        text = _texts(out / name)
        # the caption: date, machine and versions of the fixture run
        for token in ("2030-01-02", "Fixture CPU 9000", "6.1.0-fixture", "git fixture1"):
            assert token in text, (name, token)
        assert "(diagnostic)" not in text, "diagnostic rows are for the tables only"


def test_fixture_values_reach_the_charts(drawn: tuple[Path, dict[str, str | None]]) -> None:
    """Numbers come from the JSON: the CPU bars are labelled with the fixture's medians,
    the memory bars with growth over message size, the floor is named."""
    out, _done = drawn
    cpu = _texts(out / "cpu-per-message.svg")
    for value in ("228", "349", "61", "456"):  # 456: smtpx 1 conn on smtp-sink -p
        assert re.search(rf"(?m)^{value}$", cpu), value
    assert f"{charts.FLOOR}, 41 µs" in cpu  # the dashed line: the lowest floor
    memory = _texts(out / "memory-10mib.svg")
    assert "0.9\N{MULTIPLICATION SIGN}" in memory and "4.8\N{MULTIPLICATION SIGN}" in memory
    for name in ("throughput-connections.svg", "throughput-recipients.svg", "throughput-rtt.svg"):
        assert charts.FLOOR in _texts(out / name), name


@pytest.mark.parametrize(
    ("mode", "chart"),
    [
        ("latency", "throughput-rtt.svg"),
        ("connections", "throughput-connections.svg"),
        ("throughput", "cpu-per-message.svg"),
        ("recipients", "throughput-recipients.svg"),
        ("memory", "memory-10mib.svg"),
    ],
)
def test_a_run_without_a_mode_has_no_chart_of_it(mode: str, chart: str) -> None:
    report = json.loads(FIXTURE.read_text())
    del report[mode]
    with pytest.raises(charts.MissingData, match=mode):
        charts.DRAWERS[chart](report)
    report[mode] = {"runs": {}}  # present but empty: the same
    with pytest.raises(charts.MissingData, match=mode):
        charts.DRAWERS[chart](report)


def test_charts_without_data_are_skipped_with_the_reason(tmp_path: Path) -> None:
    report = {"machine": json.loads(FIXTURE.read_text())["machine"]}
    done = charts.draw(report, tmp_path)
    assert sorted(done) == sorted(charts.CHARTS)
    assert all(why for why in done.values())
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------
# Per-reason recall
# ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("drawn")  # matplotlib present
def test_reasons_chart_draws_every_reason_with_its_cases(tmp_path: Path) -> None:
    path = charts.draw_reasons(REASONS, tmp_path, "fixture note")
    assert path == tmp_path / charts.REASONS_CHART
    text = _texts(path)
    recall = json.loads(REASONS.read_text())
    for reason, entry in recall.items():
        assert reason in text
        assert f"{entry['recall'] * 100:.0f}% of {entry['cases']}" in text
    assert "fixture note" in text


GOOD = {"recall": 0.5, "cases": 3}


@pytest.mark.parametrize(
    "recall",
    [
        {},
        [],
        "mailbox_unknown",
        {"a": 0.5},
        {"a": {"recall": 0.5}},
        {"a": {"cases": 3}},
        {"a": {"recall": 1.01, "cases": 3}},
        {"a": {"recall": -0.01, "cases": 3}},
        {"a": {"recall": "0.5", "cases": 3}},
        {"a": {"recall": True, "cases": 3}},
        {"a": {"recall": None, "cases": 3}},
        {"a": {"recall": 0.5, "cases": -1}},
        {"a": {"recall": 0.5, "cases": 2.5}},
        {"a": {"recall": 0.5, "cases": False}},
        {"a": {"recall": 0.5, "cases": "3"}},
        {"ok": GOOD, "bad": {"recall": 2, "cases": 1}},
    ],
)
def test_reasons_of_the_wrong_shape_are_refused(recall: Any) -> None:
    with pytest.raises(ValueError, match="reasons"):
        charts.check_reasons(recall)


@pytest.mark.parametrize("value", [0, 1, 0.0, 1.0, 0.25])
def test_reasons_at_every_bound_are_accepted(value: float) -> None:
    assert charts.check_reasons({"r": {"recall": value, "cases": 0}}) == {"r": (float(value), 0)}


# ---------------------------------------------------------------------------------------
# The command line (no benchmark run)
# ---------------------------------------------------------------------------------------


def _run_py(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_from_json_draws_without_running_and_the_same_bytes(
    tmp_path: Path, drawn: tuple[Path, dict[str, str | None]]
) -> None:
    """Another process drawing the same JSON writes the same files: fixed hash salt, no
    date, nothing taken from the process."""
    done = _run_py("--from-json", str(FIXTURE), "--charts", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(charts.CHARTS)
    assert "smtpx benchmark" not in done.stdout  # nothing was measured
    for name in charts.CHARTS:
        assert (tmp_path / name).read_bytes() == (drawn[0] / name).read_bytes(), name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from-json", str(FIXTURE)], "give --charts DIR"),
        (["--reasons-json", str(REASONS)], "give --charts DIR"),
        (["--from-json", "/nonexistent/run.json", "--charts", "/tmp"], "no such file"),
    ],
)
def test_chart_options_misused_are_refused(args: list[str], message: str) -> None:
    done = _run_py(*args)
    assert done.returncode == 2
    assert message in done.stderr
