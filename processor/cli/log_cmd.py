"""`processor log …`: inspect a partition's command log."""

from __future__ import annotations

import click


@click.group()
def log() -> None:
    """Inspect a command log."""
