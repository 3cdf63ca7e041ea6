"""`processor bench <suite>`: run a benchmark program from `bench/` (`<suite>_bench.py`).

The benchmarks are programs, not tests; they live in the repository's `bench/` folder next to the
package (the package is installed editable by `make`), print a table and, with `--json`, JSON lines.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def available_suites() -> list[str]:
    return sorted(p.name.removesuffix("_bench.py") for p in BENCH_DIR.glob("*_bench.py"))


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("suite")
@click.option("--quick", is_flag=True, help="A short run (under a minute per suite).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@click.argument("extra", nargs=-1, type=click.UNPROCESSED)
def bench(suite: str, quick: bool, as_json: bool, extra: tuple[str, ...]) -> None:
    """Run benchmark SUITE (or 'all'). Suites: the bench/*_bench.py programs."""
    suites = available_suites()
    if not suites:
        raise click.ClickException(f"no benchmark programs found under {BENCH_DIR}")
    chosen = suites if suite == "all" else [suite]
    for name in chosen:
        if name not in suites:
            raise click.ClickException(
                f"unknown benchmark suite {name!r}; available: {', '.join(suites)} or 'all'"
            )
    failed = []
    for name in chosen:
        args = [sys.executable, str(BENCH_DIR / f"{name}_bench.py")]
        args += ["--quick"] if quick else []
        args += ["--json"] if as_json else []
        args += list(extra)
        if subprocess.call(args) != 0:
            failed.append(name)
    if failed:
        raise click.ClickException(f"benchmark suite(s) failed: {', '.join(failed)}")
