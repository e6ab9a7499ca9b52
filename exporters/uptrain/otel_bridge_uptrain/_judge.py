"""Thin transport: run UpTrain checks on rows, locally (`EvalLLM` against any OpenAI-compatible
judge) or on an UpTrain server (`APIClient`), and turn failures into the core's retry vocabulary.
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import openai

from otel_bridge.sink import (
    PermanentError,
    RetryableError,
    http_status_is_retryable,
    retry_after_seconds,
)
from otel_bridge_uptrain._selection import Check

# uptrain's LLM-check operators are process-wide singletons that `EvalLLM.evaluate` re-configures
# on every call, so two evaluations running at once would overwrite each other's settings.
_UPTRAIN_LOCK = threading.Lock()


def _new_uptrain_lock() -> None:
    # In a forked child the parent's evaluating thread is gone, and with it whoever held this.
    global _UPTRAIN_LOCK
    _UPTRAIN_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_new_uptrain_lock)

# The key or account is refused: no retry helps until the configuration changes.
CREDENTIAL_STATUSES = frozenset({401, 403})


@dataclass(frozen=True, slots=True)
class Score:
    """One check's result for one row; `value` is None when the judge gave no usable grade."""

    name: str
    value: float | None
    explanation: str | None


class RowsRejected(Exception):
    """These rows cannot be evaluated as sent (missing column, prompt refused): retrying won't help."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PartlyGraded(Exception):
    """The judge failed part way through: `error` (a RetryableError or PermanentError) says why;
    `scores` are the rows' scores as far as they got, a grade of None where a call failed."""

    def __init__(self, error: Exception, scores: list[tuple[Score, ...]]) -> None:
        super().__init__(str(error))
        self.error = error
        self.scores = scores


class Judge(Protocol):
    def evaluate(
        self, evaluation_name: str, rows: Sequence[Mapping[str, Any]], checks: Sequence[Check]
    ) -> list[tuple[Score, ...]]:
        """The scores `checks` give each row, in row order."""
        ...

    def client(self) -> Any:
        """The uptrain client doing the work: `EvalLLM` (local) or `APIClient` (hosted)."""
        ...

    def close(self) -> None: ...

    def drop_clients(self) -> None:
        """Forget the HTTP clients without closing them (they share sockets with the process
        this one was forked from); the next evaluation builds new ones."""
        ...


def scores_of(sent: Mapping[str, Any], returned: Mapping[str, Any]) -> tuple[Score, ...]:
    """The scores uptrain added to a row: `score_<name>` columns (with `explanation_<name>`),
    and the numeric columns non-LLM operators add under their own `col_out`."""
    scores: list[Score] = []
    for column, value in returned.items():
        if column in sent or column.startswith("explanation_"):
            continue
        if column.startswith("score_"):
            name = column.removeprefix("score_")
            if name.startswith("confidence"):
                continue
            explanation = returned.get(f"explanation_{name}")
            scores.append(
                Score(name, _as_float(value), None if explanation is None else str(explanation))
            )
        elif isinstance(value, int | float) and not isinstance(value, bool):
            scores.append(Score(column, float(value), None))
    return tuple(scores)


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def classify_status(status: int, reason: str, retry_after: str | None = None) -> Exception:
    """The error a judge answer with this HTTP status becomes."""
    if status in CREDENTIAL_STATUSES:
        return PermanentError(f"judge refused the credentials (HTTP {status}): {reason}")
    # The sink contract's classifier: a judge model behind a gateway fails with assorted 5xx
    # while it restarts.
    if http_status_is_retryable(status):
        return RetryableError(
            f"judge unavailable (HTTP {status}): {reason}", retry_after_seconds(retry_after)
        )
    return RowsRejected(f"judge rejected the request (HTTP {status}): {reason}")


def classify_failure(failure: Exception) -> Exception:
    """The error a failed call to the judge becomes: an HTTP answer by its status; no answer at
    all (refused, timed out, name not resolved, the event loop gone) is retryable, since the
    judge never saw the rows."""
    if isinstance(failure, openai.APIStatusError):
        return classify_status(
            failure.status_code, failure.message, failure.response.headers.get("retry-after")
        )
    cause = failure.__cause__
    detail = f"{failure} ({cause!r})" if cause is not None else repr(failure)
    return RetryableError(f"judge unreachable: {detail}")


