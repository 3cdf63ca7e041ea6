"""Draws the transition table as docs/states.md: a Mermaid state diagram and the full table.

    python -m processor.state_machine.diagram            # (re)write docs/states.md
    python -m processor.state_machine.diagram --check    # exit 1 if docs/states.md is stale
    python -m processor.state_machine.diagram --stdout   # print instead of writing

Everything is derived from `transitions.TABLE`, so the picture cannot drift from the code (a test
runs the check).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from processor.state_machine.lifecycle.common import ignore, stale
from processor.state_machine.transitions import STATUSES, TABLE, Cell, Kind
from processor.status import Status

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "states.md"


def _node(status: Status | None) -> str:
    return "[*]" if status is None else status.name.lower()


def _label(kind: Kind) -> str:
    return kind.value.replace(": ", " ")  # Mermaid ends a label at the first ':'


def mermaid() -> str:
    """Every status change the table allows, one arrow per (from, to), labelled by command."""
    edges: dict[tuple[Status | None, Status | None], list[str]] = {}
    for kind, row in TABLE.items():
        for before in STATUSES:
            for after in sorted(row[before].to, key=STATUSES.index):
                if after != before:
                    edges.setdefault((before, after), []).append(_label(kind))
    lines = ["stateDiagram-v2"]
    lines += [f'    state "{s.value}" as {_node(s)}' for s in Status]
    for (before, after), labels in edges.items():
        lines.append(f"    {_node(before)} --> {_node(after)}: {', '.join(labels)}")
    return "\n".join(lines)


def describe(cell: Cell) -> str:
    if cell.handler is ignore:
        return "ignore"
    if cell.handler is stale:
        return "ignore + AbortAttempt"
    if cell.code is not None:
        return f"{cell.code}"
    text = f"`{cell.handler.__name__}`"
    moves = [s.value if s is not None else "not found" for s in STATUSES if s in cell.to]
    return f"{text} → {' / '.join(moves)}" if moves else text


def table() -> str:
    header = ["command \\ status", *("not found" if s is None else s.value for s in STATUSES)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for kind, row in TABLE.items():
        cells = [describe(row[s]) for s in STATUSES]
        lines.append(f"| **{kind.value}** | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render() -> str:
    return f"""# Invocation states

Generated from `processor/state_machine/transitions.py` by
`python -m processor.state_machine.diagram`; do not edit by hand.

```mermaid
{mermaid()}
```

## The table

Numbers are the HTTP answers of rejected requests (nothing changes); `ignore` changes nothing and
answers nothing; `ignore + AbortAttempt` is an effect of an attempt that is not the current one.
Where a handler may also leave the status as it is, the status is listed among its targets.
Handlers live in `processor/state_machine/lifecycle/`.

{table()}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("--stdout", action="store_true", help="print instead of writing")
    args = parser.parse_args(argv)
    text = render()
    if args.stdout:
        sys.stdout.write(text)
        return 0
    if args.check:
        current = DOC_PATH.read_text() if DOC_PATH.exists() else ""
        if current != text:
            print(f"{DOC_PATH} is stale: run python -m processor.state_machine.diagram")
            return 1
        return 0
    DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOC_PATH.write_text(text)
    print(f"wrote {DOC_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
