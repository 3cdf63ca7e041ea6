"""`processor replay`: rebuild, --verify (match and divergence), --trace, --json, paths."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from log import open_log
from processor.cli import main
from processor.storage import digest_file


def run(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["replay", *map(str, args)])
    return result.exit_code, result.output


def partition(data_dir: Path) -> tuple[Path, Path]:
    base = data_dir / "partitions" / "0"
    return base / "log", base / "state.db"


def some_invocation(db: Path, status: str | None = None) -> str:
    conn = sqlite3.connect(db)
    try:
        sql = "SELECT id FROM invocations"
        args: tuple[str, ...] = ()
        if status:
            sql += " WHERE status=?"
            args = (status,)
        return str(conn.execute(sql + " ORDER BY id LIMIT 1", args).fetchone()[0])
    finally:
        conn.close()


def test_replay_prints_records_last_lsn_digest_and_speed(data_dir: Path) -> None:
    log_dir, state = partition(data_dir)
    code, out = run("--log", log_dir)
    assert code == 0, out
    assert "records applied: 237" in out
    assert "last LSN:        237" in out
    assert f"digest:          {digest_file(state)}" in out
    assert "records/s" in out


def test_verify_matches_the_live_store(data_dir: Path) -> None:
    log_dir, state = partition(data_dir)
    before = state.read_bytes()
    code, out = run("--log", log_dir, "--state", state, "--verify")
    assert code == 0, out
    assert "verify: OK" in out
    assert state.read_bytes() == before  # the live store is never written


def test_data_dir_and_partition_are_the_same_as_explicit_paths(data_dir: Path) -> None:
    code, out = run("--data-dir", data_dir, "--partition", 0, "--verify", "--json")
    assert code == 0, out
    body = json.loads(out)
    assert body["live"]["match"] is True
    assert body["records"] == body["last_lsn"] == body["live"]["applied_lsn"] == 237


def test_verify_of_a_tampered_store_exits_1_naming_table_row_and_both_versions(
    data_dir: Path, tmp_path: Path
) -> None:
    log_dir, state = partition(data_dir)
    tampered = tmp_path / "tampered.db"
    shutil.copy(state, tampered)
    victim = some_invocation(tampered, "completed")
    conn = sqlite3.connect(tampered)
    conn.execute("UPDATE invocations SET status='paused' WHERE id=?", (victim,))
    conn.commit()
    conn.close()
    code, out = run("--log", log_dir, "--state", tampered, "--verify")
    assert code == 1, out
    assert "DIVERGENCE" in out
    assert "table 'invocations'" in out and victim in out
    replayed_line = next(line for line in out.splitlines() if line.strip().startswith("replayed:"))
    live_line = next(line for line in out.splitlines() if line.strip().startswith("live:"))
    assert "status='completed'" in replayed_line and "status='paused'" in live_line


def test_verify_divergence_in_json(data_dir: Path, tmp_path: Path) -> None:
    log_dir, state = partition(data_dir)
    tampered = tmp_path / "tampered.db"
    shutil.copy(state, tampered)
    conn = sqlite3.connect(tampered)
    conn.execute(
        "DELETE FROM journal WHERE (invocation_id, idx) = "
        "(SELECT invocation_id, idx FROM journal ORDER BY invocation_id, idx LIMIT 1)"
    )
    conn.commit()
    conn.close()
    code, out = run("--log", log_dir, "--state", tampered, "--verify", "--json")
    assert code == 1
    body = json.loads(out)
    assert body["live"]["match"] is False
    assert body["divergence"]["table"] == "journal"
    assert body["divergence"]["live"] is None and body["divergence"]["replayed"] is not None


def test_trace_prints_one_line_per_command_of_the_invocation(data_dir: Path) -> None:
    log_dir, state = partition(data_dir)
    inv = some_invocation(state, "completed")
    code, out = run("--log", log_dir, "--trace", inv)
    assert code == 0, out
    lines = [line for line in out.splitlines() if line.strip().startswith("LSN")]
    assert lines
    assert "Invoke" in lines[0]
    assert "not found → running" in lines[0] or "not found → scheduled" in lines[0]
    assert "StartAttempt" in lines[0]
    assert any("AttemptCompleted" in line and "→ completed" in line for line in lines)
    assert all("Z" in line for line in lines)  # the record time, ISO-8601 UTC

    code, out = run("--log", log_dir, "--trace", inv, "--json")
    trace = json.loads(out)["trace"]
    assert len(trace) == len(lines)
    assert trace[0]["before"] is None and trace[-1]["after"] == "completed"
    assert [t["lsn"] for t in trace] == sorted(t["lsn"] for t in trace)


def test_until_lsn_and_out_write_a_fresh_store(data_dir: Path, tmp_path: Path) -> None:
    log_dir, _ = partition(data_dir)
    out_db = tmp_path / "rebuilt.db"
    code, out = run("--log", log_dir, "--until-lsn", 100, "--out", out_db, "--json")
    assert code == 0, out
    body = json.loads(out)
    assert body["last_lsn"] == 100 and body["records"] == 100
    assert digest_file(out_db) == body["digest"]
    code, out = run("--log", log_dir, "--out", out_db)
    assert code != 0 and "already exists" in out


def test_replay_works_while_a_writer_holds_the_log(data_dir: Path) -> None:
    import asyncio

    log_dir, state = partition(data_dir)

    async def hold_and_replay() -> tuple[int, str]:
        writer = open_log(log_dir, fsync="never")  # takes the writer lock, like a daemon
        try:
            return await asyncio.to_thread(run, "--log", log_dir, "--state", state, "--verify")
        finally:
            await writer.close()

    code, out = asyncio.run(hold_and_replay())
    assert code == 0, out
    assert "verify: OK" in out


def test_missing_log_and_bad_option_combinations_are_usage_errors(
    data_dir: Path, tmp_path: Path
) -> None:
    code, out = run("--log", tmp_path / "nope")
    assert code != 0 and "does not exist" in out
    code, out = run("--log", partition(data_dir)[0], "--verify")
    assert code != 0 and "--state" in out
    code, out = run("--data-dir", data_dir)
    assert code != 0 and "--partition" in out


def test_trace_of_a_malformed_id_is_a_usage_error_with_the_expected_form(data_dir: Path) -> None:
    log_dir, _ = partition(data_dir)
    code, out = run("--log", log_dir, "--trace", "inv_bad")
    assert code == 2, out
    assert "--trace: malformed invocation id 'inv_bad'" in out and "followed by" in out


def test_trace_of_an_id_of_another_partition_says_which_one_to_replay(
    data_dir: Path, tmp_path: Path
) -> None:
    from processor.ids import make_invocation_id, partition_of

    copy = tmp_path / "two-partitions"
    shutil.copytree(data_dir / "partitions" / "0", copy / "partitions" / "0")
    (copy / "partitions" / "1").mkdir()
    elsewhere = make_invocation_id(1 << 63, 5)  # the upper half of the key range
    assert partition_of(elsewhere, 2) == 1
    code, out = run("--data-dir", copy, "--partition", 0, "--trace", elsewhere)
    assert code == 0, out
    assert f"{elsewhere} belongs to partition 1: replay that one (--partition 1)" in out


def test_verify_cannot_stop_at_until_lsn(data_dir: Path) -> None:
    code, out = run("--data-dir", data_dir, "--partition", 0, "--verify", "--until-lsn", 17)
    assert code == 2, out
    assert "--verify" in out and "--until-lsn" in out


def test_replay_of_a_corrupt_log_is_one_error_naming_the_segment(data_dir: Path) -> None:
    log_dir, _ = partition(data_dir)
    segment = sorted(log_dir.glob("*.seg"))[0]
    raw = bytearray(segment.read_bytes())
    raw[24] ^= 0xFF  # the first record's payload: corruption that is not a torn tail
    segment.write_bytes(bytes(raw))
    result = CliRunner().invoke(main, ["replay", "--log", str(log_dir)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"Error: log segment {segment} is corrupt" in result.output


def test_replay_of_a_directory_without_segments_says_what_a_log_directory_holds(
    tmp_path: Path,
) -> None:
    result = CliRunner().invoke(main, ["replay", "--log", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "records applied: 0" in result.stdout
    assert f"note: {tmp_path} holds no log segments" in result.stderr
    assert "partitions/<n>/log" in result.stderr


def test_partition_alone_means_the_daemons_default_data_dir(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(data_dir.parent)  # ./data is the daemon's default
    code, out = run("--partition", 0)
    assert code == 0, out
    assert "records applied: 237" in out


def test_missing_partition_lists_the_ones_that_exist(data_dir: Path) -> None:
    code, out = run("--data-dir", data_dir, "--partition", 7)
    assert code == 1
    assert f"no partition 7 in {data_dir} (partitions there: 0)" in out
    code, out = run("--data-dir", data_dir)
    assert code == 2 and "--data-dir needs --partition N (partitions in" in out
