"""Old logs keep replaying to the same state: the checked-in golden logs and their digests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from log import open_log
from processor.codec import decode
from processor.replay import replay

HERE = Path(__file__).resolve().parent
DIGESTS: dict[str, dict[str, object]] = json.loads((HERE / "digests.json").read_text())


@pytest.mark.parametrize("name", sorted(DIGESTS))
async def test_golden_log_replays_to_its_recorded_digest(name: str) -> None:
    expected = DIGESTS[name]
    log = open_log(HERE / name, readonly=True)
    try:
        result = await replay(log, log_name=name)
    finally:
        await log.close()
    assert (result.records, result.last_lsn) == (expected["records"], expected["last_lsn"])
    assert result.digest == expected["digest"], (
        f"golden log {name!r} no longer replays to its recorded state: a change broke old logs "
        f"(replay it with `processor replay --log tests/golden/{name} --trace inv_...` to see how)"
    )


async def test_golden_logs_cover_every_command_kind() -> None:
    kinds: set[str] = set()
    for name in DIGESTS:
        log = open_log(HERE / name, readonly=True)
        try:
            async for record in log.read(1):
                kinds.add(type(decode(record.payload, record.lsn)).__name__)
        finally:
            await log.close()
    assert kinds >= {
        "Invoke",
        "Pause",
        "Resume",
        "Cancel",
        "Kill",
        "Purge",
        "TimerFired",
        "AttemptPinned",
        "AttemptEntry",
        "AttemptSuspended",
        "AttemptCompleted",
        "AttemptFailed",
        "AnnounceLeader",
    }


def test_golden_logs_stay_small() -> None:
    total = sum(p.stat().st_size for p in HERE.rglob("*.seg"))
    assert total < 100_000
