"""Spool files holding undelivered traces, and the five ways issue 19 damages them."""

from __future__ import annotations

import itertools
import os
import random
import sqlite3
from pathlib import Path

from otel_bridge.delivery import FakeClock
from otel_bridge.file_sink import FileSpanExporter
from tests.contract import make_spans

DAMAGE_KINDS = ("truncated_to_half", "random_8k_in_middle", "replaced_by_text", "header", "empty")


def spool_holding(spool_dir: Path, traces: int) -> tuple[Path, set[str]]:
    """The spool in `spool_dir` of a real file sink writing `spool_dir/../out.jsonl`, left
    holding `traces` queued traces, and their trace ids. While it runs, a directory stands where
    the file should be, so every delivery fails; it is removed at the end, so an exporter for the
    same file (the spool's destination) delivers them."""
    out = spool_dir.parent / "out.jsonl"
    out.mkdir(parents=True)
    exporter = FileSpanExporter(out, spool_dir=spool_dir, clock=FakeClock(), shutdown_timeout=2.0)
    ids = set()
    for number in range(traces):
        spans = make_spans((f"root-{number}", "child", "grandchild"))
        ids.add(format(spans[0].context.trace_id, "032x"))
        exporter.export(spans)
    exporter.force_flush(2_000)  # assembled into the outbox; the delivery itself fails
    exporter.shutdown()
    out.rmdir()
    return exporter.spool.path, ids


def damage(path: Path, kind: str) -> None:
    size = path.stat().st_size
    rng = random.Random(19)
    if kind == "truncated_to_half":
        os.truncate(path, size // 2)
    elif kind == "random_8k_in_middle":
        with path.open("r+b") as file:
            file.seek(size // 2 - 4096)
            file.write(rng.randbytes(8192))
    elif kind == "replaced_by_text":
        path.write_text("these are not the traces you are looking for\n" * 40, encoding="utf-8")
    elif kind == "header":
        with path.open("r+b") as file:
            file.write(rng.randbytes(100))
    elif kind == "empty":
        os.truncate(path, 0)
    else:
        raise ValueError(kind)


def damage_outbox_pages_in_middle(path: Path) -> set[str]:
    """Overwrite with random bytes the two adjacent outbox leaf pages nearest the middle of the
    file (8 KiB with 4 KiB pages); returns the keys of the outbox rows they held."""
    db = sqlite3.connect(path)
    try:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        leaves = sorted(
            row[0]
            for row in db.execute(
                "SELECT pageno FROM dbstat WHERE name = 'outbox' AND pagetype = 'leaf'"
            )
        )
        keys = dict(db.execute("SELECT id, key FROM outbox").fetchall())
        pages = db.execute("PRAGMA page_count").fetchone()[0]
    finally:
        db.close()
    pairs = [(a, b) for a, b in itertools.pairwise(leaves) if b == a + 1]
    first, second = min(pairs, key=lambda pair: abs(pair[0] - pages // 2))
    with path.open("r+b") as file:
        content = {}
        for page in (first, second):
            file.seek((page - 1) * page_size)
            content[page] = file.read(page_size)
        file.seek((first - 1) * page_size)
        file.write(random.Random(19).randbytes(2 * page_size))
    return {keys[rowid] for page in content.values() for rowid in _leaf_rowids(page)}


def _leaf_rowids(page: bytes) -> list[int]:
    """Rowids of the cells on a table b-tree leaf page (https://www.sqlite.org/fileformat2.html)."""
    assert page[0] == 0x0D, "not a table leaf page"
    cells = int.from_bytes(page[3:5], "big")
    rowids = []
    for index in range(cells):
        offset = int.from_bytes(page[8 + 2 * index : 10 + 2 * index], "big")
        _, offset = _varint(page, offset)  # payload size
        rowid, _ = _varint(page, offset)
        rowids.append(rowid)
    return rowids


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    value = 0
    for index in range(9):
        byte = data[offset + index]
        if index == 8:
            return (value << 8) | byte, offset + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, offset + index + 1
    raise AssertionError("unreachable")
