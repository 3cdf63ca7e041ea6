"""`processor log dump`: prints records read-only, msgpack as JSON, anything else as hex."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import msgpack
from click.testing import CliRunner
from structlog.testing import capture_logs

from log import FileLog, open_log
from processor import codec
from processor.cli import main
from processor.commands import Pause
from tests.log.log_helpers import append_bytes

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def make_log(directory: Path, payloads: list[bytes]) -> None:
    async def go() -> None:
        log = open_log(directory, clock=lambda: T0)
        await log.append_batch(payloads)
        await log.close()

    asyncio.run(go())


def dump(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["log", "dump", *args])
    return result.exit_code, result.output


def test_dump_prints_lsn_time_size_and_decoded_payload(tmp_path: Path) -> None:
    make_log(
        tmp_path,
        [
            msgpack.packb({"name": "pause", "blob": b"\x00\xff", "text": b"hi"}),
            b"\xc1\x00 not msgpack",
            codec.encode(Pause("inv_1", "req-1")),
        ],
    )
    code, out = dump("--dir", str(tmp_path))
    assert code == 0, out
    lines = out.splitlines()
    assert len(lines) == 3
    assert lines[0].split()[:4] == [
        "1",
        "2023-11-14T22:13:20.000+00:00",
        str(len(msgpack.packb({"name": "pause", "blob": b"\x00\xff", "text": b"hi"}))),
        "B",
    ]
    assert '"name": "pause"' in lines[0] and '"text": "hi"' in lines[0]
    assert '{"base64": "AP8="}' in lines[0]
    assert "hex:c100206e6f74206d73677061636b" in lines[1]
    assert "Pause" in lines[2] and "inv_1" in lines[2]


def test_dump_json_lines_with_from_lsn_and_limit(tmp_path: Path) -> None:
    make_log(tmp_path, [msgpack.packb([i, "x"]) for i in range(1, 11)])
    code, out = dump("--dir", str(tmp_path), "--from-lsn", "4", "--limit", "3", "--json")
    assert code == 0, out
    entries = [json.loads(line) for line in out.splitlines()]
    assert [e["lsn"] for e in entries] == [4, 5, 6]
    assert entries[0] == {
        "lsn": 4,
        "timestamp_ms": T0,
        "time": "2023-11-14T22:13:20.000+00:00",
        "size": len(msgpack.packb([4, "x"])),
        "encoding": "msgpack",
        "payload": [4, "x"],
    }


def test_dump_works_while_a_writer_holds_the_lock_and_cuts_nothing(tmp_path: Path) -> None:
    make_log(tmp_path, [msgpack.packb(i) for i in range(1, 4)])
    seg = next(tmp_path.glob("*.seg"))
    append_bytes(seg, b"\x07\x00\x00")  # a torn tail, as if the writer were mid-write

    async def hold_lock_and_dump() -> tuple[int, str, str]:
        with capture_logs():
            writer = FileLog(tmp_path, fsync="never")  # cuts the torn tail, holds the lock
        append_bytes(seg, b"\x07\x00\x00")
        size = seg.stat().st_size
        try:
            result = await asyncio.to_thread(
                CliRunner().invoke, main, ["log", "dump", "--dir", str(tmp_path), "--json"]
            )
            assert seg.stat().st_size == size
            return result.exit_code, result.stdout, result.stderr
        finally:
            await writer.close()

    code, out, err = asyncio.run(hold_lock_and_dump())
    assert code == 0, out + err
    assert [json.loads(line)["payload"] for line in out.splitlines()] == [1, 2, 3]
    assert err == "note: ignored 3 bytes of a partly written record at the end of the log\n"


def test_dump_of_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    code, out = dump("--dir", str(tmp_path / "nope"))
    assert code != 0
    assert "no log directory" in out


def test_dump_of_a_trimmed_lsn_says_where_the_log_starts(tmp_path: Path) -> None:
    async def go() -> None:
        log = open_log(tmp_path, segment_size=1024)
        await log.append_batch([os.urandom(100) for _ in range(40)])
        await log.trim(20)
        await log.close()

    asyncio.run(go())
    code, out = dump("--dir", str(tmp_path), "--from-lsn", "1")
    assert code != 0
    assert "LSN 1 was trimmed" in out


def test_dump_of_a_directory_without_segments_says_what_a_log_directory_holds(
    tmp_path: Path,
) -> None:
    result = CliRunner().invoke(main, ["log", "dump", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"note: {tmp_path} holds no log segments" in result.stderr
