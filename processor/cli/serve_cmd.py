"""`processor serve`: run the daemon (all partitions, the ingress and the admin API)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from processor.config import ConfigError, load_config
from processor.eventloop import DEFAULT_EVENT_LOOP, EVENT_LOOPS, EventLoopName, run
from processor.telemetry import configure_logging


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    envvar="PROCESSOR_CONFIG",
    help="TOML configuration file (`processor config show` lists the keys); env PROCESSOR_CONFIG.",
)
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where logs and state live.")
@click.option("--partitions", type=int, help="Number of partitions.")
@click.option("--ingress-listen", help="host:port of the ingress (default 127.0.0.1:8080).")
@click.option("--admin-listen", help="host:port of the admin API (default 127.0.0.1:9070).")
@click.option("--log-level", help="debug, info, warning, error.")
@click.option(
    "--event-loop",
    type=click.Choice(EVENT_LOOPS),
    default=DEFAULT_EVENT_LOOP,
    show_default=True,
    help="The asyncio event loop implementation (uvloop is faster; asyncio is the stdlib's).",
)
def serve(
    config_path: Path | None,
    data_dir: Path | None,
    partitions: int | None,
    ingress_listen: str | None,
    admin_listen: str | None,
    log_level: str | None,
    event_loop: EventLoopName,
) -> None:
    """Run the daemon. With no options, everything lives under ./data."""
    from processor.daemon import DaemonError
    from processor.daemon import serve as run_daemon

    try:
        config = load_config(
            config_path,
            os.environ,
            {
                "data-dir": str(data_dir) if data_dir is not None else None,
                "partitions": partitions,
                "ingress.listen": ingress_listen,
                "admin.listen": admin_listen,
                "logging.level": log_level,
            },
        )
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    configure_logging(config.logging.level, config.logging.format)
    try:
        run(run_daemon, config, event_loop=event_loop)
    except KeyboardInterrupt:
        pass
    except BaseException as exc:
        # A startup problem raised inside a task group arrives wrapped in an ExceptionGroup; the
        # operator needs its one-line message, not the group's traceback.
        problem = _daemon_error(exc, DaemonError)
        if problem is None:
            raise
        raise click.ClickException(str(problem)) from None


def _daemon_error(exc: BaseException, kind: type[Exception]) -> Exception | None:
    """`exc` itself or the first exception of type `kind` nested in exception groups."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _daemon_error(inner, kind)
            if found is not None:
                return found
    return None
