"""Reads a ClearML offline session (its folder, or the zip `Task.close` writes) the way
`Task.import_offline_session` does: task.json, metrics.jsonl (scalars, tables, media), log.jsonl
(console) and the files under data/ and models/. What this finds is what a server would show.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Media:
    title: str
    series: str
    iteration: int
    content: str


class OfflineSession:
    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def from_zip(cls, archive: Path, into: Path) -> OfflineSession:
        with zipfile.ZipFile(archive) as opened:
            opened.extractall(into)
        return cls(into)

    # --- task.json ----------------------------------------------------------------------------

    @property
    def task(self) -> dict[str, Any]:
        return json.loads((self.root / "task.json").read_text())

    def output_models(self) -> list[dict[str, Any]]:
        return list(self.task.get("offline_output_models", []))

    def model_file(self, model: dict[str, Any]) -> str:
        """The weights file of an offline output model, as stored in the session."""
        name = Path(model["weights"]["weights_filename"]).name
        return (self.root / "models" / name).read_text()

    # --- metrics.jsonl ------------------------------------------------------------------------

    def events(self) -> Iterator[dict[str, Any]]:
        path = self.root / "metrics.jsonl"
        if not path.exists():
            return
        for line in path.read_text().splitlines():
            if line.strip():
                yield from json.loads(line)

    def tables(self, title: str) -> dict[str, list[dict[str, Any]]]:
        """Every table reported under `title`, by series: its rows as column -> value."""
        found: dict[str, list[dict[str, Any]]] = {}
        for event in self.events():
            if event["type"] != "plot" or event["metric"] != title:
                continue
            plot = json.loads(event["plot_str"])["data"][0]
            assert plot["type"] == "table"
            # A DataFrame's header cells are [name] lists, a list-of-rows table's plain names.
            columns = [h[0] if isinstance(h, list) else h for h in plot["header"]["values"]]
            values = plot["cells"]["values"]
            rows = [
                {column: values[c][r] for c, column in enumerate(columns)}
                for r in range(len(values[0]) if values else 0)
            ]
            found[event["variant"]] = rows
        return found

    def table_series(self, title: str) -> list[str]:
        """The series of every table event reported under `title`, in report order: a table
        reported twice appears twice here (`tables` keeps the last of each series)."""
        return [
            event["variant"]
            for event in self.events()
            if event["type"] == "plot" and event["metric"] == title
        ]

    def scalars(self) -> dict[tuple[str, str], list[tuple[int, float]]]:
        """(title, series) -> [(iteration, value), ...] in report order."""
        found: dict[tuple[str, str], list[tuple[int, float]]] = {}
        for event in self.events():
            if event["type"] == "training_stats_scalar":
                key = (event["metric"], event["variant"])
                found.setdefault(key, []).append((event["iter"], event["value"]))
        return found

    def media(self) -> list[Media]:
        found = []
        for event in self.events():
            if event["type"] != "training_debug_image":
                continue
            # The session stores media under data/<key>; `url` is the absolute path at write time.
            content = (self.root / "data" / event["key"]).read_text()
            found.append(Media(event["metric"], event["variant"], event["iter"], content))
        return found

    # --- log.jsonl ----------------------------------------------------------------------------

    def console_lines(self) -> list[str]:
        path = self.root / "log.jsonl"
        if not path.exists():
            return []
        lines = []
        for line in path.read_text().splitlines():
            if line.strip():
                for event in json.loads(line):
                    lines.extend(event["msg"].splitlines())
        return lines

    def console_records(self) -> list[dict[str, Any]]:
        """The console lines that are JSON objects (the exporter's stream_logs records)."""
        records = []
        for line in self.console_lines():
            if line.startswith("{"):
                records.append(json.loads(line))
        return records
