"""The LangChain internals `_langchain_patches` wraps still exist, and its stream wrappers behave
exactly like the generators they wrap, only in a context of their own.

Real LangChain/LangGraph classes; the generators driven here are plain Python ones.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
from collections.abc import AsyncIterator, Iterator

import langgraph.pregel.main  # noqa: F401  (imported so LangGraph's targets are wrapped)
import pytest

from otel_bridge import _langchain_patches
from otel_bridge._langchain_patches import _asteps_in_own_context, _steps_in_own_context
from otel_bridge.handler import OTelCallbackHandler

_marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="consumer's")


@pytest.mark.parametrize(
    ("module", "owner", "method"), _langchain_patches.PATCHED, ids=lambda part: str(part)
)
def test_every_wrapped_langchain_internal_still_exists_and_is_wrapped(
    module: str, owner: str, method: str
) -> None:
    OTelCallbackHandler()
    namespace = importlib.import_module(module)
    if owner:
        namespace = getattr(namespace, owner)
    target = vars(namespace).get(method)
    assert target is not None, f"{module}.{owner}.{method} is gone: update _langchain_patches"
    assert hasattr(target, "__wrapped__"), f"{module}.{owner}.{method} is not wrapped"


def _numbers(log: list[str]) -> Iterator[int]:
    _marker.set("stream's")
    try:
        yield 1
        try:
            yield 2
        except KeyError as error:
            log.append(f"caught {error!r}")
            yield 20
        yield 3
    finally:
        log.append(f"closed in the {_marker.get()} context")


def test_a_wrapped_stream_yields_the_same_and_keeps_its_context_to_itself() -> None:
    log: list[str] = []
    seen = []
    for number in _steps_in_own_context(_numbers(log)):
        seen.append((number, _marker.get()))
    assert seen == [(1, "consumer's"), (2, "consumer's"), (3, "consumer's")]
    assert log == ["closed in the stream's context"]


def test_a_wrapped_stream_passes_throws_and_closes_on() -> None:
    log: list[str] = []
    stream = _steps_in_own_context(_numbers(log))
    assert next(stream) == 1
    assert next(stream) == 2
    assert stream.throw(KeyError("k")) == 20
    stream.close()
    assert log == ["caught KeyError('k')", "closed in the stream's context"]
    with pytest.raises(ValueError, match="boom"):
        next(_steps_in_own_context(_failing()))


def _failing() -> Iterator[int]:
    raise ValueError("boom")
    yield 0


async def _anumbers(log: list[str]) -> AsyncIterator[int]:
    _marker.set("stream's")
    task = asyncio.current_task()
    try:
        await asyncio.sleep(0)
        yield 1
        try:
            yield 2
        except KeyError as error:
            log.append(f"caught {error!r}")
            yield 20
        await asyncio.sleep(0)
        yield 3
    finally:
        await asyncio.sleep(0)
        log.append(
            f"closed in the {_marker.get()} context, same task: {asyncio.current_task() is task}"
        )


def test_a_wrapped_async_stream_yields_the_same_and_keeps_its_context_to_itself() -> None:
    log: list[str] = []

    async def main() -> list[tuple[int, str]]:
        return [(n, _marker.get()) async for n in _asteps_in_own_context(_anumbers(log))]

    assert asyncio.run(main()) == [(1, "consumer's"), (2, "consumer's"), (3, "consumer's")]
    assert log == ["closed in the stream's context, same task: True"]


def test_a_wrapped_async_stream_passes_throws_closes_and_cancellation_on() -> None:
    log: list[str] = []

    async def main() -> None:
        stream = _asteps_in_own_context(_anumbers(log))
        assert await stream.__anext__() == 1
        assert await stream.__anext__() == 2
        assert await stream.athrow(KeyError("k")) == 20
        await stream.aclose()

        slow = _asteps_in_own_context(_forever(log))
        task = asyncio.ensure_future(slow.__anext__())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert log == [
        "caught KeyError('k')",
        "closed in the stream's context, same task: True",
        "cancelled inside the stream",
    ]


async def _forever(log: list[str]) -> AsyncIterator[int]:
    try:
        await asyncio.Event().wait()
        yield 0
    except asyncio.CancelledError:
        log.append("cancelled inside the stream")
        raise
