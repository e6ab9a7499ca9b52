# Install: pip install -e '.[examples]'
# Run:     python examples/fastapi_service.py
"""A web service whose server spans parent the LangChain spans.

FastAPI's OpenTelemetry instrumentation makes the request's SERVER span current; the chain runs
inside it, so `otel_bridge.instrument()` nests the chain's root span under it: one trace per
request, from the HTTP request down to the model call.

`python examples/fastapi_service.py` sends two requests through FastAPI's TestClient and
prints their traces; `python examples/fastapi_service.py --serve` serves on 127.0.0.1:8000.
"""

import sys

from langchain_core.prompts import ChatPromptTemplate
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rich import print as rich_print

import otel_bridge
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.rendering import render_traces
from otel_bridge.testing import FakeChatModel

try:  # beyond the core: the command at the top installs it
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
except ImportError as missing:
    sys.exit(f"{missing.name} is not installed: pip install -e '.[examples]'")

spans = InMemorySpanExporter()
# Builds the global TracerProvider (OTEL_* variables apply), which FastAPI's instrumentation
# reports into as well, and traces every LangChain run in the process.
otel_bridge.instrument(exporters=[spans])

prompt = ChatPromptTemplate.from_messages([("system", "Answer briefly."), ("human", "{question}")])
chain = prompt | FakeChatModel(respond=lambda messages: f"You asked: {messages[-1].text}")

app = FastAPI()


@app.get("/ask")
async def ask(question: str) -> dict[str, str]:
    answer = await chain.ainvoke({"question": question})
    return {"answer": str(answer.content)}


FastAPIInstrumentor.instrument_app(app)

if __name__ == "__main__":
    if "--serve" in sys.argv:
        import uvicorn

        uvicorn.run(app, host="127.0.0.1", port=8000)
        sys.exit()
    client = TestClient(app)
    for question in ("What is a span?", "What is a trace?"):
        print(client.get("/ask", params={"question": question}).json())
    trace.get_tracer_provider().force_flush()
    by_trace: dict[int, list] = {}
    for span in spans.get_finished_spans():
        by_trace.setdefault(span.context.trace_id, []).append(span)
    rich_print(render_traces(FinishedTrace.from_spans(group) for group in by_trace.values()))
