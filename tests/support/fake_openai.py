"""A local OpenAI-compatible HTTP server that grades UpTrain's judge prompts deterministically.

This is the one stand-in the test suite allows: it replaces the paid LLM API that UpTrain's
LLM-judge checks call. Everything else (uptrain, the OpenAI client, HTTP over loopback) is real.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import random
import re
import struct
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.loopback_proxy import QuietHandler

# Each judge prompt is recognised by a sentence only its template contains (uptrain 0.7,
# uptrain/operators/language/prompts/classic.py). Order matters: the first match wins.
_PROMPT_SIGNATURES: tuple[tuple[str, str], ...] = (
    ("fact_generate", "please breakdown the response into independent facts"),
    ("fact_evaluate", "determine if the given facts are supported by the given context"),
    ("context_reranking", "original context, and reranked context"),
    ("context_conciseness", "original context and concise context"),
    ("multi_query_accuracy", "list of variations of the same question"),
    ("response_completeness_wrt_context", "utilize all the relevant information in the context"),
    ("context_relevance", "has enough information to answer the given query"),
    ("response_completeness", "able to answer all aspects of the given query completely"),
    ("response_conciseness", "degree of irrelevant information present in the given response"),
    ("response_consistency", "An intelligent LLM generated the given response"),
    ("valid_response", "Please assess if the given response contain any information"),
)
_TASK_DATA = re.compile(r"^Task [Dd]ata[.:]\s*$", re.MULTILINE)
_FIELD = re.compile(
    r"^\[(Question|Query|Response|Context|Extracted Context|Original Context|Reranked Context|"
    r"Concise Context|Variants|Facts|Sub Questions|User Query|Output)\]: ?",
    re.MULTILINE,
)
_JUDGEMENTS = {"A": "yes", "B": "unclear", "C": "no"}

Grader = Callable[[str, Mapping[str, str]], str]


@dataclass(frozen=True, slots=True)
class JudgeRequest:
    """One HTTP request the judge received; `check` and `fields` are set for grading prompts."""

    method: str
    path: str
    authorization: str | None
    body: Mapping[str, Any] | None
    status: int
    check: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)


def identify_check(prompt: str) -> str | None:
    """Which uptrain grading prompt this is, or None for a prompt the judge does not know."""
    for check, signature in _PROMPT_SIGNATURES:
        if signature in prompt:
            return check
    return None


def task_fields(prompt: str) -> dict[str, str]:
    """The `[Label]: value` pairs of the prompt's task-data section, values exactly as sent."""
    markers = list(_TASK_DATA.finditer(prompt))
    section = prompt[markers[-1].end() :] if markers else prompt
    matches = list(_FIELD.finditer(section))
    fields: dict[str, str] = {}
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(section)
        value = section[match.end() : end]
        # The template puts exactly one newline between a value and the next label.
        fields[match.group(1)] = value[:-1] if value.endswith("\n") else value
    return fields


