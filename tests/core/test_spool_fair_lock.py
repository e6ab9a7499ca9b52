"""The spool's thread lock is taken in the order asked for: a thread that releases it and asks
again at once (the delivery worker between two transactions) goes after those already
waiting (export() on the processor thread) (issue 14)."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from otel_bridge.spool_lock import FairLock


def _wait_until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def _waiters(lock: FairLock) -> int:
    return len(lock._waiters)


def test_a_thread_asking_again_at_once_goes_after_the_one_waiting() -> None:
    lock = FairLock()
    order: list[str] = []

    def other() -> None:
        with lock:
            order.append("other")

    lock.__enter__()
    thread = threading.Thread(target=other)
    thread.start()
    _wait_until(lambda: _waiters(lock) == 1)
    for _ in range(3):  # released and asked for again, without a pause
        lock.__exit__(None, None, None)
        with lock:
            order.append("again")
    thread.join(10)
    assert order == ["other", "again", "again", "again"]


def test_waiters_are_served_in_the_order_they_came() -> None:
    lock = FairLock()
    order: list[int] = []

    def take(index: int) -> None:
        with lock:
            order.append(index)

    lock.__enter__()
    threads = []
    for index in range(5):
        thread = threading.Thread(target=take, args=(index,))
        thread.start()
        _wait_until(lambda count=index + 1: _waiters(lock) == count)
        threads.append(thread)
    lock.__exit__(None, None, None)
    for thread in threads:
        thread.join(10)
    assert order == [0, 1, 2, 3, 4]


def test_a_waiter_interrupted_gives_its_place_back() -> None:
    """A signal handler raising in the main thread while it waits (Ctrl-C during export())."""
    lock = FairLock()
    holder_may_go = threading.Event()

    def holder() -> None:
        with lock:
            holder_may_go.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    _wait_until(lock_is_held(lock))

    class Interrupted(Exception):
        pass

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(Interrupted), lock:
            pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert _waiters(lock) == 0
    holder_may_go.set()
    thread.join(10)
    taken = threading.Event()

    def later() -> None:
        with lock:
            taken.set()

    threading.Thread(target=later, daemon=True).start()
    assert taken.wait(10)


def lock_is_held(lock: FairLock) -> object:
    return lambda: lock._held
