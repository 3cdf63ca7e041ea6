"""Shared output of the benchmark programs: a table for people, JSON lines for scripts.

Each figure is a `Result`; `emit(results, as_json)` prints them in the ARCHITECTURE.md §5 format:
`{"suite", "metric", "value", "unit", "baseline", "ratio", "params"}` (`baseline`/`ratio` only
where a baseline was measured in the same run).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass(frozen=True, slots=True)
class Result:
    suite: str
    metric: str
    value: float
    unit: str
    params: dict[str, Any] = field(default_factory=dict)
    baseline: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "suite": self.suite,
            "metric": self.metric,
            "value": round(self.value, 1),
            "unit": self.unit,
        }
        if self.baseline is not None:
            out["baseline"] = round(self.baseline, 1)
            ratio = self.ratio
            out["ratio"] = round(ratio, 1) if ratio is not None else None
        out["params"] = self.params
        return out


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def format_table(results: Iterable[Result]) -> str:
    rows = [("metric", "params", "value", "unit", "baseline", "ratio")]
    for r in results:
        params = " ".join(f"{k}={v}" for k, v in r.params.items())
        ratio = f"{r.ratio:.1f}x" if r.ratio is not None else "-"
        rows.append((r.metric, params, _fmt(r.value), r.unit, _fmt(r.baseline), ratio))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            cell.ljust(w) if i < 2 or n == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def emit(results: Iterable[Result], as_json: bool, out: TextIO | None = None) -> None:
    """Print `results` as JSON lines (`as_json`) or as a table."""
    stream = out or sys.stdout
    results = list(results)
    if as_json:
        for r in results:
            stream.write(json.dumps(r.to_json()) + "\n")
    else:
        stream.write(format_table(results) + "\n")
    stream.flush()