# --- local evaluation (EvalLLM) ---------------------------------------------------------------


# Answers after which no further call is made in that evaluation: the key is refused, or the
# judge asks us to slow down.
_STOP_STATUSES = frozenset({401, 403, 429})


class _JudgeCallFailed(Exception):
    """Raised to uptrain instead of the OpenAI error, so uptrain neither retries nor sleeps."""


class _JudgeClient:
    """What uptrain calls as `aclient.chat.completions.create(...)`, aimed at our endpoint.

    Each call opens its own `AsyncOpenAI` because uptrain runs every check in a fresh event
    loop, and a pooled connection from a closed loop fails the next check. The first failure
    of any kind is kept for the transport to classify (uptrain turns whatever a call raises into
    a missing grade, so a failure not kept here would pass for a judge that answered without a
    grade, and the trace would count as evaluated); later calls fail fast once the judge looks
    down (see `_give_up`).
    """

    def __init__(
        self, api_key: str, base_url: str | None, timeout: float, tls: ssl.SSLContext
    ) -> None:
        self._api_key = api_key
        self._base_url = base_url
        self._timeout = timeout
        self._tls = tls
        self.failure: Exception | None = None
        self.answered = 0
        self.calls = 0
        self.failed = 0
        self.stop = False
        self.chat = self
        self.completions = self

    async def create(self, **request: Any) -> Any:
        if self.failure is not None and self._give_up():
            raise _JudgeCallFailed(str(self.failure))
        self.calls += 1
        # uptrain adds `api_base` for litellm and its own 180 s timeout; the client takes neither.
        request.pop("api_base", None)
        request.pop("timeout", None)
        try:
            async with openai.AsyncOpenAI(
                api_key=self._api_key,
                base_url=self._base_url,
                max_retries=0,
                timeout=self._timeout,
                # Loading the CA bundle costs more CPU than a local judge's whole answer: once.
                http_client=openai.DefaultAsyncHttpxClient(verify=self._tls),
            ) as client:
                response = await client.chat.completions.create(**request)
        except Exception as exc:
            # Not only the OpenAI errors: at interpreter exit the event loop refuses to schedule
            # the connect ("cannot schedule new futures after interpreter shutdown"), a
            # RuntimeError the client lets through unwrapped.
            self.failure = self.failure or exc
            self.failed += 1
            status = getattr(exc, "status_code", None)
            if not isinstance(exc, openai.APIStatusError) or status in _STOP_STATUSES:
                self.stop = True
            raise _JudgeCallFailed(str(exc)) from None
        self.answered += 1
        return response

    def _give_up(self) -> bool:
        """Stop calling after a failure when the judge looks down or refuses us: it has not
        answered yet, a connection failed or timed out, it refused the key or asked us to slow
        down (401/403/429), or at least half of 3+ calls failed. A judge that answers most calls
        but fails some (503s, dropped requests) keeps getting the rest, so a retry has only those
        few left to grade."""
        return (
            self.stop or self.answered == 0 or (self.failed >= 3 and self.failed * 2 >= self.calls)
        )


_ACTIVE_CLIENT: ContextVar[_JudgeClient | None] = ContextVar(
    "otel_bridge_uptrain_judge", default=None
)


class _AsyncOpenAIFactory:
    """Stands in for `AsyncOpenAI` inside uptrain's LLM module.

    uptrain 0.7 builds its client as `AsyncOpenAI()` from process-wide environment variables
    and retries outages with minute-long sleeps; while one of our evaluations runs (and only on
    its thread) it gets our `_JudgeClient` instead. Every other caller gets the real class.
    """

    def __init__(self, original: Any) -> None:
        self.original = original

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        client = _ACTIVE_CLIENT.get()
        if client is not None and not args and not kwargs:
            return client
        return self.original(*args, **kwargs)


