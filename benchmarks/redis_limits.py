"""Messages/s with limits shared through Redis, from 1, 2 and 4 sending processes.

    .venv/bin/python benchmarks/redis_limits.py [--messages 2000] [--rate 0]

Each process sends its share of ``--messages`` through a ``SharedLimitPool`` (4
connections, ``max_concurrent`` 8 across all processes; ``--rate`` messages/s in all,
0 for none) to one ``smtp-sink``, against one ``redis-server`` on a free port; and, for
comparison, through a plain ``Pool``.  Every server is stopped by PID at the end.  Not
part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time

import _harness as h

CHILD = """
import asyncio, json, sys, time
from redis.asyncio import Redis
import smtpx
from smtpx.contrib.redis import SharedLimitPool
spec = json.loads(sys.argv[1])
message = bytes.fromhex(spec["message"])
plain = {"tls": smtpx.TLSMode.NONE, "local_hostname": "bench.test"}
async def main():
    if spec["shared"]:
        redis = Redis(host="127.0.0.1", port=spec["redis"])
        rate = spec["rate"] or None
        pool = SharedLimitPool("127.0.0.1", spec["port"], redis=redis, key="bench",
                               rate=rate, burst=1, max_concurrent=8, size=4, **plain)
    else:
        pool = smtpx.Pool("127.0.0.1", spec["port"], size=4, **plain)
    async with pool:
        await asyncio.gather(*(pool.send(message) for _ in range(spec["count"])))
asyncio.run(main())
"""


def start_redis(processes: h.Processes) -> int:
    binary = shutil.which("redis-server")
    if binary is None:
        raise h.HarnessError("redis-server is not installed")
    port = h.free_port()
    workdir = tempfile.mkdtemp()
    proc = processes.add(
        subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir],
            stdout=subprocess.DEVNULL,
        )
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            import socket

            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise h.HarnessError("redis-server did not start")


def run(workers: int, total: int, spec: dict[str, object]) -> float:
    share = {**spec, "count": total // workers}
    started = time.perf_counter()
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(share)]) for _ in range(workers)
    ]
    for child in children:
        if child.wait(timeout=600) != 0:
            raise h.HarnessError("a sending process failed")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=0.0)
    args = parser.parse_args(argv)
    processes = h.Processes()
    h.install_signal_handlers()
    rows = []
    try:
        sink = h.start_smtp_sink(processes, pipelining=True)
        redis_port = start_redis(processes)
        message = h.make_message(1024).hex()
        for workers in (1, 2, 4):
            for shared in (False, True):
                spec = {"port": sink.port, "redis": redis_port, "message": message}
                spec |= {"shared": shared, "rate": args.rate}
                seconds = run(workers, args.messages, spec)
                rows.append((workers, shared, args.messages / seconds))
    finally:
        processes.stop_all()
    rate = f"{args.rate:g}/s shared" if args.rate else "no rate limit"
    print(f"{args.messages} messages of 1 KiB, {rate}; 4 connections per process")
    print("| processes | plain Pool, messages/s | SharedLimitPool, messages/s |")
    print("|---:|---:|---:|")
    for workers in (1, 2, 4):
        plain = next(r for w, s, r in rows if w == workers and not s)
        shared = next(r for w, s, r in rows if w == workers and s)
        print(f"| {workers} | {plain:,.0f} | {shared:,.0f} |")


if __name__ == "__main__":
    main()
