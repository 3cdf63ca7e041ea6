"""Fixtures for the log tests: one factory per `Log` implementation, a clock tests can steer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.log.log_helpers import LogFactory


@pytest.fixture(params=["memory", "file"])
async def logs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LogFactory]:
    factory = LogFactory(request.param, tmp_path / "log")
    yield factory
    await factory.close_all()


@pytest.fixture
async def file_logs(tmp_path: Path) -> AsyncIterator[LogFactory]:
    factory = LogFactory("file", tmp_path / "log")
    yield factory
    await factory.close_all()
