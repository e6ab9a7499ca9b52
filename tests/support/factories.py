"""Factory fixtures: a test makes exporters (or sinks) with its own options, and each one it made
is shut down after the test, whatever its outcome."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar


class _ShutsDown(Protocol):
    def shutdown(self) -> Any: ...


Made = TypeVar("Made", bound=_ShutsDown)


def shut_down_after(build: Callable[..., Made]) -> Iterator[Callable[..., Made]]:
    """The body of a factory fixture (`yield from shut_down_after(build)`): the test gets `build`,
    and what it built is shut down after the test, in the order it was made."""
    made: list[Made] = []

    def make(**options: Any) -> Made:
        made.append(build(**options))
        return made[-1]

    yield make
    for item in made:
        item.shutdown()
