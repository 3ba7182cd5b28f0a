"""A delaying TCP proxy on 127.0.0.1: each chunk read from one side is written to the other
``--delay-ms`` later (in both directions, so the added round trip is twice that).

Chunks are delayed independently (a pipelined burst is not delayed once per command) and
keep their order.  Prints ``PORT <n>`` once listening; exits when stdin closes, so it
cannot outlive the harness that started it.  Kernel netem is not available here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

HOST = "127.0.0.1"
CHUNK = 65536


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``delay`` seconds after it arrived."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def forward() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:  # end of stream, delayed like the data before it
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    forwarder = asyncio.create_task(forward())
    try:
        while True:
            data = await reader.read(CHUNK)
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                break
        await forwarder
    except (OSError, asyncio.IncompleteReadError):
        forwarder.cancel()
    finally:
        writer.close()


async def serve(target_port: int, delay: float) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(HOST, target_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(
            pump(client_r, server_w, delay),
            pump(server_r, client_w, delay),
            return_exceptions=True,
        )

    server = await asyncio.start_server(handle, HOST, 0, backlog=1000)
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    loop = asyncio.get_running_loop()
    # stdin closes when the harness stops us or dies: then we go too
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target-port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, required=True, help="one-way delay")
    args = parser.parse_args()
    # Ctrl-C reaches the whole process group: the harness stops us by PID once its
    # clients are done, so ignore it here rather than die mid-run with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(serve(args.target_port, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
