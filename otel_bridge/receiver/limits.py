"""Limits the receiver's transports share."""

from __future__ import annotations

import asyncio

from otel_bridge.receiver import protocol

__all__ = ["ByteBudget"]


class ByteBudget:
    """Bytes of request bodies an event loop may hold at once; used from that loop only. `take`
    waits up to `wait_seconds` for room, then raises ProtocolError 503."""

    def __init__(self, capacity: int) -> None:
        self._available = capacity
        self._waiters: list[asyncio.Future[None]] = []

    async def take(self, size: int, wait_seconds: float) -> None:
        try:
            async with asyncio.timeout(wait_seconds):
                while self._available < size:
                    waiter = asyncio.get_running_loop().create_future()
                    self._waiters.append(waiter)
                    await waiter
        except TimeoutError:
            raise protocol.ProtocolError(
                503, "too many request bodies in progress; retry later"
            ) from None
        self._available -= size

    def give_back(self, size: int) -> None:
        self._available += size
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:  # each checks again whether its part fits now
            if not waiter.done():
                waiter.set_result(None)
