"""The smtpx benchmark: smtpx against raw aiosmtplib, smtplib and nodemailer, same run.

    .venv/bin/python benchmarks/run.py [--quick] [--mode throughput|latency|memory|classify|all]
    .venv/bin/python benchmarks/run.py --mode profile     # cProfile of smtpx's send loop

Servers: Postfix's ``smtp-sink`` on free 127.0.0.1 ports, once advertising PIPELINING and
once not (``-p``), and aiosmtpd in a subprocess; latency mode puts a delaying TCP proxy
in front.  Each measurement runs in a fresh subprocess (``worker.py``, ``node/bench.js``)
so its CPU time is its own.  Repetitions are interleaved (rep 1 of every client, then
rep 2, ...) and the tables show medians.  Every server and proxy is stopped by PID at the
end, also on Ctrl-C.  Nothing here is part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _harness as h

MODES = ("throughput", "latency", "chunking", "memory", "classify", "all", "profile")


@dataclass(frozen=True)
class Settings:
    quick: bool
    reps: int
    count: int  # throughput messages per run
    warmup: int
    max_seconds: float  # per run
    latency_counts: dict[float, int]  # RTT ms -> messages
    memory_mb: int
    node: bool
    max_background: float  # % of a core other processes may use during a run

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        quick = args.quick
        return cls(
            quick=quick,
            reps=args.reps or (3 if quick else 5),
            count=args.count or (500 if quick else 3000),
            warmup=50 if quick else 100,
            max_seconds=60.0,
            latency_counts={0: 200, 5: 50, 20: 25} if quick else {0: 1000, 5: 200, 20: 100},
            memory_mb=10,
            node=not args.no_node,
            max_background=args.max_background,
        )


@dataclass(frozen=True)
class Client:
    """A client configuration: which worker runs it, with how many connections."""

    label: str
    name: str  # worker.py's CLIENT, or "nodemailer" for node/bench.js
    concurrency: int = 8

    def command(
        self, port: int, message: Path, count: int, warmup: int, limit: float
    ) -> list[str]:
        options = {
            "--port": port,
            "--message": message,
            "--count": count,
            "--warmup": warmup,
            "--concurrency": self.concurrency,
            "--max-seconds": limit,
        }
        flat = [str(x) for pair in options.items() for x in pair]
        if self.name == "nodemailer":
            return h.node_worker(*flat)
        return h.python_worker("throughput", self.name, *flat)


SMTPX_1 = Client("smtpx 1 conn", "smtpx")
AIOSMTPLIB_1 = Client("aiosmtplib 1 conn", "aiosmtplib")
SMTPLIB_1 = Client("smtplib 1 conn", "smtplib")
SMTPX_DATA = Client("smtpx 1 conn, chunking=False", "smtpx-data")
SMTPX_PREPARED = Client("smtpx 1 conn, envelope built once (diagnostic)", "smtpx-prepared")
SMTPX_POOL = Client("smtpx pool 8", "smtpx-pool")
AIOSMTPLIB_8 = Client("aiosmtplib 8 conns", "aiosmtplib-multi")
NODEMAILER = Client("nodemailer pool 8", "nodemailer")


@dataclass(frozen=True)
class Pairing:
    smtpx: str
    peer: str
    server: str
    target: float | None
    why: str = ""


# ---------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------

Results = dict[tuple[str, str], list[h.Run]]  # (server, client) -> runs
Errors = dict[tuple[str, str], str]


def measure(
    plan: Sequence[tuple[h.Server, Client, int]],
    settings: Settings,
    message: Path,
    results: Results,
    errors: Errors,
    warmup: int | None = None,
) -> None:
    """Run every (server, client, count) of ``plan`` ``settings.reps`` times, interleaved."""
    warmup = settings.warmup if warmup is None else warmup
    for rep in range(1, settings.reps + 1):
        print(f"  repetition {rep}/{settings.reps}:", end="", flush=True)
        for server, client, count in plan:
            key = (server.name, client.label)
            if key in errors:
                continue
            argv = client.command(server.port, message, count, warmup, settings.max_seconds)
            out = run_quietly(argv, settings, server)
            if "error" in out:
                errors[key] = out["error"]
                print(f" [{client.label} @ {server.name}: ERROR]", end="", flush=True)
                continue
            if out["messages"] < count:
                errors[key] = f"stopped at the time limit after {out['messages']} of {count}"
            run = h.Run(
                client.label,
                out["messages"],
                out["seconds"],
                out["cpu_seconds"],
                out.get("server_cpu_seconds"),
                out,
            )
            results.setdefault(key, []).append(run)
            print(".", end="", flush=True)
        print(flush=True)


def run_quietly(argv: list[str], settings: Settings, server: h.Server) -> dict[str, Any]:
    """Run a worker; while other processes took more than ``settings.max_background`` % of
    a core during the run, wait for quiet and run it again (at most twice more)."""
    for attempt in range(3):
        out = h.run_worker(argv, time_limit=settings.max_seconds * 2, server=server)
        load = out.get("background_cpu_pct", 0.0)
        if "error" in out or load <= settings.max_background or attempt == 2:
            out["attempts"] = attempt + 1
            return out
        print(f"~({load:.0f}%)", end="", flush=True)
        h.wait_until_quiet(settings.max_seconds)
    raise AssertionError("unreachable")


def rate(results: Results, key: tuple[str, str]) -> float:
    return h.median([r.rate for r in results.get(key, [])])


def cpu_us(results: Results, key: tuple[str, str]) -> float:
    return h.median([r.cpu_us for r in results.get(key, [])])


def per_rep_ratios(results: Results, a: tuple[str, str], b: tuple[str, str]) -> list[float]:
    return [x.rate / y.rate for x, y in zip(results.get(a, []), results.get(b, []), strict=False)]


def results_table(
    results: Results, errors: Errors, server: h.Server, labels: Sequence[str]
) -> str:
    rows = []
    for label in labels:
        key = (server.name, label)
        runs = results.get(key, [])
        if not runs:
            rows.append([label, "-", "-", "-", "-", "-", "-", errors.get(key, "not run")])
            continue
        rates = [r.rate for r in runs]
        sink = [
            r.server_cpu_seconds / (r.messages + r.extra.get("warmup", 0)) * 1e6
            for r in runs
            if r.server_cpu_seconds is not None
        ]
        rows.append(
            [
                label,
                h.fmt(h.median(rates)),
                f"{h.fmt(min(rates))}-{h.fmt(max(rates))}",
                h.fmt(h.median([r.cpu_us for r in runs])),
                h.fmt(h.median(sink)) if sink else "-",
                _background(runs),
                str(len(runs)),
                errors.get(key, ""),
            ]
        )
    headers = [
        "client",
        "msg/s",
        "range",
        "CPU µs/msg",
        "server CPU µs/msg",
        "others' CPU % (max)",
        "runs",
        "note",
    ]
    return h.table(headers, rows)


def _background(runs: Sequence[h.Run]) -> str:
    """The largest share of a core other processes used during any of ``runs``."""
    loads = [r.extra["background_cpu_pct"] for r in runs if "background_cpu_pct" in r.extra]
    return h.fmt(max(loads)) if loads else "-"


def ratio_rows(results: Results, pairings: Sequence[Pairing]) -> list[list[str]]:
    rows = []
    for p in pairings:
        a, b = (p.server, p.smtpx), (p.server, p.peer)
        ra, rb = rate(results, a), rate(results, b)
        ratio = ra / rb if rb == rb and rb else float("nan")
        reps = per_rep_ratios(results, a, b)
        spread = f"{min(reps):.2f}-{max(reps):.2f}" if reps else "-"
        cpu = cpu_us(results, a) / cpu_us(results, b) if (a in results and b in results) else None
        if p.target is None or ratio != ratio:
            verdict = "-" if p.target is None else "no data"
        else:
            verdict = "met" if ratio >= p.target else "NOT met"
        rows.append(
            [
                f"{p.smtpx} / {p.peer}",
                p.server,
                h.fmt(ra),
                h.fmt(rb),
                f"{ratio:.2f}x" if ratio == ratio else "-",
                spread,
                f"{cpu:.2f}x" if cpu is not None else "-",
                f">= {p.target:.2f}x{p.why}" if p.target is not None else "-",
                verdict,
            ]
        )
    return rows


RATIO_HEADERS = [
    "pairing (smtpx / peer)",
    "server",
    "smtpx msg/s",
    "peer msg/s",
    "ratio",
    "per-rep ratios",
    "CPU/msg ratio",
    "target",
    "verdict",
]


# ---------------------------------------------------------------------------------------
# Modes
# ---------------------------------------------------------------------------------------


def throughput(
    settings: Settings, processes: h.Processes, tmp: Path, node_note: str | None
) -> dict[str, Any]:
    message = tmp / "message-1k.eml"
    message.write_bytes(h.make_message(1024))
    sink = h.start_smtp_sink(processes, pipelining=True)
    sink_p = h.start_smtp_sink(processes, pipelining=False)
    aiosmtpd = h.start_aiosmtpd(processes)
    peers = [SMTPX_1, SMTPX_PREPARED, AIOSMTPLIB_1, SMTPLIB_1, SMTPX_POOL, AIOSMTPLIB_8]
    if node_note is None:
        peers.append(NODEMAILER)
    singles = [SMTPX_1, AIOSMTPLIB_1, SMTPLIB_1]
    plan = [(s, c, settings.count) for s in (sink, sink_p) for c in peers]
    plan += [(aiosmtpd, c, settings.count) for c in singles]
    print(
        f"1 KiB messages, one recipient, {settings.count} timed after {settings.warmup} "
        f"untimed, {settings.reps} repetitions; servers: {sink.name} :{sink.port}, "
        f"{sink_p.name} :{sink_p.port}, aiosmtpd :{aiosmtpd.port}",
        flush=True,
    )
    results: Results = {}
    errors: Errors = {}
    try:
        measure(plan, settings, message, results, errors)
    finally:
        for server in (aiosmtpd, sink_p, sink):
            processes.stop(server.proc)
    for server, title in (
        (sink, "smtp-sink, PIPELINING advertised"),
        (sink_p, "smtp-sink -p, no PIPELINING"),
        (aiosmtpd, "aiosmtpd (no PIPELINING)"),
    ):
        labels = [c.label for c in (peers if server is not aiosmtpd else singles)]
        if server is not aiosmtpd and node_note is not None:
            labels.append(NODEMAILER.label)
            errors[(server.name, NODEMAILER.label)] = f"skipped: {node_note}"
        print(f"\n### {title}\n\n{results_table(results, errors, server, labels)}")
    pairings = [
        Pairing(SMTPX_1.label, AIOSMTPLIB_1.label, sink.name, 1.3),
        Pairing(SMTPX_1.label, AIOSMTPLIB_1.label, sink_p.name, 0.95),
        Pairing(SMTPX_1.label, AIOSMTPLIB_1.label, aiosmtpd.name, 0.95),
        Pairing(SMTPX_POOL.label, NODEMAILER.label, sink.name, 1.5),
        Pairing(SMTPX_POOL.label, NODEMAILER.label, sink_p.name, None),
        Pairing(SMTPX_POOL.label, AIOSMTPLIB_8.label, sink.name, None),
        Pairing(SMTPX_POOL.label, AIOSMTPLIB_8.label, sink_p.name, None),
        Pairing(SMTPX_PREPARED.label, AIOSMTPLIB_1.label, sink.name, None),
        Pairing(SMTPX_PREPARED.label, AIOSMTPLIB_1.label, sink_p.name, None),
        Pairing(SMTPX_1.label, SMTPLIB_1.label, sink.name, None),
        Pairing(SMTPX_1.label, SMTPLIB_1.label, sink_p.name, None),
    ]
    ratios = h.table(RATIO_HEADERS, ratio_rows(results, pairings))
    print(f"\n### Ratios (msg/s of medians)\n\n{ratios}")
    print(
        "\nCPU/msg ratio: smtpx's CPU per message over the peer's (below 1 = smtpx cheaper)."
        "\nserver CPU µs/msg: the server process's CPU over the whole worker run, warm-up "
        "included.",
        flush=True,
    )
    return {
        "runs": _dump(results),
        "errors": {f"{k[0]} | {k[1]}": v for k, v in errors.items()},
        "smtpx_cpu_us": cpu_us(results, (sink.name, SMTPX_1.label)),
    }


def latency(settings: Settings, processes: h.Processes, tmp: Path) -> dict[str, Any]:
    message = tmp / "message-1k.eml"
    message.write_bytes(h.make_message(1024))
    sink = h.start_smtp_sink(processes, pipelining=True)
    sink_p = h.start_smtp_sink(processes, pipelining=False)
    results: Results = {}
    errors: Errors = {}
    rows: list[list[str]] = []
    measured: dict[str, float] = {}
    try:
        for rtt, count in settings.latency_counts.items():
            proxies = [h.start_proxy(processes, s, rtt) for s in (sink, sink_p)]
            try:
                for proxy in proxies:
                    measured[proxy.name] = h.measure_rtt(proxy.port)
                print(
                    f"RTT {rtt:g} ms (measured NOOP round trip "
                    f"{measured[proxies[0].name]:.2f} ms): {count} messages per run",
                    flush=True,
                )
                plan = [(p, c, count) for p in proxies for c in (SMTPX_1, AIOSMTPLIB_1)]
                measure(plan, settings, message, results, errors, warmup=5)
            finally:
                for proxy in proxies:
                    assert proxy.helper is not None
                    processes.stop(proxy.helper)
            for proxy in proxies:
                target = (1.8 if rtt >= 20 else None) if proxy.pipelining else 0.95
                a, b = (proxy.name, SMTPX_1.label), (proxy.name, AIOSMTPLIB_1.label)
                ra, rb = rate(results, a), rate(results, b)
                ratio = ra / rb if rb == rb and rb else float("nan")
                reps = per_rep_ratios(results, a, b)
                verdict = "-"
                if target is not None and ratio == ratio:
                    verdict = "met" if ratio >= target else "NOT met"
                rows.append(
                    [
                        f"{rtt:g}",
                        f"{measured[proxy.name]:.2f}",
                        "yes" if proxy.pipelining else "no (-p)",
                        str(count),
                        h.fmt(ra, 1),
                        h.fmt(rb, 1),
                        f"{ratio:.2f}x" if ratio == ratio else "-",
                        f"{min(reps):.2f}-{max(reps):.2f}" if reps else "-",
                        f">= {target:.2f}x" if target is not None else "-",
                        verdict,
                        _background([*results.get(a, []), *results.get(b, [])]),
                        "; ".join(errors[k] for k in (a, b) if k in errors),
                    ]
                )
    finally:
        for server in (sink_p, sink):
            processes.stop(server.proc)
    headers = [
        "RTT ms",
        "measured ms",
        "PIPELINING",
        "msgs",
        "smtpx msg/s",
        "aiosmtplib msg/s",
        "ratio",
        "per-rep ratios",
        "target",
        "verdict",
        "others' CPU % (max)",
        "note",
    ]
    print("\n### smtpx 1 conn vs aiosmtplib 1 conn through the delaying proxy\n")
    print(h.table(headers, rows))
    print(
        "\nmeasured ms: median NOOP round trip through the proxy (proxy + smtp-sink "
        "included).  Lock-step costs 4 round trips per message (MAIL, RCPT, DATA, end of "
        "data); pipelined, 2 (MAIL+RCPT+DATA, end of data): at high RTT the ceiling is 2.0x.",
        flush=True,
    )
    return {"runs": _dump(results), "rtt_ms": measured, "errors": _keys(errors)}


def chunking(settings: Settings, processes: h.Processes, tmp: Path) -> dict[str, Any]:
    """BDAT against DATA: smtp-sink offers no CHUNKING, so aiosmtpd with it (smtpx.testing)."""
    message = tmp / "message-1k.eml"
    message.write_bytes(h.make_message(1024))
    server = h.start_aiosmtpd_chunking(processes)
    results: Results = {}
    errors: Errors = {}
    rows: list[list[str]] = []
    clients = (SMTPX_1, SMTPX_DATA, AIOSMTPLIB_1)
    try:
        for rtt in (0.0, 20.0):
            count = settings.latency_counts[rtt]
            proxy = h.start_proxy(processes, server, rtt)
            try:
                measured = h.measure_rtt(proxy.port)
                print(f"RTT {rtt:g} ms (measured {measured:.2f} ms): {count} messages per run")
                plan = [(proxy, c, count) for c in clients]
                measure(plan, settings, message, results, errors, warmup=5)
            finally:
                assert proxy.helper is not None
                processes.stop(proxy.helper)
            bdat, data, peer = (rate(results, (proxy.name, c.label)) for c in clients)
            rows.append(
                [
                    f"{rtt:g}",
                    f"{measured:.2f}",
                    str(count),
                    h.fmt(bdat, 1),
                    h.fmt(data, 1),
                    h.fmt(peer, 1),
                    f"{bdat / data:.2f}x" if data else "-",
                    f"{bdat / peer:.2f}x" if peer else "-",
                    _background(
                        [r for c in clients for r in results.get((proxy.name, c.label), [])]
                    ),
                    "; ".join(errors[k] for k in errors if k[0] == proxy.name),
                ]
            )
    finally:
        processes.stop(server.proc)
    print("\n### CHUNKING: BDAT vs DATA vs aiosmtplib, aiosmtpd +CHUNKING through the proxy\n")
    print(
        h.table(
            [
                "RTT ms",
                "measured ms",
                "msgs",
                "smtpx BDAT msg/s",
                "smtpx DATA msg/s",
                "aiosmtplib msg/s",
                "BDAT / DATA",
                "BDAT / aiosmtplib",
                "others' CPU % (max)",
                "note",
            ],
            rows,
        )
    )
    print(
        "\nsmtpx pipelines MAIL, RCPT and BDAT <size> LAST with the message in one write: "
        "1 round trip per message, against 2 with DATA (the message waits for the 354) and "
        "4 for aiosmtplib (lock-step, no BDAT).  The server is pure Python, so at 0 ms it "
        "is the bottleneck.",
        flush=True,
    )
    return {"runs": _dump(results), "errors": _keys(errors)}


# The memory mode's two messages: the harness's own (nothing for a client to rewrite)
# and a worst case for smtpx (every body line needs its ending fixed and a dot added).
MEMORY_VARIANTS = {
    "CRLF": "CRLF line endings, no line starting with '.'",
    "LF+dots": "body lines end in a bare LF and start with '.'",
}


def _memory_message(variant: str, size: int) -> bytes:
    message = h.make_message(size)
    if variant == "LF+dots":
        message = message.replace(b"\r\nThe ", b"\n.The ")
    return message


def memory(settings: Settings, processes: h.Processes, tmp: Path) -> dict[str, Any]:
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
    settings: Settings, processes: h.Processes, tmp: Path, smtpx_cpu_us: float | None
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
        message = tmp / "message-1k.eml"
        message.write_bytes(h.make_message(1024))
        sink = h.start_smtp_sink(processes, pipelining=True)
        results: Results = {}
        errors: Errors = {}
        try:
            measure([(sink, SMTPX_1, settings.count)], settings, message, results, errors)
        finally:
            processes.stop(sink.proc)
        smtpx_cpu_us = cpu_us(results, (sink.name, SMTPX_1.label))
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
    settings: Settings, processes: h.Processes, tmp: Path, client: str, pipelining: bool
) -> dict[str, Any]:
    import pstats

    message = tmp / "message-1k.eml"
    message.write_bytes(h.make_message(1024))
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


def _dump(results: Results) -> dict[str, list[dict[str, Any]]]:
    return {f"{k[0]} | {k[1]}": [r.extra for r in runs] for k, runs in results.items()}


def _keys(errors: Errors) -> dict[str, str]:
    return {f"{k[0]} | {k[1]}": v for k, v in errors.items()}


# ---------------------------------------------------------------------------------------


def _version(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return "-"
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else "-"


def machine() -> dict[str, str]:
    from importlib.metadata import version

    cpu = "-"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    node_dir = h.HERE / "node" / "node_modules" / "nodemailer" / "package.json"
    commit = _version(["git", "-C", str(h.ROOT), "describe", "--always", "--dirty"])
    changed = subprocess.run(
        ["git", "-C", str(h.ROOT), "status", "--porcelain", "--", "smtpx"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    ).stdout.split("\n")
    changed_files = [line[3:] for line in changed if line.strip()]
    info = {
        "date (UTC)": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "smtpx": f"{version('smtpx')} (git {commit})",
        "smtpx/ changes not committed": ", ".join(changed_files) or "none",
        "aiosmtplib": version("aiosmtplib"),
        "aiosmtpd": version("aiosmtpd"),
        "postfix (smtp-sink)": _version(["/usr/sbin/postconf", "-dh", "mail_version"]),
        "node": _version(["node", "--version"]) if shutil.which("node") else "absent",
        "nodemailer": json.loads(node_dir.read_text())["version"] if node_dir.exists() else "-",
        "event loop": "asyncio default (no uvloop) for every Python client",
    }
    return info


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages and repetitions")
    parser.add_argument("--mode", choices=MODES, default="all")
    parser.add_argument("--reps", type=int, default=0, help="repetitions (default 5, quick 3)")
    parser.add_argument("--count", type=int, default=0, help="messages per throughput run")
    parser.add_argument("--no-node", action="store_true", help="leave nodemailer out")
    parser.add_argument(
        "--profile-client",
        default="smtpx",
        help="worker.py client for --mode profile (smtpx, smtpx-prepared, smtpx-pool, ...)",
    )
    parser.add_argument(
        "--profile-no-pipelining", action="store_true", help="profile against smtp-sink -p"
    )
    parser.add_argument("--json", type=Path, help="also write every raw result here")
    parser.add_argument(
        "--max-background",
        type=float,
        default=20.0,
        help="rerun a measurement (twice at most) when other processes used more than "
        "this %% of a core during it (default 20)",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=120.0,
        help="wait up to this many seconds for other processes to go quiet first",
    )
    args = parser.parse_args(argv)
    settings = Settings.from_args(args)
    every = ("throughput", "latency", "chunking", "memory", "classify")
    modes = every if args.mode == "all" else (args.mode,)

    h.install_signal_handlers()
    processes = h.Processes()
    report: dict[str, Any] = {"command": " ".join(["benchmarks/run.py", *(argv or sys.argv[1:])])}
    with tempfile.TemporaryDirectory(prefix="smtpx-bench-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            report["machine"] = info = machine()
            print("# smtpx benchmark\n")
            print(h.table(["", ""], [[k, v] for k, v in info.items()]))
            load = h.wait_until_quiet(args.wait_idle)
            quiet = "-" if load is None else f"{load:.0f}% of a core"
            info["others' CPU at start"] = quiet
            print(f"\nother processes' CPU at start: {quiet}")
            node_note = None
            if "throughput" in modes:
                node_note = h.ensure_nodemailer() if settings.node else "--no-node given"
                if node_note:
                    print(f"\nnodemailer skipped: {node_note}")
            for mode in modes:
                with h.section(mode):
                    if mode == "throughput":
                        report[mode] = throughput(settings, processes, tmp, node_note)
                    elif mode == "latency":
                        report[mode] = latency(settings, processes, tmp)
                    elif mode == "chunking":
                        report[mode] = chunking(settings, processes, tmp)
                    elif mode == "memory":
                        report[mode] = memory(settings, processes, tmp)
                    elif mode == "classify":
                        cpu = report.get("throughput", {}).get("smtpx_cpu_us")
                        report[mode] = classify(settings, processes, tmp, cpu)
                    else:
                        report[mode] = profile(
                            settings,
                            processes,
                            tmp,
                            args.profile_client,
                            not args.profile_no_pipelining,
                        )
        except KeyboardInterrupt:
            print("\ninterrupted: stopping servers", file=sys.stderr)
            return 130
        except h.HarnessError as exc:
            print(f"\nharness error: {exc}", file=sys.stderr)
            return 2
        finally:
            processes.stop_all()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
        print(f"\nraw results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
