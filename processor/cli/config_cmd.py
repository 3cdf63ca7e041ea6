"""`processor config …`: show the effective configuration (file < env < flags, SPEC §6.4)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from processor.config import ConfigError, load_config


@click.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("show")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="PROCESSOR_CONFIG",
    help="TOML configuration file (env PROCESSOR_CONFIG).",
)
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
def show(config_path: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """Print the effective configuration: defaults overridden by the file, env and flags."""
    try:
        effective = load_config(config_path, os.environ, {"data-dir": data_dir})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(effective.to_dict(), indent=2))
    else:
        click.echo(effective.to_toml(), nl=False)
