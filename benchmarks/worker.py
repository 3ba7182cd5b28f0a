"""One benchmark client in its own process; prints one JSON object as its last line.

    worker.py throughput CLIENT --port P --message FILE --count N [--warmup W]
              [--concurrency C] [--feeders F] [--recipients R] [--max-seconds S]
              [--profile OUT]
    worker.py memory CLIENT --port P --message FILE
    worker.py classify [--iterations N]

CLIENT is ``smtpx`` (one ``smtpx.Client``), ``smtpx-data`` (the same with
``chunking=False``), ``smtpx-prepared`` (the same, envelope built once: a diagnostic),
``smtpx-pool`` (``smtpx.Pool`` of C), ``smtpx-many`` (one ``smtpx.Client``, the messages
queued up front and sent with ``send_many``), ``smtpx-pool-many`` (the same on
``smtpx.Pool`` of C),
``aiosmtplib`` (one ``aiosmtplib.SMTP``, ``sendmail`` loop), ``aiosmtplib-multi``
(C tasks, each with its own ``aiosmtplib.SMTP``), ``smtplib`` (stdlib, one connection),
``floor`` or ``floor-multi`` (the raw-socket floor of ``floor.py``, on 1 or C connections).

Recipients: by default smtpx reads them from the message's To header (as users do) and
the others are given the one recipient; with ``--recipients R`` every client is given
the same R envelope recipients explicitly (``sink0@example.net`` ...).

Throughput: W untimed messages first (connections opened, caches warm), then N timed
ones; the CPU time is this process's user+system time (``getrusage``) over the timed
part only.  Every loop stops after N messages or S seconds, whichever comes first.
Memory: peak RSS (``ru_maxrss``) before and after sending the message once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import resource
import smtplib
import sys
import time
import timeit
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosmtplib
from floor import open_floor

import smtpx
import smtpx.protocol

HOST = "127.0.0.1"
SENDER = "bench@example.com"
RECIPIENT = "sink@example.net"
LOCAL_HOSTNAME = "bench.local"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


# ---------------------------------------------------------------------------------------
# Clients.  Each factory opens its connection(s) and returns (send_one, close); send_one
# sends the message once and raises unless every recipient accepted it.  ``rcpts`` is
# None for "read them from the headers" (smtpx) or the one recipient (the others).
# ---------------------------------------------------------------------------------------

Send = Callable[[], Awaitable[None]]
Rcpts = tuple[str, ...] | None


def recipients_of(rcpts: Rcpts) -> tuple[str, ...]:
    return rcpts if rcpts is not None else (RECIPIENT,)


def _smtpx_options() -> dict[str, Any]:
    return {"tls": smtpx.TLSMode.NONE, "local_hostname": LOCAL_HOSTNAME, "timeout": 30.0}


async def open_smtpx(
    port: int, message: bytes, _c: int, rcpts: Rcpts
) -> tuple[Send, Callable[[], Any]]:
    return await _open_smtpx(port, message, rcpts)


async def open_smtpx_data(
    port: int, message: bytes, _c: int, rcpts: Rcpts
) -> tuple[Send, Callable[[], Any]]:
    """smtpx with ``chunking=False``: DATA even where the server offers CHUNKING."""
    return await _open_smtpx(port, message, rcpts, chunking=False)


def _envelope(rcpts: Rcpts) -> dict[str, Any]:
    """smtpx.send's keywords: none (From/To read from the headers, as users do) or both."""
    return {} if rcpts is None else {"sender": SENDER, "recipients": rcpts}


async def _open_smtpx(
    port: int, message: bytes, rcpts: Rcpts, **options: Any
) -> tuple[Send, Callable[[], Any]]:
    client = smtpx.Client(HOST, port, **_smtpx_options(), **options)
    await client.connect()
    envelope, expected = _envelope(rcpts), recipients_of(rcpts)

    async def send() -> None:
        result = await client.send(message, **envelope)
        if result.accepted != expected:
            raise RuntimeError(f"not accepted: {result}")

    return send, client.quit


