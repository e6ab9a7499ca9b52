"""Opening a spool file of an earlier format: its tables are rewritten in the current one, in one
transaction, so what an earlier otel-bridge accepted is delivered by this one (nothing is lost on
upgrade; a crash midway leaves the file as it was).

Format 1 (otel-bridge 0.1.0) kept each span as JSON of the span's fields, resource and scope, and
each finished trace as JSON of its spans; format 2 keeps OTLP protobuf (see spool.py).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from otel_bridge.otlp_wire import (
    encode_record,
    resource_part,
    scope_part,
    span_field,
    traces_data,
)
from otel_bridge.spool_assembly import recount_trace
from otel_bridge.trace_tree import SpanRecord

__all__ = ["SpoolFormatError", "upgrade"]

_logger = logging.getLogger("otel_bridge.spool")

# Format 1's tables and indexes, replaced whole (meta is the same in both formats and stays).
_V1_TABLES = ("pending_spans", "pending_traces", "handed_over", "outbox", "dead_letters")
_V1_INDEXES = (
    "pending_traces_first",
    "pending_traces_root",
    "handed_over_at",
    "outbox_due",
    "dead_letters_dead_at",
)


class SpoolFormatError(RuntimeError):
    """The spool file was written by an incompatible otel-bridge version."""


def upgrade(db: sqlite3.Connection, path: Path, version: int, schema: str) -> None:
    """Bring the file behind `db` (autocommit mode) to format `version`, whose tables `schema`
    creates: a new file gets them, a file of format 1 is migrated, any other format raises
    SpoolFormatError and leaves the file alone."""
    found = int(db.execute("PRAGMA user_version").fetchone()[0])
    has_tables = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'outbox'").fetchone()
    if found == version or not has_tables:
        db.executescript(schema)
        db.execute(f"PRAGMA user_version = {version}")
        return
    if found != 1:
        raise SpoolFormatError(
            f"spool {path} has format {found}, this otel-bridge reads formats 1 and {version};"
            " deliver it with the version that wrote it, or move it away"
        )
    db.execute("BEGIN IMMEDIATE")
    try:
        counts = _migrate_from_1(db, schema)
        db.execute(f"PRAGMA user_version = {version}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    _logger.info(
        "spool %s: rewritten from format 1 to format %d (%d pending span(s), %d queued and %d"
        " dead-lettered trace(s))%s",
        path,
        version,
        counts["spans"],
        counts["outbox"],
        counts["dead_letters"],
        f"; {counts['unreadable']} unreadable row(s) left out" if counts["unreadable"] else "",
    )


def _migrate_from_1(db: sqlite3.Connection, schema: str) -> dict[str, int]:
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for index in _V1_INDEXES:
        db.execute(f"DROP INDEX IF EXISTS {index}")
    old = {}
    for table in _V1_TABLES:
        if table in tables:
            db.execute(f"ALTER TABLE {table} RENAME TO v1_{table}")
            old[table] = f"v1_{table}"
    # executescript would commit the transaction: one statement at a time.
    for statement in schema.split(";"):
        if statement.strip():
            db.execute(statement)
    scopes: dict[tuple[bytes, bytes], int] = {}
    counts = {"spans": 0, "outbox": 0, "dead_letters": 0, "unreadable": 0}

    def scope_id(record: SpanRecord) -> int:
        key = (resource_part(record.resource), scope_part(record.scope_name, record.scope_version))
        if key not in scopes:
            cursor = db.execute("INSERT INTO scopes (resource, scope) VALUES (?, ?)", key)
            scopes[key] = int(cursor.lastrowid or 0)
        return scopes[key]

    chunks: dict[tuple[bytes, int], tuple[list[bytes], list[bytes]]] = {}
    if "pending_spans" in old:
        for trace_hex, span_hex, text in db.execute(
            f"SELECT trace_id, span_id, record FROM {old['pending_spans']}"
        ).fetchall():
            try:
                record = SpanRecord.from_dict(json.loads(text))
                trace_id, span_id = bytes.fromhex(trace_hex), bytes.fromhex(span_hex)
            except (ValueError, KeyError, TypeError, AttributeError):
                counts["unreadable"] += 1
                continue
            ids, fields = chunks.setdefault((trace_id, scope_id(record)), ([], []))
            ids.append(span_id)
            fields.append(span_field(encode_record(record)))
            counts["spans"] += 1
    db.executemany(
        "INSERT INTO pending_chunks (trace_id, scope, span_ids, spans) VALUES (?, ?, ?, ?)",
        [(t, scope, b"".join(ids), b"".join(f)) for (t, scope), (ids, f) in chunks.items()],
    )
    if "pending_traces" in old:
        for trace_hex, first_arrival, root_arrival in db.execute(
            f"SELECT trace_id, first_arrival, root_arrival FROM {old['pending_traces']}"
        ).fetchall():
            try:
                trace_id = bytes.fromhex(trace_hex)
            except (ValueError, TypeError):
                counts["unreadable"] += 1
                continue
            db.execute(
                "INSERT OR IGNORE INTO pending_traces"
                " (trace_id, first_arrival, root_arrival, span_count, bytes) VALUES (?, ?, ?, 0, 0)",
                (trace_id, first_arrival, root_arrival),
            )
            recount_trace(db, trace_id)
    if "handed_over" in old:
        handed: dict[tuple[bytes, float], list[bytes]] = {}
        for trace_hex, span_hex, at in db.execute(
            f"SELECT trace_id, span_id, at FROM {old['handed_over']}"
        ).fetchall():
            try:
                handed.setdefault((bytes.fromhex(trace_hex), at), []).append(
                    bytes.fromhex(span_hex)
                )
            except (ValueError, TypeError):
                continue  # the resend window only; the sink's already_delivered still holds
        db.executemany(
            "INSERT INTO handed_over (trace_id, span_ids, at) VALUES (?, ?, ?)",
            [(t, b"".join(ids), at) for (t, at), ids in handed.items()],
        )
    for table, columns in (
        ("outbox", "attempts, first_attempt_at, next_attempt_at, last_error"),
        ("dead_letters", "attempts, reason, dead_at"),
    ):
        if table not in old:
            continue
        for item_id, key, text, partial, enqueued_at, *rest in db.execute(
            f"SELECT id, key, payload, partial, enqueued_at, {columns} FROM {old[table]}"
        ).fetchall():
            try:
                records = [SpanRecord.from_dict(span) for span in json.loads(text)["spans"]]
            except (ValueError, KeyError, TypeError, AttributeError):
                counts["unreadable"] += 1
                continue
            payload = _traces_data(records)
            marks = ",".join("?" * (6 + len(rest)))
            db.execute(
                f"INSERT INTO {table} (id, key, payload, bytes, span_count, partial, enqueued_at,"
                f" {columns}) VALUES ({marks}, ?)",
                (item_id, key, payload, len(payload), len(records), partial, enqueued_at, *rest),
            )
            counts[table] += 1
    for name in old.values():
        db.execute(f"DROP TABLE {name}")
    # Pairs no pending span uses (those of queued traces) need no row of their own.
    db.execute("DELETE FROM scopes WHERE id NOT IN (SELECT DISTINCT scope FROM pending_chunks)")
    return counts


def _traces_data(records: Iterable[SpanRecord]) -> bytes:
    """One `TracesData` message for a format-1 trace, grouped by resource and scope."""
    by_resource: dict[bytes, dict[bytes, list[bytes]]] = {}
    for record in records:
        resource = resource_part(record.resource)
        scope = scope_part(record.scope_name, record.scope_version)
        fields = span_field(encode_record(record))
        by_resource.setdefault(resource, {}).setdefault(scope, []).append(fields)
    return traces_data(
        (resource, [(scope, b"".join(spans)) for scope, spans in scopes.items()])
        for resource, scopes in by_resource.items()
    )
