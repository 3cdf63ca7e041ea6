"""The state digest is canonical, and first_difference names the first differing row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from processor.state_machine.types import JournalAppend, Transition
from processor.status import Status
from processor.storage import BatchWrites, Store, digest_file, first_difference

from .strategies import make_view


async def _fill(path: Path, order: list[str], lsn: int = 3) -> None:
    s = await Store.open(path)
    try:
        for inv in order:
            t = Transition(view=make_view(inv), changed=True)
            t.journal = [JournalAppend(0, {"kind": "input", "value": inv.encode()}, 1)]
            w = BatchWrites(applied_lsn=lsn)
            w.add(inv, t)
            await s.write_batch(w)
    finally:
        s.close()


async def test_same_rows_written_in_a_different_order_give_the_same_digest(
    tmp_path: Path,
) -> None:
    await _fill(tmp_path / "a.db", ["inv_1", "inv_2", "inv_3"])
    await _fill(tmp_path / "b.db", ["inv_3", "inv_1", "inv_2"])
    assert digest_file(tmp_path / "a.db") == digest_file(tmp_path / "b.db")
    assert first_difference(tmp_path / "a.db", tmp_path / "b.db") is None


async def test_applied_lsn_is_part_of_the_digest(tmp_path: Path) -> None:
    await _fill(tmp_path / "a.db", ["inv_1"], lsn=3)
    await _fill(tmp_path / "b.db", ["inv_1"], lsn=4)
    assert digest_file(tmp_path / "a.db") != digest_file(tmp_path / "b.db")
    diff = first_difference(tmp_path / "a.db", tmp_path / "b.db")
    assert diff is not None and diff.table == "partition"


async def test_first_difference_names_table_key_and_both_versions(tmp_path: Path) -> None:
    await _fill(tmp_path / "a.db", ["inv_1", "inv_2"])
    await _fill(tmp_path / "b.db", ["inv_1", "inv_2"])
    conn = sqlite3.connect(tmp_path / "b.db")
    conn.execute("UPDATE invocations SET status='paused' WHERE id='inv_2'")
    conn.commit()
    conn.close()
    diff = first_difference(tmp_path / "a.db", tmp_path / "b.db")
    assert diff is not None
    assert (diff.table, diff.key) == ("invocations", ("inv_2",))
    assert diff.row_a is not None and diff.row_b is not None
    assert (diff.row_a["status"], diff.row_b["status"]) == ("running", "paused")
    assert diff.row_a["view"].status is Status.RUNNING  # the blob is shown decoded
    text = diff.describe("replayed", "live")
    assert "invocations" in text and "inv_2" in text and "paused" in text


async def test_row_missing_on_one_side_is_reported(tmp_path: Path) -> None:
    await _fill(tmp_path / "a.db", ["inv_1", "inv_2"])
    await _fill(tmp_path / "b.db", ["inv_1"])
    diff = first_difference(tmp_path / "a.db", tmp_path / "b.db")
    assert diff is not None
    assert (diff.table, diff.key, diff.row_b) == ("invocations", ("inv_2",), None)
