"""`processor config show`: prints the effective configuration, which loads back unchanged."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from processor.cli import main
from processor.config import Config, load_config


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    # The developer's own PROCESSOR_* variables must not leak into these tests.
    for name in list(os.environ):
        if name.startswith("PROCESSOR_"):
            monkeypatch.delenv(name)
    return CliRunner()


def test_config_show_prints_defaults_as_toml_that_loads_back(
    runner: CliRunner, tmp_path: Path
) -> None:
    result = runner.invoke(main, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert 'listen = "127.0.0.1:8080"' in result.output
    assert "[invocation.default-retry-policy]" in result.output
    shown = tmp_path / "shown.toml"
    shown.write_text(result.output)
    assert load_config(shown, {}, {}) == Config()


def test_config_show_reflects_file_env_and_flags_and_round_trips(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "in.toml"
    path.write_text(
        'partitions = 2\n[log]\nfsync = "interval:25ms"\nsegment-size = 100000\n'
        '[invocation.default-retry-policy]\nmax-attempts = "unlimited"\n'
        "exponentiation-factor = 1.25\n"
    )
    env = {"PROCESSOR_ADMIN__LISTEN": "[::1]:0", "PROCESSOR_ADMIN_URL": "http://x"}
    result = runner.invoke(
        main, ["config", "show", "--config", str(path), "--data-dir", "/flag"], env=env
    )
    assert result.exit_code == 0, result.output
    assert 'data-dir = "/flag"' in result.output
    assert 'listen = "[::1]:0"' in result.output
    expected = load_config(path, env, {"data-dir": "/flag"})
    shown = tmp_path / "shown.toml"
    shown.write_text(result.output)
    assert load_config(shown, {}, {}) == expected


def test_config_show_json(runner: CliRunner) -> None:
    result = runner.invoke(main, ["config", "show", "--json"], env={"PROCESSOR_PARTITIONS": "8"})
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["partitions"] == 8
    assert data["invocation"]["default-retry-policy"]["max-attempts"] == 70
    assert data["log"] == {"fsync": "always", "segment-size": "64MiB"}


def test_config_show_reads_the_file_named_by_processor_config(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "c.toml"
    path.write_text("partitions = 3\n")
    result = runner.invoke(main, ["config", "show", "--json"], env={"PROCESSOR_CONFIG": str(path)})
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["partitions"] == 3


def test_config_show_invalid_value_exits_1_naming_the_key(runner: CliRunner) -> None:
    result = runner.invoke(main, ["config", "show"], env={"PROCESSOR_LOG__FSYNC": "often"})
    assert result.exit_code == 1
    assert "'log.fsync'" in result.output
    assert "PROCESSOR_LOG__FSYNC" in result.output
    assert '"always"' in result.output


def test_config_show_missing_file_is_a_clear_error(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    result = runner.invoke(main, ["config", "show", "--config", str(missing)])
    assert result.exit_code == 1
    assert f"config file {missing} does not exist" in result.output
