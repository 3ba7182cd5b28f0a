"""The modes that vary one thing against smtp-sink with PIPELINING: how many connections
(``connections``) and how many recipients per message (``recipients``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import _harness as h
import _measure as m


def _conns(n: int) -> str:
    return f"{n} conn" if n == 1 else f"{n} conns"


def _measure_on(
    sink: h.Server,
    plan: list[tuple[h.Server, m.Client, int]],
    settings: m.Settings,
    processes: h.Processes,
    message: Path,
    title: str,
) -> dict[str, Any]:
    """Measure ``plan`` on ``sink``, stop it, print the table; the JSON of the results."""
    results: m.Results = {}
    errors: m.Errors = {}
    try:
        m.measure(plan, settings, message, results, errors)
    finally:
        processes.stop(sink.proc)
    rows = [m.rate_row(results, errors, sink.name, c.label) for _s, c, _n in plan]
    print(f"\n### {title}\n\n{h.table(m.RATE_HEADERS, rows)}")
    return {"server": sink.name, "runs": m.dump_runs(results), "errors": m.dump_errors(errors)}


def connection_series(node_note: str | None) -> dict[str, tuple[str, str]]:
    """series name -> (label template, worker client); ``{n}`` is the connection count."""
    series = {
        "smtpx pool": ("smtpx pool {n}", "smtpx-pool"),
        "aiosmtplib, one task per connection": ("aiosmtplib {conns}", "aiosmtplib-multi"),
        m.FLOOR: (m.FLOOR + " {conns}", "floor-multi"),
    }
    if node_note is None:
        series["nodemailer pool"] = ("nodemailer pool {n}", "nodemailer")
    return series


def connections(
    settings: m.Settings, processes: h.Processes, tmp: Path, node_note: str | None
) -> dict[str, Any]:
    """msg/s against the number of connections (concurrent senders = connections)."""
    message = h.message_file(tmp)
    sink = h.start_smtp_sink(processes, pipelining=True)
    levels = settings.connection_levels
    labels: dict[str, dict[str, str]] = {}
    plan: list[tuple[h.Server, m.Client, int]] = []
    for name, (template, worker) in connection_series(node_note).items():
        for n in levels:
            label = template.format(n=n, conns=_conns(n))
            labels.setdefault(name, {})[str(n)] = label
            # enough messages that every connection sends a few dozen of them
            plan.append(
                (sink, m.Client(label, worker, concurrency=n), max(settings.count, 25 * n))
            )
    print(
        f"1 KiB messages, one recipient, {sink.name} :{sink.port}; connections "
        f"{', '.join(map(str, levels))}; {settings.reps} repetitions",
        flush=True,
    )
    title = "msg/s by number of connections (smtp-sink, PIPELINING)"
    out = _measure_on(sink, plan, settings, processes, message, title)
    if node_note is not None:
        print(f"\nnodemailer skipped: {node_note}")
    return {"connections": list(levels), "series": labels, **out}


RECIPIENT_SERIES = {
    "smtpx 1 conn": "smtpx",
    "aiosmtplib 1 conn": "aiosmtplib",
    "smtplib 1 conn": "smtplib",
    f"{m.FLOOR} 1 conn": "floor",
}


def recipients(settings: m.Settings, processes: h.Processes, tmp: Path) -> dict[str, Any]:
    """msg/s against the number of envelope recipients of each message (one connection)."""
    message = h.message_file(tmp)
    sink = h.start_smtp_sink(processes, pipelining=True)
    labels: dict[str, dict[str, str]] = {}
    plan: list[tuple[h.Server, m.Client, int]] = []
    for name, worker in RECIPIENT_SERIES.items():
        for n, count in settings.recipient_counts.items():
            label = f"{name}, {n} recipient" + ("" if n == 1 else "s")
            labels.setdefault(name, {})[str(n)] = label
            plan.append((sink, m.Client(label, worker, recipients=n), count))
    counts = ", ".join(f"{n}: {c}" for n, c in settings.recipient_counts.items())
    print(
        f"1 KiB messages, {sink.name} :{sink.port}; recipients per message: messages per run "
        f"{counts}; {settings.reps} repetitions",
        flush=True,
    )
    title = "msg/s by recipients per message (smtp-sink, PIPELINING, one connection)"
    out = _measure_on(sink, plan, settings, processes, message, title)
    print(
        "\nEvery client is given the same explicit envelope (sink0@example.net ...); smtpx "
        "and the floor pipeline every RCPT, aiosmtplib and smtplib wait for each reply.",
        flush=True,
    )
    return {"recipients": list(settings.recipient_counts), "series": labels, **out}
