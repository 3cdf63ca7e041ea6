"""The loop-thread journal reader: same rows as the store's reader, short journals only."""

from __future__ import annotations

from pathlib import Path

from processor.state_machine.types import JournalAppend, Transition
from processor.storage import BatchWrites, Store
from processor.storage.loop_reader import LoopReader

from .strategies import make_view


async def write_journal(store: Store, inv: str, entries: int, lsn: int) -> None:
    t = Transition(view=make_view(inv, journal_length=entries), changed=True)
    t.journal = [
        JournalAppend(0, {"kind": "input", "value": b"in", "headers": {"h": "v"}}, 10),
        *(
            JournalAppend(i, {"kind": "run", "name": f"s{i}", "value": b"x"}, 10 + i)
            for i in range(1, entries)
        ),
    ]
    w = BatchWrites(applied_lsn=lsn)
    w.add(inv, t)
    await store.write_batch(w)


async def test_loop_reader_sees_the_committed_journal_exactly_as_the_store_reads_it(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "state.db")
    reader = LoopReader(tmp_path / "state.db", limit=8)
    try:
        await write_journal(store, "inv_a", 3, 1)
        assert reader.journal("inv_a") == await store.get_journal("inv_a")
        assert reader.journal("inv_unknown") == []
        await write_journal(store, "inv_b", 5, 2)  # a batch committed after the reader opened
        assert reader.journal("inv_b") == await store.get_journal("inv_b")
    finally:
        reader.close()
        store.close()


async def test_loop_reader_leaves_a_journal_longer_than_its_limit_to_the_store(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "state.db")
    reader = LoopReader(tmp_path / "state.db", limit=4)
    try:
        await write_journal(store, "inv_long", 5, 1)
        await write_journal(store, "inv_short", 4, 2)
        assert reader.journal("inv_long") is None
        short = reader.journal("inv_short")
        assert short is not None and [i for i, _, _ in short] == [0, 1, 2, 3]
    finally:
        reader.close()
        store.close()