async def open_smtpx_prepared(
    port: int, message: bytes, _c: int, rcpts: Rcpts
) -> tuple[Send, Callable[[], Any]]:
    """Diagnostic: the envelope built once (``prepare``: header parsing, dot-stuffing), then
    only the transaction per message, to show what ``prepare`` costs inside ``send``."""
    from smtpx._message import prepare

    client = smtpx.Client(HOST, port, **_smtpx_options())
    await client.connect()
    envelope = prepare(message, **_envelope(rcpts))
    expected = recipients_of(rcpts)

    async def send() -> None:
        result = await client.send_envelope(envelope)
        if result.accepted != expected:
            raise RuntimeError(f"not accepted: {result}")

    return send, client.quit


async def open_smtpx_pool(
    port: int, message: bytes, size: int, rcpts: Rcpts
) -> tuple[Send, Callable[[], Any]]:
    pool = smtpx.Pool(HOST, port, size=size, **_smtpx_options())
    envelope, expected = _envelope(rcpts), recipients_of(rcpts)

    async def send() -> None:
        result = await pool.send(message, **envelope)
        if result.accepted != expected:
            raise RuntimeError(f"not accepted: {result}")

    return send, pool.close


def _aiosmtplib_client(port: int) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=HOST,
        port=port,
        use_tls=False,
        start_tls=False,
        local_hostname=LOCAL_HOSTNAME,
        timeout=30.0,
    )


async def open_aiosmtplib(
    port: int, message: bytes, _c: int, rcpts: Rcpts
) -> tuple[Send, Callable[[], Any]]:
    smtp = _aiosmtplib_client(port)
    await smtp.connect()
    recipients = list(recipients_of(rcpts))

    async def send() -> None:
        errors, _reply = await smtp.sendmail(SENDER, recipients, message)
        if errors:
            raise RuntimeError(f"refused: {errors}")

    return send, smtp.quit


async def open_aiosmtplib_multi(
    port: int, message: bytes, size: int, rcpts: Rcpts
) -> tuple[Send, Callable[[], Any]]:
    """C connections and no pool: a send takes a free connection from a queue.  There are
    C feeders, so one is always free: the same as C tasks each with its own SMTP."""
    every = [_aiosmtplib_client(port) for _ in range(size)]
    await asyncio.gather(*(smtp.connect() for smtp in every))
    idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
    for smtp in every:
        idle.put_nowait(smtp)
    recipients = list(recipients_of(rcpts))

    async def send() -> None:
        smtp = idle.get_nowait()  # never empty: at most C feeders
        try:
            errors, _reply = await smtp.sendmail(SENDER, recipients, message)
        finally:
            idle.put_nowait(smtp)
        if errors:
            raise RuntimeError(f"refused: {errors}")

    async def close() -> None:
        await asyncio.gather(*(smtp.quit() for smtp in every))

    return send, close


async def open_floor_1(
    port: int, message: bytes, _c: int, rcpts: Rcpts
) -> tuple[Send, Callable[[], Any]]:
    return await open_floor(HOST, port, LOCAL_HOSTNAME, SENDER, recipients_of(rcpts), message, 1)


async def open_floor_multi(
    port: int, message: bytes, size: int, rcpts: Rcpts
) -> tuple[Send, Callable[[], Any]]:
    return await open_floor(
        HOST, port, LOCAL_HOSTNAME, SENDER, recipients_of(rcpts), message, size
    )


OPENERS = {
    "smtpx": open_smtpx,
    "smtpx-data": open_smtpx_data,
    "smtpx-prepared": open_smtpx_prepared,
    "smtpx-pool": open_smtpx_pool,
    "aiosmtplib": open_aiosmtplib,
    "aiosmtplib-multi": open_aiosmtplib_multi,
    "floor": open_floor_1,
    "floor-multi": open_floor_multi,
}
SINGLE_CONNECTION = ("smtpx", "smtpx-data", "smtpx-prepared", "aiosmtplib", "floor")


async def drive(send: Send, count: int, feeders: int, deadline: float) -> int:
    """Send ``count`` messages from ``feeders`` concurrent tasks; stop at ``deadline``."""
    tickets = iter(range(count))
    sent = 0

    async def feeder() -> None:
        nonlocal sent
        for _ in tickets:  # shared iterator: each ticket is taken by exactly one feeder
            if time.perf_counter() > deadline:
                return
            await send()
            sent += 1

    await asyncio.gather(*(feeder() for _ in range(feeders)))
    return sent


