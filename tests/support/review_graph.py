"""A LangGraph graph that writes a draft (through a model, when one is given) and then pauses
with `interrupt()` for a human's verdict: the pause the graph tests interrupt and resume."""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class ReviewState(TypedDict):
    draft: str
    verdict: str


def review_graph(model: Any = None) -> StateGraph:
    def write(state: ReviewState) -> dict[str, str]:
        draft = state["draft"] if model is None else str(model.invoke(state["draft"]).content)
        return {"draft": draft}

    def review(state: ReviewState) -> dict[str, str]:
        return {"verdict": str(interrupt({"question": "approve?", "draft": state["draft"]}))}

    graph = StateGraph(ReviewState)
    graph.add_node("write", write)
    graph.add_node("review", review)
    graph.add_edge(START, "write")
    graph.add_edge("write", "review")
    graph.add_edge("review", END)
    return graph
