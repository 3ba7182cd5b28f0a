"""What durability costs: messages/s through the outbox (SQLite) against direct Pool.send.

    .venv/bin/python benchmarks/outbox.py [--messages 2000] [--size 1024] [--connections 4]

Against one ``smtp-sink`` (PIPELINING, no CHUNKING) on a free 127.0.0.1 port.  Three
figures, each from a fresh database: ``put`` alone (the application's side: one
transaction and fsync per message), ``run`` alone (the worker's side: three short
transactions per attempt -- claim, end marker, outcome), and direct ``Pool.send`` of the
same messages with the same pool size.  Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _harness as h

import smtpx
from smtpx.outbox import Outbox, State


def filesystem(path: Path) -> str:
    result = subprocess.run(
        ["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "?"


async def direct(port: int, messages: list[bytes], connections: int) -> float:
    started = time.perf_counter()
    async with smtpx.Pool(
        h.HOST, port, size=connections, tls=smtpx.TLSMode.NONE, local_hostname="bench.test"
    ) as pool:
        await asyncio.gather(*(pool.send(m) for m in messages))
    return time.perf_counter() - started


async def through_outbox(
    port: int, messages: list[bytes], connections: int, folder: Path, fsync: bool
) -> tuple[float, float]:
    with Outbox(folder / f"outbox-{fsync}.db", fsync=fsync) as outbox:
        started = time.perf_counter()
        for i, message in enumerate(messages):
            await outbox.put(message, key=f"bench-{i}")
        put_seconds = time.perf_counter() - started
        started = time.perf_counter()
        async with smtpx.Pool(
            h.HOST, port, size=connections, tls=smtpx.TLSMode.NONE, local_hostname="bench.test"
        ) as pool:
            await outbox.run(pool, until_idle=True)
        run_seconds = time.perf_counter() - started
        accepted = outbox.stats().count(State.ACCEPTED)
        if accepted != len(messages):
            raise h.HarnessError(f"only {accepted} of {len(messages)} accepted")
    return put_seconds, run_seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--dir", type=Path, default=None, help="where the database goes")
    args = parser.parse_args(argv)
    processes = h.Processes()
    h.install_signal_handlers()
    try:
        sink = h.start_smtp_sink(processes, pipelining=True)
        message = h.make_message(args.size)
        messages = [message] * args.messages
        folder = Path(tempfile.mkdtemp(dir=args.dir))
        direct_seconds = asyncio.run(direct(sink.port, messages, args.connections))
        durable = {
            fsync: asyncio.run(
                through_outbox(sink.port, messages, args.connections, folder, fsync)
            )
            for fsync in (True, False)
        }
    finally:
        processes.stop_all()
    n = args.messages
    print(
        f"{n} messages of {args.size} octets, {args.connections} connections, "
        f"database on {filesystem(folder)} ({folder}), Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs"
    )
    print("| path | messages/s | ms per message |")
    print("|---|---:|---:|")
    rows = [("Pool.send, direct", direct_seconds)]
    for fsync, (put_seconds, run_seconds) in durable.items():
        label = "fsync=True" if fsync else "fsync=False"
        rows += [
            (f"Outbox.put, {label} (store only)", put_seconds),
            (f"Outbox.run, {label} (deliver stored)", run_seconds),
            (f"put + run, {label}", put_seconds + run_seconds),
        ]
    for name, seconds in rows:
        print(f"| {name} | {n / seconds:,.0f} | {1000 * seconds / n:.2f} |")
    for fsync, (put_seconds, run_seconds) in durable.items():
        cost = (put_seconds + run_seconds - direct_seconds) / n * 1000
        print(f"fsync={fsync}: durability costs {cost:.2f} ms per message over a direct send")


if __name__ == "__main__":
    main()
