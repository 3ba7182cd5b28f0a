"""The modes against servers on plain loopback and through the delaying proxy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import _harness as h
import _measure as m


def throughput(
    settings: m.Settings, processes: h.Processes, tmp: Path, node_note: str | None
) -> dict[str, Any]:
    message = h.message_file(tmp)
    sink = h.start_smtp_sink(processes, pipelining=True)
    sink_p = h.start_smtp_sink(processes, pipelining=False)
    aiosmtpd = h.start_aiosmtpd(processes)
    peers = [m.SMTPX_1, m.SMTPX_MANY, m.SMTPX_PREPARED, m.AIOSMTPLIB_1, m.SMTPLIB_1]
    peers += [m.SMTPX_POOL, m.SMTPX_POOL_MANY]
    peers += [m.AIOSMTPLIB_8, m.FLOOR_1, m.FLOOR_8]
    if node_note is None:
        peers.append(m.NODEMAILER)
    singles = [m.SMTPX_1, m.AIOSMTPLIB_1, m.SMTPLIB_1]
    plan = [(s, c, settings.count) for s in (sink, sink_p) for c in peers]
    plan += [(aiosmtpd, c, settings.count) for c in singles]
    print(
        f"1 KiB messages, one recipient, {settings.count} timed after {settings.warmup} "
        f"untimed, {settings.reps} repetitions; servers: {sink.name} :{sink.port}, "
        f"{sink_p.name} :{sink_p.port}, aiosmtpd :{aiosmtpd.port}",
        flush=True,
    )
    results: m.Results = {}
    errors: m.Errors = {}
    try:
        m.measure(plan, settings, message, results, errors)
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
            labels.append(m.NODEMAILER.label)
            errors[(server.name, m.NODEMAILER.label)] = f"skipped: {node_note}"
        print(f"\n### {title}\n\n{m.results_table(results, errors, server, labels)}")
    pairings = [
        m.Pairing(m.SMTPX_1.label, m.AIOSMTPLIB_1.label, sink.name, 1.3),
        m.Pairing(m.SMTPX_1.label, m.AIOSMTPLIB_1.label, sink_p.name, 0.95),
        m.Pairing(m.SMTPX_1.label, m.AIOSMTPLIB_1.label, aiosmtpd.name, 0.95),
        m.Pairing(m.SMTPX_MANY.label, m.AIOSMTPLIB_1.label, sink.name, None),
        m.Pairing(m.SMTPX_POOL.label, m.NODEMAILER.label, sink.name, 1.5),
        m.Pairing(m.SMTPX_POOL_MANY.label, m.NODEMAILER.label, sink.name, None),
        m.Pairing(m.SMTPX_POOL_MANY.label, m.AIOSMTPLIB_8.label, sink.name, 2.5),
        m.Pairing(m.SMTPX_POOL.label, m.NODEMAILER.label, sink_p.name, None),
        m.Pairing(m.SMTPX_POOL.label, m.AIOSMTPLIB_8.label, sink.name, None),
        m.Pairing(m.SMTPX_POOL.label, m.AIOSMTPLIB_8.label, sink_p.name, None),
        m.Pairing(m.SMTPX_PREPARED.label, m.AIOSMTPLIB_1.label, sink.name, None),
        m.Pairing(m.SMTPX_PREPARED.label, m.AIOSMTPLIB_1.label, sink_p.name, None),
        m.Pairing(m.SMTPX_1.label, m.SMTPLIB_1.label, sink.name, None),
        m.Pairing(m.SMTPX_1.label, m.SMTPLIB_1.label, sink_p.name, None),
        m.Pairing(m.SMTPX_1.label, m.FLOOR_1.label, sink.name, None),
        m.Pairing(m.SMTPX_1.label, m.FLOOR_1.label, sink_p.name, None),
        m.Pairing(m.SMTPX_POOL.label, m.FLOOR_8.label, sink.name, None),
        m.Pairing(m.SMTPX_POOL.label, m.FLOOR_8.label, sink_p.name, None),
    ]
    ratios = h.table(m.RATIO_HEADERS, m.ratio_rows(results, pairings))
    print(f"\n### Ratios (msg/s of medians)\n\n{ratios}")
    print(
        "\nCPU/msg ratio: smtpx's CPU per message over the peer's (below 1 = smtpx cheaper)."
        f"\n{m.FLOOR}: the least a Python client on asyncio can do per message "
        "(benchmarks/floor.py): how far each client is from the limit."
        "\nserver CPU µs/msg: the server process's CPU over the whole worker run, warm-up "
        "included.",
        flush=True,
    )
    return {
        "runs": m.dump_runs(results),
        "errors": {f"{k[0]} | {k[1]}": v for k, v in errors.items()},
        "smtpx_cpu_us": m.cpu_us(results, (sink.name, m.SMTPX_1.label)),
    }


def latency_clients(node_note: str | None) -> tuple[list[m.Client], list[m.Client]]:
    """Every client through the PIPELINING proxy; the lock-step pair and the floor through
    the ``-p`` one (where every client pays the same four round trips)."""
    pipelined = [m.SMTPX_1, m.SMTPX_MANY, m.AIOSMTPLIB_1, m.SMTPLIB_1, m.FLOOR_1]
    pipelined += [m.SMTPX_POOL, m.SMTPX_POOL_MANY, m.AIOSMTPLIB_8, m.FLOOR_8]
    if node_note is None:
        pipelined.append(m.NODEMAILER)
    return pipelined, [m.SMTPX_1, m.AIOSMTPLIB_1, m.FLOOR_1]


def latency(
    settings: m.Settings, processes: h.Processes, tmp: Path, node_note: str | None
) -> dict[str, Any]:
    message = h.message_file(tmp)
    sink = h.start_smtp_sink(processes, pipelining=True)
    sink_p = h.start_smtp_sink(processes, pipelining=False)
    results: m.Results = {}
    errors: m.Errors = {}
    rows: list[list[str]] = []
    measured: dict[str, float] = {}
    pipelined, lockstep = latency_clients(node_note)
    every: list[tuple[str, m.Client]] = []  # (proxy name, client) for the per-client table
    try:
        for rtt, count in settings.latency_counts.items():
            proxies = [h.start_proxy(processes, s, rtt) for s in (sink, sink_p)]
            try:
                for proxy in proxies:
                    measured[proxy.name] = h.measure_rtt(proxy.port)
                print(
                    f"RTT {rtt:g} ms (measured NOOP round trip "
                    f"{measured[proxies[0].name]:.2f} ms): {count} messages per connection "
                    "per run",
                    flush=True,
                )
                plan = [
                    (p, c, count * c.connections)
                    for p, clients in zip(proxies, (pipelined, lockstep), strict=True)
                    for c in clients
                ]
                every += [(p.name, c) for p, c, _n in plan]
                m.measure(
                    plan, settings, message, results, errors, warmup=5, reps=settings.latency_reps
                )
            finally:
                for proxy in proxies:
                    assert proxy.helper is not None
                    processes.stop(proxy.helper)
            high = rtt >= 20
            piped, lock = proxies
            pairs = [  # (proxy, smtpx, peer, target)
                (piped, m.SMTPX_1, m.AIOSMTPLIB_1, 1.8 if high else None),
                (lock, m.SMTPX_1, m.AIOSMTPLIB_1, 0.95),
                (piped, m.SMTPX_MANY, m.AIOSMTPLIB_1, 3.5 if high else None),
                (piped, m.SMTPX_POOL_MANY, m.AIOSMTPLIB_8, None),
                (piped, m.SMTPX_POOL_MANY, m.NODEMAILER, 1.8 if high else None),
            ]
            for proxy, ours, peer, target in pairs:
                a, b = (proxy.name, ours.label), (proxy.name, peer.label)
                ra, rb = m.rate(results, a), m.rate(results, b)
                ratio = ra / rb if rb == rb and rb else float("nan")
                reps = m.per_rep_ratios(results, a, b)
                verdict = "-"
                if target is not None and ratio == ratio:
                    verdict = "met" if ratio >= target else "NOT met"
                rows.append(
                    [
                        ours.label,
                        peer.label,
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
                        m.background([*results.get(a, []), *results.get(b, [])]),
                        "; ".join(errors[k] for k in (a, b) if k in errors),
                    ]
                )
    finally:
        for server in (sink_p, sink):
            processes.stop(server.proc)
    headers = [
        "smtpx",
        "peer",
        "RTT ms",
        "measured ms",
        "PIPELINING",
        "msgs",
        "smtpx msg/s",
        "peer msg/s",
        "ratio",
        "per-rep ratios",
        "target",
        "verdict",
        "others' CPU % (max)",
        "note",
    ]
    print("\n### smtpx (send, send_many, a pool's send_many) vs its peers through the proxy\n")
    print(h.table(headers, rows))
    print(
        "\nmeasured ms: median NOOP round trip through the proxy (proxy + smtp-sink "
        "included).  Lock-step costs 4 round trips per message (MAIL, RCPT, DATA, end of "
        "data); pipelined, 2 (MAIL+RCPT+DATA, end of data): at high RTT the ceiling is 2.0x; "
        "send_many, 1 (each end goes with the next MAIL+RCPT+DATA): 4.0x.",
        flush=True,
    )
    print("\n### Every client through the delaying proxy (msg/s, median)\n")
    print(
        h.table(
            m.RATE_HEADERS,
            [m.rate_row(results, errors, name, c.label) for name, c in every],
        )
    )
    return {"runs": m.dump_runs(results), "rtt_ms": measured, "errors": m.dump_errors(errors)}


def chunking(settings: m.Settings, processes: h.Processes, tmp: Path) -> dict[str, Any]:
    """BDAT against DATA: smtp-sink offers no CHUNKING, so aiosmtpd with it (smtpx.testing)."""
    message = h.message_file(tmp)
    server = h.start_aiosmtpd_chunking(processes)
    results: m.Results = {}
    errors: m.Errors = {}
    rows: list[list[str]] = []
    clients = (m.SMTPX_1, m.SMTPX_DATA, m.AIOSMTPLIB_1)
    try:
        for rtt in (0.0, 20.0):
            count = settings.latency_counts[rtt]
            proxy = h.start_proxy(processes, server, rtt)
            try:
                measured = h.measure_rtt(proxy.port)
                print(f"RTT {rtt:g} ms (measured {measured:.2f} ms): {count} messages per run")
                plan = [(proxy, c, count) for c in clients]
                m.measure(plan, settings, message, results, errors, warmup=5)
            finally:
                assert proxy.helper is not None
                processes.stop(proxy.helper)
            bdat, data, peer = (m.rate(results, (proxy.name, c.label)) for c in clients)
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
                    m.background(
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
    return {"runs": m.dump_runs(results), "errors": m.dump_errors(errors)}


# The memory mode's two messages: the harness's own (nothing for a client to rewrite)
