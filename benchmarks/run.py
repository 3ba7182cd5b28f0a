"""The smtpx benchmark: smtpx against raw aiosmtplib, smtplib, nodemailer and a raw-socket
floor, same run.

    .venv/bin/python benchmarks/run.py [--quick] [--mode MODE] [--json FILE] [--charts DIR]
    .venv/bin/python benchmarks/run.py --from-json FILE --charts DIR   # charts, no run
    .venv/bin/python benchmarks/run.py --mode profile     # cProfile of smtpx's send loop

Servers: Postfix's ``smtp-sink`` on free 127.0.0.1 ports, once advertising PIPELINING and
once not (``-p``), and aiosmtpd in a subprocess; latency mode puts a delaying TCP proxy
in front.  Each measurement runs in a fresh subprocess (``worker.py``, ``node/bench.js``)
so its CPU time is its own.  Repetitions are interleaved (rep 1 of every client, then
rep 2, ...) and the tables show medians.  Every server and proxy is stopped by PID at the
end, also on Ctrl-C.  ``--charts`` draws SVG charts (``charts.py``, matplotlib) from the
same JSON ``--json`` writes.  Nothing here is part of the test suite.
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
from pathlib import Path
from typing import Any

import _harness as h
import _loopback
import _measure as m
import _micro
import _scaling

EVERY = ("throughput", "latency", "connections", "recipients", "chunking", "memory", "classify")
MODES = (*EVERY, "all", "profile")


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


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
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
        "--charts", type=Path, metavar="DIR", help="draw the SVG charts of the run into DIR"
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="FILE",
        help="run nothing: draw the charts (--charts) of the run FILE holds",
    )
    parser.add_argument(
        "--reasons-json",
        type=Path,
        metavar="FILE",
        help='run nothing: draw the per-reason recall chart of FILE ({reason: {"recall": '
        '0..1, "cases": n}}) into --charts',
    )
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
    if (args.from_json or args.reasons_json) and args.charts is None:
        parser.error("--from-json and --reasons-json draw charts: give --charts DIR")
    for given in (args.from_json, args.reasons_json):
        if given is not None and not given.is_file():
            parser.error(f"{given}: no such file")
    if args.charts is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--charts needs matplotlib: pip install -e '.[bench]'")
    return args


def draw_charts(report: dict[str, Any], outdir: Path) -> None:
    import charts

    for name, skipped in charts.draw(report, outdir).items():
        print(f"  {outdir / name}" + (f": skipped, {skipped}" if skipped else ""))


def run(args: argparse.Namespace, command: str) -> dict[str, Any] | int:
    """Run the modes asked for; the report, or an exit status when the run failed."""
    settings = m.Settings.from_args(args)
    modes = EVERY if args.mode == "all" else (args.mode,)
    h.install_signal_handlers()
    processes = h.Processes()
    report: dict[str, Any] = {"command": command}
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
            if {"throughput", "latency", "connections"} & set(modes):
                node_note = h.ensure_nodemailer() if settings.node else "--no-node given"
                if node_note:
                    print(f"\nnodemailer skipped: {node_note}")
                info["nodemailer"] = machine()["nodemailer"]  # npm ci may have just run
            for mode in modes:
                with h.section(mode):
                    report[mode] = run_mode(
                        mode, args, settings, processes, tmp, node_note, report
                    )
        except KeyboardInterrupt:
            print("\ninterrupted: stopping servers", file=sys.stderr)
            return 130
        except h.HarnessError as exc:
            print(f"\nharness error: {exc}", file=sys.stderr)
            return 2
        finally:
            processes.stop_all()
    return report


def run_mode(
    mode: str,
    args: argparse.Namespace,
    settings: m.Settings,
    processes: h.Processes,
    tmp: Path,
    node_note: str | None,
    report: dict[str, Any],
) -> dict[str, Any]:
    if mode == "throughput":
        return _loopback.throughput(settings, processes, tmp, node_note)
    if mode == "latency":
        return _loopback.latency(settings, processes, tmp, node_note)
    if mode == "connections":
        return _scaling.connections(settings, processes, tmp, node_note)
    if mode == "recipients":
        return _scaling.recipients(settings, processes, tmp)
    if mode == "chunking":
        return _loopback.chunking(settings, processes, tmp)
    if mode == "memory":
        return _micro.memory(settings, processes, tmp)
    if mode == "classify":
        cpu = report.get("throughput", {}).get("smtpx_cpu_us")
        return _micro.classify(settings, processes, tmp, cpu)
    return _micro.profile(
        settings, processes, tmp, args.profile_client, not args.profile_no_pipelining
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    command = " ".join(["benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)])
    if args.reasons_json is not None:
        import charts

        note = f"From {args.reasons_json.name}; smtpx {machine()['smtpx']}."
        print(f"  {charts.draw_reasons(args.reasons_json, args.charts, note)}")
    if args.from_json is not None:
        import charts

        draw_charts(charts.load(args.from_json), args.charts)
    if args.from_json is not None or args.reasons_json is not None:
        return 0
    report = run(args, command)
    if isinstance(report, int):
        return report
    text = json.dumps(report, indent=2, default=str)
    if args.json:
        args.json.write_text(text)
        print(f"\nraw results: {args.json}")
    if args.charts is not None:
        print(f"\ncharts into {args.charts}:")
        draw_charts(json.loads(text), args.charts)  # what --json holds, nothing more
    return 0


if __name__ == "__main__":
    sys.exit(main())
