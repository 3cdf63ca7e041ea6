"""Fixtures for runner tests: a deterministic clock, logs filled with a seeded workload, stores."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from log import MemoryLog
from processor.storage import Store

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from workload import WorkloadConfig, generate  # noqa: E402


def stepping_clock(start: int = 1_700_000_000_000, step: int = 3) -> Callable[[], int]:
    """A log clock that advances `step` ms per record: logs built with it are reproducible."""
    state = [start]

    def now() -> int:
        state[0] += step
        return state[0]

    return now


def workload(invocations: int = 150, seed: int = 11) -> list[bytes]:
    return list(generate(WorkloadConfig(invocations, seed=seed, concurrency=40)))


@pytest.fixture(scope="session")
def payloads() -> list[bytes]:
    """~1k commands of the mixed workload (fails, retries, pauses, sleeps, purges...)."""
    return workload()


@pytest.fixture
async def memlog(payloads: list[bytes]) -> AsyncIterator[MemoryLog]:
    log = MemoryLog(clock=stepping_clock())
    await log.append_batch(payloads)
    yield log
    await log.close()


class StoreFactory:
    """Opens stores under one directory and closes them all at teardown."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.opened: list[Store] = []

    async def __call__(self, name: str = "state.db", *, writer_process: bool = False) -> Store:
        store = await Store.open(self.directory / name, writer_process=writer_process)
        self.opened.append(store)
        return store


@pytest.fixture
def open_store(tmp_path: Path) -> Iterator[StoreFactory]:
    factory = StoreFactory(tmp_path)
    yield factory
    for store in factory.opened:
        store.close()
