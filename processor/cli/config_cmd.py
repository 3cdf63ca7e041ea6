"""`processor config …`: show the effective configuration."""

from __future__ import annotations

import click


@click.group()
def config() -> None:
    """Inspect the configuration."""
