"""`processor replay`: rebuild / verify / trace a partition's state from its log."""

from __future__ import annotations

import click


@click.command()
def replay() -> None:
    """Rebuild state from a log (not built yet)."""
    raise click.ClickException("replay is not built yet")
