"""A normal OTLP/gRPC client's throughput while other callers keep Export calls stalled
mid-message: each stalled call sends its headers and the first bytes of its message, then
nothing, on a connection of its own, and is reopened when the server ends it. The baseline is
the same client, alone, in the same run.

The bridge runs in its own process with the no-op sink of bench/receiver.py (default limits:
8 requests at once); the stalled callers are raw HTTP/2 on sockets of this process and cost no
CPU while they wait.

    .venv/bin/python bench/grpc_stalls.py [--seconds 10] [--stalled 50]
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
from receiver import EXPORT_METHOD, _free_port, _machine, _request_body, _serve_bridge
from receiver import _fresh as fresh_body
from receiver import _wait_for_port as wait_for_port

# The raw HTTP/2 stalled call the receiver's tests use (from the repository root).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.grpc_stall import stalled_grpc_call

CALL_TIMEOUT_SECONDS = 5.0


def _keep_stalled(port: int, count: int, stop: threading.Event) -> list[int]:
    """Keep `count` stalled calls open until `stop`; returns [calls opened] (filled in later)."""
    opened = [0]

    def run() -> None:
        calls: list[socket.socket] = []
        while not stop.is_set():
            alive = []
            for call in calls:
                call.setblocking(False)
                try:
                    closed = call.recv(65536) == b""
                except BlockingIOError:
                    closed = False
                except OSError:
                    closed = True
                if closed:
                    call.close()
                else:
                    alive.append(call)
            calls = alive
            while len(calls) < count and not stop.is_set():
                try:
                    calls.append(stalled_grpc_call(port, timeout=5))
                    opened[0] += 1
                except OSError:
                    break
            stop.wait(0.2)
        for call in calls:
            call.close()

    threading.Thread(target=run, daemon=True).start()
    return opened


def _measure(port: int, body: bytes, seconds: float) -> tuple[int, int]:
    """One client sending back to back for `seconds`: (calls answered OK, calls failed)."""
    ok = failed = 0
    with grpc.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
    ) as channel:
        export = channel.unary_unary(EXPORT_METHOD)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                export(fresh_body(body), timeout=CALL_TIMEOUT_SECONDS)
                ok += 1
            except grpc.RpcError:
                failed += 1
    return ok, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--stalled", type=int, default=50)
    parser.add_argument("--spans-per-request", type=int, default=256)
    args = parser.parse_args()
    body = _request_body(args.spans_per_request)
    print(f"machine: {_machine()}")
    print(
        f"one client, {args.spans_per_request} spans/request, {CALL_TIMEOUT_SECONDS:g} s per call"
        f" at most, {args.seconds:g} s per row; stalled callers: {args.stalled}, each on its own"
        " connection"
    )
    with tempfile.TemporaryDirectory() as scratch:
        http_port, grpc_port = _free_port(), _free_port()
        bridge = multiprocessing.get_context("spawn").Process(
            target=_serve_bridge, args=(http_port, grpc_port, "no-op", str(Path(scratch)))
        )
        bridge.start()
        try:
            wait_for_port(grpc_port)
            _measure(grpc_port, body, 1.0)  # warm up
            alone = _measure(grpc_port, body, args.seconds)
            stop = threading.Event()
            opened = _keep_stalled(grpc_port, args.stalled, stop)
            time.sleep(1.0)
            attacked = _measure(grpc_port, body, args.seconds)
            stop.set()
        finally:
            bridge.terminate()
            bridge.join(10)
    print(f"{'':34}{'calls OK':>10}{'failed':>8}{'spans/s':>12}")
    for name, (ok, failed) in (("alone", alone), ("beside the stalled calls", attacked)):
        rate = ok * args.spans_per_request / args.seconds
        print(f"{name:34}{ok:>10}{failed:>8}{rate:>12,.0f}")
    print(f"stalled calls opened (reopened when the server ended one): {opened[0]}")
    ratio = attacked[0] / alone[0] if alone[0] else 0.0
    print(f"beside / alone: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
