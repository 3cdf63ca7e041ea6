"""Loading the configuration: every key, precedence file < env < flags, and errors naming keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processor.config import (
    CLI_ENV_VARS,
    Config,
    ConfigError,
    FsyncPolicy,
    ListenAddress,
    env_var_for,
    load_config,
)
from processor.config_values import SCHEMA, format_duration_ms, format_size, parse_size
from processor.retry import RetryPolicy

FULL_TOML = """
data-dir = "/var/lib/processor"
partitions = 8

[ingress]
listen = "0.0.0.0:18080"

[admin]
listen = "[::1]:19070"

[invocation]
completion-retention = "0"
attempt-inactivity-timeout = "90s"
max-concurrent-attempts = 50

[invocation.default-retry-policy]
initial-interval = "250ms"
exponentiation-factor = 1.5
max-interval = "2m"
max-attempts = "unlimited"
on-max-attempts = "kill"

[log]
fsync = "interval:10ms"
segment-size = "1GiB"

[logging]
level = "debug"
format = "json"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "processor.toml"
    path.write_text(text)
    return path


def test_defaults_match_the_spec() -> None:
    config = load_config(None, {}, {})
    assert config == Config()
    assert config.data_dir == Path("./data")
    assert config.partitions == 4
    assert config.ingress.listen == ("127.0.0.1", 8080)
    assert config.admin.listen == ("127.0.0.1", 9070)
    assert config.invocation.completion_retention_ms == 24 * 3_600_000
    assert config.invocation.attempt_inactivity_timeout_ms == 60_000
    assert config.invocation.max_concurrent_attempts == 1000
    assert config.invocation.default_retry_policy == RetryPolicy()
    assert config.log.fsync == FsyncPolicy("always")
    assert config.log.segment_size == 64 * 1024 * 1024
    assert (config.logging.level, config.logging.format) == ("info", "auto")


def test_every_key_of_every_section_parses_from_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL_TOML), {}, {})
    assert config.data_dir == Path("/var/lib/processor")
    assert config.partitions == 8
    assert config.ingress.listen == ListenAddress("0.0.0.0", 18080)
    assert config.admin.listen == ListenAddress("::1", 19070)
    assert config.invocation.completion_retention_ms == 0
    assert config.invocation.attempt_inactivity_timeout_ms == 90_000
    assert config.invocation.max_concurrent_attempts == 50
    assert config.invocation.default_retry_policy == RetryPolicy(250, 1.5, 120_000, None, "kill")
    assert config.log.fsync == FsyncPolicy("interval", 10)
    assert config.log.segment_size == 1 << 30
    assert (config.logging.level, config.logging.format) == ("debug", "json")


def test_config_is_frozen() -> None:
    config = Config()
    with pytest.raises(AttributeError):
        config.partitions = 2  # type: ignore[misc]


def test_env_overrides_file_and_flags_override_env(tmp_path: Path) -> None:
    path = write(tmp_path, 'partitions = 2\ndata-dir = "/from-file"\n[ingress]\nlisten = "h:1"\n')
    env = {"PROCESSOR_PARTITIONS": "6", "PROCESSOR_INGRESS__LISTEN": "127.0.0.1:18080"}
    config = load_config(path, env, {"partitions": 9})
    assert config.partitions == 9  # flag beats env beats file
    assert config.ingress.listen == ("127.0.0.1", 18080)  # env beats file
    assert config.data_dir == Path("/from-file")  # file beats default


def test_unset_flags_do_not_override(tmp_path: Path) -> None:
    config = load_config(None, {"PROCESSOR_DATA_DIR": "/env"}, {"data-dir": None})
    assert config.data_dir == Path("/env")


def test_flag_values_may_be_strings_or_typed() -> None:
    config = load_config(
        None, {}, {"data-dir": Path("/d"), "partitions": "3", "ingress.listen": "localhost:0"}
    )
    assert (config.data_dir, config.partitions) == (Path("/d"), 3)
    assert config.ingress.listen == ("localhost", 0)


