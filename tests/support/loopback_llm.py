"""An OpenAI-shaped "LLM API" on loopback and LangChain models that call it through real httpx.

The server is the only stand-in (it replaces a paid API). The models are real LangChain models
whose provider call is a real HTTP request made by an httpx client instrumented by the real
opentelemetry-instrumentation-httpx, so each call leaves a CLIENT span parented under whatever
span is current in the model's code, exactly as with a real provider SDK.

`POST /chat` answers at once with `{"reply": "echo: <last message>"}`; `POST /hang` holds the
request until `LoopbackAPI.release()` (used to cancel a call while its request is in flight).
`Setup` wires a real SDK provider, the models and otel-bridge in handler or instrument() mode.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.llms import LLM
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from pydantic import BaseModel, ConfigDict

import otel_bridge
from otel_bridge.handler import OTelCallbackHandler
from tests.support.recording import recording_provider

__all__ = [
    "HttpChatModel",
    "HttpTextLLM",
    "LoopbackAPI",
    "Setup",
    "assert_clients_under",
    "assert_one_trace_per_request",
    "by_id",
    "client_spans",
    "instrumented_clients",
    "parent_of",
]


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 resets connections when 20 concurrent calls arrive at once.
    request_queue_size = 128
    daemon_threads = True
    released: threading.Event
    arrived: threading.Semaphore


class _LLMAPI(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path.endswith("/hang"):
            released = self.server.released
            self.server.arrived.release()
            released.wait()
        payload = json.dumps({"reply": f"echo: {body['messages'][-1]}"}).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            # The client gave up on a held request (it was cancelled).
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


class LoopbackAPI:
    """The loopback server: `url` answers at once, `hang_url` holds requests until released."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _LLMAPI)
        self._server.released = threading.Event()
        self._server.arrived = threading.Semaphore(0)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        base = f"http://127.0.0.1:{self._server.server_port}"
        self.url = f"{base}/chat"
        self.hang_url = f"{base}/hang"

    async def held_request_arrived(self) -> None:
        """Wait (without blocking the loop) until a request to `hang_url` is being held."""
        arrived = self._server.arrived
        await asyncio.to_thread(arrived.acquire)

    def release(self) -> None:
        """Answer every held request; requests arriving later are held again."""
        held, self._server.released = self._server.released, threading.Event()
        # Arrivals not waited for belong to the test that is over.
        self._server.arrived = threading.Semaphore(0)
        held.set()

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()


def instrumented_clients(provider: TracerProvider) -> tuple[httpx.Client, httpx.AsyncClient]:
    client = httpx.Client()
    async_client = httpx.AsyncClient()
    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)
    HTTPXClientInstrumentor.instrument_client(async_client, tracer_provider=provider)
    return client, async_client


