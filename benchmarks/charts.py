"""SVG charts of a benchmark run, drawn from the JSON that ``run.py`` writes.

    benchmarks/run.py --quick --charts docs/img/               # run, then draw
    benchmarks/run.py --from-json FILE --charts docs/img/      # draw an earlier run
    benchmarks/run.py --reasons-json FILE --charts docs/img/   # per-reason recall

Needs matplotlib (``pip install -e '.[bench]'``); nothing else in smtpx does.  The files
keep their text as SVG text (``svg.fonttype: none``: no embedded glyphs), carry no date
or creator, and take their element ids from a fixed hash salt, so drawing the same JSON
twice gives the same bytes.  A chart whose data the run lacks (an older JSON, a single
``--mode``) is skipped with the reason, never drawn empty.

The reasons chart reads a JSON object mapping each reason to its recall and number of
cases, ``{"mailbox_unknown": {"recall": 0.97, "cases": 112}, ...}``: recall a number
from 0 to 1, cases a whole number.
"""

from __future__ import annotations

import json
import re
import statistics
import textwrap
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Report = Mapping[str, Any]

# file name -> what it shows; docs/performance.md links every one of them
CHARTS = {
    "throughput-rtt.svg": "messages/s against added round-trip time, every client",
    "throughput-connections.svg": "messages/s against connections, with the raw-socket floor",
    "cpu-per-message.svg": "client CPU per message, every client, against the floor",
    "throughput-recipients.svg": "messages/s against recipients per message",
    "memory-10mib.svg": "peak RSS growth while sending one 10 MiB message",
}
REASONS_CHART = "reasons-recall.svg"

TIMES = "\N{MULTIPLICATION SIGN}"
FLOOR = "raw-socket floor"  # the label prefix of the floor client's rows (run.py's FLOOR)
STYLE: dict[str, Any] = {
    "svg.fonttype": "none",  # text stays text: no embedded glyphs, small files
    "svg.hashsalt": "smtpx-benchmark",  # fixed ids: same JSON, same bytes
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
    "legend.frameon": False,
}
NO_METADATA = {"Date": None, "Creator": None}
SERVER_TITLES = {
    "smtp-sink": "smtp-sink, PIPELINING advertised",
    "smtp-sink -p": "smtp-sink -p, no PIPELINING",
}


class MissingData(Exception):
    """The run has no data for a chart; the message says what is missing."""


# ---------------------------------------------------------------------------------------
# Reading a run
# ---------------------------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    """A run's JSON (``run.py --json``)."""
    report = json.loads(path.read_text())
    if not isinstance(report, dict) or "machine" not in report:
        raise ValueError(f"{path}: not a benchmark run (no 'machine' key)")
    return report


def _mode(report: Report, mode: str) -> Mapping[str, Any]:
    data = report.get(mode)
    if not isinstance(data, Mapping) or not data.get("runs"):
        raise MissingData(f"the run has no {mode!r} results (run.py --mode {mode})")
    return data


def _rates(runs: Iterable[Mapping[str, Any]]) -> list[float]:
    return [r["messages"] / r["seconds"] for r in runs if r.get("seconds")]


def _cpu_us(runs: Iterable[Mapping[str, Any]]) -> float:
    values = [r["cpu_seconds"] / r["messages"] * 1e6 for r in runs if r.get("messages")]
    return statistics.median(values) if values else float("nan")


