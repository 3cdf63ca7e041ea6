"""The transition table itself: total, consistent with the commands, and drawn up to date."""

from __future__ import annotations

import importlib
import pkgutil
import typing

import processor.state_machine.lifecycle as lifecycle
from processor import commands
from processor.commands import TimerFired, TimerKey, TimerKind
from processor.state_machine import apply, diagram
from processor.state_machine.transitions import KINDS, STATUSES, TABLE, TIMER_KINDS, Kind, kind_of
from processor.state_machine.types import ApplyContext
from processor.status import Status
from tests.builders import INV, announce_leader


def test_table_is_total_over_every_status_and_command_kind() -> None:
    assert set(TABLE) == set(Kind)
    for kind, row in TABLE.items():
        assert set(row) == {None, *Status}, f"row {kind} misses {({None, *Status}) - set(row)}"
    assert len(STATUSES) == 7


def test_every_invocation_command_type_has_a_row() -> None:
    command_types = set(typing.get_args(commands.InvocationCommand))
    assert set(KINDS) | {TimerFired} == command_types
    assert set(TIMER_KINDS) == set(TimerKind)
    assert set(KINDS.values()) | set(TIMER_KINDS.values()) == set(Kind)


def test_kind_of_a_timer_depends_on_which_timer_fired() -> None:
    assert kind_of(TimerFired(INV, TimerKey(TimerKind.RETRY, 3))) is Kind.TIMER_RETRY
    assert kind_of(TimerFired(INV, TimerKey(TimerKind.SLEEP, 1))) is Kind.TIMER_SLEEP


def test_cells_that_leave_not_found_only_create_and_purge_only_deletes() -> None:
    for kind, row in TABLE.items():
        for before, cell in row.items():
            if None in cell.to and before is not None:
                assert (kind, before) == (Kind.PURGE, Status.COMPLETED)
            if before is None and cell.to:
                assert kind is Kind.INVOKE


def test_completed_is_terminal_except_purge() -> None:
    for kind, row in TABLE.items():
        cell = row[Status.COMPLETED]
        assert not cell.to or (kind is Kind.PURGE and cell.to == {None})


def test_announce_leader_touches_no_invocation() -> None:
    t = apply(None, announce_leader(4), ApplyContext(1, 1))
    assert t.leader_epoch == 4
    assert t.view is None and not t.changed and not t.actions


def test_every_lifecycle_module_documents_its_statuses() -> None:
    for info in pkgutil.iter_modules(lifecycle.__path__):
        module = importlib.import_module(f"{lifecycle.__name__}.{info.name}")
        assert module.__doc__, f"{info.name} has no docstring"
        if info.name != "common":
            assert "pre" in module.__doc__ or "→" in module.__doc__, info.name


def test_docs_states_md_is_up_to_date() -> None:
    assert diagram.DOC_PATH.read_text() == diagram.render(), (
        "docs/states.md is stale: run `python -m processor.state_machine.diagram`"
    )


def test_diagram_draws_every_status_change_of_the_table() -> None:
    text = diagram.mermaid()
    assert "paused --> running: resume, cancel" in text
    assert "completed --> [*]: purge" in text
    assert "backing_off --> paused: pause" in text
    assert "completed -->" not in text.replace("completed --> [*]", "")


def test_diagram_check_mode_reports_freshness() -> None:
    assert diagram.main(["--check"]) == 0
