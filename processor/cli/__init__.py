"""The `processor` command line: one click group; each verb family lives in its own module.

The modules are imported only when their command runs (a `LazyGroup`), so a quick client call
such as `processor invocations pause …` does not pay for importing the log, the state machine or
the daemon.
"""

from __future__ import annotations

import importlib

import click

# command name -> (module, attribute)
COMMANDS = {
    "serve": ("processor.cli.serve_cmd", "serve"),
    "invocations": ("processor.cli.invocations_cmd", "invocations"),
    "deployments": ("processor.cli.deployments_cmd", "deployments"),
    "replay": ("processor.cli.replay_cmd", "replay"),
    "log": ("processor.cli.log_cmd", "log"),
    "config": ("processor.cli.config_cmd", "config"),
    "bench": ("processor.cli.bench_cmd", "bench"),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        command = getattr(importlib.import_module(target[0]), target[1])
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="processor")
def main() -> None:
    """A durable-execution partition processor with manual pause and resume."""