class _HeldBackPost:
    """What uptrain's dashboard post reaches during our evaluations: nothing is sent."""

    def post(self, *_args: Any, **_kwargs: Any) -> None:
        return None


class _HttpxForEvalLLM:
    """Stands in for the `httpx` module inside uptrain's `framework.evalllm`, whose only use of
    it is `EvalLLM.evaluate`'s post of every call's rows to the local dashboard. While one of
    our evaluations runs (and only on its thread) that post is held back: the exporter posts
    each row once, complete (`_dashboard`). Everything else is the real module."""

    def __init__(self, original: Any) -> None:
        self.original = original

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)

    def Client(self, *args: Any, **kwargs: Any) -> Any:
        if _ACTIVE_CLIENT.get() is not None:
            return _HeldBackPost()
        return self.original.Client(*args, **kwargs)


def _hook_uptrain_client() -> None:
    import uptrain.framework.evalllm as uptrain_evalllm
    import uptrain.operators.language.llm as uptrain_llm

    if not isinstance(uptrain_llm.AsyncOpenAI, _AsyncOpenAIFactory):
        uptrain_llm.AsyncOpenAI = _AsyncOpenAIFactory(uptrain_llm.AsyncOpenAI)
    if not isinstance(uptrain_evalllm.httpx, _HttpxForEvalLLM):
        uptrain_evalllm.httpx = _HttpxForEvalLLM(uptrain_evalllm.httpx)


class LocalJudge:
    """Evaluates on this machine with `EvalLLM`, the grading prompts going to `api_base`."""

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        api_base: str | None,
        project_name: str,
        timeout: float = 60.0,
    ) -> None:
        self._api_key = api_key
        self._model = model
        self._api_base = api_base
        self._project_name = project_name
        self._timeout = timeout
        self._tls = ssl.create_default_context()
        self._eval_llm: Any = None

    def client(self) -> Any:
        if self._eval_llm is None:
            from uptrain import EvalLLM, Settings

            _hook_uptrain_client()
            # The key is set after construction: passed to the constructor, uptrain would copy
            # it into os.environ, and EvalLLM would check whichever key it holds (Settings also
            # reads OPENAI_API_KEY) against OPENAI_BASE_URL or api.openai.com, not our endpoint.
            settings = Settings(model=self._model, api_base=self._api_base, evaluate_locally=True)
            settings.uptrain_access_token = None
            settings.openai_api_key = None
            self._eval_llm = EvalLLM(settings=settings)
            settings.openai_api_key = self._api_key
        return self._eval_llm

    @property
    def api_base(self) -> str | None:
        return self._api_base

    def key_refused(self) -> str | None:
        """Ask the judge for its models, as the seed's `EvalLLM` does with its key at
        construction: the reason when the key is refused (401/403), else None (a judge that
        cannot be reached now is not a bad key: its traces wait in the spool)."""
        try:
            self._list_models()
        except openai.APIStatusError as error:
            if error.status_code in (401, 403):
                return f"HTTP {error.status_code}: {error.message}"
        except openai.OpenAIError:
            pass
        return None

    def check_key(self) -> None:
        """The seed's check at construction, raising as it does: `ValueError` ("OpenAI API Key
        is invalid", here with the judge and the answer) when the key is refused (401/403),
        `ConnectionError` when the judge cannot be reached or fails the request."""
        where = self._api_base or "api.openai.com"
        fix = "(check_connection=False skips this check)"
        try:
            self._list_models()
        except openai.APIStatusError as error:
            if error.status_code in (401, 403):
                raise ValueError(
                    f"OpenAI API Key is invalid: the judge at {where} refused it (HTTP"
                    f" {error.status_code}: {error.message}); set api_key (or"
                    f" OTEL_BRIDGE_UPTRAIN_API_KEY / OPENAI_API_KEY) {fix}"
                ) from error
            raise ConnectionError(
                f"the judge at {where} answered GET /models with HTTP {error.status_code} {fix}"
            ) from error
        except openai.OpenAIError as error:
            raise ConnectionError(
                f"the judge at {where} cannot be reached ({error}); start it or fix api_base /"
                f" OPENAI_BASE_URL {fix}"
            ) from error

    def _list_models(self) -> None:
        with openai.OpenAI(
            api_key=self._api_key,
            base_url=self._api_base,
            max_retries=0,
            timeout=min(self._timeout, 10.0),
            http_client=openai.DefaultHttpxClient(verify=self._tls),
        ) as client:
            client.models.list()

    def evaluate(
        self, evaluation_name: str, rows: Sequence[Mapping[str, Any]], checks: Sequence[Check]
    ) -> list[tuple[Score, ...]]:
        client = _JudgeClient(self._api_key, self._api_base, self._timeout, self._tls)
        data = [dict(row) for row in rows]
        with _UPTRAIN_LOCK:
            eval_llm = self.client()
            # uptrain also writes the key into the `openai` module's global; give it back.
            module_key = openai.api_key
            token = _ACTIVE_CLIENT.set(client)
            try:
                results = eval_llm.evaluate(
                    data=data,
                    checks=list(checks),
                    project_name=self._project_name,
                    evaluation_name=evaluation_name,
                )
            except Exception as exc:
                if client.failure is None:
                    raise RowsRejected(f"uptrain could not evaluate the rows: {exc!r}") from exc
                raise classify_failure(client.failure) from exc
            finally:
                _ACTIVE_CLIENT.reset(token)
                openai.api_key = module_key
        scores = [scores_of(sent, returned) for sent, returned in zip(rows, results, strict=True)]
        if client.failure is not None:
            error = classify_failure(client.failure)
            if any(score.value is not None for row in scores for score in row):
                # The grades given despite the failure are real; the caller keeps them.
                raise PartlyGraded(error, scores)
            raise error
        if client.answered == 0 and any(score.value is None for row in scores for score in row):
            # A missing grade is the judge's verdict only when the judge answered. Here nothing
            # reached it (uptrain sends models not named gpt* through litellm, past our client),
            # so recording the grade as missing would lose the evaluation.
            raise RetryableError(
                "judge never answered: uptrain returned no grade and no grading request got "
                "an answer from the judge"
            )
        return scores

    def close(self) -> None:
        self._eval_llm = None

    def drop_clients(self) -> None:
        # EvalLLM holds an httpx pool (its executor); the judge calls open a client each.
        self._eval_llm = None


