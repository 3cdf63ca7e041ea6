"""A live partition on disk (data dir layout of SPEC §6.5) built from a golden log."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from log import open_log
from processor.runner import Runner
from processor.storage import Store

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "mixed"


async def _apply(log_dir: Path, db: Path) -> None:
    log = open_log(log_dir, readonly=True)
    store = await Store.open(db)
    try:
        await Runner(log, store, batch_size=64).catch_up()
    finally:
        store.close()
        await log.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """`tmp/data/partitions/0/{log,state.db}` with the state fully applied."""
    base = tmp_path / "data" / "partitions" / "0"
    base.mkdir(parents=True)
    shutil.copytree(GOLDEN, base / "log")
    asyncio.run(_apply(base / "log", base / "state.db"))
    return tmp_path / "data"