@pytest.mark.parametrize(
    ("name", "value", "check"),
    [
        ("PROCESSOR_DATA_DIR", "/srv/p", lambda c: c.data_dir == Path("/srv/p")),
        ("PROCESSOR_PARTITIONS", "8", lambda c: c.partitions == 8),
        ("PROCESSOR_ADMIN__LISTEN", "127.0.0.1:19070", lambda c: c.admin.listen[1] == 19070),
        (
            "PROCESSOR_INVOCATION__COMPLETION_RETENTION",
            "1h",
            lambda c: c.invocation.completion_retention_ms == 3_600_000,
        ),
        (
            "PROCESSOR_INVOCATION__ATTEMPT_INACTIVITY_TIMEOUT",
            "1500",
            lambda c: c.invocation.attempt_inactivity_timeout_ms == 1500,
        ),
        (
            "PROCESSOR_INVOCATION__MAX_CONCURRENT_ATTEMPTS",
            " 12 ",
            lambda c: c.invocation.max_concurrent_attempts == 12,
        ),
        (
            "PROCESSOR_INVOCATION__DEFAULT_RETRY_POLICY__MAX_ATTEMPTS",
            "5",
            lambda c: c.invocation.default_retry_policy.max_attempts == 5,
        ),
        (
            "PROCESSOR_INVOCATION__DEFAULT_RETRY_POLICY__MAX_ATTEMPTS",
            "unlimited",
            lambda c: c.invocation.default_retry_policy.max_attempts is None,
        ),
        (
            "PROCESSOR_INVOCATION__DEFAULT_RETRY_POLICY__EXPONENTIATION_FACTOR",
            "3",
            lambda c: c.invocation.default_retry_policy.exponentiation_factor == 3.0,
        ),
        (
            "PROCESSOR_INVOCATION__DEFAULT_RETRY_POLICY__INITIAL_INTERVAL",
            "2s",
            lambda c: c.invocation.default_retry_policy.initial_interval_ms == 2000,
        ),
        (
            "PROCESSOR_INVOCATION__DEFAULT_RETRY_POLICY__MAX_INTERVAL",
            "5m",
            lambda c: c.invocation.default_retry_policy.max_interval_ms == 300_000,
        ),
        (
            "PROCESSOR_INVOCATION__DEFAULT_RETRY_POLICY__ON_MAX_ATTEMPTS",
            "kill",
            lambda c: c.invocation.default_retry_policy.on_max_attempts == "kill",
        ),
        ("PROCESSOR_LOG__FSYNC", "never", lambda c: c.log.fsync == FsyncPolicy("never")),
        ("PROCESSOR_LOG__SEGMENT_SIZE", "512KiB", lambda c: c.log.segment_size == 512 * 1024),
        ("PROCESSOR_LOG__SEGMENT_SIZE", "1048576", lambda c: c.log.segment_size == 1 << 20),
        ("PROCESSOR_LOGGING__LEVEL", "WARNING", lambda c: c.logging.level == "warning"),
        ("PROCESSOR_LOGGING__FORMAT", "console", lambda c: c.logging.format == "console"),
    ],
)
def test_env_strings_are_coerced_to_the_key_type(name: str, value: str, check: Any) -> None:
    assert check(load_config(None, {name: value}, {}))


def test_every_schema_key_has_an_env_variable_name() -> None:
    assert env_var_for("data-dir") == "PROCESSOR_DATA_DIR"
    assert (
        env_var_for("invocation.default-retry-policy.max-attempts")
        == "PROCESSOR_INVOCATION__DEFAULT_RETRY_POLICY__MAX_ATTEMPTS"
    )
    assert len({env_var_for(k) for k in SCHEMA}) == len(SCHEMA)


def test_cli_only_and_unrelated_environment_variables_are_ignored() -> None:
    env = {name: "whatever" for name in CLI_ENV_VARS} | {"PATH": "/bin", "PROCESSORX": "1"}
    assert load_config(None, env, {}) == Config()


def test_unknown_processor_env_variable_is_rejected_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, {"PROCESSOR_INGRESS_LISTEN": "127.0.0.1:1"}, {})
    message = str(err.value)
    assert "PROCESSOR_INGRESS_LISTEN" in message
    assert "did you mean PROCESSOR_INGRESS__LISTEN" in message
    assert "PROCESSOR_ADMIN_URL" in message