def background_max(report: Report) -> float | None:
    """The most CPU other processes took during any measurement kept, in % of a core."""
    loads: list[float] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            if "background_cpu_pct" in node:
                loads.append(float(node["background_cpu_pct"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk({k: v for k, v in report.items() if k != "machine"})
    return max(loads) if loads else None


def caption(report: Report, width: float = 10) -> str:
    """Which run a chart shows: date, command, machine, versions, how busy the machine was;
    wrapped for a figure ``width`` inches wide."""
    info: Mapping[str, str] = report.get("machine", {})

    def get(key: str) -> str:
        return info.get(key, "?")

    load = background_max(report)
    busy = f"; other processes took up to {load:.0f}% of a core" if load is not None else ""
    lines = [
        f"Run of {get('date (UTC)')} UTC, {report.get('command', 'benchmarks/run.py')}: "
        f"{get('nproc')} {TIMES} {get('cpu')}, Linux {get('kernel')}{busy}.",
        f"Python {get('python')} (asyncio, no uvloop), smtpx {get('smtpx')}, aiosmtplib "
        f"{get('aiosmtplib')}, aiosmtpd {get('aiosmtpd')}, Postfix smtp-sink "
        f"{get('postfix (smtp-sink)')}, node {get('node')}, nodemailer {get('nodemailer')}.",
    ]
    return "\n".join(textwrap.fill(line, int(width * 19)) for line in lines)


# ---------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------


def _style(label: str) -> dict[str, Any]:
    """One colour per library, dashed for several connections, black for the floor."""
    several = "pool" in label or "conns" in label
    if label.startswith(FLOOR):
        return {"color": "black", "linestyle": "--" if several else ":", "marker": "x"}
    colour = "tab:gray"
    for prefix, value in (
        ("smtpx", "tab:blue"),
        ("aiosmtplib", "tab:orange"),
        ("smtplib", "tab:green"),
        ("nodemailer", "tab:purple"),
    ):
        if label.startswith(prefix):
            colour = value
            break
    return {
        "color": colour,
        "linestyle": "--" if several else "-",
        "marker": "s" if several else "o",
    }


def _figure(width: float, height: float, panels: int = 1) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    return fig, list(axes)


def _finish(fig: Figure, report: Report, title: str) -> None:
    fig.suptitle(title, fontsize=10, fontweight="bold")
    width = fig.get_figwidth()
    fig.supxlabel(caption(report, width), fontsize=6.5, color="dimgray", ha="left", x=0.01)


def _line(ax: Axes, label: str, points: Mapping[float, list[float]], **extra: Any) -> None:
    """A median line with the slowest-to-fastest repetition as an error bar."""
    xs = sorted(x for x, rates in points.items() if rates)
    if not xs:
        return
    mids = [statistics.median(points[x]) for x in xs]
    low = [m - min(points[x]) for x, m in zip(xs, mids, strict=True)]
    high = [max(points[x]) - m for x, m in zip(xs, mids, strict=True)]
    ax.errorbar(
        xs,
        mids,
        yerr=[low, high],
        label=label,
        capsize=2,
        linewidth=1.4,
        markersize=4,
        **{**_style(label), **extra},
    )


def _legend(fig: Figure, axes: list[Axes]) -> None:
    handles, labels = [], []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    fig.legend(handles, labels, loc="outside right center")


_PROXY = re.compile(r"^(?P<server>.+) via proxy (?P<rtt>[\d.]+) ms$")


def rtt_chart(report: Report) -> Figure:
    data = _mode(report, "latency")
    by_server: dict[str, dict[str, dict[float, list[float]]]] = {}
    for key, runs in data["runs"].items():
        where, _, label = key.partition(" | ")
        match = _PROXY.match(where)
        if match is None or "(diagnostic)" in label:
            continue
        series = by_server.setdefault(match["server"], {}).setdefault(label, {})
        series[float(match["rtt"])] = _rates(runs)
    servers = [s for s in SERVER_TITLES if s in by_server] or sorted(by_server)
    if not servers:
        raise MissingData("the latency results name no proxied server")
    fig, axes = _figure(10, 4.4, len(servers))
    for ax, server in zip(axes, servers, strict=True):
        for label, points in by_server[server].items():
            _line(ax, label, points)
        ax.set_yscale("log")
        ax.set_xlabel("added round-trip time, ms")
        ax.set_xticks(sorted({x for p in by_server[server].values() for x in p}))
        ax.set_title(SERVER_TITLES.get(server, server), fontsize=9)
    axes[0].set_ylabel("messages/s (log scale)")
    _legend(fig, axes)
    _finish(fig, report, "Messages per second against round-trip time (1 KiB, one recipient)")
    return fig


def _series_chart(report: Report, mode: str, axis: str) -> tuple[Figure, Axes]:
    """A chart of the ``connections``/``recipients`` modes: one line per series."""
    data = _mode(report, mode)
    server, levels = data.get("server", "smtp-sink"), data.get(axis)
    if not levels or not data.get("series"):
        raise MissingData(f"the {mode!r} results have no {axis!r} or 'series'")
    fig, (ax,) = _figure(8.5, 4.4)
    for name, labels in data["series"].items():
        points = {
            float(n): _rates(data["runs"].get(f"{server} | {label}", []))
            for n, label in labels.items()
        }
        _line(ax, name, points, linestyle="--" if name.startswith(FLOOR) else "-")
    ax.set_xscale("log")
    ax.set_xticks([float(n) for n in levels], [str(n) for n in levels])
    ax.minorticks_off()
    _legend(fig, [ax])
    return fig, ax


def connections_chart(report: Report) -> Figure:
    fig, ax = _series_chart(report, "connections", "connections")
    ax.set_xlabel("connections (and concurrent senders)")
    ax.set_ylabel("messages/s")
    ax.set_ylim(bottom=0)
    _finish(fig, report, "Messages per second against connections (smtp-sink, PIPELINING)")
    return fig


def recipients_chart(report: Report) -> Figure:
    fig, ax = _series_chart(report, "recipients", "recipients")
    ax.set_yscale("log")
    ax.set_xlabel("recipients per message")
    ax.set_ylabel("messages/s (log scale)")
    _finish(fig, report, "Messages per second against recipients (one connection, PIPELINING)")
    return fig


def cpu_chart(report: Report) -> Figure:
    data = _mode(report, "throughput")
    by_server: dict[str, dict[str, float]] = {}
    for key, runs in data["runs"].items():
        server, _, label = key.partition(" | ")
        if server in SERVER_TITLES and "(diagnostic)" not in label:
            by_server.setdefault(server, {})[label] = _cpu_us(runs)
    servers = [s for s in SERVER_TITLES if s in by_server]
    if not servers:
        raise MissingData("the throughput results have no smtp-sink rows")
    labels = list(dict.fromkeys(label for s in servers for label in by_server[s]))
    fig, axes = _figure(10, 0.9 + 0.32 * len(labels), len(servers))
    for ax, server in zip(axes, servers, strict=True):
        values = [by_server[server].get(label, float("nan")) for label in labels]
        colours = [_style(label)["color"] for label in labels]
        bars = ax.barh(range(len(labels)), values, color=colours, alpha=0.85)
        ax.bar_label(bars, fmt="%.0f", padding=2, fontsize=7)
        floors = [v for label, v in zip(labels, values, strict=True) if label.startswith(FLOOR)]
        floor = min(floors) if floors else float("nan")
        if floor == floor:  # not NaN
            ax.axvline(floor, color="black", linestyle="--", linewidth=1)
        ax.set_yticks(range(len(labels)), labels if ax is axes[0] else [""] * len(labels))
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        ax.set_xlabel(
            "client CPU per message, µs (user + system)"
            + (f"\ndashed line: {FLOOR}, {floor:.0f} µs" if floor == floor else "")
        )
        ax.set_title(SERVER_TITLES[server], fontsize=9)
    _finish(fig, report, "Client CPU per message (1 KiB, one recipient, loopback)")
    return fig


def memory_chart(report: Report) -> Figure:
    data = _mode(report, "memory")
    size_mib = data.get("message_bytes", 10 * 2**20) / 2**20
    growth: dict[str, dict[str, float]] = {}
    for key, outs in data["runs"].items():
        variant, _, client = key.rpartition(" ")
        values = [(o["maxrss_after_kib"] - o["maxrss_before_kib"]) / 1024 for o in outs]
        if values:
            growth.setdefault(variant, {})[client] = statistics.median(values)
    variants = list(growth)
    clients = list(dict.fromkeys(c for v in variants for c in growth[v]))
    fig, (ax,) = _figure(7.5, 4.2)
    width = 0.8 / max(len(clients), 1)
    for i, client in enumerate(clients):
        xs = [j + (i - (len(clients) - 1) / 2) * width for j in range(len(variants))]
        ys = [growth[v].get(client, float("nan")) for v in variants]
        bars = ax.bar(xs, ys, width, label=client, color=_style(client)["color"], alpha=0.85)
        ax.bar_label(bars, [f"{y / size_mib:.1f}{TIMES}" for y in ys], padding=2, fontsize=7)
    ax.axhline(size_mib, color="black", linestyle=":", linewidth=1)
    ax.annotate(
        f"message size ({size_mib:g} MiB)",
        (-0.45, size_mib),
        xytext=(0, 3),
        textcoords="offset points",
        fontsize=7,
    )
    ax.set_xticks(range(len(variants)), [f"{v} message" for v in variants])
    ax.grid(axis="x", visible=False)
    ax.set_ylabel("peak RSS growth, MiB (median of fresh processes)")
    _legend(fig, [ax])
    _finish(fig, report, f"Memory while sending one {size_mib:g} MiB message ({TIMES} its size)")
    return fig


DRAWERS: dict[str, Callable[[Report], Figure]] = {
    "throughput-rtt.svg": rtt_chart,
    "throughput-connections.svg": connections_chart,
    "cpu-per-message.svg": cpu_chart,
    "throughput-recipients.svg": recipients_chart,
    "memory-10mib.svg": memory_chart,
}
assert DRAWERS.keys() == CHARTS.keys()


def save(fig: Figure, path: Path) -> None:
    fig.savefig(path, format="svg", metadata=NO_METADATA)


def draw(report: Report, outdir: Path) -> dict[str, str | None]:
    """Draw every chart the run has data for into ``outdir``; name -> None when written,
    else why it was skipped."""
    import matplotlib

    outdir.mkdir(parents=True, exist_ok=True)
    done: dict[str, str | None] = {}
    with matplotlib.rc_context(cast(Any, STYLE)):
        for name, drawer in DRAWERS.items():
            try:
                fig = drawer(report)
            except MissingData as exc:
                done[name] = str(exc)
                continue
            save(fig, outdir / name)
            done[name] = None
    return done


# ---------------------------------------------------------------------------------------
# Per-reason recall
# ---------------------------------------------------------------------------------------


def check_reasons(recall: Any) -> dict[str, tuple[float, int]]:
    """``{reason: {"recall": float, "cases": int}}`` -> ``{reason: (recall, cases)}``;
    anything else is a ValueError saying which entry is wrong."""
    if not isinstance(recall, Mapping) or not recall:
        raise ValueError("reasons: expected a non-empty object {reason: {recall, cases}}")
    checked: dict[str, tuple[float, int]] = {}
    for reason, entry in recall.items():
        value = entry.get("recall") if isinstance(entry, Mapping) else None
        cases = entry.get("cases") if isinstance(entry, Mapping) else None
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not 0 <= value <= 1
            or not isinstance(cases, int)
            or isinstance(cases, bool)
            or cases < 0
        ):
            raise ValueError(
                f"reasons: {reason!r} must be {{'recall': 0..1, 'cases': whole number >= 0}}, "
                f"got {entry!r}"
            )
        checked[str(reason)] = (float(value), cases)
    return checked


def reasons_chart(recall: Any, note: str) -> Figure:
    """Recall per reason as horizontal bars, lowest first; ``note`` is the caption."""
    checked = check_reasons(recall)
    order = sorted(checked, key=lambda r: (checked[r][0], r))
    fig, (ax,) = _figure(8, 1.2 + 0.28 * len(order))
    values = [checked[r][0] * 100 for r in order]
    bars = ax.barh(range(len(order)), values, color="tab:blue", alpha=0.85)
    ax.bar_label(
        bars,
        [f"{v:.0f}% of {checked[r][1]}" for r, v in zip(order, values, strict=True)],
        padding=2,
        fontsize=7,
    )
    ax.set_yticks(range(len(order)), order)
    ax.set_xlim(0, 115)
    ax.set_xticks(range(0, 101, 20))
    ax.grid(axis="y", visible=False)
    ax.set_xlabel("recall: cases given this reason, % of the cases that have it")
    fig.suptitle("Reason recall on real replies", fontsize=10, fontweight="bold")
    fig.supxlabel(note, fontsize=6.5, color="dimgray", ha="left", x=0.01)
    return fig


def draw_reasons(path: Path, outdir: Path, note: str) -> Path:
    import matplotlib

    outdir.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(cast(Any, STYLE)):
        fig = reasons_chart(json.loads(path.read_text()), note)
        save(fig, outdir / REASONS_CHART)
    return outdir / REASONS_CHART