async def throughput_async(args: argparse.Namespace, message: bytes) -> dict[str, Any]:
    opener = OPENERS[args.client]
    send, close = await opener(args.port, message, args.concurrency, _rcpts(args))
    single = args.client in SINGLE_CONNECTION
    feeders = args.feeders or (1 if single else args.concurrency)
    try:
        warm_deadline = time.perf_counter() + args.max_seconds
        await drive(send, args.warmup, feeders, warm_deadline)
        profiler = _profiler(args.profile)
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        sent = await drive(send, args.count, feeders, t0 + args.max_seconds)
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        _save_profile(profiler, args.profile)
    finally:
        await close()
    return {
        "messages": sent,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "feeders": feeders,
        "warmup": args.warmup,
        "recipients": len(recipients_of(_rcpts(args))),
    }


async def throughput_many(args: argparse.Namespace, message: bytes) -> dict[str, Any]:
    """``smtpx-many``: one ``smtpx.Client``, the messages queued up front and sent with
    ``send_many`` (each transaction pipelined behind the end of the one before);
    ``smtpx-pool-many``: the same with ``smtpx.Pool(size=C).send_many``."""
    client: smtpx.Client | smtpx.Pool
    if args.client == "smtpx-pool-many":
        client = smtpx.Pool(HOST, args.port, size=args.concurrency, **_smtpx_options())
    else:
        client = smtpx.Client(HOST, args.port, **_smtpx_options())
        await client.connect()
    envelope, expected = _envelope(_rcpts(args)), recipients_of(_rcpts(args))
    messages = (
        message
        if not envelope
        else smtpx.protocol.prepare(
            message, sender=envelope["sender"], recipients=envelope["recipients"]
        )
    )

    async def batch(count: int, deadline: float) -> int:
        sent = 0
        many = client.send_many(messages for _ in range(count))
        async with contextlib.aclosing(many) as outcomes:
            async for outcome in outcomes:
                if not isinstance(outcome, smtpx.SendResult) or outcome.accepted != expected:
                    raise RuntimeError(f"not accepted: {outcome}")
                sent += 1
                if time.perf_counter() > deadline:
                    break
        return sent

    try:
        await batch(args.warmup, time.perf_counter() + args.max_seconds)
        profiler = _profiler(args.profile)
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        sent = await batch(args.count, t0 + args.max_seconds)
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        _save_profile(profiler, args.profile)
    finally:
        await (client.close() if isinstance(client, smtpx.Pool) else client.quit())
    return {
        "messages": sent,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "feeders": 1,
        "warmup": args.warmup,
        "recipients": len(expected),
    }


def _rcpts(args: argparse.Namespace) -> Rcpts:
    if not args.recipients:
        return None
    return tuple(f"sink{i}@example.net" for i in range(args.recipients))


def throughput_smtplib(args: argparse.Namespace, message: bytes) -> dict[str, Any]:
    smtp = smtplib.SMTP(HOST, args.port, local_hostname=LOCAL_HOSTNAME, timeout=30.0)
    recipients = list(recipients_of(_rcpts(args)))
    try:
        smtp.ehlo()

        def run(count: int, deadline: float) -> int:
            for sent in range(count):
                if time.perf_counter() > deadline:
                    return sent
                refused = smtp.sendmail(SENDER, recipients, message)
                if refused:
                    raise RuntimeError(f"refused: {refused}")
            return count

        run(args.warmup, time.perf_counter() + args.max_seconds)
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        sent = run(args.count, t0 + args.max_seconds)
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    finally:
        smtp.quit()
    return {
        "messages": sent,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "feeders": 1,
        "warmup": args.warmup,
        "recipients": len(recipients),
    }


def _profiler(path: str | None) -> Any:
    if not path:
        return None
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


def _save_profile(profiler: Any, path: str | None) -> None:
    if profiler is not None and path:
        profiler.disable()
        profiler.dump_stats(path)


# ---------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------


