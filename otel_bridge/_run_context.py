"""Making a run's span current while the run executes, without ever leaking it afterwards.

LangChain calls an inline handler's `on_*_start` in the caller's context, so a context attached
there is what `_generate`/`_agenerate`/`_stream` and any instrumented client inside them see.
The matching `on_*_end` often runs in a *different* `contextvars.Context` (async ends are
shielded in a copied context; streams can be closed from elsewhere), where the attach token
cannot be reset. The attached context is therefore a `RunScopedContext`: while the run is open it
reads as "the run's span is current"; once closed it reads exactly like the context that was
current before it, so whatever still holds it behaves as if it had been detached.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context

__all__ = ["SPAN_KEY", "RunScopedContext", "context_for_root_run", "enter", "leave"]

# The key under which OTel keeps the current span, found through the public API: setting a span
# in an empty context yields a context with that one key.
(SPAN_KEY,) = trace.set_span_in_context(trace.INVALID_SPAN, Context()).keys()


class RunScopedContext(Context):
    """A context whose span entry expires when its run ends.

    While the run is open it is a plain context (every read is dict-speed: each span start and
    each `get_current_span` reads it); `close()` turns it into a `_ClosedRunScopedContext`, which
    answers every read from the context below.
    """

    __slots__ = ("_below", "beneath_roots", "is_open", "root")
    _below: Context
    # Whether the run is still open. A plain attribute, not a property: the handler checks it
    # on every child run's start.
    is_open: bool
    beneath_roots: Context
    root: bool

    def __init__(self, below: Context, span: trace.Span, root: bool) -> None:
        # What is under the stack of open root scopes this one sits on: a new root run nests
        # there (see context_for_root_run), found in one step however many roots are stacked.
        beneath_roots = below
        if isinstance(below, RunScopedContext):
            below = beneath_roots = _resolve(below)
            if isinstance(below, RunScopedContext) and below.root:
                beneath_roots = below.beneath_roots
        # An open scope is a plain dict to read, so both kinds copy at C speed.
        dict.update(self, below)
        dict.__setitem__(self, SPAN_KEY, span)
        self._below = below
        self.is_open = True
        # Whether the run is a LangChain root run (no parent run).
        self.root = root
        self.beneath_roots = beneath_roots

    @property
    def below(self) -> Context:
        return self._below

    def close(self) -> None:
        """From now on read as the context below; let go of the span and of closed scopes.

        Runs usually close oldest first (completed batches, evicted runs), so re-pointing past
        closed scopes here keeps at most one closed scope reachable from any open one. The
        class changes before the storage is cleared: a reader on another thread sees either the
        run's entries or the ones below, never an empty context.
        """
        self._below = _resolve(self._below)
        if self.is_open:
            self.is_open = False
            self.__class__ = _ClosedRunScopedContext
            dict.clear(self)


class _ClosedRunScopedContext(RunScopedContext):
    """A closed run's scope: reads exactly like the context below it."""

    __slots__ = ()

    def get(self, key: str, default: Any = None) -> Any:
        return self._below.get(key, default)

    def __getitem__(self, key: str) -> object:
        return self._below[key]

    def __contains__(self, key: object) -> bool:
        return key in self._below

    def __iter__(self) -> Iterator[str]:
        return iter(self._below)

    def __len__(self) -> int:
        return len(self._below)

    def copy(self) -> dict[str, object]:
        return dict(self._below.items())

    def keys(self) -> Any:
        return self._below.keys()

    def values(self) -> Any:
        return self._below.values()

    def items(self) -> Any:
        return self._below.items()


def enter(
    span: trace.Span, root: bool, current: Context | None = None
) -> tuple[RunScopedContext, Token[Context]]:
    """Make `span` current in the calling context (`current`, if the caller already read it);
    returns what `leave` needs."""
    scoped = RunScopedContext(
        otel_context.get_current() if current is None else current, span, root
    )
    return scoped, otel_context.attach(scoped)


def context_for_root_run(current: Context | None = None) -> Context:
    """The context a new LangChain root run nests under: the current one, minus open root runs.

    LangChain starts sibling root runs back to back in one context (`RunnableSequence.batch`,
    `generate` over several prompts) before running any of them; the second must not become a
    child of the first. Spans of other runs (a tool, a model) are kept: a root run started inside
    them does belong under them.
    """
    if current is None:
        current = otel_context.get_current()
    while isinstance(current, RunScopedContext):
        if not current.is_open:
            current = current.below
        elif current.root:
            current = current.beneath_roots
        else:
            break
    return current


def _resolve(context: Context) -> Context:
    """The context a (possibly closed) scope reads as."""
    while isinstance(context, RunScopedContext) and not context.is_open:
        context = context.below
    return context


def leave(scoped: RunScopedContext, token: Token[Context]) -> None:
    """Close the scope and, when the caller's context still has it on top, detach it.

    Resetting is only attempted when the scope is what this context currently sees: resetting
    beneath someone else's attached context would pull theirs away while they still use it. A
    token from another `contextvars.Context` cannot be reset; the closed scope then simply reads
    as its predecessor wherever it lingers, so nothing is logged and nothing leaks.
    """
    scoped.close()
    # ValueError: the token belongs to another Context; RuntimeError: it was already used;
    # AttributeError: a non-contextvars runtime context (OTEL_PYTHON_CONTEXT) made the token.
    # (try/except rather than contextlib.suppress: this runs at the end of every run.)
    try:
        # The token's variable is the one OTel's runtime context keeps the current context in.
        current = token.var
        if current.get() is not scoped:
            return
        current.reset(token)
        # What this reveals may be a scope that closed earlier while not on top (sibling runs
        # ending in start order): replace it by what it reads as, so the context holds no
        # chain of finished runs. Nobody holds a token expecting that closed scope back.
        revealed = current.get()
        if isinstance(revealed, RunScopedContext) and not revealed.is_open:
            current.set(_resolve(revealed))
    except (ValueError, RuntimeError, AttributeError, LookupError):
        return