def _facts_of(text: str) -> list[str]:
    try:
        parsed = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return [text]
    if isinstance(parsed, dict):
        parsed = parsed.get("Facts", [])
    return [str(fact) for fact in parsed] or [text]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up mid-answer (a timeout, a closed event loop) is not our error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeJudge:
    """A real HTTP server on a free loopback port answering `/v1/models`, `/v1/chat/completions`
    and `/v1/completions` (the legacy API LangChain's `OpenAI` LLM calls).

    Grades are letters "A"/"B"/"C" (uptrain maps them to 1.0/0.5/0.0): `grades[check]`, else the
    `grader(check, fields)` callable, else "A". `fail_next(status, times)` makes the next requests
    fail (503/429/401/...), `fail_every(n)` every n-th grading request, `fail_fraction(f, seed)` a
    seeded-random fraction f of them (a judge that drops part of its work), `requests` records every request received. `port` (default: a free
    one) lets a judge come back where clients found nothing listening before.
    """

    def __init__(
        self,
        *,
        api_key: str = "sk-judge",
        grader: Grader | None = None,
        latency: float = 0.0,
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.grader = grader
        # Seconds each grading answer takes, to play a real model's response time in benchmarks.
        self.latency = latency
        self.grades: dict[str, str] = {}
        self._lock = threading.Lock()
        self._requests: list[JudgeRequest] = []
        self._failures: list[tuple[int, float | None]] = []
        self._failing_status: tuple[int, float | None] | None = None
        self._fail_every: tuple[int, int] | None = None  # (n, status)
        self._fail_fraction: tuple[float, random.Random, int] | None = None
        self._gradings = 0
        self._server = _QuietServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-judge", daemon=True
        )
        self._thread.start()

    # --- test controls ----------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The OpenAI-style base URL, e.g. http://127.0.0.1:PORT/v1."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        """Answer the next `times` requests with `status` instead of a grade."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * times)

    def fail_until_recovered(self, status: int, retry_after: float | None = None) -> None:
        """Answer every request with `status` until `recover()`."""
        with self._lock:
            self._failing_status = (status, retry_after)

    def fail_every(self, n: int, status: int = HTTPStatus.SERVICE_UNAVAILABLE) -> None:
        """Answer every n-th grading request (POST /v1/chat/completions) with `status`."""
        with self._lock:
            self._fail_every = (n, status)
            self._gradings = 0

    def fail_fraction(
        self, fraction: float, seed: int, status: int = HTTPStatus.SERVICE_UNAVAILABLE
    ) -> None:
        """Answer a seeded-random `fraction` of the grading requests with `status`."""
        with self._lock:
            self._fail_fraction = (fraction, random.Random(seed), status)

    def recover(self) -> None:
        with self._lock:
            self._failures.clear()
            self._failing_status = None
            self._fail_every = None
            self._fail_fraction = None

    @property
    def requests(self) -> list[JudgeRequest]:
        with self._lock:
            return list(self._requests)

    def graded(self, check: str | None = None) -> list[JudgeRequest]:
        """The grading prompts answered successfully, optionally only those of one check."""
        return [
            request
            for request in self.requests
            if request.check is not None
            and request.status == HTTPStatus.OK
            and (check is None or request.check == check)
        ]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeJudge:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- grading ----------------------------------------------------------------------------
    def _grade(self, check: str, fields: Mapping[str, str]) -> str:
        if check in self.grades:
            return self.grades[check]
        if self.grader is not None:
            return self.grader(check, fields)
        return "A"

    def answer(self, prompt: str) -> tuple[str | None, dict[str, str], str]:
        """The check, task fields and JSON reply content for one grading prompt."""
        check = identify_check(prompt)
        fields = task_fields(prompt)
        question = fields.get("Question", fields.get("Query", ""))
        if check == "fact_generate":
            sentences = [s.strip() for s in fields.get("Response", "").split(". ") if s.strip()]
            return check, fields, json.dumps({"Facts": sentences or ["(no facts)"]})
        if check == "fact_evaluate":
            judgement = _JUDGEMENTS[self._grade("factual_accuracy", fields)]
            result = [
                {
                    "Fact": fact,
                    "Reasoning": f"fact checked against context: {fact}",
                    "Judgement": judgement,
                }
                for fact in _facts_of(fields.get("Facts", ""))
            ]
            return check, fields, json.dumps({"Result": result})
        grade = self._grade(check or "unknown", fields)
        reply: dict[str, Any] = {
            "Reasoning": f"{check} graded {grade} for question {question!r}",
            "Choice": grade,
        }
        if check == "response_consistency" or check is None:
            reply["Argument"] = "deterministic judge"
            reply["Score"] = {"A": 1.0, "B": 0.5}.get(grade, 0.0)
        return check, fields, json.dumps(reply)

    # --- HTTP -------------------------------------------------------------------------------
    def _next_failure(self, grading: bool) -> tuple[int, float | None] | None:
        with self._lock:
            if self._failures:
                return self._failures.pop(0)
            if grading and self._fail_every is not None:
                self._gradings += 1
                n, status = self._fail_every
                if self._gradings % n == 0:
                    return (status, None)
            if grading and self._fail_fraction is not None:
                fraction, rng, status = self._fail_fraction
                if rng.random() < fraction:
                    return (status, None)
            return self._failing_status

    def _record(self, request: JudgeRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        judge = self

        class _Handler(QuietHandler):
            def _send_json(
                self, status: int, payload: Any, headers: Mapping[str, str] = {}
            ) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _refuse(self, body: Mapping[str, Any] | None) -> bool:
                """Answer with an error when told to (on any path, so the judge can also play a
                failing UpTrain server), or when an OpenAI path gets the wrong key; True if so."""
                authorization = self.headers.get("Authorization")
                grading = self.command == "POST" and self.path.startswith("/v1/chat/")
                failure = judge._next_failure(grading)
                wrong_key = authorization != f"Bearer {judge.api_key}"
                if failure is None and self.path.startswith("/v1/") and wrong_key:
                    failure = (HTTPStatus.UNAUTHORIZED, None)
                if failure is None:
                    return False
                status, retry_after = failure
                headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
                judge._record(JudgeRequest(self.command, self.path, authorization, body, status))
                error = {
                    "message": f"fake judge answers {status}",
                    "type": "fake_judge",
                    "code": str(status),
                }
                self._send_json(status, {"error": error}, headers)
                return True

            def do_GET(self) -> None:
                if self._refuse(None):
                    return
                if self.path.rstrip("/") != "/v1/models":
                    self._send_json(HTTPStatus.NOT_FOUND, {"error": {"message": self.path}})
                    return
                judge._record(
                    JudgeRequest("GET", self.path, self.headers.get("Authorization"), None, 200)
                )
                models = [{"id": "gpt-3.5-turbo", "object": "model", "owned_by": "fake-judge"}]
                self._send_json(HTTPStatus.OK, {"object": "list", "data": models})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self._refuse(body):
                    return
                path = self.path.rstrip("/")
                if path in ("/v1/embeddings", "/v1/completions") and isinstance(judge, FakeOpenAI):
                    judge._record(
                        JudgeRequest("POST", path, self.headers.get("Authorization"), body, 200)
                    )
                    if path == "/v1/embeddings":
                        self._send_json(HTTPStatus.OK, judge.embeddings(body))
                    else:
                        self._send_json(HTTPStatus.OK, judge.completion(body))
                    return
                if path == "/v1/completions":
                    self._complete(body)
                    return
                if path != "/v1/chat/completions":
                    self._send_json(HTTPStatus.NOT_FOUND, {"error": {"message": self.path}})
                    return
                if judge.latency:
                    time.sleep(judge.latency)
                prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
                check, fields, content = judge.answer(prompt)
                judge._record(
                    JudgeRequest(
                        "POST",
                        self.path,
                        self.headers.get("Authorization"),
                        body,
                        200,
                        check,
                        fields,
                    )
                )
                self._send_json(
                    HTTPStatus.OK,
                    {
                        "id": f"chatcmpl-fake-{len(judge.requests)}",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model", "gpt-3.5-turbo"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": content},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    },
                )

            def _complete(self, body: Mapping[str, Any]) -> None:
                """The legacy completions API (LangChain's `OpenAI` LLM): one choice per prompt,
                each answered as the same prompt sent to /v1/chat/completions would be."""
                prompts = body.get("prompt", "")
                choices = []
                for index, prompt in enumerate([prompts] if isinstance(prompts, str) else prompts):
                    _, _, content = judge.answer(str(prompt))
                    choices.append({"index": index, "text": content, "finish_reason": "stop"})
                judge._record(
                    JudgeRequest("POST", self.path, self.headers.get("Authorization"), body, 200)
                )
                self._send_json(
                    HTTPStatus.OK,
                    {
                        "id": f"cmpl-fake-{len(judge.requests)}",
                        "object": "text_completion",
                        "created": 0,
                        "model": body.get("model", "gpt-3.5-turbo-instruct"),
                        "choices": choices,
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    },
                )

        return _Handler