# --- hosted evaluation (APIClient) ------------------------------------------------------------


class HostedJudge:
    """Logs and evaluates the rows on an UpTrain server (`key_type="uptrain"`)."""

    def __init__(
        self, *, api_key: str, model: str, server_url: str | None, project_name: str
    ) -> None:
        self._api_key = api_key
        self._model = model
        self._server_url = server_url
        self._project_name = project_name
        self._api_client: Any = None

    def client(self) -> Any:
        if self._api_client is None:
            from uptrain import APIClient, Settings

            settings = Settings(model=self._model)
            settings.uptrain_access_token = self._api_key
            if self._server_url is not None:
                settings.uptrain_server_url = self._server_url
            self._api_client = APIClient(settings=settings)
        return self._api_client

    def evaluate(
        self, evaluation_name: str, rows: Sequence[Mapping[str, Any]], checks: Sequence[Check]
    ) -> list[tuple[Score, ...]]:
        data = [dict(row) for row in rows]
        try:
            results = self.client().log_and_evaluate(
                project_name=self._project_name,
                evaluation_name=evaluation_name,
                data=data,
                checks=list(checks),
            )
        except httpx.HTTPStatusError as exc:
            raise classify_status(
                exc.response.status_code,
                exc.response.text[:200],
                exc.response.headers.get("retry-after"),
            ) from exc
        except httpx.TransportError as exc:
            raise RetryableError(f"UpTrain server unreachable: {exc!r}") from exc
        except Exception as exc:
            raise RowsRejected(f"UpTrain could not evaluate the rows: {exc!r}") from exc
        return [scores_of(sent, returned) for sent, returned in zip(rows, results, strict=True)]

    def close(self) -> None:
        if self._api_client is not None:
            self._api_client.client.close()
            self._api_client = None

    def drop_clients(self) -> None:
        self._api_client = None
