"""The apply bench's yardstick (bench/reference_loop.py) does the work its figure claims."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import reference_loop

from processor.codec import decode


def test_reference_loop_writes_one_row_per_record_and_one_per_invocation(
    payloads: list[bytes], tmp_path: Path
) -> None:
    records = list(enumerate(payloads, 1))
    db = tmp_path / "reference.db"

    rate, latencies = reference_loop.with_sqlite(records, db, batch_size=64)

    assert rate > 0
    assert len(latencies) == -(-len(records) // 64)

    invocations = {getattr(decode(p), "invocation_id", "") for p in payloads}
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM records").fetchone() == (len(payloads),)
        assert conn.execute("SELECT COUNT(*) FROM state").fetchone() == (len(invocations),)
        (total,) = conn.execute("SELECT SUM(n) FROM state").fetchone()
        assert total == len(payloads)
    finally:
        conn.close()


def test_reference_loop_python_part_reports_a_rate(payloads: list[bytes]) -> None:
    assert reference_loop.python_only(list(enumerate(payloads, 1)), batch_size=64) > 0