@pytest.mark.parametrize(
    ("toml", "key", "accepted"),
    [
        ('partitions = "four"', "'partitions'", "integer from 1 to 1024"),
        ("partitions = 0", "'partitions'", "integer from 1 to 1024"),
        ("partitions = true", "'partitions'", "integer from 1 to 1024"),
        ("data-dir = 3", "'data-dir'", "directory path"),
        ('[ingress]\nlisten = "8080"', "'ingress.listen'", '"host:port"'),
        ('[ingress]\nlisten = "localhost:99999"', "'ingress.listen'", '"host:port"'),
        ('[admin]\nlisten = ":9070"', "'admin.listen'", '"host:port"'),
        ('[admin]\nlisten = "::1:9070"', "'admin.listen'", '"host:port"'),
        (
            '[invocation]\ncompletion-retention = "forever"',
            "'invocation.completion-retention'",
            '"24h"',
        ),
        (
            '[invocation]\nattempt-inactivity-timeout = "0"',
            "'invocation.attempt-inactivity-timeout'",
            "greater than 0",
        ),
        (
            "[invocation]\nmax-concurrent-attempts = -1",
            "'invocation.max-concurrent-attempts'",
            "integer from 1",
        ),
        (
            '[invocation.default-retry-policy]\ninitial-interval = "soon"',
            "'invocation.default-retry-policy.initial-interval'",
            '"500ms"',
        ),
        (
            "[invocation.default-retry-policy]\ninitial-interval = [1]",
            "'invocation.default-retry-policy.initial-interval'",
            '"500ms"',
        ),
        (
            "[invocation.default-retry-policy]\nexponentiation-factor = 0.5",
            "'invocation.default-retry-policy.exponentiation-factor'",
            "a finite number >= 1",
        ),
        (
            "[invocation.default-retry-policy]\nexponentiation-factor = nan",
            "'invocation.default-retry-policy.exponentiation-factor'",
            "a finite number >= 1",
        ),
        (
            "[invocation.default-retry-policy]\nexponentiation-factor = inf",
            "'invocation.default-retry-policy.exponentiation-factor'",
            "a finite number >= 1",
        ),
        (
            "[invocation.default-retry-policy]\nexponentiation-factor = 1" + "0" * 400,
            "'invocation.default-retry-policy.exponentiation-factor'",
            "a finite number >= 1",
        ),
        (
            "[invocation.default-retry-policy]\nmax-attempts = 9223372036854775808",
            "'invocation.default-retry-policy.max-attempts'",
            "from 1 to 2147483647",
        ),
        (
            "[invocation.default-retry-policy]\nmax-attempts = 0",
            "'invocation.default-retry-policy.max-attempts'",
            '"unlimited"',
        ),
        (
            '[invocation.default-retry-policy]\non-max-attempts = "retry"',
            "'invocation.default-retry-policy.on-max-attempts'",
            '"pause" or "kill"',
        ),
        ('[log]\nfsync = "sometimes"', "'log.fsync'", '"interval:<duration>"'),
        ('[log]\nfsync = "interval:0ms"', "'log.fsync'", '"interval:<duration>"'),
        ('[log]\nsegment-size = "64 parsecs"', "'log.segment-size'", '"64MiB"'),
        ("[log]\nsegment-size = 10", "'log.segment-size'", "at least 4096"),
        ('[logging]\nlevel = "loud"', "'logging.level'", '"debug", "info"'),
        ('[logging]\nformat = "xml"', "'logging.format'", '"auto", "json" or "console"'),
    ],
)
def test_bad_value_in_file_names_key_source_and_accepted_values(
    tmp_path: Path, toml: str, key: str, accepted: str
) -> None:
    path = write(tmp_path, toml + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, {}, {})
    message = str(err.value)
    assert key in message
    assert f"file {path}" in message
    assert accepted in message


@pytest.mark.parametrize(
    ("toml", "named", "accepted"),
    [
        ("partition = 4", "'partition'", "partitions"),
        ('[ingress]\nlisten = "a:1"\nport = 1', "'ingress.port'", "listen"),
        ("[invocation.default-retry-policy]\nmax-retries = 3", "max-retries", "max-attempts"),
        ("[metrics]\nenabled = true", "'metrics'", "logging"),
        ("ingress = 5", "'ingress'", "listen"),
    ],
)
def test_unknown_key_in_file_names_it_and_lists_accepted_keys(
    tmp_path: Path, toml: str, named: str, accepted: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, toml + "\n"), {}, {})
    assert named in str(err.value)
    assert accepted in str(err.value)


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, {"PROCESSOR_PARTITIONS": "many"}, {})
    assert "'partitions'" in str(err.value)
    assert "env PROCESSOR_PARTITIONS" in str(err.value)


def test_bad_flag_value_and_unknown_flag_key_name_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"'ingress\.listen' \(flag ingress\.listen\)"):
        load_config(None, {}, {"ingress.listen": "nope"})
    with pytest.raises(ConfigError, match=r"unknown config key 'ingress\.port'"):
        load_config(None, {}, {"ingress.port": 1})


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist"):
        load_config(tmp_path / "nope.toml", {}, {})


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "partitions = = 4\n"), {}, {})


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("64MiB", 64 << 20),
        ("1GiB", 1 << 30),
        ("512KiB", 512 << 10),
        ("512kib", 512 << 10),
        ("10 MB", 10_000_000),
        ("8192", 8192),
        (8192, 8192),
    ],
)
def test_segment_size_forms(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@given(st.integers(min_value=0, max_value=10**12))
def test_durations_format_and_parse_back(ms: int) -> None:
    text = format_duration_ms(ms)
    parsed = load_config(None, {}, {"invocation.completion-retention": text})
    assert parsed.invocation.completion_retention_ms == ms


@given(st.integers(min_value=4096, max_value=1 << 40))
def test_sizes_format_and_parse_back(size: int) -> None:
    assert parse_size(format_size(size)) == size
