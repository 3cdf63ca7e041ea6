"""Deployment processes shared by the partition tests of this folder (one start per session).

Starting a deployment process costs about a second; the tests that do not kill or swap their
deployment share these. Each test has its own partition and registry, and the shared ledger is
read per invocation id, so tests stay independent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .e2e_support import CHECKOUT, GREETER, DeploymentProcess

FAST = {"CHECKOUT_INITIAL_INTERVAL": "20ms", "CHECKOUT_MAX_ATTEMPTS": "3"}


@dataclass(frozen=True)
class Shared:
    v1: DeploymentProcess  # Checkout v1 (fails at ship), 20ms / 3 attempts
    v2: DeploymentProcess  # Checkout v2 (fixed)
    greeter: DeploymentProcess
    ledger: Path  # the Checkout steps that really ran, "<invocation id> <step>" per line


@pytest.fixture(scope="session")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    workdir = tmp_path_factory.mktemp("deployments")
    ledger = workdir / "ledger"
    processes = [
        DeploymentProcess(CHECKOUT, ["--version", version, "--ledger", str(ledger)], workdir, FAST)
        for version in ("v1", "v2")
    ]
    processes.append(DeploymentProcess(GREETER, [], workdir))
    try:
        for process in processes:  # started together: each waits mostly on its imports
            process._launch()
        for process in processes:
            process.wait_listening()
        yield Shared(processes[0], processes[1], processes[2], ledger)
    finally:
        for process in processes:
            process.stop()
