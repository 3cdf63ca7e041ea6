"""Fixtures of the web UI tests: a real Registry on disk, fake partitions behind a real AdminApi,
and an aiohttp test client for the admin app with the UI mounted as the daemon mounts it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from processor.api.ui import mount_ui
from processor.registry import Registry
from tests.ui.fakes import FakeCluster


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(tmp_path / "deployments.db")
    yield reg
    reg.close()


@pytest.fixture
def cluster(registry: Registry) -> FakeCluster:
    return FakeCluster(registry)


def admin_app(cluster: FakeCluster) -> web.Application:
    app = cluster.admin.app()
    mount_ui(app, cluster.admin)
    return app


@pytest.fixture
async def client(cluster: FakeCluster) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(admin_app(cluster))) as c:
        yield c
