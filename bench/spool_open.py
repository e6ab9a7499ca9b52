"""What checking a spool file at every open costs (issue 19 §1): `Spool(...)` as it opens now
(0600 modes, header, `PRAGMA quick_check`, sidecar) beside the open it replaced (connect, WAL,
recount), for spools of 1 MiB, 32 MiB and the default limit, 256 MiB. Files are in the page cache
(warm: a restart right after a crash); a cold disk read adds its own time to both.

    .venv/bin/python bench/spool_open.py [--sizes 1,32,256] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from otel_bridge.spool import _SCHEMA, _SCHEMA_VERSION, Spool
from otel_bridge.spool_files import check_file

_ROW_BYTES = 2048


def _build(path: Path, mib: int) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(_SCHEMA)
    db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
    payload = "x" * _ROW_BYTES
    db.execute("BEGIN")
    for number in range(mib * 1024 * 1024 // _ROW_BYTES):
        db.execute(
            "INSERT INTO outbox (key, payload, bytes, span_count, partial, enqueued_at,"
            " next_attempt_at) VALUES (?, ?, ?, 3, 0, 1.0, 1.0)",
            (format(number, "032x"), payload, _ROW_BYTES),
        )
    db.execute("COMMIT")
    db.close()


def _open_before(path: Path) -> None:
    """The open this replaced: connect, WAL, and the spool's recount."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA user_version").fetchone()
    for sql in (
        "SELECT COALESCE(SUM(bytes), 0) FROM dead_letters",
        "SELECT COALESCE(SUM(bytes), 0) FROM pending_traces",
        "SELECT COALESCE(SUM(bytes), 0) FROM outbox",
        "SELECT COUNT(*) FROM pending_traces",
    ):
        db.execute(sql).fetchone()
    db.close()


def _open_now(path: Path) -> None:
    Spool(path, max_bytes=1 << 40, max_traces=10_000, max_spans_per_trace=10_000).close()


def _median_ms(action: object, path: Path, repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        action(path)  # type: ignore[operator]
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,32,256", help="spool sizes in MiB")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print("spool open, median of", args.repeat, "(warm page cache; the machine may be shared)")
    print(
        f"{'payload MiB':>11} {'file MB':>8} {'before ms':>10} {'now ms':>8} {'check only ms':>14}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        for mib in (int(size) for size in args.sizes.split(",")):
            path = Path(scratch) / f"s{mib}.sqlite3"
            _build(path, mib)
            _open_before(path)  # warm the cache for both
            before = _median_ms(_open_before, path, args.repeat)
            now = _median_ms(_open_now, path, args.repeat)
            check = _median_ms(check_file, path, args.repeat)
            size = path.stat().st_size / 1e6
            print(f"{mib:>11} {size:>8.1f} {before:>10.1f} {now:>8.1f} {check:>14.1f}")


if __name__ == "__main__":
    main()
