"""The daemon's configuration (SPEC §6.4): a frozen `Config` tree and `load_config`.

Sources, lowest precedence first: the TOML file, env `PROCESSOR_<SECTION>__<KEY>`, then flags
(a dict of dotted keys). Every value is parsed by the schema entry of its dotted key, so an error
names the key, where the value came from, and what is accepted.

Env policy: every variable starting with `PROCESSOR_` must be a config key, except the CLI-only
variables in `CLI_ENV_VARS` (the admin URL for API clients, the config file path). A typo such as
`PROCESSOR_INGRESS_LISTEN` is therefore an error, not a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from processor.config_values import (
    SCHEMA,
    FsyncPolicy,
    ListenAddress,
    ValueSpec,
    format_duration_ms,
    format_size,
)
from processor.retry import RetryPolicy, policy_from_mapping

__all__ = [
    "CLI_ENV_VARS",
    "ENV_PREFIX",
    "Config",
    "ConfigError",
    "FsyncPolicy",
    "ListenAddress",
    "env_var_for",
    "load_config",
]

ENV_PREFIX = "PROCESSOR_"
# Read by the CLI, not part of the daemon's configuration; exempt from the unknown-key check.
CLI_ENV_VARS = frozenset({"PROCESSOR_ADMIN_URL", "PROCESSOR_CONFIG"})

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LogFormat = Literal["auto", "json", "console"]


class ConfigError(Exception):
    """An invalid configuration: the message names the key, its source and the accepted values."""


@dataclass(frozen=True, slots=True)
class IngressConfig:
    listen: ListenAddress = ListenAddress("127.0.0.1", 8080)  # noqa: RUF009 (immutable)


@dataclass(frozen=True, slots=True)
class AdminConfig:
    listen: ListenAddress = ListenAddress("127.0.0.1", 9070)  # noqa: RUF009 (immutable)


@dataclass(frozen=True, slots=True)
class InvocationConfig:
    completion_retention_ms: int = 24 * 3_600_000  # 0 = keep until purged by hand
    attempt_inactivity_timeout_ms: int = 60_000
    max_concurrent_attempts: int = 1000  # per partition
    default_retry_policy: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True, slots=True)
class LogConfig:
    fsync: FsyncPolicy = FsyncPolicy("always")  # noqa: RUF009 (frozen)
    segment_size: int = 64 * 1024 * 1024  # bytes


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: LogLevel = "info"
    format: LogFormat = "auto"


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path = Path("./data")  # relative paths are relative to the working directory
    partitions: int = 4
    ingress: IngressConfig = field(default_factory=IngressConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    invocation: InvocationConfig = field(default_factory=InvocationConfig)
    log: LogConfig = field(default_factory=LogConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def to_dict(self) -> dict[str, Any]:
        """The configuration with SPEC §6.4 keys and value forms; `load_config` accepts it back."""
        policy = self.invocation.default_retry_policy
        return {
            "data-dir": str(self.data_dir),
            "partitions": self.partitions,
            "ingress": {"listen": str(self.ingress.listen)},
            "admin": {"listen": str(self.admin.listen)},
            "invocation": {
                "completion-retention": format_duration_ms(self.invocation.completion_retention_ms),
                "attempt-inactivity-timeout": format_duration_ms(
                    self.invocation.attempt_inactivity_timeout_ms
                ),
                "max-concurrent-attempts": self.invocation.max_concurrent_attempts,
                "default-retry-policy": {
                    "initial-interval": format_duration_ms(policy.initial_interval_ms),
                    "exponentiation-factor": policy.exponentiation_factor,
                    "max-interval": format_duration_ms(policy.max_interval_ms),
                    "max-attempts": (
                        "unlimited" if policy.max_attempts is None else policy.max_attempts
                    ),
                    "on-max-attempts": policy.on_max_attempts,
                },
            },
            "log": {
                "fsync": str(self.log.fsync),
                "segment-size": format_size(self.log.segment_size),
            },
            "logging": {"level": self.logging.level, "format": self.logging.format},
        }

    def to_toml(self) -> str:
        lines: list[str] = []
        _emit_table(self.to_dict(), [], lines)
        return "\n".join(lines).strip() + "\n"


def _emit_table(table: Mapping[str, Any], path: list[str], out: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
    if path:
        out.append("")
        out.append(f"[{'.'.join(path)}]")
    for key, value in scalars.items():
        out.append(f"{key} = {_toml_scalar(value)}")
    for key, value in table.items():
        if isinstance(value, Mapping):
            _emit_table(value, [*path, key], out)


def _toml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    # A JSON string literal is a valid TOML basic string (same escapes).
    return json.dumps(str(value))


class _Setting(NamedTuple):
    value: Any
    source: str  # e.g. "file cfg.toml", "env PROCESSOR_PARTITIONS", "flag data-dir"


def env_var_for(dotted_key: str) -> str:
    """`invocation.default-retry-policy.max-attempts` →
    `PROCESSOR_INVOCATION__DEFAULT_RETRY_POLICY__MAX_ATTEMPTS`."""
    return ENV_PREFIX + "__".join(p.upper().replace("-", "_") for p in dotted_key.split("."))


_ENV_TO_KEY = {env_var_for(key): key for key in SCHEMA}
_SECTIONS = sorted({key.rsplit(".", 1)[0] for key in SCHEMA if "." in key})


def _keys_under(prefix: str) -> list[str]:
    """The immediate child names accepted under a section ("" = top level)."""
    start = f"{prefix}." if prefix else ""
    names = {k[len(start) :].split(".", 1)[0] for k in SCHEMA if k.startswith(start)}
    return sorted(names)


def _flatten_file(
    raw: Mapping[str, Any], prefix: str, source: str, out: dict[str, _Setting]
) -> None:
    for key, value in raw.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if dotted in SCHEMA:
            out[dotted] = _Setting(value, source)
        elif dotted in _SECTIONS:
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"config key {dotted!r} ({source}) must be a table [{dotted}] with keys: "
                    f"{', '.join(_keys_under(dotted))}"
                )
            _flatten_file(value, dotted, source, out)
        else:
            where = f"[{prefix}]" if prefix else "the top level"
            raise ConfigError(
                f"unknown config key {dotted!r} ({source}); accepted at {where}: "
                f"{', '.join(_keys_under(prefix))}"
            )


def _from_env(env: Mapping[str, str], out: dict[str, _Setting]) -> None:
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in CLI_ENV_VARS:
            continue
        key = _ENV_TO_KEY.get(name)
        if key is None:
            close = difflib.get_close_matches(name, [*_ENV_TO_KEY, *CLI_ENV_VARS], n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(
                f"unknown config environment variable {name}{hint}: variables starting with "
                f"{ENV_PREFIX} must name a config key as {ENV_PREFIX}<SECTION>__<KEY> "
                f"(accepted: {', '.join(sorted(_ENV_TO_KEY))}) or be one of "
                f"{', '.join(sorted(CLI_ENV_VARS))}"
            )
        out[key] = _Setting(_coerce_string(SCHEMA[key], value), f"env {name}")


def _from_overrides(overrides: Mapping[str, Any], out: dict[str, _Setting]) -> None:
    for key, value in overrides.items():
        if value is None:  # an unset click option
            continue
        if key not in SCHEMA:
            raise ConfigError(
                f"unknown config key {key!r} (flag); accepted: {', '.join(sorted(SCHEMA))}"
            )
        if isinstance(value, Path):
            value = str(value)
        if isinstance(value, str):
            value = _coerce_string(SCHEMA[key], value)
        out[key] = _Setting(value, f"flag {key}")


def _coerce_string(spec: ValueSpec, text: str) -> Any:
    """Env and flag values arrive as strings: give them the TOML type the key expects."""
    stripped = text.strip()
    if spec.kind == "int" or (spec.kind == "attempts" and stripped != "unlimited"):
        try:
            return int(stripped)
        except ValueError:
            return text
    if spec.kind == "float":
        try:
            return float(stripped)
        except ValueError:
            return text
    return text


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist (passed with --config)") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the effective configuration: defaults < file < env < overrides (dotted keys)."""
    settings: dict[str, _Setting] = {}
    if path is not None:
        _flatten_file(_read_file(path), "", f"file {path}", settings)
    _from_env(env or {}, settings)
    _from_overrides(overrides or {}, settings)

    values: dict[str, Any] = {}
    policy = RetryPolicy()
    for key, setting in settings.items():
        spec = SCHEMA[key]
        if spec.retry_key:
            name = key.rsplit(".", 1)[1]
            try:
                policy = policy_from_mapping({name: spec.parse(setting.value)}, base=policy)
            except ValueError as exc:
                raise _bad(key, setting, spec, str(exc)) from None
            continue
        try:
            values[key] = spec.parse(setting.value)
        except ValueError as exc:
            raise _bad(key, setting, spec, str(exc)) from None

    defaults = Config()
    inv = defaults.invocation
    return Config(
        data_dir=values.get("data-dir", defaults.data_dir),
        partitions=values.get("partitions", defaults.partitions),
        ingress=IngressConfig(values.get("ingress.listen", defaults.ingress.listen)),
        admin=AdminConfig(values.get("admin.listen", defaults.admin.listen)),
        invocation=dataclasses.replace(
            inv,
            completion_retention_ms=values.get(
                "invocation.completion-retention", inv.completion_retention_ms
            ),
            attempt_inactivity_timeout_ms=values.get(
                "invocation.attempt-inactivity-timeout", inv.attempt_inactivity_timeout_ms
            ),
            max_concurrent_attempts=values.get(
                "invocation.max-concurrent-attempts", inv.max_concurrent_attempts
            ),
            default_retry_policy=policy,
        ),
        log=LogConfig(
            fsync=values.get("log.fsync", defaults.log.fsync),
            segment_size=values.get("log.segment-size", defaults.log.segment_size),
        ),
        logging=LoggingConfig(
            level=values.get("logging.level", defaults.logging.level),
            format=values.get("logging.format", defaults.logging.format),
        ),
    )


def _bad(key: str, setting: _Setting, spec: ValueSpec, reason: str) -> ConfigError:
    return ConfigError(
        f"bad value {setting.value!r} for config key {key!r} ({setting.source}): {reason}; "
        f"accepted: {spec.accepted}"
    )