async def memory_async(client: str, port: int, message: bytes) -> tuple[int, int]:
    if client == "smtpx":
        smtpx_client = smtpx.Client(HOST, port, **_smtpx_options())
        await smtpx_client.connect()
        before = maxrss_kib()
        result = await smtpx_client.send(message)
        after = maxrss_kib()
        await smtpx_client.quit()
        if result.accepted != (RECIPIENT,):
            raise RuntimeError(f"not accepted: {result}")
        return before, after
    smtp = _aiosmtplib_client(port)
    await smtp.connect()
    before = maxrss_kib()
    errors, _reply = await smtp.sendmail(SENDER, [RECIPIENT], message)
    after = maxrss_kib()
    await smtp.quit()
    if errors:
        raise RuntimeError(f"refused: {errors}")
    return before, after


def memory(args: argparse.Namespace, message: bytes) -> dict[str, Any]:
    if args.client == "smtplib":
        smtp = smtplib.SMTP(HOST, args.port, local_hostname=LOCAL_HOSTNAME, timeout=60.0)
        smtp.ehlo()
        before = maxrss_kib()
        refused = smtp.sendmail(SENDER, [RECIPIENT], message)
        after = maxrss_kib()
        smtp.quit()
        if refused:
            raise RuntimeError(f"refused: {refused}")
    else:
        before, after = asyncio.run(memory_async(args.client, args.port, message))
    return {"message_bytes": len(message), "maxrss_before_kib": before, "maxrss_after_kib": after}


# ---------------------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------------------

# What smtp-sink answers to one pipelined transaction: the replies smtpx parses and
# classifies for every message it sends.
PER_MESSAGE = (
    (smtpx.Command.MAIL, b"250 2.1.0 Ok\r\n"),
    (smtpx.Command.RCPT, b"250 2.1.5 Ok\r\n"),
    (smtpx.Command.DATA, b"354 End data with <CR><LF>.<CR><LF>\r\n"),
    (smtpx.Command.DATA_END, b"250 2.0.0 Ok: queued as 4XyZ1Q2w3e\r\n"),
)
REFUSAL = (smtpx.Command.RCPT, b"550 5.1.1 <nobody@example.net>: Recipient address rejected\r\n")


def per_call_us(func: Callable[[], object], iterations: int) -> float:
    """Best of 5 runs of ``iterations`` calls, in microseconds per call."""
    return min(timeit.repeat(func, number=iterations, repeat=5)) / iterations * 1e6


def classify(args: argparse.Namespace) -> dict[str, Any]:
    n = args.iterations
    rows = []
    for command, raw in (*PER_MESSAGE, REFUSAL):
        reply = smtpx.Reply.parse(raw)
        rows.append(
            {
                "command": command.name,
                "reply": raw.decode().strip(),
                "parse_us": per_call_us(functools.partial(smtpx.Reply.parse, raw), n),
                "classify_us": per_call_us(
                    functools.partial(smtpx.classify, command, reply, recipient=RECIPIENT), n
                ),
                "per_message": (command, raw) in PER_MESSAGE,
            }
        )
    return {"rows": rows, "iterations": n}


# ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("throughput", "memory", "classify"))
    batches = ("smtpx-many", "smtpx-pool-many")
    parser.add_argument("client", nargs="?", choices=(*OPENERS, "smtplib", *batches))
    parser.add_argument("--port", type=int)
    parser.add_argument("--message", type=Path)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--feeders", type=int, default=0, help="default: 1, or C for pools")
    parser.add_argument(
        "--recipients", type=int, default=0, help="R explicit envelope recipients per message"
    )
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--iterations", type=int, default=20000)
    parser.add_argument("--profile", help="write a cProfile of the timed part here")
    args = parser.parse_args()
    try:
        if args.mode == "classify":
            result = classify(args)
        else:
            if args.client is None or args.port is None or args.message is None:
                parser.error("throughput and memory need CLIENT, --port and --message")
            message = args.message.read_bytes()
            if args.mode == "memory":
                result = memory(args, message)
            elif args.client == "smtplib":
                result = throughput_smtplib(args, message)
            elif args.client in ("smtpx-many", "smtpx-pool-many"):
                result = asyncio.run(throughput_many(args, message))
            else:
                result = asyncio.run(throughput_async(args, message))
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    result["client"] = args.client
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
