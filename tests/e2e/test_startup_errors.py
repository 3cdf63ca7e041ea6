"""Startup problems an operator must fix end `processor serve` with one `Error:` line that names
the file or address and the way out, never a traceback."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable

import anyio
import pytest

from .support import Daemon

pytestmark = pytest.mark.slow


async def _run_to_exit(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)

    return await anyio.to_thread.run_sync(run)


async def test_garbage_deployment_registry_ends_startup_with_the_file_and_the_fix(
    make_daemon: Callable[..., Daemon],
) -> None:
    daemon = make_daemon()
    daemon.data_dir.mkdir(parents=True)
    registry = daemon.data_dir / "deployments.db"
    registry.write_bytes(b"this is not a SQLite database " * 200)

    done = await _run_to_exit(daemon.command(), daemon.env)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert str(registry) in done.stderr and "cannot be read" in done.stderr, done.stderr
    assert "processor deployments register" in done.stderr, done.stderr


async def test_busy_listen_address_ends_startup_with_one_error_line(
    make_daemon: Callable[..., Daemon],
) -> None:
    daemon = make_daemon()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [
            *daemon.command()[:-2],
            "--admin-listen",
            f"127.0.0.1:{port}",
        ]
        done = await _run_to_exit(command, daemon.env)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in errors[0]
    assert "--admin-listen" in errors[0]
