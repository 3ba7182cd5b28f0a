"""What every mode of ``run.py`` shares: settings, client configurations, the interleaved
measuring loop, and the result tables."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _harness as h


@dataclass(frozen=True)
class Settings:
    quick: bool
    reps: int
    count: int  # throughput messages per run
    warmup: int
    max_seconds: float  # per run
    latency_counts: dict[float, int]  # RTT ms -> messages (per connection for the pools)
    latency_reps: int  # the delayed runs vary little between repetitions: fewer in --quick
    connection_levels: tuple[int, ...]  # the connections mode's pool sizes
    recipient_counts: dict[int, int]  # recipients per message -> messages per run
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
            latency_counts={0: 200, 5: 30, 20: 12} if quick else {0: 1000, 5: 200, 20: 100},
            latency_reps=args.reps or (2 if quick else 5),
            connection_levels=(1, 8, 32, 64),
            recipient_counts={1: 500, 10: 250, 100: 50}
            if quick
            else {1: 3000, 10: 1500, 100: 300},
            memory_mb=10,
            node=not args.no_node,
            max_background=args.max_background,
        )


@dataclass(frozen=True)
class Client:
    """A client configuration: which worker runs it, with how many connections, and (when
    ``recipients``) how many explicit envelope recipients per message."""

    label: str
    name: str  # worker.py's CLIENT, or "nodemailer" for node/bench.js
    concurrency: int = 8
    recipients: int = 0

    @property
    def connections(self) -> int:
        return 1 if self.name in SINGLE_CONNECTION else self.concurrency

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
        if self.recipients:
            options["--recipients"] = self.recipients
        flat = [str(x) for pair in options.items() for x in pair]
        if self.name == "nodemailer":
            return h.node_worker(*flat)
        return h.python_worker("throughput", self.name, *flat)


SINGLE_CONNECTION = (
    "smtpx",
    "smtpx-data",
    "smtpx-prepared",
    "smtpx-many",
    "aiosmtplib",
    "smtplib",
    "floor",
)
FLOOR = "raw-socket floor"  # the label prefix charts.py recognises

SMTPX_1 = Client("smtpx 1 conn", "smtpx")
AIOSMTPLIB_1 = Client("aiosmtplib 1 conn", "aiosmtplib")
SMTPLIB_1 = Client("smtplib 1 conn", "smtplib")
SMTPX_DATA = Client("smtpx 1 conn, chunking=False", "smtpx-data")
SMTPX_PREPARED = Client("smtpx 1 conn, envelope built once (diagnostic)", "smtpx-prepared")
SMTPX_POOL = Client("smtpx pool 8", "smtpx-pool")
SMTPX_MANY = Client("smtpx 1 conn, send_many", "smtpx-many")
SMTPX_POOL_MANY = Client("smtpx pool 8, send_many", "smtpx-pool-many")
AIOSMTPLIB_8 = Client("aiosmtplib 8 conns", "aiosmtplib-multi")
NODEMAILER = Client("nodemailer pool 8", "nodemailer")
FLOOR_1 = Client(f"{FLOOR} 1 conn", "floor")
FLOOR_8 = Client(f"{FLOOR} 8 conns", "floor-multi")


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
    reps: int | None = None,
) -> None:
    """Run every (server, client, count) of ``plan`` ``reps`` (default ``settings.reps``)
    times, interleaved.
    A client of C connections gets at least 2C untimed messages, so all C are open."""
    warmup = settings.warmup if warmup is None else warmup
    reps = settings.reps if reps is None else reps
    for rep in range(1, reps + 1):
        print(f"  repetition {rep}/{reps}:", end="", flush=True)
        for server, client, count in plan:
            key = (server.name, client.label)
            if key in errors:
                continue
            untimed = max(warmup, 2 * client.connections) if client.connections > 1 else warmup
            argv = client.command(server.port, message, count, untimed, settings.max_seconds)
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
                background(runs),
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


RATE_HEADERS = ["server", "client", "msg/s", "range", "CPU µs/msg", "runs", "note"]


def rate_row(results: Results, errors: Errors, server: str, label: str) -> list[str]:
    runs = results.get((server, label), [])
    rates = [r.rate for r in runs]
    return [
        server,
        label,
        h.fmt(h.median(rates), 1),
        f"{h.fmt(min(rates), 1)}-{h.fmt(max(rates), 1)}" if rates else "-",
        h.fmt(h.median([r.cpu_us for r in runs])),
        str(len(runs)),
        errors.get((server, label), ""),
    ]


def background(runs: Sequence[h.Run]) -> str:
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


def dump_runs(results: Results) -> dict[str, list[dict[str, Any]]]:
    return {f"{k[0]} | {k[1]}": [r.extra for r in runs] for k, runs in results.items()}


def dump_errors(errors: Errors) -> dict[str, str]:
    return {f"{k[0]} | {k[1]}": v for k, v in errors.items()}
