"""The modes that measure one thing in fresh processes: memory, classification, profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import _harness as h
import _measure as m

MEMORY_VARIANTS = {
    "CRLF": "CRLF line endings, no line starting with '.'",
    "LF+dots": "body lines end in a bare LF and start with '.'",
}


def _memory_message(variant: str, size: int) -> bytes:
    message = h.make_message(size)
    if variant == "LF+dots":
        message = message.replace(b"\r\nThe ", b"\n.The ")
    return message


def memory(settings: m.Settings, processes: h.Processes, tmp: Path) -> dict[str, Any]:
    size = settings.memory_mb * 1024 * 1024
    sink = h.start_smtp_sink(processes, pipelining=True)
    reps = 3
    clients = ("smtpx", "aiosmtplib", "smtplib")
    found: dict[str, list[dict[str, Any]]] = {}
    errors: dict[str, str] = {}
    try:
        for variant in MEMORY_VARIANTS:
            message = tmp / f"message-large-{variant}.eml"
            message.write_bytes(_memory_message(variant, size))
            for rep in range(1, reps + 1):
                print(f"  {variant} repetition {rep}/{reps}:", end="", flush=True)
                for client in clients:
                    key = f"{variant} {client}"
                    argv = h.python_worker(
                        "memory", client, "--port", str(sink.port), "--message", str(message)
                    )
                    out = h.run_worker(argv, time_limit=settings.max_seconds)
                    if "error" in out:
                        errors[key] = out["error"]
                        print(" E", end="", flush=True)
                        continue
                    found.setdefault(key, []).append(out)
                    print(".", end="", flush=True)
                print(flush=True)
    finally:
        processes.stop(sink.proc)
    rows = []
    for variant in MEMORY_VARIANTS:
        for client in clients:
            key = f"{variant} {client}"
            outs = found.get(key, [])
            if not outs:
                rows.append([variant, client, "-", "-", "-", errors.get(key, "")])
                continue
            growth = h.median(
                [(o["maxrss_after_kib"] - o["maxrss_before_kib"]) * 1024 for o in outs]
            )
            base = h.median([o["maxrss_before_kib"] * 1024 for o in outs])
            rows.append(
                [
                    variant,
                    client,
                    h.fmt(base / 2**20, 1),
                    h.fmt(growth / 2**20, 1),
                    f"{growth / size:.1f}x",
                    errors.get(key, ""),
                ]
            )
    print(f"\n### One {settings.memory_mb} MiB message (median of {reps} fresh processes)\n")
    print(
        h.table(
            [
                "message",
                "client",
                "peak RSS before MiB",
                "peak RSS growth MiB",
                "growth / size",
                "note",
            ],
            rows,
        )
    )
    print(
        "\n"
        + "; ".join(f"{name}: {what}" for name, what in MEMORY_VARIANTS.items())
        + ".\npeak RSS before: ru_maxrss after reading the message file and connecting (the "
        "message itself included); growth: ru_maxrss after the send minus that.",
        flush=True,
    )
    return {"runs": found, "errors": errors, "message_bytes": size}


def classify(
    settings: m.Settings, processes: h.Processes, tmp: Path, smtpx_cpu_us: float | None
) -> dict[str, Any]:
    out = h.run_worker(h.python_worker("classify", "--iterations", "20000"), time_limit=120)
    if "error" in out:
        print(f"classify worker failed: {out['error']}")
        return out
    rows = out["rows"]
    print(
        h.table(
            ["command", "reply", "Reply.parse µs", "classify µs", "per message"],
            [
                [
                    r["command"],
                    r["reply"],
                    f"{r['parse_us']:.2f}",
                    f"{r['classify_us']:.2f}",
                    "yes" if r["per_message"] else "no",
                ]
                for r in rows
            ],
        )
    )
    if smtpx_cpu_us is None or smtpx_cpu_us != smtpx_cpu_us:
        print("\nmeasuring smtpx's CPU per message (no throughput results in this run) ...")
        message = h.message_file(tmp)
        sink = h.start_smtp_sink(processes, pipelining=True)
        results: m.Results = {}
        errors: m.Errors = {}
        try:
            m.measure([(sink, m.SMTPX_1, settings.count)], settings, message, results, errors)
        finally:
            processes.stop(sink.proc)
        smtpx_cpu_us = m.cpu_us(results, (sink.name, m.SMTPX_1.label))
    per_message = [r for r in rows if r["per_message"]]
    classify_us = sum(r["classify_us"] for r in per_message)
    parse_us = sum(r["parse_us"] for r in per_message)
    print(
        f"\nPer message (pipelined: {len(per_message)} replies): classify {classify_us:.1f} µs, "
        f"Reply.parse {parse_us:.1f} µs, together {classify_us + parse_us:.1f} µs.\n"
        f"smtpx 1 conn CPU per message (smtp-sink, PIPELINING): {smtpx_cpu_us:.0f} µs.\n"
        f"Share of client CPU: classify {classify_us / smtpx_cpu_us:.1%}, "
        f"classify + parse {(classify_us + parse_us) / smtpx_cpu_us:.1%} (target < 5%).\n"
        "Best of 5 timeit runs of 20,000 calls each, in one process (warm caches).",
        flush=True,
    )
    return {
        **out,
        "smtpx_cpu_us": smtpx_cpu_us,
        "classify_share": classify_us / smtpx_cpu_us,
        "classify_parse_share": (classify_us + parse_us) / smtpx_cpu_us,
    }


def profile(
    settings: m.Settings, processes: h.Processes, tmp: Path, client: str, pipelining: bool
) -> dict[str, Any]:
    import pstats

    message = h.message_file(tmp)
    sink = h.start_smtp_sink(processes, pipelining=pipelining)
    out_file = tmp / "send.prof"
    try:
        out = h.run_worker(
            h.python_worker(
                "throughput",
                client,
                "--port",
                str(sink.port),
                "--message",
                str(message),
                "--count",
                str(settings.count),
                "--warmup",
                str(settings.warmup),
                "--profile",
                str(out_file),
            ),
            time_limit=settings.max_seconds * 4,
        )
    finally:
        processes.stop(sink.proc)
    if "error" in out:
        print(f"profile worker failed: {out['error']}")
        return out
    stats = pstats.Stats(str(out_file))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in raw.values())
    print(
        f"{client} on {sink.name}, {out['messages']} messages under cProfile: "
        f"{out['messages'] / out['seconds']:.0f} msg/s (cProfile slows everything down; "
        f"read shares, not speeds).  Profiled time: {total:.2f} s.\n"
    )

    def where(func: tuple[str, int, str]) -> str:
        path, line, name = func
        for marker in ("site-packages/", "python3.11/", "/work/main/"):
            if marker in path:
                path = path.split(marker, 1)[1]
                break
        return f"{path}:{line}({name})" if line else name

    by_cumulative = sorted(raw.items(), key=lambda item: item[1][3], reverse=True)
    per_msg = out["messages"]
    rows = [
        [where(f), f"{ct / total:.1%}", f"{tt / total:.1%}", str(nc), h.fmt(nc / per_msg, 1)]
        for f, (_cc, nc, tt, ct, _callers) in by_cumulative
        if "smtpx/" in f[0] or "aiosmtplib/" in f[0] or "email/" in f[0]
    ][:30]
    print("### Top functions by cumulative time (smtpx, aiosmtplib, email)\n")
    print(h.table(["function", "cumulative", "own", "calls", "calls/msg"], rows))
    print(
        "\ncumulative and own: % of the profiled time; a coroutine's calls count each "
        "resumption, so send() shows 3 per message."
    )
    groups: dict[str, float] = {}
    for (path, _line, name), v in raw.items():
        group = _group(path, name)
        groups[group] = groups.get(group, 0.0) + v[2]
    print("\n### Own time by package\n")
    print(
        h.table(
            ["package", "own time"],
            [[g, f"{t / total:.1%}"] for g, t in sorted(groups.items(), key=lambda x: -x[1])],
        )
    )
    return {"client": client, "total_s": total, "groups": groups, "worker": out}


def _group(path: str, name: str) -> str:
    for marker, group in (
        ("smtpx/", "smtpx"),
        ("aiosmtplib/", "aiosmtplib"),
        ("attr/", "attrs"),
        ("/email/", "email (stdlib)"),
        ("/asyncio/", "asyncio (stdlib)"),
        ("/re/", "re (stdlib)"),
    ):
        if marker in path:
            return group
    if path == "~":
        return (
            "builtins (C: "
            + ("socket/select" if "socket" in name or "poll" in name else "other")
            + ")"
        )
    return "other Python"
