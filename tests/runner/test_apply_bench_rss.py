"""The apply bench's peak-RSS figure is the measured child's own, not its parent's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.runner.conftest import BENCH

BALLAST_MB = 160


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_child_peak_rss_does_not_include_the_parent_that_spawned_it() -> None:
    ballast = bytearray(BALLAST_MB * 1024 * 1024)
    ballast[::4096] = b"\x01" * len(range(0, len(ballast), 4096))  # touch every page
    code = f"import sys; sys.path.insert(0, {str(BENCH)!r}); import apply_bench; "
    code += "print(apply_bench.peak_rss_mb())"

    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)

    assert len(ballast) == BALLAST_MB * 1024 * 1024
    assert 0 < float(out.stdout) < BALLAST_MB / 2
