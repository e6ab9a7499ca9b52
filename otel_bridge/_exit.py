"""Delivery at a normal exit: callbacks that run when the main thread finishes, while the
interpreter can still start threads and thread pools (before `atexit` and before
`concurrent.futures` refuses new work with "cannot schedule new futures after interpreter
shutdown").

The only place that uses CPython's private `threading._register_atexit`;
tests/core/test_exit.py fails loudly if it changes.
"""

from __future__ import annotations

import atexit
import concurrent.futures.thread  # noqa: F401  (its exit hook must be registered before ours)
import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["call_before_exit", "cancel_before_exit"]

_logger = logging.getLogger(__name__)

_lock = threading.Lock()
_registered = False
_tokens = itertools.count(1)
# Strong references: what a callback delivers outlives the object the app dropped (a drop-in
# handler rebound to a new one still has its exporter's worker and undelivered traces), so the
# callback must not die with it. Callers hand in callables that hold only what must be delivered.
_callbacks: dict[int, Callable[[], Any]] = {}


def call_before_exit(callback: Callable[[], Any]) -> int:
    """Call `callback` when the main thread finishes a normal exit, before the thread pools of
    `concurrent.futures` stop and before `atexit` handlers; callbacks registered later run
    first. Keeps `callback` alive until then or until `cancel_before_exit(token)`. Returns that
    token."""
    global _registered
    with _lock:
        token = next(_tokens)
        _callbacks[token] = callback
        if not _registered:
            _registered = True
            _register(_run_callbacks)
    return token


def cancel_before_exit(token: int) -> None:
    with _lock:
        _callbacks.pop(token, None)


def _register(hook: Callable[[], None]) -> None:
    register = getattr(threading, "_register_atexit", None)
    if register is None:
        # Python moved its private hook: deliver at atexit instead, which is too late for
        # sinks that use thread pools (UpTrain), and say so once.
        _logger.warning(
            "otel-bridge: threading._register_atexit is gone in this Python; pending traces are "
            "delivered at atexit instead, where thread pools no longer accept work"
        )
        atexit.register(hook)
        return
    try:
        register(hook)
    except RuntimeError:  # registered while the interpreter is already shutting down
        atexit.register(hook)


def _run_callbacks() -> None:
    with _lock:
        pending = list(_callbacks.values())
        _callbacks.clear()
    for callback in reversed(pending):
        try:
            callback()
        except Exception:
            _logger.exception("otel-bridge: delivering pending traces at exit failed")
