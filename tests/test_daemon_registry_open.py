"""Opening the deployment registry at startup: damage and locks get different advice."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from processor.daemon import DaemonError, open_registry
from processor.registry import Registry


def test_damaged_registry_advice_is_to_restore_or_register_again(tmp_path: Path) -> None:
    path = tmp_path / "deployments.db"
    path.write_bytes(b"garbage " * 1000)
    with pytest.raises(DaemonError, match="cannot be read") as err:
        open_registry(path)
    assert str(path) in str(err.value) and "processor deployments register" in str(err.value)


def test_locked_registry_is_not_called_damaged(tmp_path: Path) -> None:
    path = tmp_path / "deployments.db"
    Registry(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("PRAGMA journal_mode=DELETE")
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(DaemonError, match="cannot open the deployment registry") as err:
            open_registry(path)
        assert "locked" in str(err.value) and "move it aside" not in str(err.value)
    finally:
        holder.close()