_EMBEDDING_SIZE = 64


class FakeOpenAI(FakeJudge):
    """The judge, plus what an app's own OpenAI calls need, for running documented examples
    unchanged against loopback (`OPENAI_BASE_URL=<url>`): chat answers to the app's prompts
    (`reply(prompt)`: RAG answers from the context, multi-query variants, a ReAct agent that
    uses its calculator, then answers), `/v1/completions` for completion models, and
    `/v1/embeddings` (a deterministic bag-of-words vector, so similar texts are close)."""

    def answer(self, prompt: str) -> tuple[str | None, dict[str, str], str]:
        if identify_check(prompt) is not None:
            return super().answer(prompt)
        return None, {}, self.reply(prompt)

    def reply(self, prompt: str) -> str:
        if "different versions of the given user" in prompt:
            question = prompt.rsplit("Original question:", 1)[-1].strip()
            return "\n".join(f"{question} (version {n})" for n in (1, 2, 3))
        if "numexpr library" in prompt:
            return "```text\n117 ** 1.51\n```"
        if "Action Input" in prompt:  # a zero-shot ReAct agent's prompt
            if "Observation:" in prompt.rsplit("Question:", 1)[-1]:
                return (
                    " I now know the final answer\nFinal Answer: 117 raised to 1.51 is about 1331."
                )
            return " I should compute the power.\nAction: Calculator\nAction Input: 117^1.51"
        for marker in ("following context", "pieces of context"):
            if marker in prompt:
                context = prompt.split(marker, 1)[1]
                sentences = [s.strip() for s in context.split(".") if len(s.strip()) > 20]
                return (sentences[0] if sentences else "I do not know") + "."
        last = [line for line in prompt.strip().splitlines() if line.strip()]
        return f"A reply to: {last[-1] if last else prompt}"

    def completion(self, body: Mapping[str, Any]) -> dict[str, Any]:
        prompts = body.get("prompt", "")
        prompts = prompts if isinstance(prompts, list) else [prompts]
        return {
            "id": f"cmpl-fake-{len(self.requests)}",
            "object": "text_completion",
            "created": 0,
            "model": body.get("model", "gpt-3.5-turbo-instruct"),
            "choices": [
                {"index": i, "text": self.reply(str(p)), "finish_reason": "stop", "logprobs": None}
                for i, p in enumerate(prompts)
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
        }

    def embeddings(self, body: Mapping[str, Any]) -> dict[str, Any]:
        inputs = body.get("input", [])
        if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        data = []
        for index, item in enumerate(inputs):
            vector = _bag_of_words(item)
            embedding: Any = vector
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        return {
            "object": "list",
            "data": data,
            "model": body.get("model", "text-embedding-ada-002"),
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        }


def _bag_of_words(item: Any) -> list[float]:
    words = [str(t) for t in item] if isinstance(item, list) else str(item).lower().split()
    vector = [0.0] * _EMBEDDING_SIZE
    for word in words:
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % _EMBEDDING_SIZE] += 1.0
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    return [v / norm for v in vector]
