"""`processor replay`: rebuild / verify / trace a partition's state from its log.

Paths come from `--log`/`--state` or from `--data-dir DIR --partition N` (DIR defaults to ./data;
`DIR/partitions/N/log` and `DIR/partitions/N/state.db`). The log is opened read-only, so this works
while a daemon runs on the same data directory; the live store is only ever read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import click

if TYPE_CHECKING:
    from processor.replay import ReplayResult


def _partitions_in(data_dir: Path) -> str:
    """The partition numbers under `data_dir/partitions`, e.g. "0, 1, 2, 3" ('' if none)."""
    root = data_dir / "partitions"
    numbers = (
        sorted(int(p.name) for p in root.iterdir() if p.name.isdigit()) if root.is_dir() else []
    )
    return ", ".join(map(str, numbers))


def _paths(
    log_dir: Path | None, state: Path | None, data_dir: Path | None, partition: int | None
) -> tuple[Path, Path | None]:
    if data_dir is not None or partition is not None:
        if log_dir is not None:
            raise click.UsageError("use either --log/--state or --data-dir/--partition")
        data_dir = data_dir if data_dir is not None else Path("data")  # the daemon's default
        present = _partitions_in(data_dir)
        if partition is None:
            raise click.UsageError(
                f"--data-dir needs --partition N (partitions in {data_dir}: {present or 'none'})"
            )
        base = data_dir / "partitions" / str(partition)
        if not base.is_dir():
            raise click.ClickException(
                f"no partition {partition} in {data_dir} (partitions there: {present or 'none'})"
            )
        return base / "log", state if state is not None else base / "state.db"
    if log_dir is None:
        raise click.UsageError("give --log DIR (or --data-dir DIR --partition N)")
    return log_dir, state


async def _run(
    log_dir: Path,
    state: Path | None,
    until_lsn: int | None,
    out: Path | None,
    verify: bool,
    trace: str | None,
) -> ReplayResult:
    # Imported here so that `processor --help` does not load the state machine and the store.
    from processor.replay import open_log_readonly
    from processor.replay import replay as run_replay

    log = open_log_readonly(log_dir)
    try:
        return await run_replay(
            log,
            log_name=str(log_dir),
            out=out,
            live_state=state if verify else None,
            until_lsn=until_lsn,
            trace=trace,
        )
    finally:
        await log.close()


def _owner_hint(trace: str, data_dir: Path | None, partition: int | None) -> str:
    """Where `trace` lives when it is not the replayed partition (known with --data-dir only: the
    partitions are the numbered directories there, and an id's key says which one owns it)."""
    from processor.ids import partition_of

    if data_dir is None or partition is None:
        return ""
    found = [p.name for p in (data_dir / "partitions").glob("*") if p.name.isdigit()]
    if not found:
        return ""
    owner = partition_of(trace, len(found))
    if owner == partition or str(owner) not in found:
        return ""
    return f"; {trace} belongs to partition {owner}: replay that one (--partition {owner})"


def _print_human(result: ReplayResult, trace: str | None, hint: str = "") -> None:
    if trace is not None:
        click.echo(f"history of {trace} ({len(result.trace)} commands):")
        for line in result.trace:
            click.echo("  " + line.format())
        if not result.trace:
            click.echo(f"  (no command in the replayed range touched it{hint})")
    click.echo(f"records applied: {result.records}")
    click.echo(f"last LSN:        {result.last_lsn}")
    click.echo(f"digest:          {result.digest}")
    click.echo(f"speed:           {result.records_per_s:,.0f} records/s ({result.seconds:.3f} s)")
    if result.out:
        click.echo(f"rebuilt store:   {result.out}")
    if result.live_digest is not None:
        if result.verified:
            click.echo(
                f"verify: OK, the live store {result.live_state} at LSN "
                f"{result.live_applied_lsn} has the same digest"
            )
        else:
            click.echo(
                f"verify: DIVERGENCE: the live store {result.live_state} at LSN "
                f"{result.live_applied_lsn} has digest {result.live_digest}"
            )
            if result.divergence is not None:
                click.echo(result.divergence.describe("replayed", "live"))


@click.command()
@click.option("--log", "log_dir", type=click.Path(path_type=Path), help="The log directory.")
@click.option(
    "--state", type=click.Path(path_type=Path), help="The live state.db (read only, for --verify)."
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    help="Data directory (with --partition; default ./data).",
)
@click.option("--partition", type=int, help="Partition number inside --data-dir.")
@click.option("--until-lsn", type=click.IntRange(min=0), help="Stop after this LSN.")
@click.option("--out", type=click.Path(path_type=Path), help="Write the rebuilt store here.")
@click.option("--verify", is_flag=True, help="Compare with the live store at its applied LSN.")
@click.option("--trace", metavar="INV_ID", help="Print the history of one invocation.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def replay(
    log_dir: Path | None,
    state: Path | None,
    data_dir: Path | None,
    partition: int | None,
    until_lsn: int | None,
    out: Path | None,
    verify: bool,
    trace: str | None,
    as_json: bool,
) -> None:
    """Rebuild a partition's state from its log into a fresh store (the live store is never
    touched) and print records applied, last LSN, digest and speed. Exits 1 on a divergence."""
    from log import LogError
    from processor.cli.log_cmd import warn_if_no_segments
    from processor.codec import CodecError
    from processor.ids import InvalidId, parse_invocation_id
    from processor.replay import ReplayError
    from processor.runner import RunnerError, tune_switch_interval

    log_path, state_path = _paths(log_dir, state, data_dir, partition)
    if verify and state_path is None:
        raise click.UsageError("--verify needs --state (or --data-dir/--partition)")
    if verify and until_lsn is not None:
        raise click.UsageError(
            "--verify replays up to the live store's applied LSN and compares the two; it cannot "
            "stop at --until-lsn (replay to an LSN without --verify, with --out to keep the state)"
        )
    if trace is not None:
        try:
            parse_invocation_id(trace)
        except InvalidId as exc:
            raise click.UsageError(f"--trace: {exc}") from None
    if not log_path.is_dir():
        raise click.ClickException(f"log directory {log_path} does not exist")
    tune_switch_interval()
    warn_if_no_segments(log_path)
    try:
        result = anyio.run(_run, log_path, state_path, until_lsn, out, verify, trace)
    except (ReplayError, RunnerError, CodecError, LogError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result.to_json(), sort_keys=True))
    else:
        hint = _owner_hint(trace, data_dir, partition) if trace is not None else ""
        _print_human(result, trace, hint)
    if result.verified is False:
        raise SystemExit(1)