class _LoopbackClients(BaseModel):
    """The fields of a model that calls the loopback API: its URL and the instrumented clients."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    url: str
    client: httpx.Client
    async_client: httpx.AsyncClient


class HttpChatModel(_LoopbackClients, BaseChatModel):
    """A chat model that calls the loopback API through an instrumented httpx client."""

    @property
    def _llm_type(self) -> str:
        return "http-chat"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        return {"ls_provider": "loopback", "ls_model_name": "echo-1", "ls_model_type": "chat"}

    def _payload(self, messages: list[BaseMessage]) -> dict[str, Any]:
        return {"messages": [str(m.content) for m in messages]}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = self.client.post(self.url, json=self._payload(messages)).json()["reply"]
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=reply))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        response = await self.async_client.post(self.url, json=self._payload(messages))
        reply = response.json()["reply"]
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=reply))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        reply = self.client.post(self.url, json=self._payload(messages)).json()["reply"]
        for word in reply.split(" "):
            yield ChatGenerationChunk(message=AIMessageChunk(content=word + " "))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        response = await self.async_client.post(self.url, json=self._payload(messages))
        for word in response.json()["reply"].split(" "):
            await asyncio.sleep(0)
            yield ChatGenerationChunk(message=AIMessageChunk(content=word + " "))


class HttpTextLLM(_LoopbackClients, LLM):
    """A text-completion model (LangChain's `LLM`: one `_call`/`_acall` per prompt) that calls
    the loopback API through an instrumented httpx client."""

    @property
    def _llm_type(self) -> str:
        return "http-text"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        return {"ls_provider": "loopback", "ls_model_name": "complete-1", "ls_model_type": "llm"}

    def _call(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> str:
        return str(self.client.post(self.url, json={"messages": [prompt]}).json()["reply"])

    async def _acall(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> str:
        response = await self.async_client.post(self.url, json={"messages": [prompt]})
        return str(response.json()["reply"])


class Setup:
    """A real SDK provider exporting to memory, the loopback models, and the handler.

    `mode="handler"` passes an `OTelCallbackHandler` in `config`; `mode="instrument"` switches
    `otel_bridge.instrument()` on instead (and `close()` switches it off), with an empty config.
    """

    def __init__(self, api: LoopbackAPI, mode: str = "handler") -> None:
        self.api = api
        self.url = api.url
        self.mode = mode
        self.provider, self.exporter = recording_provider()
        if mode == "handler":
            self.handler = OTelCallbackHandler(tracer_provider=self.provider)
        elif mode == "instrument":
            self.handler = otel_bridge.instrument(tracer_provider=self.provider)
        else:
            raise ValueError(mode)
        self.tracer = self.provider.get_tracer("app")
        self.client, self.async_client = instrumented_clients(self.provider)
        self.model = HttpChatModel(url=api.url, client=self.client, async_client=self.async_client)
        self.text_model = HttpTextLLM(
            url=api.url, client=self.client, async_client=self.async_client
        )

    @property
    def config(self) -> dict[str, Any]:
        return {"callbacks": [self.handler]} if self.mode == "handler" else {}

    def hanging_model(self) -> HttpChatModel:
        """A chat model whose request is held by the server until `api.release()`."""
        return HttpChatModel(
            url=self.api.hang_url, client=self.client, async_client=self.async_client
        )

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def close(self) -> None:
        self.api.release()
        if self.mode == "instrument":
            otel_bridge.uninstrument()
        self.client.close()
        self.provider.shutdown()


def by_id(spans: list[ReadableSpan]) -> dict[int, ReadableSpan]:
    return {span.context.span_id: span for span in spans}


def parent_of(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan | None:
    if span.parent is None:
        return None
    return by_id(spans).get(span.parent.span_id)


def client_spans(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    """The instrumented HTTP client's spans (model runs are CLIENT spans too, with a run id)."""
    return [
        s
        for s in spans
        if s.kind == trace.SpanKind.CLIENT and "langchain.run.id" not in (s.attributes or {})
    ]


def assert_clients_under(
    spans: list[ReadableSpan], expected_parent_prefix: str, count: int
) -> None:
    clients = client_spans(spans)
    assert len(clients) == count, [s.name for s in spans]
    for client in clients:
        parent = parent_of(client, spans)
        assert parent is not None, f"{client.name} has no parent among {[s.name for s in spans]}"
        assert parent.name.startswith(expected_parent_prefix), parent.name


def assert_one_trace_per_request(spans: list[ReadableSpan], requests: list[ReadableSpan]) -> None:
    """Every span belongs to the trace of one request span, and requests do not share traces."""
    trace_ids = {request.context.trace_id for request in requests}
    assert len(trace_ids) == len(requests)
    for span in spans:
        assert span.context.trace_id in trace_ids, span.name
    for request in requests:
        roots = [
            s
            for s in spans
            if s.parent is not None
            and s.parent.span_id == request.context.span_id
            and s.context.trace_id == request.context.trace_id
        ]
        assert len(roots) == 1, f"{request.name}: {[r.name for r in roots]}"
