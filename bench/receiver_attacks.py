"""Peak memory of `otel-bridge serve` and a normal client's throughput while others attack it:
gzip bombs (1 GiB of zeros, ~1 MiB on the wire) sent back to back, 500 idle connections and 50
slow clients (25 sending headers a byte at a time, 25 sending a body at 100 bytes/s), each
reopened when the server closes it. The baseline is the same client, alone, in the same run.

The bridge runs in its own process with the no-op sink of bench/receiver.py (so the figure is
the receiver's own); the attackers run in a third process, so they do not take the measuring
client's CPU time slices in its own interpreter.

    .venv/bin/python bench/receiver_attacks.py [--seconds 10] [--attack-seconds 40] [--idle 500]
        [--slow 50] [--bombs 2]
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import selectors
import socket
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any

from receiver import (
    _drive,
    _free_port,
    _http_sender,
    _machine,
    _request_body,
    _serve_bridge,
    _wait_for_port,
)

BOMB_BYTES = 1 << 30
SLOW_PERIOD_SECONDS = 1.0


def _gzip_bomb(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\x00" * (1 << 20)
    return b"".join([*(compressor.compress(block) for _ in range(size >> 20)), compressor.flush()])


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc")


def _attack(
    port: int, idle: int, slow: int, bombs: int, ready: Any, stop: Any, counts: Any
) -> None:
    """Attacker process: idle and slow connections on one selector loop, bombs on threads."""
    bomb = _gzip_bomb(BOMB_BYTES)

    def send_bombs() -> None:
        while not stop.is_set():
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                connection.request(
                    "POST",
                    "/v1/traces",
                    bomb,
                    {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
                )
                response = connection.getresponse()
                response.read()
                with counts.get_lock():
                    counts[0 if response.status == 413 else 1] += 1
            except OSError:
                with counts.get_lock():
                    counts[1] += 1
            finally:
                connection.close()

    def opened(kind: str) -> socket.socket:
        connection = socket.create_connection(("127.0.0.1", port))
        connection.setblocking(False)
        if kind == "header":
            connection.send(b"POST /v1/traces HTTP/1.1\r\nHost: bench\r\n")
        elif kind == "body":
            connection.send(
                b"POST /v1/traces HTTP/1.1\r\nHost: bench\r\nContent-Type: application/x-protobuf"
                b"\r\nContent-Length: 1048576\r\n\r\n"
            )
        selector.register(connection, selectors.EVENT_READ, kind)
        return connection

    selector = selectors.DefaultSelector()
    kinds = ["idle"] * idle + ["header"] * (slow // 2) + ["body"] * (slow - slow // 2)
    sockets = [opened(kind) for kind in kinds]
    threads = [threading.Thread(target=send_bombs, daemon=True) for _ in range(bombs)]
    for thread in threads:
        thread.start()
    ready.set()
    next_trickle = time.monotonic()
    while not stop.is_set():
        for key, _ in selector.select(timeout=0.1):
            connection: socket.socket = key.fileobj  # type: ignore[assignment]
            try:
                data = connection.recv(65536)
            except OSError:
                data = b""
            if not data:  # closed by the server: the attacker comes back
                selector.unregister(connection)
                connection.close()
                sockets[sockets.index(connection)] = opened(key.data)
                with counts.get_lock():
                    counts[2] += 1
        if time.monotonic() >= next_trickle:
            next_trickle += SLOW_PERIOD_SECONDS
            for connection in sockets:
                kind = selector.get_key(connection).data
                try:
                    if kind == "header":
                        connection.send(b"X")
                    elif kind == "body":
                        connection.send(b"\x00" * 100)
                except OSError:
                    pass
    for connection in sockets:
        connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="the client alone")
    parser.add_argument(
        "--attack-seconds",
        type=float,
        default=40.0,
        help="under attack; longer than the idle and read timeouts (30 s) so they show",
    )
    parser.add_argument("--idle", type=int, default=500)
    parser.add_argument("--slow", type=int, default=50)
    parser.add_argument("--bombs", type=int, default=2, help="threads sending bombs back to back")
    parser.add_argument("--spans-per-request", type=int, default=256)
    args = parser.parse_args()
    body = _request_body(args.spans_per_request)
    print(f"machine: {_machine()}")
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bench-receiver-attacks-") as scratch:
        http_port, grpc_port = _free_port(), _free_port()
        bridge = context.Process(
            target=_serve_bridge, args=(http_port, grpc_port, "no-op", str(Path(scratch)))
        )
        bridge.start()
        try:
            _wait_for_port(http_port)
            assert bridge.pid is not None
            started_rss = _peak_rss_mib(bridge.pid)
            alone = _drive(1, args.seconds, _http_sender(http_port, body))
            alone_rss = _peak_rss_mib(bridge.pid)
            ready, stop = context.Event(), context.Event()
            counts = context.Array("l", 3)  # bombs answered 413, other answers, reconnections
            attacker = context.Process(
                target=_attack,
                args=(http_port, args.idle, args.slow, args.bombs, ready, stop, counts),
            )
            attacker.start()
            if not ready.wait(120):
                raise RuntimeError("the attackers did not start")
            attacked = _drive(1, args.attack_seconds, _http_sender(http_port, body))
            attacked_rss = _peak_rss_mib(bridge.pid)
            stop.set()
            attacker.join(60)
        finally:
            bridge.terminate()
            bridge.join(30)
    spans = args.spans_per_request
    print(
        f"attack: {args.idle} idle connections, {args.slow} slow clients "
        f"({args.slow // 2} slowloris headers, {args.slow - args.slow // 2} bodies at 100 B/s), "
        f"{args.bombs} senders of gzip bombs ({BOMB_BYTES >> 20} MiB inflated); "
        f"receiver limits at their defaults (20 MiB per request, 8 concurrent)"
    )
    print(f"{'':<34}{'requests':>10}{'spans/s':>12}{'peak RSS':>14}")
    print(f"{'serve started':<34}{'':>10}{'':>12}{started_rss:>10.0f} MiB")
    print(
        f"{'normal client alone':<34}{alone:>10}{alone * spans / args.seconds:>12,.0f}{alone_rss:>10.0f} MiB"
    )
    print(
        f"{'normal client under attack':<34}{attacked:>10}{attacked * spans / args.attack_seconds:>12,.0f}"
        f"{attacked_rss:>10.0f} MiB"
    )
    print(
        f"throughput under attack / alone: "
        f"{attacked * args.seconds / args.attack_seconds / max(alone, 1):.2f}; bombs answered 413: "
        f"{counts[0]}, otherwise: {counts[1]}; attacker connections closed by the server and "
        f"reopened: {counts[2]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
