"""The `processor` command line: one click group; each verb family lives in its own module."""

from __future__ import annotations

import click

from processor.cli.bench_cmd import bench
from processor.cli.config_cmd import config
from processor.cli.deployments_cmd import deployments
from processor.cli.invocations_cmd import invocations
from processor.cli.log_cmd import log
from processor.cli.replay_cmd import replay
from processor.cli.serve_cmd import serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="processor")
def main() -> None:
    """A durable-execution partition processor with manual pause and resume."""


main.add_command(serve)
main.add_command(log)
main.add_command(replay)
main.add_command(config)
main.add_command(bench)
main.add_command(invocations)
main.add_command(deployments)
