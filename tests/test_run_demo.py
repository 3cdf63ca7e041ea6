"""`make run` (examples/run_demo.py) refuses to start a second time, before anything starts."""

from __future__ import annotations

import fcntl
import importlib.util
import socket
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_run_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_demo", ROOT / "examples" / "run_demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("run_demo", module)
    spec.loader.exec_module(module)
    return module


def test_second_make_run_on_a_locked_data_dir_names_the_running_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = load_run_demo()
    monkeypatch.setattr(demo, "ROOT", tmp_path)
    (tmp_path / "data").mkdir()
    with open(tmp_path / "data" / "LOCK", "a+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242")
        held.flush()
        problem = demo.already_running()
    assert problem is not None and "pid 4242" in problem and "already running" in problem


def test_make_run_with_a_port_in_use_names_the_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = load_run_demo()
    monkeypatch.setattr(demo, "ROOT", tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(demo, "DEPLOYMENTS", [("greeter.py", port, [])])
        problem = demo.already_running()
    assert problem is not None and f"port {port} is already in use" in problem
